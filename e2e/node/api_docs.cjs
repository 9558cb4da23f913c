// Opens Mnemo's API documentation page (/api/docs) in Debian's chromium, driven by
// playwright-core, with every request that leaves the server's own origin refused
// and recorded, so the page proves it needs no network. Called by e2e/tests/api_docs.rs:
//
//   node api_docs.cjs <server url> <screenshot path>
//
// Prints one JSON object: the operations the page shows, the requests it tried to
// send elsewhere, console errors (CSP violations among them) and the page's title.

const { launch } = require("./chromium.cjs");

const WITHIN_MS = 60_000;

async function main() {
  const [server, screenshot] = process.argv.slice(2);
  const origin = new URL(server).origin;
  const { context: browser, close } = await launch({ viewport: { width: 1280, height: 900 } });
  const elsewhere = [];
  const errors = [];
  const loaded = [];
  try {
    // Anything not for the server itself (a CDN, a validator, a font host) is
    // refused before it leaves the browser, and counted.
    await browser.route("**/*", (route) => {
      const url = route.request().url();
      if (url.startsWith(origin + "/") || url.startsWith("data:")) {
        loaded.push(url.slice(origin.length));
        return route.continue();
      }
      elsewhere.push(url);
      return route.abort();
    });
    const page = browser.pages()[0] || (await browser.newPage());
    page.on("console", (message) => {
      if (message.type() === "error") errors.push(message.text());
    });
    page.on("pageerror", (error) => errors.push(String(error)));
    const response = await page.goto(`${server}/api/docs`, { timeout: WITHIN_MS });
    await page.waitForSelector(".opblock", { timeout: WITHIN_MS });
    const operations = await page.$$eval(".opblock-summary", (blocks) =>
      blocks.map((block) => {
        const method = block.querySelector(".opblock-summary-method");
        const route = block.querySelector(".opblock-summary-path");
        return `${method ? method.textContent.trim() : "?"} ${route ? route.getAttribute("data-path") || route.textContent.trim() : "?"}`;
      }),
    );
    const title = await page.$eval(".info .title", (el) => el.textContent.trim());
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(
      JSON.stringify({
        url: page.url(),
        csp: response.headers()["content-security-policy"] || null,
        title,
        operations,
        elsewhere,
        errors,
        loaded,
      }),
    );
  } finally {
    await close();
  }
}

main().catch((error) => {
  console.log(JSON.stringify({ error: String(error && error.stack ? error.stack : error) }));
  process.exit(1);
});

// A web app on its own origin, in Debian's chromium driven by playwright-core, that
// listens to Mnemo's event stream the way the seed deployment guide's snippet does.
// Driven by e2e/tests/browser.rs over stdin/stdout, one JSON object per line:
//
//   out {"page": origin}                      the app is served; start Mnemo for it
//   in  {"open": "api_key" | "ticket", "apiBase", "apiKey", "screenshot"}
//   out {"connected": mode}                   onmessage saw connection_established
//   out {"received": mode, "data", "reused"}  onmessage saw a memory_stored
//   in  (end of input)                        close the browser and exit 0
//
// Anything that goes wrong is printed as {"error": …} and exits 1.

const http = require("node:http");
const readline = require("node:readline");
const { launch } = require("./chromium.cjs");

const WITHIN_MS = 30_000;

// The app's page. The SSE lines of the guide's "For Web Applications" snippet are
// verbatim; the ticket variant is mcp-memory-service 12's safer way for browsers.
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>Memory updates</title>
<h1>Memory updates</h1>
<ol id="log"></ol>
<script>
window.events = [];
window.errors = [];
function show(data) {
  window.events.push(data);
  const item = document.createElement("li");
  item.textContent = data.type + " " + (data.content_preview || data.message || "");
  document.getElementById("log").append(item);
}
async function listen({ mode, apiBase, apiKey }) {
  if (mode === "api_key") {
    // Real-time updates via SSE
    const eventSource = new EventSource(\`\${apiBase}/events/stream?api_key=\${apiKey}\`);
    eventSource.onmessage = (event) => {
      const data = JSON.parse(event.data);
      console.log('Memory update:', data);
      show(data);
    };
    eventSource.onerror = () => window.errors.push("stream error");
    return;
  }
  const response = await fetch(\`\${apiBase}/events/ticket\`, {
    method: "POST",
    headers: { "Authorization": \`Bearer \${apiKey}\` },
  });
  const { ticket } = await response.json();
  const eventSource = new EventSource(\`\${apiBase}/events/stream?ticket=\${ticket}\`);
  eventSource.onmessage = (event) => show(JSON.parse(event.data));
  eventSource.onerror = () => window.errors.push("stream error");
  // A ticket opens one stream: a second one with it must be refused.
  eventSource.onopen = () => {
    const again = new EventSource(\`\${apiBase}/events/stream?ticket=\${ticket}\`);
    again.onopen = () => { window.reused = "opened"; again.close(); };
    again.onerror = () => { window.reused = window.reused || "refused"; again.close(); };
  };
}
</script>`;

function say(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

async function main() {
  const server = http.createServer((request, response) => {
    response.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    response.end(PAGE);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  // `localhost`, not the API's `127.0.0.1`: another origin, as a real app has.
  const origin = `http://localhost:${server.address().port}`;

  const { context: browser, close } = await launch();
  const console_lines = [];
  say({ page: origin });

  const commands = readline.createInterface({ input: process.stdin });
  for await (const line of commands) {
    const command = JSON.parse(line);
    const mode = command.open;
    const page = await browser.newPage();
    page.on("console", (m) => console_lines.push(`${mode}: ${m.text()}`));
    page.on("pageerror", (e) => console_lines.push(`${mode}: page error ${e.message}`));
    await page.goto(origin + "/");
    await page.evaluate((config) => listen(config), {
      mode,
      apiBase: command.apiBase,
      apiKey: command.apiKey,
    });
    await page.waitForFunction(
      () => window.events.some((e) => e.type === "connection_established"),
      null,
      { timeout: WITHIN_MS },
    );
    say({ connected: mode });
    await page.waitForFunction(
      () => window.events.some((e) => e.type === "memory_stored"),
      null,
      { timeout: WITHIN_MS },
    );
    if (mode === "ticket") {
      await page.waitForFunction(() => window.reused !== undefined, null, {
        timeout: WITHIN_MS,
      });
    }
    const state = await page.evaluate(() => ({
      data: window.events.find((e) => e.type === "memory_stored"),
      reused: window.reused,
      errors: window.errors,
    }));
    await page.screenshot({ path: command.screenshot, fullPage: true });
    say({ received: mode, console: console_lines, ...state });
    await page.close();
  }
  await close();
  server.close();
}

main().then(
  () => process.exit(0),
  (error) => {
    say({ error: String(error && error.stack ? error.stack : error) });
    process.exit(1);
  },
);

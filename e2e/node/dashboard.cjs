// Drives Mnemo's dashboard in Debian's chromium with playwright-core, for
// e2e/tests/dashboard.rs. The test sends one JSON object per line on stdin and gets
// one back on stdout; the test decides what to do and asserts, this script only acts
// and waits (with playwright's polling waits, never a fixed delay):
//
//   in  {"page": name, "actions": [action, …]}
//   out {"ok": [result per action], "dialogs": [text of each confirm() accepted]}
//
// Actions, on the page called `name` (opened on first use, each its own tab, so each
// has its own sessionStorage):
//   {"goto": url}                  navigate and wait for the load event
//   {"viewport": [w, h]}           resize
//   {"fill": selector, "value"}    type into a field (replacing it)
//   {"select": selector, "value"}  choose an option
//   {"check": selector}            tick a checkbox
//   {"click": selector}            click (after waiting for it to be visible)
//   {"press": key}                 press a key where the focus is (e.g. "Enter")
//   {"wait": js}                   poll until the expression is truthy; its value
//   {"eval": js}                   the expression's value
//   {"shot": path}                 a full-page screenshot
//
// Uncaught errors in the page are reported with every answer as `problems` (failed
// requests are not: the test makes some on purpose). Anything that goes wrong here is printed as {"error": …}; end of input closes the
// browser and exits 0.

const readline = require("node:readline");
const { launch } = require("./chromium.cjs");

const WITHIN_MS = 30_000;

// The page's policy forbids eval, which playwright uses for a string predicate; a
// function is sent as a function and is not the page's own script.
function expression(text) {
  return new Function(`return (${text});`);
}

function say(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

async function main() {
  const { context: browser, close } = await launch({ viewport: { width: 1280, height: 860 } });
  const pages = new Map();
  const dialogs = [];
  const problems = [];
  async function page(name) {
    if (!pages.has(name)) {
      const p = await browser.newPage();
      p.on("dialog", (d) => {
        dialogs.push(d.message());
        d.accept();
      });
      p.on("pageerror", (e) => problems.push(`${name}: page error ${e.message}`));
      pages.set(name, p);
    }
    return pages.get(name);
  }

  const commands = readline.createInterface({ input: process.stdin });
  for await (const line of commands) {
    const command = JSON.parse(line);
    const p = await page(command.page || "main");
    const results = [];
    dialogs.length = 0;
    try {
      for (const a of command.actions) {
        if (a.goto !== undefined) {
          await p.goto(a.goto, { waitUntil: "load" });
          results.push(p.url());
        } else if (a.viewport) {
          await p.setViewportSize({ width: a.viewport[0], height: a.viewport[1] });
          results.push(null);
        } else if (a.fill) {
          await p.fill(a.fill, a.value, { timeout: WITHIN_MS });
          results.push(null);
        } else if (a.select) {
          await p.selectOption(a.select, a.value, { timeout: WITHIN_MS });
          results.push(null);
        } else if (a.check) {
          await p.check(a.check, { timeout: WITHIN_MS });
          results.push(null);
        } else if (a.click) {
          await p.click(a.click, { timeout: WITHIN_MS });
          results.push(null);
        } else if (a.press) {
          await p.keyboard.press(a.press);
          results.push(null);
        } else if (a.wait) {
          const handle = await p.waitForFunction(expression(a.wait), null, { timeout: WITHIN_MS, polling: 20 });
          results.push(await handle.jsonValue());
        } else if (a.eval) {
          results.push(await p.evaluate(expression(a.eval)));
        } else if (a.shot) {
          await p.screenshot({ path: a.shot, fullPage: true });
          results.push(a.shot);
        } else {
          throw new Error(`unknown action ${JSON.stringify(a)}`);
        }
      }
      say({ ok: results, dialogs: [...dialogs], problems: [...problems] });
    } catch (error) {
      if (command.failShot) await p.screenshot({ path: command.failShot, fullPage: true }).catch(() => {});
      say({ error: String(error && error.stack ? error.stack : error), done: results, problems });
    }
  }
  await close();
}

main().then(
  () => process.exit(0),
  (error) => {
    say({ error: String(error && error.stack ? error.stack : error) });
    process.exit(1);
  },
);

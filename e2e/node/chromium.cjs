// Debian's chromium under playwright-core, started the one way every browser test here
// needs it: headless, in a throwaway profile, with nothing of its own reaching out
// (no background updates, sync or QUIC), so the only traffic is what the page sends.

const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { chromium } = require("playwright-core");

// `options` are playwright's for a persistent context (a viewport, say). Returns the
// context and a `close` that also removes the profile.
async function launch(options = {}) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "mnemo-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.MNEMO_TEST_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    ...options,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  async function close() {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  return { context, close };
}

module.exports = { launch };

//! The seed deployment guide's web app in a real browser: Debian's chromium, headless,
//! driven by playwright-core (`e2e/node/browser_events.cjs`), on its own origin, with
//! the real `mnemo-server` binary. The page opens
//! ``new EventSource(`${apiBase}/events/stream?api_key=${apiKey}`)`` verbatim, and the
//! ticket variant, and listens with `onmessage`; another client stores a memory over
//! REST, and the page must receive it.
//!
//! The page's origin is not the API's, so the server allows it with
//! `MCP_CORS_ORIGINS`, as a deployment serving a web app must; the ticket's `fetch`
//! sends `Authorization`, which needs a CORS preflight that names it.
//!
//! Needs `make test-node` (which `make test` runs). Screenshots are kept in
//! `<target>/tmp/browser/`.

use std::path::PathBuf;
use std::time::Duration;

use mnemo_e2e::node::Script;
use mnemo_server::testing::ServerProcess;
use serde_json::{Value, json};

const KEY: &str = "browser-test-key";
/// How long the browser may take for one step (it polls, the test never sleeps).
const STEP_WITHIN: Duration = Duration::from_secs(60);

/// The web app's playwright driver (`e2e/node/browser_events.cjs`).
struct Browser(Script);

impl Browser {
    fn start() -> Self {
        Browser(Script::start("browser_events.cjs", "playwright-core"))
    }

    /// The next message, which must have `key`; an `error` message fails the test.
    fn expect(&self, key: &str) -> Value {
        let message = self
            .0
            .next(STEP_WITHIN)
            .unwrap_or_else(|| panic!("the browser said nothing with {key:?} in time"));
        assert!(
            message.get(key).is_some(),
            "expected {key:?}, got {message}"
        );
        message
    }

    fn send(&mut self, message: Value) {
        self.0.send(&message);
    }

    fn finish(self) {
        self.0.finish();
    }
}

fn screenshot(mode: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("event-stream-{mode}.png"))
}

/// A memory stored over REST by another client reaches the web app's `onmessage`,
/// through the guide's `?api_key=` snippet and through a single-use ticket, which a
/// second stream cannot reuse.
#[test]
fn the_seed_guides_web_app_receives_memories_stored_elsewhere() {
    let mut browser = Browser::start();
    let origin = browser.expect("page")["page"].as_str().unwrap().to_owned();
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        data.path(),
        &[("MCP_API_KEY", KEY), ("MCP_CORS_ORIGINS", origin.as_str())],
    );
    let api_base = format!("{}/api", server.url());
    let rest = reqwest::Client::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();

    for mode in ["api_key", "ticket"] {
        let shot = screenshot(mode);
        let _ = std::fs::remove_file(&shot);
        browser.send(json!({
            "open": mode, "apiBase": api_base, "apiKey": KEY,
            "screenshot": shot,
        }));
        assert_eq!(browser.expect("connected")["connected"], mode);

        let content = format!("stored over REST while a browser listens ({mode})");
        let stored: Value = runtime.block_on(async {
            rest.post(format!("{api_base}/memories"))
                .bearer_auth(KEY)
                .json(&json!({"content": content, "tags": ["browser"]}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        });
        let hash = stored["content_hash"].as_str().expect("stored").to_owned();

        let received = browser.expect("received");
        let event = &received["data"];
        assert_eq!(event["type"], "memory_stored", "{received}");
        assert_eq!(event["content_hash"], hash.as_str(), "{received}");
        assert_eq!(event["content_preview"], content.as_str(), "{received}");
        assert_eq!(received["errors"], json!([]), "{received}");
        if mode == "ticket" {
            assert_eq!(received["reused"], "refused", "{received}");
        } else {
            // The snippet's own `console.log`.
            let console = received["console"].to_string();
            assert!(console.contains("Memory update:"), "{received}");
        }
        assert!(shot.exists(), "no screenshot at {}", shot.display());
    }
    browser.finish();
}

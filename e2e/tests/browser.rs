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

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use mnemo_server::testing::ServerProcess;
use serde_json::{Value, json};

const KEY: &str = "browser-test-key";
/// How long the browser may take for one step (it polls, the test never sleeps).
const STEP_WITHIN: Duration = Duration::from_secs(60);

/// The node script and the lines it prints, one JSON object each.
struct Browser {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Browser {
    fn start() -> Self {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node/browser_events.cjs");
        let mut child = mnemo_e2e::node::node("playwright-core")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node is installed");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Browser {
            child,
            stdin,
            lines,
        }
    }

    /// The next message, which must have `key`; an `error` message fails the test.
    fn expect(&self, key: &str) -> Value {
        let line = self
            .lines
            .recv_timeout(STEP_WITHIN)
            .unwrap_or_else(|_| panic!("the browser said nothing with {key:?} in time"));
        let message: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            message.get(key).is_some(),
            "expected {key:?}, got {message}"
        );
        message
    }

    fn send(&mut self, message: Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    }

    /// Ends the input, which closes the browser; the script must exit 0.
    fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the browser script failed: {status}");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
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

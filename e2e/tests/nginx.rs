//! Mnemo behind Debian's real nginx, configured by the committed example
//! (`nginx/mnemo.conf`, rendered with this test's ports and certificate), as the
//! README tells operators to run it: nginx ends TLS, Mnemo listens in plain HTTP on
//! loopback and trusts nginx's `X-Forwarded-For` (`MNEMO_TRUSTED_PROXIES`).
//!
//! Through nginx: REST, `/health`, an SSE event within 100 ms of its commit (no
//! buffering), a streamable HTTP MCP session at `/mcp`; and the failed-key limit
//! counts each client's own address, which a client cannot choose by sending its own
//! `X-Forwarded-For`. Clients connect from distinct loopback addresses (127.0.0.3,
//! 127.0.0.4) so that "the client" and "the proxy" (127.0.0.1) differ as they would
//! on a network.

use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mnemo_server::testing::{
    ServerProcess, free_port, lines_of, next_event, server_command, sse_stream,
};
use serde_json::{Value, json};

const KEY: &str = "nginx-test-key-0123456789";
const NGINX: &str = "/usr/sbin/nginx";

/// The committed example with this test's listener, upstream and certificate. Each
/// replaced line must exist, so the example cannot drift from what is tested.
fn render(example: &str, listen: u16, upstream: u16, dir: &Path) -> String {
    let mut text = example.to_owned();
    for (from, to) in [
        (
            "listen 443 ssl;".to_owned(),
            format!("listen 127.0.0.1:{listen} ssl;"),
        ),
        (
            "server 127.0.0.1:8000;".to_owned(),
            format!("server 127.0.0.1:{upstream};"),
        ),
        (
            "/etc/ssl/certs/memory.example.org.pem".to_owned(),
            dir.join("certs/cert.pem").display().to_string(),
        ),
        (
            "/etc/ssl/private/memory.example.org.key".to_owned(),
            dir.join("certs/key.pem").display().to_string(),
        ),
    ] {
        assert!(text.contains(&from), "nginx/mnemo.conf has no {from:?}");
        text = text.replace(&from, &to);
    }
    text
}

struct Nginx(Child);

impl Nginx {
    /// Runs nginx in the foreground as one process, everything it writes in `dir`;
    /// returns once it has bound its listener (it names its event method after).
    fn start(dir: &Path, site: &str) -> Self {
        assert!(
            Path::new(NGINX).exists(),
            "{NGINX} is missing: `make test` installs Debian's nginx (apt-get install nginx)"
        );
        std::fs::write(dir.join("mnemo.conf"), site).unwrap();
        let d = dir.display();
        let main = format!(
            "daemon off;\nmaster_process off;\nerror_log stderr notice;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
             scgi_temp_path {d}/scgi;\n  include {d}/mnemo.conf;\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), main).unwrap();
        let mut child = Command::new(NGINX)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = lines_of(child.stderr.take());
        let mut seen = Vec::new();
        loop {
            match lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains("event method") => break,
                Ok(line) => seen.push(line),
                Err(_) => panic!("nginx did not start:\n{}", seen.join("\n")),
            }
        }
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self(child)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A client that trusts only the certificate nginx serves, connecting from `from`.
fn client(pin: &str, from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(mnemo_certs::pinned_client_config(pin.parse().unwrap()))
        .local_address(from.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// The JSON-RPC message in a streamable HTTP answer: the body itself, or the `data:`
/// of its SSE event.
fn rpc_message(body: &str) -> Value {
    let text = body
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .find(|data| !data.trim().is_empty())
        .unwrap_or(body);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn mnemo_behind_nginx() {
    let data = tempfile::tempdir().unwrap();
    let mut mnemo = ServerProcess::start(
        data.path(),
        &[
            ("MCP_API_KEY", KEY),
            ("MNEMO_TRUSTED_PROXIES", "127.0.0.1"),
            ("MNEMO_AUTH_FAILURES_PER_MINUTE", "3"),
        ],
    );
    let proxy = tempfile::tempdir().unwrap();
    let rotated = server_command(proxy.path())
        .args(["tls", "rotate"])
        .output()
        .unwrap();
    let said = String::from_utf8(rotated.stdout).unwrap();
    let pin = said
        .lines()
        .find_map(|l| l.strip_prefix("New pin: "))
        .unwrap_or_else(|| panic!("{said}"))
        .to_owned();
    let listen = free_port().unwrap();
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../nginx/mnemo.conf"))
            .unwrap();
    let _nginx = Nginx::start(
        proxy.path(),
        &render(&example, listen, mnemo.port(), proxy.path()),
    );
    let base = format!("https://127.0.0.1:{listen}");
    let http = client(&pin, "127.0.0.3");

    // /health and REST.
    let health = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let stored: Value = http
        .post(format!("{base}/api/memories"))
        .bearer_auth(KEY)
        .json(&json!({"content": "stored through nginx", "tags": ["proxy"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hash = stored["content_hash"].as_str().unwrap().to_owned();
    let got = http
        .get(format!("{base}/api/memories/{hash}"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);

    // SSE: each event arrives through nginx right after the write that made it.
    let response = http
        .get(format!("{base}/api/events"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut events = sse_stream(response);
    let mut delays = Vec::new();
    let mut after_send = Vec::new();
    for i in 0..5 {
        let sent = Instant::now();
        let posted = http
            .post(format!("{base}/api/memories"))
            .bearer_auth(KEY)
            .json(&json!({"content": format!("event number {i} through nginx")}))
            .send();
        let (answer, event) = tokio::join!(posted, async {
            loop {
                let event = next_event(&mut events).await;
                if event.event == "memory_stored" {
                    return (event, Instant::now());
                }
            }
        });
        let answered = Instant::now();
        assert_eq!(answer.unwrap().status(), 200);
        let (event, arrived) = event;
        assert!(
            event.data.contains(&format!("event number {i}")),
            "{}",
            event.data
        );
        // The commit happens before the store's answer leaves the server, so the
        // event's delay after the commit is at most its delay after the answer.
        delays.push(arrived.saturating_duration_since(answered));
        after_send.push(arrived - sent);
    }
    let worst = delays.iter().max().unwrap();
    println!(
        "SSE through nginx: event after the store's answer, worst of 5: {worst:?}; \
         event after the store was sent: {after_send:?}"
    );
    assert!(*worst < Duration::from_millis(100), "{delays:?}");

    // Streamable HTTP MCP: a session, then a tool call in it.
    let initialize = http
        .post(format!("{base}/mcp"))
        .bearer_auth(KEY)
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "nginx-test", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(initialize.status(), 200);
    let session = initialize.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let hello = rpc_message(&initialize.text().await.unwrap());
    assert!(hello["result"]["serverInfo"].is_object(), "{hello}");
    let mcp = |body: Value| {
        http.post(format!("{base}/mcp"))
            .bearer_auth(KEY)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-06-18")
            .json(&body)
            .send()
    };
    let initialized = mcp(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await
        .unwrap();
    assert!(initialized.status().is_success());
    let called = mcp(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "memory_search", "arguments": {"query": "stored through nginx"}}}),
    )
    .await
    .unwrap();
    assert_eq!(called.status(), 200);
    let result = rpc_message(&called.text().await.unwrap());
    assert!(
        result.to_string().contains("stored through nginx"),
        "{result}"
    );

    // The failed-key limit counts the client behind nginx, and a client's own
    // X-Forwarded-For does not move it to another address.
    let wrong = |client: &reqwest::Client, spoof: &str| {
        client
            .get(format!("{base}/api/memories"))
            .bearer_auth("wrong-key")
            .header("x-forwarded-for", spoof)
            .send()
    };
    let mut statuses = Vec::new();
    for i in 0..5 {
        statuses.push(
            wrong(&http, &format!("203.0.113.{i}"))
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    mnemo.wait_for_log("client=127.0.0.3");
    let other = client(&pin, "127.0.0.4");
    assert_eq!(wrong(&other, "127.0.0.3").await.unwrap().status(), 401);
    mnemo.wait_for_log("client=127.0.0.4");
}

//! The bridge's proof of the key over an explicit `https://` URL, on loopback: a relay
//! that terminates TLS with its own certificate fails it, the real server passes it, and
//! what it costs the first tool call. (The mDNS scenarios are in `mdns.rs`.)

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mnemo_e2e::BridgeProcess;
use mnemo_server::testing::{ServerProcess, lines_of, workspace_binary};
use serde_json::json;

const KEY: &str = "bridge-trust-test-key";

fn https_server() -> (ServerProcess, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        data.path(),
        &[("MCP_API_KEY", KEY), ("MCP_HTTPS_ENABLED", "true")],
    );
    (server, data)
}

fn check(url: &str, trust: &Path, pin: Option<&str>) -> (bool, String) {
    let mut command = Command::new(workspace_binary("mnemo-bridge"));
    command
        .arg("--check")
        .env("MCP_MEMORY_HTTP_ENDPOINT", url)
        .env("MCP_API_KEY", KEY)
        .env("MCP_MEMORY_AUTO_DISCOVER", "false")
        .env("MNEMO_BRIDGE_TRUST_FILE", trust)
        .env_remove("MCP_MEMORY_CERT_FINGERPRINT");
    if let Some(pin) = pin {
        command.env("MCP_MEMORY_CERT_FINGERPRINT", pin);
    }
    let output = command.output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// A TLS-terminating relay (`scripts/fake_mnemo.py --relay-to`) on 127.0.0.1; killed on
/// drop.
struct Relay {
    child: Child,
    port: u16,
    _files: tempfile::TempDir,
}

impl Relay {
    fn to(upstream: &str) -> Relay {
        let files = tempfile::tempdir().unwrap();
        let (cert, key) = (files.path().join("cert.pem"), files.path().join("key.pem"));
        let made = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "30",
                "-subj",
                "/CN=relay",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(made.status.success(), "{made:?}");
        let mut child = Command::new(mnemo_e2e::test_python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fake_mnemo.py"))
            .args([
                "--address",
                "127.0.0.1",
                "--port",
                "0",
                "--relay-to",
                upstream,
            ])
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .arg("--log")
            .arg(files.path().join("unused.jsonl"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the relay");
        let lines = lines_of(child.stdout.take());
        let ready = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the relay says ready");
        let port = ready
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected {ready:?}"));
        Relay {
            child,
            port,
            _files: files,
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Through a relay that presents its own certificate, the real server's proof is made
/// for the real pin, so it fails: nothing is trusted and no key is sent. The relay does
/// relay (health answers through it), and the real server's own URL passes the proof.
#[test]
fn a_relay_fails_the_proof() {
    let (server, data) = https_server();
    let relay = Relay::to(server.addr());
    let relayed = format!("https://127.0.0.1:{}", relay.port);
    let health = Command::new("curl")
        .args(["-sk", &format!("{relayed}/api/health")])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&health.stdout).contains("healthy"),
        "the relay does not relay: {health:?}"
    );

    let trust = data.path().join("trust.json");
    let (ok, report) = check(&relayed, &trust, None);
    assert!(!ok, "{report}");
    assert!(report.contains("proof: FAILED"), "{report}");
    assert!(report.contains("the key was not sent"), "{report}");
    assert!(!trust.exists(), "the relay was trusted:\n{report}");

    let (ok, report) = check(server.url(), &trust, None);
    assert!(ok, "{report}");
    assert!(report.contains("trusted now, after its proof"), "{report}");
    assert!(
        report.contains(&format!("pin: {}", server.pin().unwrap())),
        "{report}"
    );
}

/// The first tool call of a fresh bridge, with the pin configured (no proof) and with
/// trust on first proof, interleaved 20 times each; prints both medians.
#[test]
fn what_the_proof_adds_to_the_first_call() {
    let (server, data) = https_server();
    let pin = server.pin().unwrap().to_owned();
    let first_call = |trust: &Path, pin: Option<&str>| {
        let mut command = Command::new(workspace_binary("mnemo-bridge"));
        command
            .env("MCP_MEMORY_HTTP_ENDPOINT", server.url())
            .env("MCP_API_KEY", KEY)
            .env("MCP_MEMORY_AUTO_DISCOVER", "false")
            .env("MNEMO_BRIDGE_TRUST_FILE", trust)
            .env_remove("MCP_MEMORY_CERT_FINGERPRINT")
            .env("RUST_LOG", "warn");
        if let Some(pin) = pin {
            command.env("MCP_MEMORY_CERT_FINGERPRINT", pin);
        }
        let mut bridge = BridgeProcess::spawn(command);
        bridge.initialize("2025-06-18");
        let (result, took) = bridge.call("memory_search", json!({"query": "anything"}));
        assert_eq!(result["isError"], false, "{result}");
        assert!(bridge.close().success());
        took
    };
    let (mut pinned, mut proven) = (Vec::new(), Vec::new());
    for i in 0..20 {
        pinned.push(first_call(&data.path().join("unused.json"), Some(&pin)));
        let trust = data.path().join(format!("trust-{i}.json"));
        proven.push(first_call(&trust, None));
        assert!(trust.exists(), "trusted after the proof");
    }
    let median = |list: &mut Vec<Duration>| {
        list.sort();
        (list[9] + list[10]) / 2
    };
    let (pinned, proven) = (median(&mut pinned), median(&mut proven));
    println!(
        "first tool call, median of 20: pinned {:.1} ms, trust on first proof {:.1} ms, \
         the proof adds {:.1} ms",
        pinned.as_secs_f64() * 1e3,
        proven.as_secs_f64() * 1e3,
        (proven.as_secs_f64() - pinned.as_secs_f64()) * 1e3
    );
}

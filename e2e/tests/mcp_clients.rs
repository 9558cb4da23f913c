//! MCP end to end: the official Python SDK against the real `mnemo-bridge` and the
//! server's `/mcp`, and the bridge's process behaviour (restart recovery, an
//! unreachable server, a short-lived probe copy, `--check`) with real servers.
//!
//! The Python SDK lives in a venv made by `make test-python` (which `make test`
//! runs); `MNEMO_TEST_PYTHON` points elsewhere. Without it these tests fail
//! with that instruction rather than skip.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mnemo_e2e::BridgeProcess;
use mnemo_server::testing::{ServerProcess, workspace_binary};
use serde_json::{Value, json};

const KEY: &str = "mcp-clients-test-key";

fn python() -> PathBuf {
    mnemo_e2e::test_python()
}

fn client_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/mcp_client.py")
}

/// A fresh server with the test key (HTTPS if asked).
fn server(https: bool) -> (ServerProcess, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let tls = if https { "true" } else { "false" };
    let server = ServerProcess::start(
        data.path(),
        &[("MCP_API_KEY", KEY), ("MCP_HTTPS_ENABLED", tls)],
    );
    (server, data)
}

/// mcp-memory-service's Claude Desktop env block, names and `/api` suffix as its
/// documentation writes them, drives the bridge unchanged.
#[test]
fn official_client_over_the_bridge_with_mcp_memory_services_settings() {
    let bridge = workspace_binary("mnemo-bridge");
    let (server, data) = server(false);
    // The usual environment, with the key and endpoint as mcp-memory-service names them.
    let env: Vec<(&str, String)> = bridge_env(&server, &data.path().join("trust.json"))
        .into_iter()
        .map(|(name, value)| match name {
            "MCP_MEMORY_HTTP_ENDPOINT" => (name, format!("{value}/api")),
            "MCP_API_KEY" => ("MCP_MEMORY_API_KEY", value),
            _ => (name, value),
        })
        .collect();
    let summary = run_python(
        &[
            "--mode",
            "legacy",
            "--bridge",
            &bridge.display().to_string(),
        ],
        &env,
    );
    assert_eq!(summary["tools"].as_array().unwrap().len(), 7, "{summary}");
}

/// mcp-memory-service's env block with a setting the bridge cannot read (the README's
/// placeholder pin, a timeout in words): the official client still initializes and
/// lists the tools, every call is an error result naming the setting and where to fix
/// it, never "fix the arguments", and `--check` says the same.
#[test]
fn a_malformed_setting_is_reported_by_every_call_not_fatal() {
    let bridge = workspace_binary("mnemo-bridge");
    let (server, data) = server(false);
    for (setting, value) in [
        ("MCP_MEMORY_CERT_FINGERPRINT", "AB:CD:EF:…"),
        ("MNEMO_BRIDGE_TIMEOUT", "fifteen"),
    ] {
        let mut env: Vec<(&str, String)> = bridge_env(&server, &data.path().join("trust.json"))
            .into_iter()
            .map(|(name, value)| match name {
                "MCP_MEMORY_HTTP_ENDPOINT" => (name, format!("{value}/api")),
                "MCP_API_KEY" => ("MCP_MEMORY_API_KEY", value),
                _ => (name, value),
            })
            .collect();
        env.push((setting, value.to_owned()));
        let summary = run_python(
            &[
                "--scenario",
                "misconfigured",
                "--bridge",
                &bridge.display().to_string(),
            ],
            &env,
        );
        assert_eq!(summary["tools"].as_array().unwrap().len(), 7, "{summary}");
        for (tool, text) in summary["errors"].as_object().unwrap() {
            let text = text.as_str().unwrap();
            assert!(text.contains(setting), "{tool}: {text}");
            assert!(
                text.contains("claude_desktop_config.json"),
                "{tool}: {text}"
            );
            assert!(text.contains("not in your arguments"), "{tool}: {text}");
            assert!(!text.contains("Fix the arguments"), "{tool}: {text}");
        }
        let (ok, report) = check(&env);
        assert!(!ok, "{report}");
        assert!(report.contains(setting), "{report}");
        assert!(report.contains("result: NOT USABLE"), "{report}");
    }
}

/// The environment that points a bridge at `server` without discovery.
fn bridge_env(server: &ServerProcess, pins: &std::path::Path) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("MCP_MEMORY_HTTP_ENDPOINT", server.url().to_owned()),
        ("MCP_API_KEY", KEY.to_owned()),
        ("MCP_MEMORY_AUTO_DISCOVER", "false".to_owned()),
        ("MNEMO_BRIDGE_TRUST_FILE", pins.display().to_string()),
    ];
    if let Some(fp) = server.fingerprint() {
        env.push(("MCP_MEMORY_CERT_FINGERPRINT", fp.to_owned()));
    }
    env
}

/// Longest a Python scenario may run before the test gives up on it.
const SCENARIO_WITHIN: Duration = Duration::from_secs(120);

/// Runs the Python scenario; returns its JSON summary.
fn run_python(args: &[&str], env: &[(&str, String)]) -> Value {
    let child = Command::new(python())
        .arg(client_script())
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scripts/mcp_client.py");
    let pid = child.id().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(output) = rx.recv_timeout(SCENARIO_WITHIN) else {
        // A hung client must fail the test, not hang the suite.
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        panic!("mcp_client.py {args:?} did not finish within {SCENARIO_WITHIN:?}");
    };
    let Output {
        status,
        stdout,
        stderr,
    } = output.expect("mcp_client.py's output");
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(status.success(), "mcp_client.py {args:?} failed:\n{stderr}");
    serde_json::from_slice(&stdout).unwrap_or_else(|e| panic!("summary: {e}; stderr:\n{stderr}"))
}

#[test]
fn official_client_over_the_bridge_in_both_eras() {
    let bridge = workspace_binary("mnemo-bridge");
    for (mode, version) in [("legacy", "2025-11-25"), ("2026-07-28", "2026-07-28")] {
        let (server, data) = server(false);
        let env = bridge_env(&server, &data.path().join("pins.json"));
        let summary = run_python(
            &["--mode", mode, "--bridge", &bridge.display().to_string()],
            &env,
        );
        assert_eq!(summary["protocol_version"], version, "{summary}");
        assert_eq!(summary["tools"].as_array().unwrap().len(), 7);
        assert_resources_served(&summary);
    }
}

#[test]
fn official_client_over_the_bridge_with_a_pinned_certificate() {
    let bridge = workspace_binary("mnemo-bridge");
    let (server, data) = server(true);
    assert!(server.url().starts_with("https://"));
    let env = bridge_env(&server, &data.path().join("pins.json"));
    let summary = run_python(
        &[
            "--mode",
            "legacy",
            "--bridge",
            &bridge.display().to_string(),
        ],
        &env,
    );
    assert_eq!(summary["server_version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn official_client_against_mcp_over_http_in_both_eras() {
    for (mode, version) in [("legacy", "2025-11-25"), ("2026-07-28", "2026-07-28")] {
        let (server, _data) = server(false);
        let summary = run_python(
            &["--mode", mode, "--url", server.url(), "--api-key", KEY],
            &[],
        );
        assert_eq!(summary["protocol_version"], version, "{summary}");
        assert_resources_served(&summary);
    }
}

/// The scenario read every resource (mcp_client.py checks each answer); this checks
/// it reported the listing, so a scenario that skipped them cannot pass.
fn assert_resources_served(summary: &Value) {
    let listed = summary["resources"].as_array().expect("resources listed");
    assert!(
        listed.contains(&Value::from("memory://tag/pets")),
        "{summary}"
    );
}

fn bridge(env: &[(&str, String)]) -> BridgeProcess {
    let mut command = Command::new(workspace_binary("mnemo-bridge"));
    command
        .env_remove("MCP_MEMORY_CERT_FINGERPRINT")
        .envs(env.iter().map(|(k, v)| (k, v)));
    BridgeProcess::spawn(command)
}

fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

/// The server restarts (same port, same data) while the bridge runs: the next
/// call succeeds. A call made while it is down fails with an error result, and the
/// call after its return succeeds. The key never appears in the bridge's log.
#[test]
fn the_bridge_survives_a_server_restart() {
    let (mut server, data) = server(false);
    let mut bridge = bridge(&bridge_env(&server, &data.path().join("pins.json")));
    bridge.initialize("2025-06-18");
    let (stored, _) = bridge.call("memory_store", json!({"content": "before the restart"}));
    assert_eq!(stored["isError"], false, "{stored}");

    server.restart();
    let (found, _) = bridge.call("memory_search", json!({"query": "restart"}));
    assert_eq!(found["isError"], false, "{}", text(&found));
    assert_eq!(found["structuredContent"]["count"], 1);

    server.kill();
    let (down, _) = bridge.call("memory_search", json!({"query": "restart"}));
    assert_eq!(down["isError"], true);
    assert!(text(&down).contains("did not answer"), "{}", text(&down));
    assert!(
        text(&down).contains("mnemo-bridge --check"),
        "{}",
        text(&down)
    );

    server.relaunch();
    let (again, _) = bridge.call("memory_store", json!({"content": "after the restart"}));
    assert_eq!(again["isError"], false, "{}", text(&again));

    let log = bridge.stderr_lines().join("\n");
    assert!(!log.contains(KEY), "the key leaked into the log:\n{log}");
    assert!(bridge.close().success());
}

/// A server that accepts connections but never answers: `initialize` and
/// `tools/list` do not wait for it, and a tool call ends in an `isError` result
/// once the configured timeout has passed.
#[test]
fn an_unreachable_server_gives_error_results_not_hangs() {
    // Holding the listener without accepting leaves connections in its backlog:
    // they open, and no byte ever comes back.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let timeout = Duration::from_secs(2);
    let mut bridge = bridge(&[
        ("MCP_MEMORY_HTTP_ENDPOINT", url),
        ("MCP_API_KEY", KEY.to_owned()),
        ("MNEMO_BRIDGE_TIMEOUT", timeout.as_secs_f64().to_string()),
    ]);
    let init = bridge.initialize("2025-06-18");
    let initialized = bridge.spawned.elapsed();
    assert_eq!(init["serverInfo"]["name"], "mnemo");
    let (tools, _) = bridge.request("tools/list", json!({}));
    assert_eq!(tools["tools"].as_array().unwrap().len(), 7);
    println!("spawn to initialize answer: {initialized:?}");

    let (result, took) = bridge.call("memory_search", json!({"query": "anything"}));
    assert_eq!(result["isError"], true, "{result}");
    assert!(
        text(&result).contains("within 2.0 s"),
        "the error names the timeout: {}",
        text(&result)
    );
    assert!(took >= timeout, "answered early: {took:?}");
    assert!(
        took < timeout * 3,
        "answered long after the timeout: {took:?}"
    );
    // Not a timing claim: the handshake could not have waited for the server,
    // which never answers anything.
    assert!(
        initialized < timeout,
        "initialize waited for the server: {initialized:?}"
    );
    drop(silent);
}

/// Some clients spawn a short-lived copy to probe the server: it exits 0 when its
/// stdin closes, with or without a handshake, while a second copy works.
#[test]
fn a_probe_copy_and_a_working_copy_side_by_side() {
    let (server, data) = server(false);
    let env = bridge_env(&server, &data.path().join("pins.json"));
    let probe = bridge(&env);
    let mut working = bridge(&env);
    assert!(
        probe.close().success(),
        "EOF before initialize is a clean exit"
    );

    let mut handshaken = bridge(&env);
    handshaken.initialize("2025-11-25");
    assert!(
        handshaken.close().success(),
        "EOF after initialize is a clean exit"
    );

    working.initialize("2024-11-05");
    let (stored, _) = working.call("memory_store", json!({"content": "from the working copy"}));
    assert_eq!(stored["isError"], false, "{stored}");
}

/// Each supported older version is echoed, as Claude Desktop requires.
#[test]
fn initialize_echoes_the_clients_version() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    for version in ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"] {
        let mut bridge = bridge(&[(
            "MCP_MEMORY_HTTP_ENDPOINT",
            format!("http://{}", silent.local_addr().unwrap()),
        )]);
        let init = bridge.initialize(version);
        assert_eq!(init["protocolVersion"], version);
        assert_eq!(init["serverInfo"]["version"], env!("CARGO_PKG_VERSION"));
    }
}

fn check(env: &[(&str, String)]) -> (bool, String) {
    let output = Command::new(workspace_binary("mnemo-bridge"))
        .arg("--check")
        .env_remove("MCP_MEMORY_CERT_FINGERPRINT")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.success(), text)
}

#[test]
fn check_reports_what_the_bridge_would_use() {
    let (server, data) = server(true);
    let pins = data.path().join("pins.json");
    let mut env = bridge_env(&server, &pins);
    let (ok, report) = check(&env);
    assert!(ok, "{report}");
    assert!(
        report.contains(&format!("choice: {}", server.url())),
        "{report}"
    );
    assert!(report.contains("result: OK"), "{report}");

    let key = env.iter_mut().find(|(k, _)| *k == "MCP_API_KEY").unwrap();
    key.1 = "wrong".into();
    let (ok, report) = check(&env);
    assert!(!ok);
    assert!(
        report.contains("NOT USABLE: the API key is not valid"),
        "{report}"
    );

    // Without a pin, an HTTPS URL is trusted once the server proves it holds the key,
    // and pinned after that; with a wrong key, the proof fails and nothing is trusted.
    env.retain(|(k, _)| *k != "MCP_MEMORY_CERT_FINGERPRINT");
    let (ok, report) = check(&env);
    assert!(!ok, "{report}");
    assert!(report.contains("proof: FAILED"), "{report}");
    assert!(!pins.exists(), "trusted without a proof:\n{report}");
    env.retain(|(k, _)| *k != "MCP_API_KEY");
    env.push(("MCP_API_KEY", KEY.to_owned()));
    let (ok, report) = check(&env);
    assert!(ok, "{report}");
    assert!(report.contains("trusted now, after its proof"), "{report}");
    let (ok, report) = check(&env);
    assert!(ok, "{report}");
    assert!(report.contains("trust: trusted\n"), "{report}");

    let wrong_pin = format!("{}{}", "00:".repeat(31), "00");
    env.push(("MCP_MEMORY_CERT_FINGERPRINT", wrong_pin));
    env.retain(|(k, _)| *k != "MCP_API_KEY");
    env.push(("MCP_API_KEY", KEY.to_owned()));
    let (ok, report) = check(&env);
    assert!(!ok, "a certificate that is not the pinned one is refused");
    assert!(report.contains("but the pin is"), "{report}");
}

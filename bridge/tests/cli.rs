//! The `mnemo-bridge` binary's own behaviour without any server. (Its use against
//! real servers and the official MCP client is in `e2e/tests/mcp_clients.rs`, which
//! runs this same binary: naming it here is also what makes `cargo test` build it.)

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn bridge(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mnemo-bridge"))
        .args(args)
        .env_remove("MCP_MEMORY_HTTP_ENDPOINT")
        .env_remove("MCP_API_KEY")
        .env_remove("MCP_MEMORY_CERT_FINGERPRINT")
        // Never browse mDNS outside a test's own network namespace.
        .env("MCP_MEMORY_AUTO_DISCOVER", "false")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mnemo-bridge");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// A client's short-lived probe copy closes stdin at once: a clean exit, and
/// nothing on stdout, which belongs to MCP.
#[test]
fn eof_before_initialize_is_a_clean_exit() {
    let output = bridge(&[], &[], b"");
    assert!(output.status.success(), "{output:?}");
    assert!(output.stdout.is_empty(), "{output:?}");
}

#[test]
fn check_without_any_server_says_what_to_set() {
    let output = bridge(&["--check"], &[], b"");
    assert_eq!(output.status.code(), Some(1));
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(report.contains("no server is configured"), "{report}");
    assert!(report.contains("MCP_MEMORY_HTTP_ENDPOINT"), "{report}");
}

#[test]
fn check_refuses_a_url_that_is_not_http() {
    let output = bridge(
        &["--check"],
        &[("MCP_MEMORY_HTTP_ENDPOINT", "ftp://nas.local")],
        b"",
    );
    assert_eq!(output.status.code(), Some(1));
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        report.contains("must start with http:// or https://"),
        "{report}"
    );
}

/// A malformed fingerprint does not stop the bridge (it must answer `initialize` so
/// the client can show the problem, `e2e/tests/mcp_clients.rs`); it is logged, and
/// `--check` refuses it by name and exits 1.
#[test]
fn a_malformed_fingerprint_is_reported_not_fatal() {
    let env = [("MCP_MEMORY_CERT_FINGERPRINT", "AB:CD")];
    let served = bridge(&[], &env, b"");
    assert!(served.status.success(), "{served:?}");
    let stderr = String::from_utf8_lossy(&served.stderr);
    assert!(stderr.contains("is not a SHA-256 fingerprint"), "{stderr}");
    assert!(served.stdout.is_empty());
    let checked = bridge(&["--check"], &env, b"");
    assert!(!checked.status.success());
    let report = String::from_utf8_lossy(&checked.stdout);
    assert!(report.contains("MCP_MEMORY_CERT_FINGERPRINT"), "{report}");
    assert!(report.contains("result: NOT USABLE"), "{report}");
}

/// `trust list` names the file when it is empty, shows each server's id, pin and
/// address, and `trust remove` takes one out by id or says how to find the right name.
#[test]
fn trust_list_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trust.json");
    let file_text = file.display().to_string();
    let env = [("MNEMO_BRIDGE_TRUST_FILE", file_text.as_str())];
    let listed = bridge(&["trust", "list"], &env, b"");
    assert!(listed.status.success(), "{listed:?}");
    assert!(String::from_utf8_lossy(&listed.stdout).contains("No trusted servers"));

    let pin = format!("{}{}", "AB:".repeat(31), "AB");
    let store = mnemo_bridge::trust::TrustStore::new(file.clone());
    store
        .record_use(
            &pin.parse().unwrap(),
            "id-1",
            "nas",
            "https://10.0.0.2:8443",
        )
        .unwrap();
    let listed = String::from_utf8(bridge(&["trust", "list"], &env, b"").stdout).unwrap();
    for part in ["nas", "id: id-1", &pin, "https://10.0.0.2:8443"] {
        assert!(listed.contains(part), "{part} in {listed}");
    }
    let unknown = bridge(&["trust", "remove", "nope"], &env, b"");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("trust list"));
    let removed = bridge(&["trust", "remove", "id-1"], &env, b"");
    assert!(removed.status.success(), "{removed:?}");
    assert!(String::from_utf8_lossy(&removed.stdout).contains("No longer trusted: nas"));
    assert!(store.list().unwrap().is_empty());
}

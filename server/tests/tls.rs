//! HTTPS with a self-signed or user-supplied certificate, checked by pinning its
//! fingerprint and against the real openssl CLI.

use std::path::Path;
use std::process::Command;

use mnemo_certs::Fingerprint;
use mnemo_server::testing::{ServerProcess, TestServer, next_event, pinned_client};
use reqwest::Method;
use serde_json::json;

/// Runs a shell pipeline and returns its stdout; openssl must be installed.
fn sh(script: &str) -> String {
    let output = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("sh runs");
    assert!(
        output.status.success(),
        "`{script}` failed (is the openssl CLI installed?): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// openssl's fingerprint line for a PEM certificate on stdin or in a file.
fn openssl_fingerprint(pem_source: &str) -> Fingerprint {
    let line = sh(&format!(
        "{pem_source} | openssl x509 -noout -fingerprint -sha256"
    ));
    line.trim()
        .split_once('=')
        .expect("openssl prints `sha256 Fingerprint=...`")
        .1
        .parse()
        .unwrap()
}

/// The SHA-256 of the public key (SubjectPublicKeyInfo) of a PEM certificate, as openssl
/// computes it: the HPKP `pin-sha256` digest.
fn openssl_pin(pem_source: &str) -> Fingerprint {
    let line = sh(&format!(
        "{pem_source} | openssl x509 -noout -pubkey | openssl pkey -pubin -outform der \
         | openssl dgst -sha256 -hex"
    ));
    line.trim().rsplit(' ').next().unwrap().parse().unwrap()
}

/// Makes a self-signed pair with the openssl CLI into `dir` as `name`.crt/.key.
fn openssl_pair(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    sh(&format!(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout {} -out {} -days 30 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 2>/dev/null",
        key.display(),
        cert.display()
    ));
    (cert, key)
}

/// A client pinned to the server's fingerprint uses every kind of route over TLS,
/// the change stream included; detailed health reports the fingerprint.
#[tokio::test]
async fn pinned_client_uses_the_api_over_tls() {
    let server = TestServer::spawn_with(|c| c.https_enabled = true).await;
    assert!(server.url().starts_with("https://"));
    let mut events = server.events(None).await;
    assert_eq!(
        next_event(&mut events).await.event,
        "connection_established"
    );
    let (status, body) = server
        .send(
            Method::POST,
            "/api/memories",
            Some(json!({"content": "over TLS"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, found) = server
        .send(Method::POST, "/api/search", Some(json!({"query": "TLS"})))
        .await;
    assert_eq!((status, found["total_found"].clone()), (200, json!(1)));
    assert_eq!(next_event(&mut events).await.event, "memory_stored");
    let (_, health) = server.send(Method::GET, "/api/health/detailed", None).await;
    assert_eq!(
        health["tls_fingerprint"].as_str(),
        server.state.tls_fingerprint.as_deref()
    );
    let pin = server.state.tls_pin.unwrap();
    assert_eq!(health["tls_pin"], json!(pin.to_string()));
    assert_ne!(Some(pin.to_string()), server.state.tls_fingerprint);
}

/// A client pinned to another fingerprint is refused, and says why.
#[tokio::test]
async fn a_client_pinned_elsewhere_is_refused() {
    let server = TestServer::spawn_with(|c| c.https_enabled = true).await;
    let client = pinned_client(Fingerprint([7; 32]));
    let error = client
        .get(format!("{}/api/health", server.url()))
        .send()
        .await
        .unwrap_err();
    let chain = format!("{error:?}");
    assert!(chain.contains("07:07:07"), "{chain}");
}

/// The fingerprint the server reports is the one openssl computes for the
/// certificate it serves; the server negotiates h2 by ALPN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_fingerprint_matches_openssl() {
    let server = TestServer::spawn_with(|c| c.https_enabled = true).await;
    let address = server.url().trim_start_matches("https://").to_owned();
    // openssl blocks; the server needs the runtime meanwhile.
    let (served, alpn) = tokio::task::spawn_blocking(move || {
        let served = openssl_fingerprint(&format!(
            "openssl s_client -connect {address} -servername localhost </dev/null 2>/dev/null"
        ));
        let alpn = sh(&format!(
            "openssl s_client -connect {address} -alpn h2 </dev/null 2>/dev/null | grep -i 'ALPN protocol'"
        ));
        (served, alpn)
    })
    .await
    .unwrap();
    let reported: Fingerprint = server
        .state
        .tls_fingerprint
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(served, reported);
    assert!(alpn.contains("h2"), "{alpn}");
    let address = server.url().trim_start_matches("https://").to_owned();
    let pin = tokio::task::spawn_blocking(move || {
        openssl_pin(&format!(
            "openssl s_client -connect {address} </dev/null 2>/dev/null"
        ))
    })
    .await
    .unwrap();
    assert_eq!(Some(pin), server.state.tls_pin);
}

/// A user-supplied certificate and key are served as given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_supplied_certificate_is_served() {
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_pair(files.path(), "mine");
    let expected = openssl_fingerprint(&format!("cat {}", cert.display()));
    let (c, k) = (cert.clone(), key.clone());
    let server = TestServer::spawn_with(move |config| {
        config.https_enabled = true;
        config.ssl_cert_file = Some(c);
        config.ssl_key_file = Some(k);
    })
    .await;
    assert_eq!(server.state.tls_fingerprint, Some(expected.to_string()));
    let pin = openssl_pin(&format!("cat {}", cert.display()));
    assert_eq!(
        server.state.tls_pin,
        Some(pin),
        "a user's certificate pins the same way"
    );
    let (status, _) = server.send(Method::GET, "/api/health", None).await;
    assert_eq!(status, 200);
}

/// The generated certificate survives a restart: same fingerprint, reused.
#[test]
fn fingerprint_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let https = Path::new("true");
    let start = || {
        let mut server = ServerProcess::spawn(dir.path(), &[("MCP_HTTPS_ENABLED", https)]);
        let line = server.wait_for_log("TLS certificate");
        server.wait_for_log("listening");
        line
    };
    let field = |line: &str, name: &str| -> String {
        let start = line.find(&format!("{name}=")).unwrap() + name.len() + 1;
        line[start..].split_whitespace().next().unwrap().to_owned()
    };
    let first = start();
    let second = start();
    assert_eq!(field(&first, "fingerprint"), field(&second, "fingerprint"));
    assert_eq!(field(&first, "pin"), field(&second, "pin"));
    assert_eq!(field(&first, "origin"), "generated");
    assert_eq!(field(&second, "origin"), "reused");
    let on_disk = openssl_fingerprint(&format!(
        "cat {}",
        dir.path().join("certs/cert.pem").display()
    ));
    assert_eq!(on_disk.to_string(), field(&second, "fingerprint"));
}

/// A certificate with another pair's key fails at startup with a clear error.
#[test]
fn mismatched_pair_fails_at_startup() {
    let files = tempfile::tempdir().unwrap();
    let (cert, _) = openssl_pair(files.path(), "a");
    let (_, other_key) = openssl_pair(files.path(), "b");
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::spawn(
        data.path(),
        &[
            ("MCP_HTTPS_ENABLED", Path::new("true")),
            ("MCP_SSL_CERT_FILE", &cert),
            ("MCP_SSL_KEY_FILE", &other_key),
        ],
    );
    let (status, stderr) = server.finish();
    assert!(!status.success());
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("cannot set up TLS"), "{stderr}");
    assert!(
        stderr.contains(&other_key.display().to_string()),
        "{stderr}"
    );
}

/// Plain HTTP on a non-loopback address warns; HTTPS there does not.
#[test]
fn plain_http_beyond_loopback_warns() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::spawn(dir.path(), &[("MCP_HTTP_HOST", Path::new("0.0.0.0"))]);
    let warning = server.wait_for_log("unencrypted");
    assert!(warning.contains("WARN"), "{warning}");
    server.wait_for_log("listening");
    let addr = server.addr();
    assert!(addr.starts_with("0.0.0.0:"), "{addr}");
}

//! Helpers shared by the integration tests: the real openssl CLI, and temp dirs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `openssl` with `args` and returns its stdout; panics (never skips) when the CLI is
/// missing, because these tests exist to compare with what openssl does.
pub fn openssl(args: &[&str]) -> String {
    let output = Command::new("openssl").args(args).output().unwrap_or_else(|e| {
        panic!("the openssl CLI is required by this test but could not be run ({e}); install openssl")
    });
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("openssl prints UTF-8")
}

/// What `openssl x509 -noout -fingerprint -sha256` prints after "sha256 Fingerprint=".
pub fn openssl_fingerprint(cert: &Path) -> String {
    let out = openssl(&[
        "x509",
        "-noout",
        "-fingerprint",
        "-sha256",
        "-in",
        cert.to_str().unwrap(),
    ]);
    let (label, value) = out
        .trim()
        .split_once('=')
        .expect("openssl prints LABEL=VALUE");
    assert_eq!(label.to_ascii_lowercase(), "sha256 fingerprint");
    value.to_owned()
}

/// A P-256 certificate and PKCS#8 key made by openssl, valid for `days` from now.
pub fn openssl_pair(dir: &Path, name: &str, days: u32) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}-cert.pem"));
    let key = dir.join(format!("{name}-key.pem"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
        "-days",
        &days.to_string(),
        "-subj",
        "/CN=test",
    ]);
    (cert, key)
}

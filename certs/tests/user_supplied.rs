//! `load_user_supplied`: MCP_SSL_CERT_FILE and MCP_SSL_KEY_FILE.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use mnemo_certs::{CertError, Origin, load_user_supplied};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn load(cert: &Path, key: &Path) -> Result<mnemo_certs::ServerIdentity, CertError> {
    load_user_supplied(cert, key, SystemTime::now())
}

/// A pair made by openssl loads as UserSupplied, with openssl's fingerprint.
#[test]
fn valid_openssl_pair_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = common::openssl_pair(tmp.path(), "good", 30);
    let id = load(&cert, &key).unwrap();
    assert_eq!(id.origin, Origin::UserSupplied);
    assert_eq!(id.chain.len(), 1);
    assert_eq!(id.cert_path, cert);
    assert_eq!(id.key_path, key);
    assert_eq!(
        id.fingerprint.to_string(),
        common::openssl_fingerprint(&cert)
    );
    let left = id.not_after.duration_since(SystemTime::now()).unwrap();
    assert!(29 * DAY < left && left <= 30 * DAY);
    mnemo_certs::server_config(&id).unwrap();
}

/// SEC1 ("EC PRIVATE KEY") and PKCS#1 ("RSA PRIVATE KEY") keys load too.
#[test]
fn sec1_and_rsa_keys_load() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = common::openssl_pair(tmp.path(), "ec", 30);
    let sec1 = tmp.path().join("sec1.pem");
    common::openssl(&[
        "ec",
        "-in",
        key.to_str().unwrap(),
        "-out",
        sec1.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read_to_string(&sec1)
            .unwrap()
            .contains("BEGIN EC PRIVATE KEY")
    );
    load(&cert, &sec1).unwrap();

    let rsa_cert = tmp.path().join("rsa-cert.pem");
    let rsa_key = tmp.path().join("rsa-key.pem");
    let pkcs1 = tmp.path().join("rsa-pkcs1.pem");
    common::openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        rsa_key.to_str().unwrap(),
        "-out",
        rsa_cert.to_str().unwrap(),
        "-days",
        "30",
        "-subj",
        "/CN=test",
    ]);
    common::openssl(&[
        "rsa",
        "-traditional",
        "-in",
        rsa_key.to_str().unwrap(),
        "-out",
        pkcs1.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read_to_string(&pkcs1)
            .unwrap()
            .contains("BEGIN RSA PRIVATE KEY")
    );
    load(&rsa_cert, &pkcs1).unwrap();
}

/// Certificate and key may share one file.
#[test]
fn combined_file_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = common::openssl_pair(tmp.path(), "pair", 30);
    let both = tmp.path().join("both.pem");
    let text = std::fs::read_to_string(&key).unwrap() + &std::fs::read_to_string(&cert).unwrap();
    std::fs::write(&both, text).unwrap();
    load(&both, &both).unwrap();
}

/// A missing file is reported as missing, naming the file.
#[test]
fn missing_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = common::openssl_pair(tmp.path(), "pair", 30);
    let nowhere = tmp.path().join("nowhere.pem");

    let err = load(&nowhere, &key).unwrap_err();
    assert!(
        matches!(
            err,
            CertError::Missing {
                what: "certificate",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(nowhere.to_str().unwrap()), "{err}");

    let err = load(&cert, &nowhere).unwrap_err();
    assert!(
        matches!(
            err,
            CertError::Missing {
                what: "private key",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("nowhere.pem"), "{err}");
}

/// A directory where a file should be is "unreadable", not "missing".
#[test]
fn unreadable_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, key) = common::openssl_pair(tmp.path(), "pair", 30);
    let err = load(tmp.path(), &key).unwrap_err();
    assert!(matches!(err, CertError::Unreadable { .. }), "{err:?}");
}

/// Empty and garbage files are "no certificate" / "no key", naming the file.
#[test]
fn empty_or_garbage_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = common::openssl_pair(tmp.path(), "pair", 30);
    let empty = tmp.path().join("empty.pem");
    let garbage = tmp.path().join("garbage.pem");
    std::fs::write(&empty, "").unwrap();
    std::fs::write(&garbage, "this is not PEM\n\x01\x02").unwrap();

    for bad in [&empty, &garbage, &key] {
        let err = load(bad, &key).unwrap_err();
        assert!(matches!(err, CertError::NoCertificate { .. }), "{err:?}");
        assert!(err.to_string().contains(bad.to_str().unwrap()), "{err}");
    }
    for bad in [&empty, &garbage, &cert] {
        let err = load(&cert, bad).unwrap_err();
        assert!(matches!(err, CertError::NoKey { .. }), "{err:?}");
        assert!(err.to_string().contains(bad.to_str().unwrap()), "{err}");
    }
}

/// A PEM block with broken base64 is "not valid PEM", not "no certificate".
#[test]
fn corrupt_pem() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = common::openssl_pair(tmp.path(), "pair", 30);
    let corrupt = tmp.path().join("corrupt.pem");
    std::fs::write(
        &corrupt,
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = load(&corrupt, &key).unwrap_err();
    assert!(matches!(err, CertError::BadPem { .. }), "{err:?}");

    let truncated = tmp.path().join("truncated.pem");
    let text = std::fs::read_to_string(&cert).unwrap();
    std::fs::write(&truncated, &text[..text.len() / 2]).unwrap();
    let err = load(&truncated, &key).unwrap_err();
    assert!(matches!(err, CertError::BadPem { .. }), "{err:?}");
}

/// A key from another pair is a mismatch naming both files.
#[test]
fn key_from_another_pair() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, _) = common::openssl_pair(tmp.path(), "one", 30);
    let (_, other_key) = common::openssl_pair(tmp.path(), "two", 30);
    let err = load(&cert, &other_key).unwrap_err();
    assert!(matches!(err, CertError::KeyMismatch { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(cert.to_str().unwrap()), "{text}");
    assert!(text.contains(other_key.to_str().unwrap()), "{text}");
}

/// After not_after the certificate is refused as expired; before not_before as not yet valid.
#[test]
fn outside_validity() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = common::openssl_pair(tmp.path(), "pair", 30);
    let now = SystemTime::now();

    let err = load_user_supplied(&cert, &key, now + 31 * DAY).unwrap_err();
    assert!(matches!(err, CertError::Expired { .. }), "{err:?}");
    assert!(err.to_string().contains("expired on 20"), "{err}");

    let err = load_user_supplied(&cert, &key, now - DAY).unwrap_err();
    assert!(matches!(err, CertError::NotYetValid { .. }), "{err:?}");

    // Near the end but not past it still loads (with a warning).
    load_user_supplied(&cert, &key, now + 29 * DAY).unwrap();
}

/// A certificate generated already expired (rcgen, not_after in the past) is refused.
#[test]
fn rcgen_expired_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let key_pair = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let cert = params.self_signed(&key_pair).unwrap();
    let cert_path = tmp.path().join("cert.pem");
    let key_path = tmp.path().join("key.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key_pair.serialize_pem()).unwrap();

    let err = load(&cert_path, &key_path).unwrap_err();
    assert!(matches!(err, CertError::Expired { .. }), "{err:?}");
    assert!(err.to_string().contains("2021-01-01 00:00:00 UTC"), "{err}");
}

//! `load_or_generate`: the self-signed certificate kept across restarts.

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use mnemo_certs::{CertSpec, Fingerprint, Origin, RENEW_BEFORE, VALIDITY, load_or_generate};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn spec() -> CertSpec {
    CertSpec::for_this_host(&[], &[])
}

/// (DNS names, IPs) in the SAN extension of a PEM file.
fn sans(cert_pem: &Path) -> (Vec<String>, Vec<IpAddr>) {
    let pem = std::fs::read(cert_pem).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let (_, cert) = X509Certificate::from_der(&pem.contents).unwrap();
    let san = cert.subject_alternative_name().unwrap().expect("has SANs");
    let mut names = Vec::new();
    let mut ips = Vec::new();
    for name in &san.value.general_names {
        match name {
            GeneralName::DNSName(n) => names.push((*n).to_owned()),
            GeneralName::IPAddress(b) if b.len() == 4 => {
                ips.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()))
            }
            GeneralName::IPAddress(b) => ips.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap())),
            other => panic!("unexpected SAN {other:?}"),
        }
    }
    (names, ips)
}

/// A second start with the same spec reuses the pair: same fingerprint, key mode 0600.
#[test]
fn generate_then_reuse() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data/certs");
    let now = SystemTime::now();

    let first = load_or_generate(&dir, &spec(), now).unwrap();
    assert_eq!(first.origin, Origin::Generated);
    assert_eq!(first.cert_path, dir.join("cert.pem"));
    assert_eq!(first.key_path, dir.join("key.pem"));
    assert_eq!(first.fingerprint, Fingerprint::of(&first.chain[0]));

    let second = load_or_generate(&dir, &spec(), now + DAY).unwrap();
    assert_eq!(second.origin, Origin::Reused);
    assert_eq!(second.fingerprint, first.fingerprint);
    assert_eq!(second.not_after, first.not_after);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&second.key_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "cert.pem" && n != "key.pem")
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// A generated certificate is valid from about `now` for VALIDITY.
#[test]
fn validity_window() {
    let tmp = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let id = load_or_generate(tmp.path(), &spec(), now).unwrap();
    let lifetime = id.not_after.duration_since(now).unwrap();
    assert!(VALIDITY - Duration::from_secs(2) <= lifetime && lifetime <= VALIDITY);
}

/// Adding a host name re-issues the certificate with the same key: the new one carries the
/// name, its fingerprint changes and its pin does not.
#[test]
fn reissues_with_the_same_key_when_names_change() {
    let tmp = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let first = load_or_generate(tmp.path(), &spec(), now).unwrap();

    let extra = ["mnemo.example".to_owned()];
    let wider = CertSpec::for_this_host(&extra, &[]);
    let second = load_or_generate(tmp.path(), &wider, now).unwrap();
    assert_eq!(second.origin, Origin::Reissued);
    assert_ne!(second.fingerprint, first.fingerprint);
    assert_eq!(second.pin, first.pin);
    assert!(
        sans(&second.cert_path)
            .0
            .contains(&"mnemo.example".to_owned())
    );

    let third = load_or_generate(tmp.path(), &wider, now).unwrap();
    assert_eq!(third.origin, Origin::Reused);
    assert_eq!(third.fingerprint, second.fingerprint);

    // Dropping the name again is also a change.
    let fourth = load_or_generate(tmp.path(), &spec(), now).unwrap();
    assert_eq!(fourth.origin, Origin::Reissued);
    assert_eq!(fourth.pin, first.pin);
}

/// `rotate` makes a new key: a new pin, which later starts keep.
#[test]
fn rotate_changes_the_pin_for_good() {
    let tmp = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let first = load_or_generate(tmp.path(), &spec(), now).unwrap();
    let rotated = mnemo_certs::rotate(tmp.path(), &spec(), now).unwrap();
    assert_eq!(rotated.origin, Origin::Regenerated);
    assert_ne!(rotated.pin, first.pin);
    let after = load_or_generate(tmp.path(), &spec(), now).unwrap();
    assert_eq!(after.origin, Origin::Reused);
    assert_eq!(after.pin, rotated.pin);
}

/// The pin is the SHA-256 of the SubjectPublicKeyInfo, as
/// `openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256` computes it.
#[test]
fn pin_is_the_sha256_of_the_public_key() {
    let tmp = tempfile::tempdir().unwrap();
    let id = load_or_generate(tmp.path(), &spec(), SystemTime::now()).unwrap();
    let pubkey = Command::new("openssl")
        .args(["x509", "-noout", "-pubkey", "-in"])
        .arg(&id.cert_path)
        .output()
        .unwrap();
    assert!(pubkey.status.success());
    let pem = String::from_utf8(pubkey.stdout).unwrap();
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
        .map(|der: rustls_pki_types::SubjectPublicKeyInfoDer<'static>| der.to_vec())
        .unwrap();
    assert_eq!(id.pin, Fingerprint::of(&der));
    assert_eq!(mnemo_certs::spki_pin(&id.chain[0]), Some(id.pin));
}

/// Within RENEW_BEFORE of expiry the certificate is re-issued (same pin); a day earlier it
/// is not.
#[test]
fn reissues_when_expiry_is_near() {
    let tmp = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let first = load_or_generate(tmp.path(), &spec(), now).unwrap();

    let not_yet = now + VALIDITY - RENEW_BEFORE - DAY;
    let kept = load_or_generate(tmp.path(), &spec(), not_yet).unwrap();
    assert_eq!(kept.origin, Origin::Reused);
    assert_eq!(kept.fingerprint, first.fingerprint);

    let later = now + VALIDITY - RENEW_BEFORE + DAY;
    let renewed = load_or_generate(tmp.path(), &spec(), later).unwrap();
    assert_eq!(renewed.origin, Origin::Reissued);
    assert_ne!(renewed.fingerprint, first.fingerprint);
    assert_eq!(renewed.pin, first.pin);
    assert!(renewed.not_after > later + VALIDITY - DAY);
}

/// A damaged certificate, or one that does not match the key, is re-issued from the key (same
/// pin); a damaged or missing key means a new key pair. Neither is fatal.
#[test]
fn damaged_files_are_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let first = load_or_generate(tmp.path(), &spec(), now).unwrap();

    std::fs::write(&first.cert_path, "garbage").unwrap();
    let second = load_or_generate(tmp.path(), &spec(), now).unwrap();
    assert_eq!(second.origin, Origin::Reissued);
    assert_eq!(second.pin, first.pin);

    let (_, other_key) = common::openssl_pair(tmp.path(), "other", 30);
    std::fs::copy(other_key, &second.key_path).unwrap();
    let third = load_or_generate(tmp.path(), &spec(), now).unwrap();
    assert_eq!(third.origin, Origin::Reissued);
    assert_ne!(third.fingerprint, second.fingerprint);
    assert_ne!(third.pin, second.pin, "the key on disk is the identity");

    std::fs::write(&third.key_path, "garbage").unwrap();
    let fourth = load_or_generate(tmp.path(), &spec(), now).unwrap();
    assert_eq!(fourth.origin, Origin::Regenerated);
    assert_ne!(fourth.pin, third.pin);

    std::fs::remove_file(&fourth.key_path).unwrap();
    let fifth = load_or_generate(tmp.path(), &spec(), now).unwrap();
    assert_eq!(fifth.origin, Origin::Generated);
    assert_eq!(
        load_or_generate(tmp.path(), &spec(), now).unwrap().origin,
        Origin::Reused
    );
}

/// The SANs cover localhost, 127.0.0.1, ::1, the host name, <host>.local and the extras.
#[test]
fn sans_cover_this_host_and_extras() {
    let tmp = tempfile::tempdir().unwrap();
    let extra_ip: IpAddr = "192.0.2.44".parse().unwrap();
    let spec = CertSpec::for_this_host(&["Mnemo.Example".to_owned()], &[extra_ip]);
    let id = load_or_generate(tmp.path(), &spec, SystemTime::now()).unwrap();
    let (names, ips) = sans(&id.cert_path);

    let host = gethostname::gethostname()
        .to_string_lossy()
        .to_ascii_lowercase();
    let short = host.split('.').next().unwrap().to_owned();
    for name in [
        "localhost",
        "mnemo.example",
        &host,
        &format!("{short}.local"),
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
    for ip in ["127.0.0.1", "::1", "192.0.2.44"] {
        assert!(
            ips.contains(&ip.parse().unwrap()),
            "{ip} missing from {ips:?}"
        );
    }
    for interface in if_addrs::get_if_addrs().unwrap() {
        assert!(ips.contains(&interface.ip()), "{} missing", interface.ip());
    }
    assert_eq!(names, spec.hostnames);
    assert_eq!(ips, spec.ips);
}

/// Display of the fingerprint is exactly what `openssl x509 -fingerprint -sha256` prints.
#[test]
fn fingerprint_matches_openssl() {
    let tmp = tempfile::tempdir().unwrap();
    let id = load_or_generate(tmp.path(), &spec(), SystemTime::now()).unwrap();
    assert_eq!(
        id.fingerprint.to_string(),
        common::openssl_fingerprint(&id.cert_path)
    );
}

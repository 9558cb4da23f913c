//! The self-signed certificate kept in the server's data directory, and the key pair that is
//! the server's identity.
//!
//! Clients pin the key (the SHA-256 of the certificate's SubjectPublicKeyInfo), not the
//! certificate, so the certificate can follow the host: it is re-issued with the same key
//! when it expires within [`RENEW_BEFORE`], its names or addresses no longer match the host,
//! or it is damaged, and the reason is logged. The key changes only when [`rotate`] is asked
//! for, or when `key.pem` itself is unusable, because a new key breaks every client's trust.
//! Each file is written with [`crate::private_file`] (a temporary name renamed into place),
//! key first; a crash between the two renames leaves a certificate that does not match the
//! key, which the next start re-issues from the key.

use std::fmt;
use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::pem::{check_key_matches, read_chain, read_key};
use crate::private_file::{self, PrivateFileError};
use crate::x509::{CertFacts, asn1_time, inspect};
use crate::{CertError, CertSpec, Fingerprint, Origin, ServerIdentity};

/// How long a generated certificate is valid: 825 days, the longest that Apple platforms
/// accept for a TLS server certificate from a user-trusted root. The 398-day limit of public
/// CAs does not apply to a self-signed certificate.
pub const VALIDITY: Duration = Duration::from_secs(825 * 24 * 60 * 60);

/// A generated certificate that expires within this long of `now` is re-issued.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Tolerance for clients whose clock is slightly behind the server's.
const BACKDATE: Duration = Duration::from_secs(60 * 60);

const CERT_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";

/// Self-signed ECDSA P-256 certificate in `dir` (cert.pem, key.pem; key mode 0600; dir
/// created; files written atomically). Reuses the existing pair unless the certificate
/// expires within [`RENEW_BEFORE`] of `now`, its SANs differ from `spec`, or it cannot be
/// parsed or does not match the key; in those cases re-issues it with the same key and logs
/// why. A new key pair is made only when `key.pem` is absent or unusable. A new certificate
/// is valid from an hour before `now` for [`VALIDITY`].
pub fn load_or_generate(
    dir: &Path,
    spec: &CertSpec,
    now: SystemTime,
) -> Result<ServerIdentity, CertError> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    let key_pair = match existing_key(&key_path) {
        KeyState::Usable(key_pair) => *key_pair,
        KeyState::Absent => {
            return issue(dir, spec, now, new_key(dir)?, Origin::Generated);
        }
        KeyState::Unusable(reason) => {
            tracing::warn!(
                path = %key_path.display(),
                %reason,
                "the server's private key is unusable; making a new key pair: clients that \
                 trusted this server must trust it again"
            );
            return issue(dir, spec, now, new_key(dir)?, Origin::Regenerated);
        }
    };
    match examine(&cert_path, &key_path, spec, now) {
        Verdict::Reuse(identity) => {
            tighten_key_mode(&key_path);
            tracing::debug!(path = %cert_path.display(), "reusing the self-signed certificate");
            Ok(*identity)
        }
        Verdict::Absent => issue(dir, spec, now, key_pair, Origin::Reissued),
        Verdict::Replace(reason) => {
            match &reason {
                Reason::Unreadable(_) | Reason::NotYetValid { .. } => tracing::warn!(
                    path = %cert_path.display(),
                    %reason,
                    "re-issuing the self-signed certificate with the same key; the pin is unchanged"
                ),
                Reason::ExpiresSoon { .. } | Reason::NamesChanged { .. } => tracing::info!(
                    path = %cert_path.display(),
                    %reason,
                    "re-issuing the self-signed certificate with the same key; the pin is unchanged"
                ),
            }
            issue(dir, spec, now, key_pair, Origin::Reissued)
        }
    }
}

/// Replaces the key pair in `dir` with a new one and issues a certificate for it: the
/// server gets a new pin, and every client that trusted the old one must trust it again.
/// `mnemo-server tls rotate` runs it.
pub fn rotate(dir: &Path, spec: &CertSpec, now: SystemTime) -> Result<ServerIdentity, CertError> {
    issue(dir, spec, now, new_key(dir)?, Origin::Regenerated)
}

enum KeyState {
    Absent,
    Usable(Box<KeyPair>),
    Unusable(String),
}

fn existing_key(key_path: &Path) -> KeyState {
    match read_key(key_path) {
        Ok(key) => match KeyPair::try_from(&key) {
            Ok(key_pair) => KeyState::Usable(Box::new(key_pair)),
            Err(error) => KeyState::Unusable(error.to_string()),
        },
        Err(CertError::Missing { .. }) => KeyState::Absent,
        Err(error) => KeyState::Unusable(problem(&error)),
    }
}

fn new_key(dir: &Path) -> Result<KeyPair, CertError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| CertError::Generate {
        dir: dir.to_owned(),
        reason: e.to_string(),
    })
}

/// Issues a certificate for `key_pair`, writes both files, and logs the outcome.
fn issue(
    dir: &Path,
    spec: &CertSpec,
    now: SystemTime,
    key_pair: KeyPair,
    origin: Origin,
) -> Result<ServerIdentity, CertError> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    let identity = generate(dir, &cert_path, &key_path, spec, now, key_pair, origin)?;
    tracing::info!(
        path = %cert_path.display(),
        pin = %identity.pin,
        fingerprint = %identity.fingerprint,
        new_key = origin != Origin::Reissued,
        "issued a self-signed certificate"
    );
    Ok(identity)
}

enum Verdict {
    Absent,
    Reuse(Box<ServerIdentity>),
    Replace(Reason),
}

enum Reason {
    Unreadable(CertError),
    NotYetValid {
        not_before: String,
    },
    ExpiresSoon {
        not_after: String,
    },
    NamesChanged {
        added: Vec<String>,
        removed: Vec<String>,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable(err) => write!(f, "unreadable: {}", problem(err)),
            Self::NotYetValid { not_before } => write!(f, "not yet valid until {not_before}"),
            Self::ExpiresSoon { not_after } => write!(f, "expires soon: {not_after}"),
            Self::NamesChanged { added, removed } => write!(
                f,
                "names changed: added [{}] removed [{}]",
                added.join(", "),
                removed.join(", ")
            ),
        }
    }
}

/// The problem alone: `CertError`'s advice is about user-supplied files, which would mislead
/// in a log line about the generated pair.
fn problem(err: &CertError) -> String {
    match err {
        CertError::Missing { path, .. } => format!("{} is missing", path.display()),
        CertError::Unreadable { path, cause, .. } => format!("{}: {cause}", path.display()),
        CertError::BadPem { path, cause, .. } => {
            format!("{} is not valid PEM ({cause})", path.display())
        }
        CertError::NoCertificate { path } => format!("no certificate in {}", path.display()),
        CertError::NoKey { path } => format!("no private key in {}", path.display()),
        CertError::BadCertificate { path, reason } => format!("{}: {reason}", path.display()),
        CertError::UnsupportedKey { path, cause } => format!("{}: {cause}", path.display()),
        CertError::KeyMismatch { cert, key } => {
            format!("{} does not belong to {}", key.display(), cert.display())
        }
        other => other.to_string(),
    }
}

fn examine(cert_path: &Path, key_path: &Path, spec: &CertSpec, now: SystemTime) -> Verdict {
    if !cert_path.exists() && !key_path.exists() {
        return Verdict::Absent;
    }
    let (chain, key, facts) = match load(cert_path, key_path) {
        Ok(loaded) => loaded,
        Err(err) => return Verdict::Replace(Reason::Unreadable(err)),
    };
    if now < facts.not_before {
        return Verdict::Replace(Reason::NotYetValid {
            not_before: facts.not_before_text,
        });
    }
    if facts.not_after < now + RENEW_BEFORE {
        return Verdict::Replace(Reason::ExpiresSoon {
            not_after: facts.not_after_text,
        });
    }
    let (added, removed) = san_diff(spec, &facts);
    if !added.is_empty() || !removed.is_empty() {
        return Verdict::Replace(Reason::NamesChanged { added, removed });
    }
    Verdict::Reuse(Box::new(ServerIdentity {
        fingerprint: Fingerprint::of(&chain[0]),
        pin: facts.pin,
        chain,
        key,
        origin: Origin::Reused,
        cert_path: cert_path.to_owned(),
        key_path: key_path.to_owned(),
        not_after: facts.not_after,
    }))
}

type Loaded = (
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
    CertFacts,
);

fn load(cert_path: &Path, key_path: &Path) -> Result<Loaded, CertError> {
    let chain = read_chain(cert_path)?;
    let key = read_key(key_path)?;
    let facts = inspect(&chain[0], cert_path)?;
    check_key_matches(&chain, &key, cert_path, key_path)?;
    Ok((chain, key, facts))
}

/// Names in `spec` but not in the certificate, then names in the certificate but not in
/// `spec`; IPs are compared as addresses, not as text.
fn san_diff(spec: &CertSpec, facts: &CertFacts) -> (Vec<String>, Vec<String>) {
    let mut added: Vec<String> = spec
        .hostnames
        .iter()
        .filter(|name| !facts.dns_names.contains(name))
        .cloned()
        .collect();
    added.extend(
        spec.ips
            .iter()
            .filter(|ip| !facts.ips.contains(ip))
            .map(IpAddr::to_string),
    );
    let mut removed: Vec<String> = facts
        .dns_names
        .iter()
        .filter(|name| !spec.hostnames.contains(name))
        .cloned()
        .collect();
    removed.extend(
        facts
            .ips
            .iter()
            .filter(|ip| !spec.ips.contains(ip))
            .map(IpAddr::to_string),
    );
    (added, removed)
}

fn written(error: PrivateFileError) -> CertError {
    CertError::Write {
        path: error.path,
        cause: error.cause,
    }
}

fn generate(
    dir: &Path,
    cert_path: &Path,
    key_path: &Path,
    spec: &CertSpec,
    now: SystemTime,
    key_pair: KeyPair,
    origin: Origin,
) -> Result<ServerIdentity, CertError> {
    let failed = |reason: String| CertError::Generate {
        dir: dir.to_owned(),
        reason,
    };
    let date = |t: SystemTime| {
        asn1_time(t)
            .map(|t| t.to_datetime())
            .ok_or_else(|| failed(format!("{t:?} cannot be written as a certificate date")))
    };

    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "Mnemo self-signed certificate");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Mnemo");
    params.subject_alt_names = spec
        .hostnames
        .iter()
        .map(|name| {
            name.clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|e| failed(format!("host name {name:?}: {e}")))
        })
        .chain(spec.ips.iter().map(|ip| Ok(SanType::IpAddress(*ip))))
        .collect::<Result<_, _>>()?;
    params.not_before = date(now - BACKDATE)?;
    params.not_after = date(now + VALIDITY)?;
    // An end entity, not a CA: webpki-based clients refuse a CA certificate as the server's.
    params.is_ca = IsCa::NoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];

    let cert = params
        .self_signed(&key_pair)
        .map_err(|e| failed(e.to_string()))?;

    private_file::write(key_path, key_pair.serialize_pem().as_bytes()).map_err(written)?;
    private_file::write_with_mode(cert_path, cert.pem().as_bytes(), 0o644).map_err(written)?;

    let der = cert.der().clone();
    let facts = inspect(&der, cert_path)?;
    Ok(ServerIdentity {
        fingerprint: Fingerprint::of(&der),
        pin: facts.pin,
        chain: vec![der],
        key: PrivatePkcs8KeyDer::from(key_pair.serialize_der()).into(),
        origin,
        cert_path: cert_path.to_owned(),
        key_path: key_path.to_owned(),
        not_after: facts.not_after,
    })
}

/// A key that others can read was probably copied or restored by hand; it still works, so
/// fix the mode and say so rather than replace the certificate.
fn tighten_key_mode(key_path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = fs::metadata(key_path) else {
            return;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            match fs::set_permissions(key_path, fs::Permissions::from_mode(0o600)) {
                Ok(()) => tracing::warn!(
                    path = %key_path.display(),
                    old_mode = format_args!("{mode:o}"),
                    "the private key was readable by other users; its mode is now 600"
                ),
                Err(error) => tracing::warn!(
                    path = %key_path.display(),
                    %error,
                    "the private key is readable by other users and its mode cannot be changed; \
                     run chmod 600 on it"
                ),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = key_path;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The logged reason lists what was added and removed, in the form operators search for.
    #[test]
    fn names_changed_reason_text() {
        let reason = Reason::NamesChanged {
            added: vec!["new.example".into(), "192.0.2.1".into()],
            removed: vec!["old.example".into()],
        };
        assert_eq!(
            reason.to_string(),
            "names changed: added [new.example, 192.0.2.1] removed [old.example]"
        );
    }

    /// A damaged pair is logged as "unreadable" with the problem, without user-file advice.
    #[test]
    fn unreadable_reason_text() {
        let reason = Reason::Unreadable(CertError::KeyMismatch {
            cert: "/d/cert.pem".into(),
            key: "/d/key.pem".into(),
        });
        assert_eq!(
            reason.to_string(),
            "unreadable: /d/key.pem does not belong to /d/cert.pem"
        );
    }
}

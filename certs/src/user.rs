//! A certificate and key the user supplied (`MCP_SSL_CERT_FILE`, `MCP_SSL_KEY_FILE`).
//!
//! Unlike the generated pair, nothing here is ever replaced: every problem is an error for
//! the user to fix, checked at start-up so the server refuses to start instead of failing
//! each handshake later with an error only the client sees.

use std::path::Path;
use std::time::SystemTime;

use crate::generate::RENEW_BEFORE;
use crate::pem::{check_key_matches, read_chain, read_key};
use crate::x509::inspect;
use crate::{CertError, Fingerprint, Origin, ServerIdentity};

/// A user-supplied PEM certificate (chain, end-entity first) and key (PKCS#8, SEC1 or RSA).
///
/// Fails if either file is missing or unreadable, holds no certificate or no key, the key
/// does not belong to the certificate, or the certificate is outside its validity window at
/// `now`. A certificate that expires within 30 days still loads, with a warning.
pub fn load_user_supplied(
    cert: &Path,
    key: &Path,
    now: SystemTime,
) -> Result<ServerIdentity, CertError> {
    let chain = read_chain(cert)?;
    let private_key = read_key(key)?;
    let facts = inspect(&chain[0], cert)?;
    check_key_matches(&chain, &private_key, cert, key)?;
    if facts.not_after < now {
        return Err(CertError::Expired {
            path: cert.to_owned(),
            not_after: facts.not_after_text,
        });
    }
    if now < facts.not_before {
        return Err(CertError::NotYetValid {
            path: cert.to_owned(),
            not_before: facts.not_before_text,
        });
    }
    if facts.not_after < now + RENEW_BEFORE {
        tracing::warn!(
            path = %cert.display(),
            not_after = %facts.not_after_text,
            "the certificate expires soon; renew it"
        );
    }
    Ok(ServerIdentity {
        fingerprint: Fingerprint::of(&chain[0]),
        pin: facts.pin,
        chain,
        key: private_key,
        origin: Origin::UserSupplied,
        cert_path: cert.to_owned(),
        key_path: key.to_owned(),
        not_after: facts.not_after,
    })
}

//! TLS identity for Mnemo: the certificate the server presents and the pin the bridge checks.
//!
//! The server either loads a certificate the user supplied or keeps a self-signed one in its
//! data directory; clients that cannot trust a self-signed certificate through a CA pin its
//! SHA-256 fingerprint instead. Everything here is synchronous, because it runs once at
//! start-up, before the listener exists.
//!
//! # Layout
//!
//! `fingerprint`: [`Fingerprint`], a SHA-256 in the colon-separated form that
//! `openssl x509 -fingerprint -sha256` prints, which is what users compare by eye. It holds both
//! a certificate's fingerprint and the server's pin: the SHA-256 of the certificate's
//! SubjectPublicKeyInfo ([`spki_pin`]), which survives re-issuing the certificate with the
//! same key.
//!
//! `proof`: [`proof::compute`], the HMAC a server answers `POST /api/auth/proof` with, so a
//! client learns that the server holds its API key before sending it.
//!
//! `spec`: [`CertSpec`], the host names and addresses a generated certificate must cover.
//!
//! `generate`: [`load_or_generate`], which keeps `key.pem` (the server's identity) and
//! `cert.pem` in a directory, re-issues the certificate with the same key when it expires soon,
//! no longer covers the host, or is damaged, and makes a new key only when asked ([`rotate`]) or
//! when the key file is unusable.
//!
//! `user`: [`load_user_supplied`], for `MCP_SSL_CERT_FILE` and `MCP_SSL_KEY_FILE`.
//!
//! `rustls_config`: [`server_config`], [`CertSlot`] and [`reloadable_server_config`] (a
//! certificate swapped while serving), [`PinnedVerifier`], [`pinned_client_config`] and
//! [`first_use_client_config`], whose verifier accepts any certificate and records its pin.
//!
//! `error`: [`CertError`], whose messages name the files involved and say what to do.
//!
//! [`private_file`]: the one writer of secret files in Mnemo (mode 0600, written to a
//! temporary file and renamed, or created only if absent). It lives here because this crate
//! already owns the most sensitive such file, the certificate's key, and both the server
//! (API keys, `keys.json`, instance id) and the bridge (its pins) depend on it already.
//!
//! `pem` and `x509` are private: reading PEM files, and the facts about a certificate
//! (validity, names) that both loaders check.

// Libraries never print: stdout belongs to the programs (for the bridge it is the MCP channel).
#![deny(clippy::print_stdout)]

mod error;
mod fingerprint;
mod generate;
mod pem;
pub mod private_file;
pub mod proof;
mod rustls_config;
mod spec;
mod user;
mod x509;

use std::path::PathBuf;
use std::time::SystemTime;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use error::CertError;
pub use fingerprint::{Fingerprint, FingerprintMismatch, ParseFingerprintError};
pub use generate::{RENEW_BEFORE, VALIDITY, load_or_generate, rotate};
pub use rustls_config::{
    CertSlot, PinnedVerifier, SeenPin, first_use_client_config, pinned_client_config,
    reloadable_server_config, server_config,
};
pub use spec::CertSpec;
pub use user::load_user_supplied;
pub use x509::spki_pin;

/// How the identity was obtained (the server logs it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// No certificate existed in the directory; a new one was made.
    Generated,
    /// The certificate in the directory still covers this host and is not close to expiry.
    Reused,
    /// The certificate was re-issued with the same key (names, addresses or expiry changed,
    /// or it was damaged); the pin is unchanged and the reason was logged.
    Reissued,
    /// A new key pair replaced an unusable one, or [`rotate`] was asked for: a new pin.
    Regenerated,
    /// Loaded from the files the user named.
    UserSupplied,
}

/// A certificate chain and its key, ready for rustls.
pub struct ServerIdentity {
    /// End-entity certificate first, then any intermediates in file order.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// SHA-256 of `chain[0]`, as openssl prints it; changes whenever the certificate does.
    pub fingerprint: Fingerprint,
    /// SHA-256 of `chain[0]`'s SubjectPublicKeyInfo: what clients pin and what mDNS, health
    /// and the log publish. It changes only with the key.
    pub pin: Fingerprint,
    pub origin: Origin,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub not_after: SystemTime,
}

/// Leaves the key out, so that logging an identity never logs the secret.
impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("chain_len", &self.chain.len())
            .field("fingerprint", &format_args!("{}", self.fingerprint))
            .field("pin", &format_args!("{}", self.pin))
            .field("origin", &self.origin)
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

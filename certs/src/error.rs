//! The one error type of this crate.
//!
//! Each message is meant to be read by someone fixing a configuration at a terminal, so it
//! names the file and the next step. Causes are folded into the message rather than exposed
//! through `source()`, so that printing the error once (`{}` or `{:#}`) says everything once.

use std::path::PathBuf;

/// Why a certificate or key could not be loaded, generated or handed to rustls.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error(
        "{what} file {} does not exist; point MCP_SSL_CERT_FILE and MCP_SSL_KEY_FILE at existing \
         PEM files, or unset both to use a generated self-signed certificate",
        path.display()
    )]
    Missing { what: &'static str, path: PathBuf },

    #[error(
        "cannot read {what} file {}: {cause}; check that it is a regular file readable by the \
         server's user",
        path.display()
    )]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },

    #[error(
        "{what} file {} is not valid PEM ({cause}); export it again in PEM format",
        path.display()
    )]
    BadPem {
        what: &'static str,
        path: PathBuf,
        cause: rustls_pki_types::pem::Error,
    },

    #[error(
        "no certificate found in {}: expected a PEM block starting with \
         '-----BEGIN CERTIFICATE-----' (convert a DER file with \
         `openssl x509 -inform der -in FILE -out cert.pem`)",
        path.display()
    )]
    NoCertificate { path: PathBuf },

    #[error(
        "the certificate in {} cannot be parsed as X.509 ({reason}); export it again, or unset \
         MCP_SSL_CERT_FILE and MCP_SSL_KEY_FILE to use a generated certificate",
        path.display()
    )]
    BadCertificate { path: PathBuf, reason: String },

    #[error(
        "no private key found in {}: expected an unencrypted PEM block 'PRIVATE KEY' (PKCS#8), \
         'EC PRIVATE KEY' (SEC1) or 'RSA PRIVATE KEY'; an encrypted key can be decrypted with \
         `openssl pkey -in KEY -out key.pem`",
        path.display()
    )]
    NoKey { path: PathBuf },

    #[error(
        "the private key in {} cannot be used ({cause}); supply an ECDSA P-256/P-384, Ed25519 or \
         RSA (2048 bits or more) key",
        path.display()
    )]
    UnsupportedKey { path: PathBuf, cause: rustls::Error },

    #[error(
        "the private key in {} does not belong to the certificate in {}: their public keys \
         differ; supply the key that was created together with this certificate",
        key.display(),
        cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },

    #[error(
        "the certificate in {} expired on {not_after}; renew it, or unset MCP_SSL_CERT_FILE and \
         MCP_SSL_KEY_FILE to use a generated certificate",
        path.display()
    )]
    Expired { path: PathBuf, not_after: String },

    #[error(
        "the certificate in {} is not valid until {not_before}; check the system clock, or \
         supply a certificate that is already valid",
        path.display()
    )]
    NotYetValid { path: PathBuf, not_before: String },

    #[error(
        "cannot write {}: {cause}; check that the directory is writable by the server's user \
         (it lives under the data directory, MNEMO_DATA_DIR)",
        path.display()
    )]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },

    #[error(
        "cannot generate a self-signed certificate in {}: {reason}; check that \
         MCP_SSL_ADDITIONAL_HOSTNAMES holds only ASCII DNS names",
        dir.display()
    )]
    Generate { dir: PathBuf, reason: String },

    #[error(
        "rustls rejected the certificate in {} with the key in {}: {cause}",
        cert.display(),
        key.display()
    )]
    Tls {
        cert: PathBuf,
        key: PathBuf,
        cause: rustls::Error,
    },
}

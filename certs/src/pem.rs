//! Reading a PEM certificate chain and private key from disk, and checking that they belong
//! together.
//!
//! Files are read whole before parsing so that "missing", "unreadable" and "no certificate in
//! it" stay three different errors: each has a different fix.

use std::io;
use std::path::Path;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::CertError;

const CERTIFICATE: &str = "certificate";
const KEY: &str = "private key";

/// Every certificate in the file, end-entity first as TLS sends them; other PEM blocks (a key
/// kept in the same file, parameters) are skipped.
pub(crate) fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let bytes = read(CERTIFICATE, path)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|cause| CertError::BadPem {
            what: CERTIFICATE,
            path: path.to_owned(),
            cause,
        })?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

/// The first PKCS#8, SEC1 or PKCS#1 key in the file.
pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    let bytes = read(KEY, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|cause| match cause {
        pem::Error::NoItemsFound => CertError::NoKey {
            path: path.to_owned(),
        },
        cause => CertError::BadPem {
            what: KEY,
            path: path.to_owned(),
            cause,
        },
    })
}

/// Compares the key's public half with the certificate's, the check rustls itself makes in
/// `CertifiedKey::from_der`; doing it here turns rustls' bare "key mismatch" into an error
/// that names both files.
pub(crate) fn check_key_matches(
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<(), CertError> {
    let signing_key = rustls::crypto::ring::sign::any_supported_type(key).map_err(|cause| {
        CertError::UnsupportedKey {
            path: key_path.to_owned(),
            cause,
        }
    })?;
    let certified = rustls::sign::CertifiedKey::new(chain.to_vec(), signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(()),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(CertError::KeyMismatch {
                cert: cert_path.to_owned(),
                key: key_path.to_owned(),
            })
        }
        // Every ring key type reports its public key, so "cannot tell" does not happen; an
        // unparseable certificate was already rejected by the caller.
        Err(cause) => Err(CertError::Tls {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
            cause,
        }),
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|cause| match cause.kind() {
        io::ErrorKind::NotFound => CertError::Missing {
            what,
            path: path.to_owned(),
        },
        _ => CertError::Unreadable {
            what,
            path: path.to_owned(),
            cause,
        },
    })
}

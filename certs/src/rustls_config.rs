//! rustls configurations: the server's, a client's that trusts one pinned key, and a
//! client's for a first contact, which trusts any certificate but records the key it saw.
//!
//! Pinning replaces the whole of WebPKI path validation (CA, names, dates) with one equality
//! check on the hash of the certificate's public key (or, as before pins named keys, of the
//! whole certificate). The handshake signatures must still be verified, though:
//! they are what proves the peer holds the pinned certificate's key, rather than having
//! copied the (public) certificate.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, OtherError, SignatureScheme};

use crate::{CertError, Fingerprint, FingerprintMismatch, ServerIdentity, spki_pin};

const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls server config for the identity: ring provider, TLS 1.2 and 1.3, ALPN
/// ["h2", "http/1.1"].
pub fn server_config(identity: &ServerIdentity) -> Result<rustls::ServerConfig, CertError> {
    let tls_err = |cause| CertError::Tls {
        cert: identity.cert_path.clone(),
        key: identity.key_path.clone(),
        cause,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(tls_err)?
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(tls_err)?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The certificate a running server presents, replaceable while it serves: when the
/// host's addresses change, the server re-issues its certificate (with the same key, so
/// the pin stays) and swaps it in here without restarting or dropping connections.
#[derive(Debug)]
pub struct CertSlot {
    current: std::sync::RwLock<(Arc<rustls::sign::CertifiedKey>, Fingerprint)>,
}

impl CertSlot {
    pub fn new(identity: &ServerIdentity) -> Result<Arc<Self>, CertError> {
        Ok(Arc::new(Self {
            current: std::sync::RwLock::new((certified(identity)?, identity.fingerprint)),
        }))
    }

    /// Serves `identity` to every handshake from now on.
    pub fn replace(&self, identity: &ServerIdentity) -> Result<(), CertError> {
        let key = certified(identity)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = (key, identity.fingerprint);
        Ok(())
    }

    /// The SHA-256 fingerprint of the certificate served now.
    pub fn fingerprint(&self) -> Fingerprint {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .1
    }
}

impl rustls::server::ResolvesServerCert for CertSlot {
    fn resolve(
        &self,
        _client_hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .0,
        ))
    }
}

fn certified(identity: &ServerIdentity) -> Result<Arc<rustls::sign::CertifiedKey>, CertError> {
    let key = rustls::crypto::ring::sign::any_supported_type(&identity.key).map_err(|cause| {
        CertError::Tls {
            cert: identity.cert_path.clone(),
            key: identity.key_path.clone(),
            cause,
        }
    })?;
    Ok(Arc::new(rustls::sign::CertifiedKey::new(
        identity.chain.clone(),
        key,
    )))
}

/// A rustls server config that serves whatever `slot` holds (same provider, versions and
/// ALPN as [`server_config`]).
pub fn reloadable_server_config(slot: Arc<CertSlot>) -> Result<rustls::ServerConfig, CertError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|cause| CertError::Tls {
            cert: Default::default(),
            key: Default::default(),
            cause,
        })?
        .with_no_client_auth()
        .with_cert_resolver(slot);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// A client verifier that accepts an end-entity certificate whose public key has the pinned
/// SHA-256 (its SPKI pin) or, for pins taken before servers published key pins, whose own
/// SHA-256 is the pin; it ignores names, CAs and dates, and still verifies the handshake
/// signatures (TLS 1.2 and 1.3) with the ring provider's algorithms.
///
/// Dates are ignored on purpose: the server re-issues its generated certificate before it
/// expires, so an expired certificate can only be presented by a server that was not
/// restarted for months; refusing it would not make the pin safer.
/// A mismatch fails with `rustls::Error::InvalidCertificate(CertificateError::Other(..))`
/// wrapping a [`FingerprintMismatch`], whose text names both fingerprints.
#[derive(Debug)]
pub struct PinnedVerifier {
    pin: Fingerprint,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedVerifier {
    pub fn new(pin: Fingerprint) -> Self {
        Self {
            pin,
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = spki_pin(end_entity);
        if presented == Some(self.pin) || Fingerprint::of(end_entity) == self.pin {
            return Ok(ServerCertVerified::assertion());
        }
        let mismatch = FingerprintMismatch {
            pinned: self.pin,
            presented: presented.unwrap_or_else(|| Fingerprint::of(end_entity)),
        };
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(mismatch)),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A rustls client config that trusts only `pin` (ALPN h2 + http/1.1), for the bridge and
/// tests. TLS 1.2 and 1.3, ring provider, no client certificate.
pub fn pinned_client_config(pin: Fingerprint) -> rustls::ClientConfig {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedVerifier::new(pin)))
        .with_no_client_auth();
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    config
}

/// The SPKI pin of the last certificate a [`first_use_client_config`] accepted.
#[derive(Debug, Clone, Default)]
pub struct SeenPin(Arc<Mutex<Option<Fingerprint>>>);

impl SeenPin {
    pub fn get(&self) -> Option<Fingerprint> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `pin` if none was seen yet; `Err` with the first pin when it differs.
    fn first_or_same(&self, pin: Fingerprint) -> Result<(), Fingerprint> {
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match *seen {
            None => {
                *seen = Some(pin);
                Ok(())
            }
            Some(first) if first == pin => Ok(()),
            Some(first) => Err(first),
        }
    }
}

/// Accepts the first certificate whose handshake signature verifies and records its pin,
/// then only certificates with that same pin: for a first contact, where what proves the
/// server is not the certificate but the proof of the API key bound to that pin
/// (`POST /api/auth/proof`). Once the proof has passed, the same client (and its open
/// connection) is as strict as a [`PinnedVerifier`] for that pin.
#[derive(Debug)]
struct FirstUseVerifier {
    seen: SeenPin,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for FirstUseVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let pin = spki_pin(end_entity).ok_or(rustls::Error::InvalidCertificate(
            CertificateError::BadEncoding,
        ))?;
        match self.seen.first_or_same(pin) {
            Ok(()) => Ok(ServerCertVerified::assertion()),
            Err(pinned) => Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(FingerprintMismatch {
                    pinned,
                    presented: pin,
                })),
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A rustls client config for a first contact: the first certificate is accepted and its
/// SPKI pin recorded in the returned [`SeenPin`]; later handshakes must show the same pin.
/// Nothing secret may be sent over it before that pin is proven.
pub fn first_use_client_config() -> (rustls::ClientConfig, SeenPin) {
    let seen = SeenPin::default();
    let verifier = FirstUseVerifier {
        seen: seen.clone(),
        algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    (config, seen)
}

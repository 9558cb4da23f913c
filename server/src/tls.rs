//! TLS in one place: which certificate the server presents, the acceptor built from it,
//! and the handshake on each accepted connection.
//!
//! A home network has no certificate authority, so the server makes (or is given) a
//! certificate and publishes its pin, the SHA-256 of its public key: in the log, in
//! detailed health, in the `fp` TXT record and on the `--lan` line. Clients pin that
//! instead of turning verification off; it survives the certificate being re-issued for
//! new addresses, because the key pair in `<data dir>/certs` is kept until
//! `mnemo-server tls rotate`. Making, loading and checking certificates is `mnemo-certs`'s job;
//! this module picks one for a [`Config`] and puts it on the wire.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mnemo_certs::{CertError, CertSlot, CertSpec, Origin, ServerIdentity};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, info};

use crate::config::Config;

/// The certificate the server will serve: the user's files if given, else the
/// self-signed one in `<data dir>/certs`, made or renewed as needed.
pub fn load_identity(config: &Config) -> Result<ServerIdentity, CertError> {
    let now = SystemTime::now();
    let identity = match (&config.ssl_cert_file, &config.ssl_key_file) {
        (Some(cert), Some(key)) => mnemo_certs::load_user_supplied(cert, key, now)?,
        _ => {
            let spec = CertSpec::for_this_host(
                &config.ssl_additional_hostnames,
                &config.ssl_additional_ips,
            );
            mnemo_certs::load_or_generate(&config.data_dir().join("certs"), &spec, now)?
        }
    };
    let origin = match identity.origin {
        Origin::Generated => "generated",
        Origin::Reused => "reused",
        Origin::Reissued => "reissued",
        Origin::Regenerated => "regenerated",
        Origin::UserSupplied => "user-supplied",
    };
    info!(
        pin = %identity.pin,
        fingerprint = %identity.fingerprint,
        certificate = %identity.cert_path.display(),
        %origin,
        "TLS certificate",
    );
    Ok(identity)
}

/// Makes a new key pair for the generated certificate in `<data dir>/certs` (`mnemo-server
/// tls rotate`): a new pin, which every client must trust again. A user-supplied certificate
/// is the user's to replace, so rotating is refused while one is configured.
pub fn rotate(config: &Config) -> Result<ServerIdentity, RotateError> {
    if config.ssl_cert_file.is_some() || config.ssl_key_file.is_some() {
        return Err(RotateError::UserSupplied);
    }
    let spec =
        CertSpec::for_this_host(&config.ssl_additional_hostnames, &config.ssl_additional_ips);
    Ok(mnemo_certs::rotate(
        &config.data_dir().join("certs"),
        &spec,
        SystemTime::now(),
    )?)
}

/// Why `tls rotate` did nothing.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(
        "MCP_SSL_CERT_FILE / MCP_SSL_KEY_FILE name your own certificate; replace those files \
         with a new pair instead (its pin is logged at the next start)"
    )]
    UserSupplied,
    #[error(transparent)]
    Cert(#[from] CertError),
}

/// The TLS acceptor for an identity (ALPN h2 and http/1.1), serving whatever the
/// returned slot holds, so a re-issued certificate is served without a restart.
pub fn acceptor(identity: &ServerIdentity) -> Result<(TlsAcceptor, Arc<CertSlot>), CertError> {
    let slot = CertSlot::new(identity)?;
    let config = mnemo_certs::reloadable_server_config(Arc::clone(&slot))?;
    Ok((TlsAcceptor::from(Arc::new(config)), slot))
}

/// Re-checks the generated certificate against this host's names and addresses now
/// (a new DHCP lease, an interface that came up after start) and serves the re-issued
/// one, which has the same key and pin. Returns it when it changed; a user-supplied
/// certificate is never touched.
pub fn refresh(config: &Config, slot: &CertSlot) -> Result<Option<ServerIdentity>, CertError> {
    if config.ssl_cert_file.is_some() && config.ssl_key_file.is_some() {
        return Ok(None);
    }
    let spec =
        CertSpec::for_this_host(&config.ssl_additional_hostnames, &config.ssl_additional_ips);
    let identity =
        mnemo_certs::load_or_generate(&config.data_dir().join("certs"), &spec, SystemTime::now())?;
    if identity.fingerprint == slot.fingerprint() {
        return Ok(None);
    }
    slot.replace(&identity)?;
    info!(
        pin = %identity.pin,
        fingerprint = %identity.fingerprint,
        "serving the re-issued TLS certificate",
    );
    Ok(Some(identity))
}

/// The TLS side of a freshly accepted connection, or `None` if the handshake failed
/// or did not finish `within` (a client that never sends its ClientHello would
/// otherwise hold the connection forever). A failed handshake is the client's business
/// (a port scanner, a client that refused the certificate), so it is logged at debug
/// level only.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    acceptor: &TlsAcceptor,
    stream: S,
    peer: SocketAddr,
    within: Duration,
) -> Option<TlsStream<S>> {
    match tokio::time::timeout(within, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            debug!(%peer, ?within, "TLS handshake timed out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change of the wanted addresses re-issues the certificate into the slot with the
    /// same pin; without a change nothing is re-issued.
    #[test]
    fn refresh_reissues_into_the_slot_with_the_same_pin() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_data_dir(dir.path());
        let identity = load_identity(&config).unwrap();
        let (_, slot) = acceptor(&identity).unwrap();
        assert!(refresh(&config, &slot).unwrap().is_none());
        config.ssl_additional_ips = vec!["192.0.2.9".parse().unwrap()];
        let reissued = refresh(&config, &slot).unwrap().unwrap();
        assert_eq!(reissued.origin, Origin::Reissued);
        assert_eq!(reissued.pin, identity.pin);
        assert_ne!(reissued.fingerprint, identity.fingerprint);
        assert_eq!(slot.fingerprint(), reissued.fingerprint);
        assert!(refresh(&config, &slot).unwrap().is_none());
    }
}

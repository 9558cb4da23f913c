//! What the server shows the network: its TLS certificate and its mDNS advertisement.
//!
//! A home network has no certificate authority, so the server makes (or is given) a
//! certificate and publishes its SHA-256 fingerprint: in the log, in detailed health
//! and in the `fp` TXT record. Clients pin that fingerprint instead of turning
//! verification off.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use mnemo_certs::{CertError, CertSpec, Origin, ServerIdentity};
use thiserror::Error;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use crate::config::Config;
use crate::mdns::{Advertisement, Advertiser};

#[derive(Debug, Error)]
pub enum LanError {
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error("cannot read or write the instance id at {path}: {error}")]
    InstanceId {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
}

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
        Origin::Regenerated => "regenerated",
        Origin::UserSupplied => "user-supplied",
    };
    info!(
        fingerprint = %identity.fingerprint,
        certificate = %identity.cert_path.display(),
        %origin,
        "TLS certificate",
    );
    Ok(identity)
}

/// The TLS acceptor for an identity (ALPN h2 and http/1.1).
pub fn acceptor(identity: &ServerIdentity) -> Result<TlsAcceptor, CertError> {
    Ok(TlsAcceptor::from(Arc::new(mnemo_certs::server_config(
        identity,
    )?)))
}

/// Starts advertising over mDNS if the configuration asks for it and the server
/// listens beyond loopback. Returns the registration, which unregisters on drop.
/// Failure to advertise is logged, not fatal: the server still serves by address.
pub fn advertise(
    config: &Config,
    addr: SocketAddr,
    fingerprint: Option<String>,
) -> Option<Advertiser> {
    if !config.mdns_enabled {
        return None;
    }
    if addr.ip().is_loopback() {
        info!(%addr, "mDNS off: the server listens on loopback only");
        return None;
    }
    let instance_id = match instance_id(&config.data_dir()) {
        Ok(id) => id,
        Err(e) => {
            warn!(error = %e, "not advertising over mDNS");
            return None;
        }
    };
    let advertisement = Advertisement {
        service_name: config.mdns_service_name.clone(),
        port: addr.port(),
        bound: addr.ip(),
        https: config.https_enabled,
        auth_required: !config.allow_anonymous,
        instance_id,
        fingerprint,
    };
    match Advertiser::start(&advertisement) {
        Ok(Some(advertiser)) => {
            info!(
                instance = advertiser.instance_name(),
                "advertising over mDNS"
            );
            Some(advertiser)
        }
        Ok(None) => None,
        Err(e) => {
            warn!(error = %e, "not advertising over mDNS");
            None
        }
    }
}

/// A random id kept in `<data dir>/instance_id`, so the advertisement names the same
/// server across restarts.
fn instance_id(data_dir: &Path) -> Result<String, LanError> {
    let path = data_dir.join("instance_id");
    let io = |error| LanError::InstanceId {
        path: path.clone(),
        error,
    };
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let id = hex::encode(rand::random::<[u8; 16]>());
    std::fs::create_dir_all(data_dir).map_err(io)?;
    std::fs::write(&path, format!("{id}\n")).map_err(io)?;
    Ok(id)
}

/// The one line a user pastes into the bridge's configuration (never the key).
pub fn bridge_line(addr: SocketAddr, https: bool, fingerprint: Option<&str>) -> String {
    let scheme = if https { "https" } else { "http" };
    let host = if addr.ip().is_unspecified() {
        local_address().map_or_else(
            || "<this machine's address>".to_owned(),
            |ip| ip.to_string(),
        )
    } else {
        addr.ip().to_string()
    };
    let mut line = format!("MCP_MEMORY_HTTP_ENDPOINT={scheme}://{host}:{}", addr.port());
    if let Some(fp) = fingerprint {
        line.push_str(&format!(" MCP_MEMORY_CERT_FINGERPRINT={fp}"));
    }
    line
}

/// The first non-loopback IPv4 address of this machine.
fn local_address() -> Option<std::net::IpAddr> {
    if_addrs::get_if_addrs()
        .ok()?
        .into_iter()
        .map(|i| i.ip())
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
}

//! Starting the server: keys, TLS, the listener, loading the model and database in
//! the background, publishing them, and advertising over mDNS.
//!
//! The listener is bound before anything slow happens, so a supervisor (or a test)
//! can poll `GET /api/health` from the first moment: it answers `503 loading` until
//! the memory service exists, then `200 healthy`. Every other route answers `503`
//! with the JSON error body until then.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::auth::Auth;
use crate::auth::{KeyError, KeyFile, KeyRing, ManagedKeys, load_or_create_default_key};
use crate::config::Config;
use crate::embed::{Embedder, FastEmbedModel, LoadError};
use crate::http::{self, AppState, connections};
use crate::mdns;
use crate::memory::EmbeddingSpec;
use crate::service::MemoryService;
use crate::storage::postgres::{PostgresKeys, PostgresStore};
use crate::storage::sqlite::SqliteStore;
use crate::storage::{Storage, StorageError};

/// Why the server could not start, or stopped.
#[derive(Debug, Error)]
pub enum ServeError {
    #[error("cannot set up API keys")]
    Keys(#[from] KeyError),
    #[error("cannot set up TLS")]
    Tls(#[from] mnemo_certs::CertError),
    #[error("cannot load the embedding model")]
    Model(#[from] LoadError),
    #[error("cannot open the database")]
    Storage(#[from] StorageError),
    #[error("the loader thread failed")]
    Task(#[from] tokio::task::JoinError),
    #[error("the HTTP server failed")]
    Io(#[from] std::io::Error),
}

/// How long shutdown waits for open connections before dropping them. Streams end
/// on their own when `shutdown` fires; this bounds a client that stopped reading.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// A server with its keys, its certificate and a bound listener, not yet serving.
///
/// Preparing is quick and fails early on a bad key file or certificate; the model
/// and database load once [`Server::serve`] runs.
pub struct Server {
    config: Config,
    listener: TcpListener,
    addr: SocketAddr,
    state: Arc<AppState>,
}

impl Server {
    /// Sets up the API keys and, with HTTPS on, the certificate, for a server on
    /// `listener`.
    pub fn prepare(config: Config, listener: TcpListener) -> Result<Self, ServeError> {
        let mut state = AppState::new(auth_for(&config)?);
        if config.https_enabled {
            let identity = crate::tls::load_identity(&config)?;
            let (acceptor, slot) = crate::tls::acceptor(&identity)?;
            state.tls = Some(acceptor);
            state.tls_slot = Some(slot);
            state.tls_fingerprint = Some(identity.fingerprint.to_string());
            state.tls_pin = Some(identity.pin);
        }
        let addr = listener.local_addr()?;
        Ok(Self {
            config,
            listener,
            addr,
            state: Arc::new(state),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The state the handlers share, for tests that watch its internals.
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// The one line a user pastes into the bridge's configuration (never the key).
    pub fn bridge_line(&self) -> String {
        bridge_line(
            self.addr,
            self.state.tls.is_some(),
            self.state.tls_pin.map(|pin| pin.to_string()).as_deref(),
        )
    }

    /// Serves until `shutdown` is cancelled. Loads the model and opens the database
    /// while already answering health checks; if either fails, stops and returns the
    /// error. Advertises over mDNS once healthy.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), ServeError> {
        let Self {
            config,
            listener,
            addr,
            state,
        } = self;
        raise_descriptor_limit(config.max_connections);
        if !addr.ip().is_loopback() && state.tls.is_none() {
            warn!(%addr, "serving plain HTTP on a non-loopback address: memories and API keys cross the network unencrypted");
        }
        info!(%addr, tls = state.tls.is_some(), "listening");
        let server = run(listener, &config, Arc::clone(&state), shutdown.clone());
        tokio::pin!(server);

        if let Some(slot) = state.tls_slot.clone() {
            tokio::spawn(recheck_certificate(config.clone(), slot, shutdown.clone()));
        }
        tokio::spawn(follow_key_changes(Arc::clone(&state), shutdown.clone()));
        let loader = load(&config, Arc::clone(&state), shutdown.clone());
        tokio::select! {
            served = &mut server => return served,
            loaded = loader => {
                if let Err(e) = loaded {
                    shutdown.cancel();
                    return Err(e);
                }
            }
        }
        // Advertised once healthy, so a client that finds the server can use it.
        // Dropped when serving ends, which sends the mDNS goodbye.
        let _advertiser = advertise(&config, addr, state.tls_pin.map(|pin| pin.to_string()));
        let served = server.await;
        if let Some(service) = state.service.get() {
            match service.storage().close().await {
                Ok(()) => info!("database closed"),
                Err(e) => {
                    warn!(error = %e, "could not close the database cleanly; it recovers on the next start")
                }
            }
        }
        served
    }

    /// Serves until `shutdown` without loading anything: whoever holds [`Server::state`]
    /// publishes the service (see [`AppState::publish`]). For tests and tools that
    /// share one model across several servers; no mDNS.
    pub async fn serve_published(self, shutdown: CancellationToken) -> Result<(), ServeError> {
        run(self.listener, &self.config, self.state, shutdown).await
    }
}

/// Prepares and serves a server on `listener` until `shutdown`: what `mnemo-server`
/// does.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    Server::prepare(config, listener)?.serve(shutdown).await
}

/// The key checker for `config`: `MCP_API_KEY`, or the generated default key, plus the
/// managed keys: `<data dir>/keys.json`, or with PostgreSQL the database's.
fn auth_for(config: &Config) -> Result<Auth, ServeError> {
    let data_dir = config.data_dir();
    let master = match &config.api_key {
        Some(key) => key.expose().to_owned(),
        None => {
            let (key, created) = load_or_create_default_key(&data_dir)?;
            let path = data_dir.join("api_key");
            if created {
                info!(path = %path.display(), "generated an API key (all scopes); read it from this file");
            } else {
                info!(path = %path.display(), "using the API key in this file (all scopes)");
            }
            key
        }
    };
    if config.allow_anonymous {
        warn!("anonymous access is on: requests without a key may read and write");
    }
    let keys = match &config.database_url {
        Some(url) => KeyRing::with_database(
            Some(master),
            PostgresKeys::new(url.expose(), &config.postgres_options())?,
        ),
        None => KeyRing::new(Some(master), KeyFile::new(&data_dir)),
    };
    Ok(Auth::new(
        keys,
        config.allow_anonymous,
        config.auth_failures_per_minute,
    ))
}

/// Serves the router on `listener` until `shutdown`, then gives open connections
/// [`SHUTDOWN_GRACE`] to finish.
async fn run(
    listener: TcpListener,
    config: &Config,
    state: Arc<AppState>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    tokio::spawn(crate::telemetry::upkeep(shutdown.clone()));
    let app = http::router(Arc::clone(&state), config, shutdown.clone());
    let connections = Arc::clone(&state.connections);
    let tls = state.tls.clone();
    let limits = connections::Limits {
        tls_handshake: Config::seconds(config.tls_handshake_timeout),
        header_read: Config::seconds(config.header_read_timeout),
        body_read: Config::seconds(config.body_read_timeout),
        idle: Config::seconds(config.idle_timeout),
        max_body_bytes: config.max_body_bytes,
        max_connections: usize::try_from(config.max_connections).unwrap_or(usize::MAX),
    };
    Ok(connections::serve(
        listener,
        app,
        tls,
        connections,
        limits,
        shutdown,
        SHUTDOWN_GRACE,
    )
    .await?)
}

/// Every `MNEMO_TLS_RECHECK` seconds until `shutdown`, re-issues the generated certificate
/// if this host's names or addresses changed (`tls::refresh`). Failures are logged: the
/// certificate served so far keeps working for clients that pin the key.
async fn recheck_certificate(
    config: Config,
    slot: Arc<mnemo_certs::CertSlot>,
    shutdown: CancellationToken,
) {
    let period = Duration::from_secs_f64(config.tls_recheck.clamp(0.5, 86_400.0));
    let config = Arc::new(config);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        let (config, slot) = (Arc::clone(&config), Arc::clone(&slot));
        match tokio::task::spawn_blocking(move || crate::tls::refresh(&config, &slot)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => warn!(%error, "cannot re-issue the TLS certificate"),
            Err(error) => warn!(%error, "the certificate check failed"),
        }
    }
}

/// Descriptors the server needs besides its connections: the database and its
/// journal on every connection, the model, the runtime's own.
const DESCRIPTOR_RESERVE: u64 = 128;

/// Raises the soft limit on open files to the hard limit: the soft default (1024 under
/// systemd) is below what a busy server needs, and at the limit `accept` fails.
/// Warns when even the hard limit leaves no room for `max_connections`.
fn raise_descriptor_limit(max_connections: u64) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            info!(open_files = limit, "open-file limit");
            if limit < max_connections.saturating_add(DESCRIPTOR_RESERVE) {
                warn!(
                    open_files = limit,
                    max_connections,
                    "the open-file limit is below MNEMO_MAX_CONNECTIONS plus {DESCRIPTOR_RESERVE}: \
                     raise LimitNOFILE (systemd) or ulimit -n, or lower MNEMO_MAX_CONNECTIONS"
                );
            }
        }
        Err(e) => warn!(error = %e, "cannot read or raise the open-file limit"),
    }
}

/// Loads the model, opens the database and publishes the service.
async fn load(
    config: &Config,
    state: Arc<AppState>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let files = config.model_files();
    let database = config.database_path();
    info!(
        data_dir = %config.data_dir().display(),
        database = %if config.database_url.is_some() {
            "PostgreSQL (MNEMO_DATABASE_URL)".into()
        } else {
            database.display().to_string()
        },
        cache_dir = %config.cache_dir().display(),
        model_dir = %files.model_dir.display(),
        onnxruntime = %files.ort_dylib.display(),
        "loading",
    );
    let started = Instant::now();
    let settings = config.clone();
    let embedder = tokio::task::spawn_blocking(move || -> Result<Embedder, ServeError> {
        let model = FastEmbedModel::load(&files, &settings.model_id, settings.embed_threads())?;
        Ok(Embedder::start(
            Box::new(model),
            settings.embed_batch as usize,
        ))
    })
    .await??;
    let storage: Arc<dyn Storage> = match &config.database_url {
        Some(url) => {
            let store = open_postgres(url.expose(), embedder.spec(), config).await?;
            // The keys table exists from now on, if this server made the schema.
            if let ManagedKeys::Database(table) = state.auth.keys().managed_keys() {
                table.wake();
            }
            Arc::new(store)
        }
        None => {
            let (spec, options) = (embedder.spec().clone(), config.store_options());
            Arc::new(
                tokio::task::spawn_blocking(move || SqliteStore::open(&database, &spec, options))
                    .await??,
            )
        }
    };
    let service = MemoryService::new(storage, embedder).with_limits(config.limits());
    let spec = service.embedder().spec().clone();
    let memories = service.storage().count().await?;
    info!(
        model = %spec.model_id,
        dimension = spec.dimension,
        database = %service.storage().location(),
        memories,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "healthy",
    );
    state.publish(service, config, shutdown);
    Ok(())
}

/// Opens the PostgreSQL database, waiting while it cannot be reached, so a server
/// started before its database (at boot, say) comes up by itself; health answers
/// `503 loading` meanwhile. Any other failure (a wrong password, another model, a
/// newer schema) stops the start.
async fn open_postgres(
    url: &str,
    spec: &EmbeddingSpec,
    config: &Config,
) -> Result<PostgresStore, ServeError> {
    const FIRST_WAIT: Duration = Duration::from_millis(250);
    const LONGEST_WAIT: Duration = Duration::from_secs(10);
    let mut wait = FIRST_WAIT;
    loop {
        match PostgresStore::open(url, spec, config.postgres_options()).await {
            Err(error @ StorageError::Unavailable { .. }) => {
                warn!(%error, retry_in_ms = wait.as_millis() as u64, "PostgreSQL cannot be reached yet; waiting for it");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(LONGEST_WAIT);
            }
            opened => return Ok(opened?),
        }
    }
}

/// Keeps the managed keys current until `shutdown` (with PostgreSQL; nothing to do
/// for `keys.json`).
async fn follow_key_changes(state: Arc<AppState>, shutdown: CancellationToken) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = state.auth.keys().follow_changes() => {}
    }
}

/// Starts advertising if the configuration asks for it and the server listens beyond
/// loopback. Returns the registration, which unregisters on drop. Failure to advertise
/// is logged, not fatal: the server still serves by address.
fn advertise(config: &Config, addr: SocketAddr, pin: Option<String>) -> Option<mdns::Advertiser> {
    if !config.mdns_enabled {
        return None;
    }
    if addr.ip().is_loopback() {
        info!(%addr, "mDNS off: the server listens on loopback only");
        return None;
    }
    let instance_id = match mdns::instance_id(&config.data_dir()) {
        Ok(id) => id,
        Err(e) => {
            warn!(error = %e, "not advertising over mDNS");
            return None;
        }
    };
    let advertisement = mdns::Advertisement {
        service_name: config.mdns_service_name.clone(),
        port: addr.port(),
        bound: addr.ip(),
        https: config.https_enabled,
        auth_required: !config.allow_anonymous,
        instance_id,
        fingerprint: pin,
    };
    match mdns::Advertiser::start(&advertisement) {
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

/// The bridge configuration line for a server on `addr`; `pin` is the key's pin, which
/// the bridge's MCP_MEMORY_CERT_FINGERPRINT accepts and which survives re-issued
/// certificates.
fn bridge_line(addr: SocketAddr, https: bool, pin: Option<&str>) -> String {
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
    if let Some(fp) = pin {
        line.push_str(&format!(" MCP_MEMORY_CERT_FINGERPRINT={fp}"));
    }
    line
}

/// The first non-loopback IPv4 address of this machine.
fn local_address() -> Option<IpAddr> {
    if_addrs::get_if_addrs()
        .ok()?
        .into_iter()
        .map(|i| i.ip())
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `--lan` line carries the pin (the key's, which survives re-issued
    /// certificates), not the certificate's fingerprint, and never the key.
    #[tokio::test]
    async fn the_bridge_line_carries_the_pin() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_data_dir(dir.path());
        config.https_enabled = true;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server::prepare(config, listener).unwrap();
        let pin = server.state().tls_pin.unwrap().to_string();
        let line = server.bridge_line();
        assert!(
            line.ends_with(&format!("MCP_MEMORY_CERT_FINGERPRINT={pin}")),
            "{line}"
        );
        assert!(
            line.starts_with("MCP_MEMORY_HTTP_ENDPOINT=https://127.0.0.1:"),
            "{line}"
        );
        let key = std::fs::read_to_string(dir.path().join("api_key")).unwrap();
        assert!(!line.contains(key.trim()), "{line}");
    }
}

//! [`AppState`]: what every handler shares, and how a loaded service is published.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::connections::Connections;
use super::error::ApiError;
use super::ticket::Tickets;
use crate::auth::Auth;
use crate::config::Config;
use crate::feed::ChangeFeed;
use crate::operations::backups::Backups;
use crate::operations::health::ServerFacts;
use crate::service::MemoryService;

/// State shared by every handler.
pub struct AppState {
    /// Set once, when the model and database are ready; until then every route but
    /// health answers 503.
    pub service: OnceLock<MemoryService>,
    /// Set with the service: the change feed over its store.
    pub feed: OnceLock<Arc<ChangeFeed>>,
    /// Checks the key of every request that is not public.
    pub auth: Auth,
    /// When the server started, for the uptime in detailed health.
    pub started: Instant,
    /// Every open connection, so the feed can close a stalled subscriber's.
    pub connections: Arc<Connections>,
    /// Set when serving HTTPS.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// SHA-256 of the certificate served at start (as openssl prints it).
    pub tls_fingerprint: Option<String>,
    /// The certificate served now, which a re-issue replaces; detailed health reads it.
    pub tls_slot: Option<Arc<mnemo_certs::CertSlot>>,
    /// SHA-256 of the served certificate's public key: the pin clients trust, published in
    /// detailed health and mDNS, and bound into every proof of a key over TLS.
    pub tls_pin: Option<mnemo_certs::Fingerprint>,
    /// The outstanding single-use tickets for the event streams.
    pub tickets: Tickets,
    /// Set with the service: the backups folder and its schedule.
    pub backups: OnceLock<Arc<Backups>>,
}

impl AppState {
    pub fn new(auth: Auth) -> Self {
        Self {
            service: OnceLock::new(),
            feed: OnceLock::new(),
            auth,
            started: Instant::now(),
            connections: Arc::default(),
            tls: None,
            tls_fingerprint: None,
            tls_slot: None,
            tls_pin: None,
            tickets: Tickets::default(),
            backups: OnceLock::new(),
        }
    }

    /// The memory service, or 503 while it is loading.
    pub fn service(&self) -> Result<&MemoryService, ApiError> {
        self.service.get().ok_or_else(ApiError::loading)
    }

    /// The change feed, or 503 while loading.
    pub fn feed(&self) -> Result<&Arc<ChangeFeed>, ApiError> {
        self.feed.get().ok_or_else(ApiError::loading)
    }

    /// The backups, or 503 while loading.
    pub fn backups(&self) -> Result<&Arc<Backups>, ApiError> {
        self.backups.get().ok_or_else(ApiError::loading)
    }

    /// What detailed health reports about the server itself.
    pub fn facts(&self) -> ServerFacts {
        ServerFacts {
            started: self.started,
            tls_fingerprint: match &self.tls_slot {
                Some(slot) => Some(slot.fingerprint().to_string()),
                None => self.tls_fingerprint.clone(),
            },
            tls_pin: self.tls_pin,
        }
    }

    /// Publishes a loaded service and the change feed over its store.
    pub fn publish(&self, service: MemoryService, config: &Config, shutdown: CancellationToken) {
        let heartbeat = Duration::from_secs(config.sse_heartbeat.max(1));
        let feed = ChangeFeed::new(Arc::clone(service.storage()), heartbeat, shutdown.clone());
        let connections = Arc::clone(&self.connections);
        feed.spawn_reaper(
            Duration::from_secs_f64(config.sse_stall_timeout),
            move |peer| connections.close(peer),
        );
        let backups = Arc::new(Backups::new(config));
        tokio::spawn(
            Arc::clone(&backups)
                .run_schedule(Arc::clone(service.storage()), shutdown.child_token()),
        );
        let _ = self.backups.set(backups);
        let _ = self.feed.set(feed);
        let _ = self.service.set(service);
    }
}

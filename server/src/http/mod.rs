//! The HTTP side: the router, and [`serve`], which starts answering at once and loads
//! the model and database in the background.
//!
//! The listener is bound before anything slow happens, so a supervisor (or a test)
//! can poll `GET /api/health` from the first moment: it answers `503 loading` until the
//! memory service exists, then `200 healthy`. Every other route answers `503` with the
//! JSON error body until then.

mod catalog;
mod connections;
pub mod error;
mod events;
mod health;
mod mcp;
mod memories;
mod search;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::{Router, middleware};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::trace::TraceLayer;
use tracing::{info, warn};

use crate::auth::{self, Auth, KeyError, KeyFile, KeyRing, load_or_create_default_key};
use crate::config::Config;
use crate::embed::{Embedder, FastEmbedModel, LoadError};
use crate::feed::ChangeFeed;
use crate::service::MemoryService;
use crate::store::{Store, StoreError};
use connections::Connections;
use error::ApiError;

/// State shared by every handler.
pub struct AppState {
    /// Set once, when the model and database are ready.
    pub service: OnceLock<MemoryService>,
    /// Set with the service: the change feed over its store.
    pub feed: OnceLock<Arc<ChangeFeed>>,
    pub auth: Auth,
    pub started: Instant,
    /// Every open connection, so the feed can close a stalled subscriber's.
    connections: Arc<Connections>,
    /// Set when serving HTTPS.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// SHA-256 of the served certificate, for detailed health and mDNS.
    pub tls_fingerprint: Option<String>,
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

    /// Publishes a loaded service and the change feed over its store.
    pub fn publish(&self, service: MemoryService, config: &Config, shutdown: CancellationToken) {
        let heartbeat = Duration::from_secs(config.sse_heartbeat.max(1));
        let feed = ChangeFeed::new(Arc::clone(service.store_handle()), heartbeat, shutdown);
        let connections = Arc::clone(&self.connections);
        feed.spawn_reaper(
            Duration::from_secs_f64(config.sse_stall_timeout),
            move |peer| connections.close(peer),
        );
        let _ = self.feed.set(feed);
        let _ = self.service.set(service);
    }
}

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum ServeError {
    #[error("cannot set up API keys")]
    Keys(#[from] KeyError),
    #[error("cannot set up TLS")]
    Tls(#[from] mnemo_certs::CertError),
    #[error("cannot load the embedding model")]
    Model(#[from] LoadError),
    #[error("cannot open the database")]
    Store(#[from] StoreError),
    #[error("the loader thread failed")]
    Task(#[from] tokio::task::JoinError),
    #[error("the HTTP server failed")]
    Io(#[from] std::io::Error),
}

/// Every route of the server, behind the auth middleware. `shutdown` ends the
/// MCP sessions and their streams.
pub fn router(state: Arc<AppState>, config: &Config, shutdown: CancellationToken) -> Router {
    Router::new()
        .route("/api/health", get(health::health))
        .route("/api/health/detailed", get(health::detailed))
        .route("/api/memories", post(memories::create).get(memories::list))
        .route("/api/memories/batch", post(memories::create_batch))
        .route("/api/memories/import", post(memories::import))
        .route("/api/memories/delete", post(memories::delete_matching))
        .route(
            "/api/memories/{hash}",
            get(memories::get).put(memories::update).delete(memories::delete),
        )
        .route("/api/sessions", post(memories::create_session))
        .route("/api/search", post(search::search))
        .route("/api/search/by-tag", post(search::by_tag))
        .route("/api/search/by-time", post(search::by_time))
        .route("/api/events", get(events::stream))
        .route("/api/events/stats", get(events::stats))
        .route("/api/tags", get(catalog::tags))
        .route("/api/types", get(catalog::types))
        .route_service(
            "/mcp",
            mcp::service(Arc::clone(&state), config, shutdown.child_token()),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(Arc::clone(&state), auth::authorize))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(cors(&config.cors_origins))
        // The span names the path only: a query string may hold `api_key`.
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
        }))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

/// CORS from `MCP_CORS_ORIGINS`: none by default, `*` for any origin, else a list.
fn cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new().allow_methods(Any).allow_headers(Any);
    if origins.iter().any(|o| o == "*") {
        layer.allow_origin(Any)
    } else {
        let list: Vec<HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
        layer.allow_origin(AllowOrigin::list(list))
    }
}

/// The key checker for `config`: `MCP_API_KEY`, or the generated default key, plus the
/// managed keys in `<data dir>/keys.json`.
pub fn auth_for(config: &Config) -> Result<Auth, ServeError> {
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
    let keys = KeyRing::new(Some(master), KeyFile::new(&data_dir));
    Ok(Auth::new(
        keys,
        config.allow_anonymous,
        config.auth_failures_per_minute,
    ))
}

/// The state for `config` before the service loads: API keys and, with HTTPS on, the
/// certificate.
pub fn prepare_state(config: &Config) -> Result<AppState, ServeError> {
    let mut state = AppState::new(auth_for(config)?);
    if config.https_enabled {
        let identity = crate::tls::load_identity(config)?;
        state.tls = Some(crate::tls::acceptor(&identity)?);
        state.tls_fingerprint = Some(identity.fingerprint.to_string());
    }
    Ok(state)
}

/// Serves on `listener` until `shutdown` is cancelled. Loads the model and opens the
/// database while already answering health checks; if either fails, stops and
/// returns the error.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let state = Arc::new(prepare_state(&config)?);
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() && state.tls.is_none() {
        warn!(%addr, "serving plain HTTP on a non-loopback address: memories and API keys cross the network unencrypted");
    }
    info!(%addr, tls = state.tls.is_some(), "listening");
    if config.lan {
        let line =
            crate::lan::bridge_line(addr, state.tls.is_some(), state.tls_fingerprint.as_deref());
        info!("bridge configuration: {line}");
        println!("{line}");
    }
    let app = router(Arc::clone(&state), &config, shutdown.clone());
    let server = run(listener, app, Arc::clone(&state), shutdown.clone());
    tokio::pin!(server);

    let advertised = config.clone();
    let loader = load(config, Arc::clone(&state), shutdown.clone());
    tokio::select! {
        served = &mut server => return served,
        loaded = loader => {
            if let Err(e) = loaded {
                shutdown.cancel();
                return Err(e);
            }
        }
    }
    // Advertised once healthy, so a client that finds the server can use it. Dropped
    // when serving ends, which sends the mDNS goodbye.
    let _advertiser = crate::mdns::advertise(&advertised, addr, state.tls_fingerprint.clone());
    server.await
}

/// How long shutdown waits for open connections before dropping them. Streams end
/// on their own when `shutdown` fires; this bounds a client that stopped reading.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `shutdown`, then gives open connections
/// [`SHUTDOWN_GRACE`] to finish.
async fn run(
    listener: TcpListener,
    app: Router,
    state: Arc<AppState>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let connections = Arc::clone(&state.connections);
    let tls = state.tls.clone();
    Ok(connections::serve(listener, app, tls, connections, shutdown, SHUTDOWN_GRACE).await?)
}

/// Serves a state whose service is already published (see [`AppState::publish`]) on
/// `listener` until `shutdown`. For tests and tools that share one model across
/// several servers.
pub async fn serve_ready(
    config: Config,
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let app = router(Arc::clone(&state), &config, shutdown.clone());
    run(listener, app, state, shutdown).await
}

/// Loads the model, opens the database and publishes the service.
async fn load(
    config: Config,
    state: Arc<AppState>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let files = config.model_files();
    let database = config.database_path();
    info!(
        data_dir = %config.data_dir().display(),
        database = %database.display(),
        cache_dir = %config.cache_dir().display(),
        model_dir = %files.model_dir.display(),
        onnxruntime = %files.ort_dylib.display(),
        "loading",
    );
    let started = Instant::now();
    let feed_config = config.clone();
    let service = tokio::task::spawn_blocking(move || -> Result<MemoryService, ServeError> {
        let model = FastEmbedModel::load(&files, &config.model_id, config.embed_threads())?;
        let embedder = Embedder::start(Box::new(model), config.embed_batch as usize);
        let options = config.store_options();
        let store = Store::open(&database, embedder.spec(), options)?;
        Ok(MemoryService::new(
            store,
            embedder,
            config.max_content_bytes,
        ))
    })
    .await??;
    let spec = service.embedder().spec().clone();
    let memories = service.store_handle().count()?;
    info!(
        model = %spec.model_id,
        dimension = spec.dimension,
        memories,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "healthy",
    );
    state.publish(service, &feed_config, shutdown);
    Ok(())
}

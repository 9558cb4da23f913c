//! The HTTP side: the router, and [`serve`], which starts answering at once and loads
//! the model and database in the background.
//!
//! The listener is bound before anything slow happens, so a supervisor (or a test)
//! can poll `GET /api/health` from the first moment: it answers `503 loading` until the
//! memory service exists, then `200 healthy`.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use mnemo_schema::health::{Health, HealthStatus};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;
use tracing::info;

use crate::config::Config;
use crate::embed::{Embedder, FastEmbedModel, LoadError};
use crate::service::MemoryService;
use crate::store::{Store, StoreError, StoreOptions};

/// State shared by every handler.
#[derive(Default)]
pub struct AppState {
    /// Set once, when the model and database are ready. Handlers that need it answer
    /// 503 until then.
    pub service: OnceLock<MemoryService>,
}

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum ServeError {
    #[error("cannot load the embedding model")]
    Model(#[from] LoadError),
    #[error("cannot open the database")]
    Store(#[from] StoreError),
    #[error("the loader thread failed")]
    Task(#[from] tokio::task::JoinError),
    #[error("the HTTP server failed")]
    Io(#[from] std::io::Error),
}

/// Every route of the server.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// `GET /api/health`: no key needed, and nothing about the data in the answer.
async fn health(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let (code, status) = match state.service.get() {
        Some(_) => (StatusCode::OK, HealthStatus::Healthy),
        None => (StatusCode::SERVICE_UNAVAILABLE, HealthStatus::Loading),
    };
    let body = Health {
        status,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    (code, Json(body))
}

/// Serves on `listener` until `shutdown` is cancelled. Loads the model and opens the
/// database while already answering health checks; if either fails, stops and
/// returns the error.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let state = Arc::new(AppState::default());
    let addr = listener.local_addr()?;
    info!(%addr, "listening");
    let server = axum::serve(listener, router(Arc::clone(&state)))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .into_future();
    tokio::pin!(server);

    let loader = load(config, Arc::clone(&state));
    tokio::select! {
        served = &mut server => return Ok(served?),
        loaded = loader => {
            if let Err(e) = loaded {
                shutdown.cancel();
                return Err(e);
            }
        }
    }
    Ok(server.await?)
}

/// Loads the model, opens the database and publishes the service.
async fn load(config: Config, state: Arc<AppState>) -> Result<(), ServeError> {
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
    let service = tokio::task::spawn_blocking(move || -> Result<MemoryService, ServeError> {
        let model = FastEmbedModel::load(&files, &config.model_id, config.embed_threads())?;
        let embedder = Embedder::start(Box::new(model), config.embed_batch);
        let options = StoreOptions {
            readers: config.read_pool,
            ..StoreOptions::default()
        };
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
    let _ = state.service.set(service);
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    /// Before the service exists, health answers 503 with status "loading".
    #[tokio::test]
    async fn health_is_loading_until_the_service_exists() {
        let app = router(Arc::new(AppState::default()));
        let response = app
            .oneshot(Request::get("/api/health").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let health: Health = serde_json::from_slice(&body).unwrap();
        assert_eq!(health.status, HealthStatus::Loading);
    }
}

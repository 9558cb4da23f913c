//! The HTTP side: the state every handler shares, and the route table.
//!
//! Handlers extract the request, call one operation (`crate::operations`) and shape
//! the answer. Each route is registered with the access it needs (see [`auth`]), so
//! the table below is also the authorization table.

mod auth;
mod backups;
mod catalog;
mod client_ip;
pub(crate) mod connections;
pub mod dashboard;
mod docs;
pub mod error;
mod events;
mod health;
mod keys;
mod mcp;
mod memories;
mod metrics;
mod openapi;
mod parse_errors;
mod proof;
mod search;
mod state;
mod stats;
#[cfg(test)]
mod tests;
mod ticket;
mod transfer;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, StatusCode};
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, Any, CorsLayer};
use tower_http::trace::TraceLayer;

use crate::config::Config;
use auth::{ADMIN, PUBLIC, READ, Routes, WRITE};
pub use connections::Connections;
use error::ApiError;
pub use state::AppState;

/// Every route of the server with the access it needs. `shutdown` ends the MCP
/// sessions and their streams.
fn routes(state: &Arc<AppState>, config: &Config, shutdown: CancellationToken) -> Routes {
    use Method as M;
    Routes::new()
        // The dashboard's shell and files: public, and holding no data.
        .route(M::GET, "/", PUBLIC, dashboard::shell)
        .route(M::GET, "/static/{file}", PUBLIC, dashboard::file)
        .route(M::GET, "/api/health", PUBLIC, health::health)
        // Where mcp-memory-service's Docker health check and seed guide look.
        .route(M::GET, "/health", PUBLIC, health::health_alias)
        .route(M::GET, "/api/health/detailed", READ, health::detailed)
        .route(M::POST, "/api/auth/proof", PUBLIC, proof::prove)
        .route(M::GET, "/api/auth/scope", READ, keys::scope)
        .route(M::POST, "/api/memories", WRITE, memories::create)
        .route(M::GET, "/api/memories", READ, memories::list)
        .route(
            M::POST,
            "/api/memories/batch",
            WRITE,
            memories::create_batch,
        )
        .route(M::POST, "/api/memories/import", ADMIN, memories::import)
        .route(
            M::POST,
            "/api/memories/delete",
            WRITE,
            memories::delete_matching,
        )
        .route(M::GET, "/api/memories/{hash}", READ, memories::get)
        .route(M::PUT, "/api/memories/{hash}", WRITE, memories::update)
        .route(M::DELETE, "/api/memories/{hash}", WRITE, memories::delete)
        .route(M::POST, "/api/sessions", WRITE, memories::create_session)
        .route(M::POST, "/api/search", READ, search::search)
        .route(M::POST, "/api/search/by-tag", READ, search::by_tag)
        .route(M::POST, "/api/search/by-time", READ, search::by_time)
        .route(M::GET, "/api/search/similar/{hash}", READ, search::similar)
        // EventSource cannot set headers: the streams also take `?ticket=`/`?api_key=`.
        .stream(M::GET, "/api/events", READ, events::stream)
        .stream(M::GET, "/api/events/stream", READ, events::stream_unnamed)
        // Any key may trade itself for a single-use stream ticket of its own scope.
        .route(M::POST, "/api/events/ticket", READ, events::ticket)
        .route(M::GET, "/api/events/stats", ADMIN, events::stats)
        // Admin: everyone's memories at once, and an import writes the past.
        .route(M::GET, "/api/export", ADMIN, transfer::export)
        .route(M::POST, "/api/import", ADMIN, transfer::import)
        .route(M::POST, "/api/admin/backup", ADMIN, backups::create)
        .route(M::GET, "/api/admin/backups", ADMIN, backups::list)
        .route(M::POST, "/api/admin/restore", ADMIN, backups::restore)
        // mcp-memory-service's names for the same.
        .route(M::POST, "/api/backup/now", ADMIN, backups::create_now)
        .route(M::GET, "/api/backup/list", ADMIN, backups::list_alias)
        .route(M::GET, "/api/backup/status", ADMIN, backups::status)
        .route(M::GET, "/api/tags", READ, catalog::tags)
        .route(M::GET, "/api/types", READ, catalog::types)
        // The API's description and the page that shows it (`openapi.rs`, `docs.rs`).
        .route(M::GET, "/api/openapi.json", PUBLIC, openapi::json)
        .route(M::GET, "/api/docs", PUBLIC, docs::redirect)
        .route(M::GET, "/api/docs/", PUBLIC, docs::index)
        .route(M::GET, "/api/docs/{file}", PUBLIC, docs::file)
        .route(M::GET, "/api/stats/daily", READ, stats::daily)
        // The managed keys, shared with `mnemo-server keys`.
        .route(M::GET, "/api/keys", ADMIN, keys::list)
        .route(M::POST, "/api/keys", ADMIN, keys::create)
        .route(M::DELETE, "/api/keys/{name}", ADMIN, keys::revoke)
        // Any key by default; MNEMO_METRICS_PUBLIC opens it to a scraper on a trusted network.
        .route(M::GET, "/metrics", metrics_access(config), metrics::scrape)
        // Every MCP request needs a key; whether it may write is decided per tool.
        .service(
            "/mcp",
            READ,
            mcp::service(Arc::clone(state), config, shutdown.child_token()),
        )
}

/// Who may scrape `/metrics`: it names no memory, but tells request rates, sizes
/// and timings, so it needs a key unless `MNEMO_METRICS_PUBLIC` says otherwise.
fn metrics_access(config: &Config) -> auth::Access {
    if config.metrics_public { PUBLIC } else { READ }
}

/// The whole application: the routes behind their access checks, then the panic
/// catcher, body limit, CORS, tracing, the JSON body for any error a layer or an
/// extractor answered in plain text, and outermost the request metrics, which so see
/// every answer.
pub fn router(state: Arc<AppState>, config: &Config, shutdown: CancellationToken) -> Router {
    // Installed before the first request, so that one counts too.
    crate::telemetry::recorder();
    let routes = routes(&state, config, shutdown);
    // Described from the finished table, so it lists exactly the routes served.
    let document = Arc::new(openapi::Served::new(routes.table()));
    routes
        .into_router(&state, not_found, method_not_allowed)
        .layer(axum::Extension(document))
        // Outside the access checks, which count failures per client.
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(client_ip::TrustedProxies::new(
                config.trusted_proxies.clone(),
            )),
            client_ip::resolve,
        ))
        .layer(catch_panics())
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(cors(&config.cors_origins))
        // The span names the path only: a query string may hold `api_key`.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
                })
                .on_failure(log_failure),
        )
        .layer(axum::middleware::map_response(error::json_errors))
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(state)
}

/// Logs a request that failed with a 5xx, except 503: that one says the server is
/// loading, at its connection cap or stopped a long read, states the response itself
/// explains and that are not faults (a supervisor polls health while the model loads).
fn log_failure(class: ServerErrorsFailureClass, latency: Duration, _span: &tracing::Span) {
    if matches!(class, ServerErrorsFailureClass::StatusCode(status) if status == StatusCode::SERVICE_UNAVAILABLE)
    {
        return;
    }
    tracing::error!(classification = %class, latency_ms = latency.as_millis() as u64, "request failed");
}

/// A panic in a handler becomes the JSON 500 instead of a dropped connection.
fn catch_panics()
-> CatchPanicLayer<fn(Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response> {
    CatchPanicLayer::custom(error::panicked as fn(_) -> _)
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
/// A preflight gets its requested method and headers echoed: the Fetch standard does
/// not let a `*` answer cover `Authorization`, so a wildcard would block every browser
/// request that carries a key.
fn cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods(AllowMethods::mirror_request())
        .allow_headers(AllowHeaders::mirror_request());
    if origins.iter().any(|o| o == "*") {
        layer.allow_origin(Any)
    } else {
        let list: Vec<HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
        layer.allow_origin(AllowOrigin::list(list))
    }
}

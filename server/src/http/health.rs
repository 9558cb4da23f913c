//! `GET /api/health` (public) and `GET /api/health/detailed` (read scope).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use mnemo_api::health::{Health, HealthStatus};
use mnemo_api::rest::DetailedHealth;

use super::error::ApiError;
use super::openapi::Unavailable;
use super::state::AppState;
use crate::operations::health;

/// `GET /api/health`: no key needed, and nothing about the data in the answer.
#[utoipa::path(get, path = "/api/health", tag = "health", operation_id = "health",
    responses(
        (status = 200, description = "Ready for traffic", body = Health),
        (status = 503, description = "Still loading the model or the database", body = Health),
    ))]
pub async fn health(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Health>) {
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

/// `GET /health`: the same, where mcp-memory-service's Docker health check and seed
/// guide look.
#[utoipa::path(get, path = "/health", tag = "health", operation_id = "health_alias",
    responses(
        (status = 200, description = "Ready for traffic", body = Health),
        (status = 503, description = "Still loading the model or the database", body = Health),
    ))]
pub async fn health_alias(state: State<Arc<AppState>>) -> (StatusCode, Json<Health>) {
    health(state).await
}

/// `GET /api/health/detailed`: model, counts and database size.
#[utoipa::path(get, path = "/api/health/detailed", tag = "health", operation_id = "health_detailed",
    responses(
        (status = 200, description = "The model, the counts and the database size", body = DetailedHealth),
        (status = 503, response = Unavailable),
    ))]
pub async fn detailed(
    State(state): State<Arc<AppState>>,
) -> Result<Json<DetailedHealth>, ApiError> {
    let report = health::detailed(state.service()?, state.facts()).await?;
    Ok(Json(report))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::auth::{Auth, KeyFile, KeyRing};
    use crate::config::Config;

    /// Before the service exists, health answers 503 with status "loading".
    #[tokio::test]
    async fn health_is_loading_until_the_service_exists() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Auth::new(
            KeyRing::new(Some("k".into()), KeyFile::new(dir.path())),
            false,
            10,
        );
        let app = super::super::router(
            Arc::new(AppState::new(auth)),
            &Config::for_data_dir(dir.path()),
            tokio_util::sync::CancellationToken::new(),
        );
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

//! `GET /api/stats/daily`: memories stored per day, for the dashboard's chart.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use mnemo_api::rest::{DailyQuery, DailyStats};

use super::error::{ApiError, ApiQuery};
use super::state::AppState;
use crate::operations::stats;

/// `GET /api/stats/daily?days=90&tz=Europe/Paris`.
#[utoipa::path(get, path = "/api/stats/daily", tag = "stats", operation_id = "daily_counts",
    params(DailyQuery),
    responses(
        (status = 200, description = "Memories stored on each day, oldest first, today last", body = DailyStats),
        (status = 400, response = super::openapi::BadRequest),
        (status = 503, response = super::openapi::Unavailable),
    ))]
pub async fn daily(
    State(state): State<Arc<AppState>>,
    ApiQuery(query): ApiQuery<DailyQuery>,
) -> Result<Json<DailyStats>, ApiError> {
    Ok(Json(stats::daily(state.service()?, &query).await?))
}

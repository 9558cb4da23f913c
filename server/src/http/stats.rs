//! `GET /api/stats/daily`: memories stored per day, for the dashboard's chart.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use mnemo_api::rest::DailyStats;
use serde::Deserialize;

use super::error::{ApiError, ApiQuery};
use super::state::AppState;
use crate::operations::stats;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DailyQuery {
    /// 1 to 366; 90 when absent.
    days: Option<u32>,
    /// The IANA zone (or offset) the days are cut in; UTC when absent.
    tz: Option<String>,
}

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
    let days = query.days.unwrap_or(90);
    Ok(Json(
        stats::daily(state.service()?, days, query.tz.as_deref()).await?,
    ))
}

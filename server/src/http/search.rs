//! `/api/search`, `/api/search/by-tag` and `/api/search/by-time`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use mnemo_api::rest::{SearchRequest, SearchResponse, TagSearchRequest, TimeSearchRequest};

use super::error::{ApiError, ApiJson};
use super::state::AppState;
use crate::operations::search;

/// `POST /api/search`: `mode` picks semantic (default), hybrid or exact.
pub async fn search(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<SearchRequest>,
) -> Result<Json<SearchResponse>, ApiError> {
    Ok(Json(search::search(state.service()?, request).await?))
}

/// `POST /api/search/by-tag`: newest first.
pub async fn by_tag(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<TagSearchRequest>,
) -> Result<Json<SearchResponse>, ApiError> {
    Ok(Json(search::by_tag(state.service()?, request).await?))
}

/// `POST /api/search/by-time`: a period in words, optionally ranked by meaning.
pub async fn by_time(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<TimeSearchRequest>,
) -> Result<Json<SearchResponse>, ApiError> {
    Ok(Json(search::by_time(state.service()?, request).await?))
}

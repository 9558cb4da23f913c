//! `/api/search`, `/api/search/by-tag`, `/api/search/by-time` and
//! `/api/search/similar/{hash}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use mnemo_api::rest::{
    SearchRequest, SearchResponse, SimilarQuery, TagSearchRequest, TimeSearchRequest,
};

use super::error::{ApiError, ApiJson, ApiQuery};
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

/// `GET /api/search/similar/{hash}`: neighbours of a stored memory, nothing embedded.
pub async fn similar(
    State(state): State<Arc<AppState>>,
    Path(content_hash): Path<String>,
    ApiQuery(query): ApiQuery<SimilarQuery>,
) -> Result<Json<SearchResponse>, ApiError> {
    Ok(Json(
        search::similar(state.service()?, &content_hash, query).await?,
    ))
}

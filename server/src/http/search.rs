//! `/api/search`, `/api/search/by-tag`, `/api/search/by-time` and
//! `/api/search/similar/{hash}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use mnemo_api::rest::{
    SearchRequest, SearchResponse, SimilarQuery, TagSearchRequest, TimeSearchRequest,
};

use super::error::{ApiError, ApiJson, ApiQuery};
use super::openapi::{NotFound, Unavailable};
use super::state::AppState;
use crate::operations::search;

/// `POST /api/search`: `mode` picks semantic (default), hybrid or exact.
#[utoipa::path(post, path = "/api/search", tag = "search", operation_id = "search",
    request_body = SearchRequest,
    responses(
        (status = 200, description = "The best matches first", body = SearchResponse),
        (status = 503, response = Unavailable),
    ))]
pub async fn search(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<SearchRequest>,
) -> Result<Json<SearchResponse>, ApiError> {
    Ok(Json(search::search(state.service()?, request).await?))
}

/// `POST /api/search/by-tag`: newest first.
#[utoipa::path(post, path = "/api/search/by-tag", tag = "search", operation_id = "search_by_tag",
    request_body = TagSearchRequest,
    responses(
        (status = 200, description = "Newest first", body = SearchResponse),
        (status = 503, response = Unavailable),
    ))]
pub async fn by_tag(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<TagSearchRequest>,
) -> Result<Json<SearchResponse>, ApiError> {
    Ok(Json(search::by_tag(state.service()?, request).await?))
}

/// `POST /api/search/by-time`: a period in words, optionally ranked by meaning.
#[utoipa::path(post, path = "/api/search/by-time", tag = "search", operation_id = "search_by_time",
    request_body = TimeSearchRequest,
    responses(
        (status = 200, description = "Newest first, or by meaning with `semantic_query`", body = SearchResponse),
        (status = 503, response = Unavailable),
    ))]
pub async fn by_time(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<TimeSearchRequest>,
) -> Result<Json<SearchResponse>, ApiError> {
    Ok(Json(search::by_time(state.service()?, request).await?))
}

/// `GET /api/search/similar/{hash}`: neighbours of a stored memory, nothing embedded.
#[utoipa::path(get, path = "/api/search/similar/{hash}", tag = "search", operation_id = "similar_memories",
    params(("hash" = String, Path, description = "The memory's content hash (SHA-256, hex)"), SimilarQuery),
    responses(
        (status = 200, description = "The nearest other memories", body = SearchResponse),
        (status = 400, response = super::openapi::BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ))]
pub async fn similar(
    State(state): State<Arc<AppState>>,
    Path(content_hash): Path<String>,
    ApiQuery(query): ApiQuery<SimilarQuery>,
) -> Result<Json<SearchResponse>, ApiError> {
    Ok(Json(
        search::similar(state.service()?, &content_hash, query).await?,
    ))
}

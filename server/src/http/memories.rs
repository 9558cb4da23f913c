//! `/api/memories` and `/api/sessions`: store, list, get, update, delete; batches,
//! the admin import and sessions, which are stores of a particular shape.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use mnemo_api::rest::{
    BatchResponse, BatchStoreRequest, DeleteMatchingRequest, DeleteMatchingResponse, ImportRequest,
    ListQuery, ListResponse, Memory, MutationResponse, SessionRequest, StoreRequest, UpdateRequest,
};

use super::error::{ApiError, ApiJson, ApiQuery};
use super::state::AppState;
use crate::operations::{Caller, memories};

/// `POST /api/memories`. `X-Agent-ID` adds the tag `agent:<id>`.
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(request): ApiJson<StoreRequest>,
) -> Result<Json<MutationResponse>, ApiError> {
    Ok(Json(
        memories::store(state.service()?, &caller, request).await?,
    ))
}

/// `POST /api/memories/batch`: up to 100 memories, each stored or refused on its own.
pub async fn create_batch(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(request): ApiJson<BatchStoreRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    Ok(Json(
        memories::store_batch(state.service()?, &caller, request).await?,
    ))
}

/// `POST /api/memories/import` (admin): memories with their original creation times.
pub async fn import(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(request): ApiJson<ImportRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    Ok(Json(
        memories::import(state.service()?, &caller, request).await?,
    ))
}

/// `POST /api/sessions`: a conversation's turns as one memory.
pub async fn create_session(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(request): ApiJson<SessionRequest>,
) -> Result<Json<MutationResponse>, ApiError> {
    Ok(Json(
        memories::store_session(state.service()?, &caller, request).await?,
    ))
}

/// `GET /api/memories`: newest first, `page_size` capped at 100.
pub async fn list(
    State(state): State<Arc<AppState>>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ListResponse>, ApiError> {
    Ok(Json(memories::list(state.service()?, query).await?))
}

/// `GET /api/memories/{hash}`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(hash): Path<String>,
) -> Result<Json<Memory>, ApiError> {
    Ok(Json(memories::get(state.service()?, &hash).await?))
}

/// `PUT /api/memories/{hash}`: tags replace, metadata merges.
pub async fn update(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(hash): Path<String>,
    ApiJson(request): ApiJson<UpdateRequest>,
) -> Result<Json<MutationResponse>, ApiError> {
    Ok(Json(
        memories::update(state.service()?, &caller, &hash, request).await?,
    ))
}

/// `DELETE /api/memories/{hash}`.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(hash): Path<String>,
) -> Result<Json<MutationResponse>, ApiError> {
    Ok(Json(
        memories::delete(state.service()?, &caller, &hash).await?,
    ))
}

/// `POST /api/memories/delete`: up to `limit` memories matching the filters, or with
/// `dry_run` only their names.
pub async fn delete_matching(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(request): ApiJson<DeleteMatchingRequest>,
) -> Result<Json<DeleteMatchingResponse>, ApiError> {
    Ok(Json(
        memories::delete_matching(state.service()?, &caller, request).await?,
    ))
}

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
use super::openapi::{Conflict, InsufficientStorage, NotFound, Unavailable};
use super::state::AppState;
use crate::operations::{Caller, memories};

/// `POST /api/memories`. `X-Agent-ID` adds the tag `agent:<id>`.
#[utoipa::path(post, path = "/api/memories", tag = "memories", operation_id = "store_memory",
    params(("X-Agent-ID" = Option<String>, Header, description = "Tags the memory `agent:<id>`")),
    request_body = StoreRequest,
    responses(
        (status = 200, description = "Stored", body = MutationResponse),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
        (status = 507, response = InsufficientStorage),
    ))]
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
#[utoipa::path(post, path = "/api/memories/batch", tag = "memories", operation_id = "store_memories",
    params(("X-Agent-ID" = Option<String>, Header, description = "Tags each memory `agent:<id>`")),
    request_body = BatchStoreRequest,
    responses(
        (status = 200, description = "Each memory's outcome, in request order", body = BatchResponse),
        (status = 503, response = Unavailable),
        (status = 507, response = InsufficientStorage),
    ))]
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
#[utoipa::path(post, path = "/api/memories/import", tag = "memories", operation_id = "import_memories",
    request_body = ImportRequest,
    responses(
        (status = 200, description = "Each memory's outcome, in request order", body = BatchResponse),
        (status = 503, response = Unavailable),
        (status = 507, response = InsufficientStorage),
    ))]
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
#[utoipa::path(post, path = "/api/sessions", tag = "memories", operation_id = "store_session",
    params(("X-Agent-ID" = Option<String>, Header, description = "Tags the memory `agent:<id>`")),
    request_body = SessionRequest,
    responses(
        (status = 200, description = "Stored", body = MutationResponse),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
        (status = 507, response = InsufficientStorage),
    ))]
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
#[utoipa::path(get, path = "/api/memories", tag = "memories", operation_id = "list_memories",
    params(ListQuery),
    responses(
        (status = 200, description = "One page, newest first", body = ListResponse),
        (status = 400, response = super::openapi::BadRequest),
        (status = 503, response = Unavailable),
    ))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ListResponse>, ApiError> {
    Ok(Json(memories::list(state.service()?, query).await?))
}

/// `GET /api/memories/{hash}`.
#[utoipa::path(get, path = "/api/memories/{hash}", tag = "memories", operation_id = "get_memory",
    params(("hash" = String, Path, description = "The memory's content hash (SHA-256, hex)")),
    responses(
        (status = 200, description = "The memory", body = Memory),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    ))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(hash): Path<String>,
) -> Result<Json<Memory>, ApiError> {
    Ok(Json(memories::get(state.service()?, &hash).await?))
}

/// `PUT /api/memories/{hash}`: tags replace, metadata merges.
#[utoipa::path(put, path = "/api/memories/{hash}", tag = "memories", operation_id = "update_memory",
    params(("hash" = String, Path, description = "The memory's content hash (SHA-256, hex)")),
    request_body = UpdateRequest,
    responses(
        (status = 200, description = "Updated", body = MutationResponse),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
        (status = 507, response = InsufficientStorage),
    ))]
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
#[utoipa::path(delete, path = "/api/memories/{hash}", tag = "memories", operation_id = "delete_memory",
    params(("hash" = String, Path, description = "The memory's content hash (SHA-256, hex)")),
    responses(
        (status = 200, description = "Deleted", body = MutationResponse),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
        (status = 507, response = InsufficientStorage),
    ))]
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
#[utoipa::path(post, path = "/api/memories/delete", tag = "memories", operation_id = "delete_matching",
    request_body = DeleteMatchingRequest,
    responses(
        (status = 200, description = "What was (or, in a dry run, would be) deleted", body = DeleteMatchingResponse),
        (status = 503, response = Unavailable),
        (status = 507, response = InsufficientStorage),
    ))]
pub async fn delete_matching(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(request): ApiJson<DeleteMatchingRequest>,
) -> Result<Json<DeleteMatchingResponse>, ApiError> {
    Ok(Json(
        memories::delete_matching(state.service()?, &caller, request).await?,
    ))
}

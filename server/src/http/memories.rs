//! `/api/memories`: store, list, get, update, delete; plus sessions and the admin
//! import, which are stores of a particular shape.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use mnemo_api::rest::{
    BatchResponse, BatchStoreRequest, DeleteMatchingRequest, DeleteMatchingResponse, ImportRequest,
    ListQuery, ListResponse, MAX_BATCH, MAX_RESULTS, Memory, MutationResponse, SessionRequest,
    StoreRequest, UpdateRequest,
};
use serde_json::Value;

use super::AppState;
use super::error::{ApiError, ApiJson, ApiQuery};
use crate::memory::{Filter, MemoryPatch, NewMemory};
use crate::service::ServiceError;
use crate::storage::StorageError;

/// `POST /api/memories`. `X-Agent-ID` adds the tag `agent:<id>`; `conversation_id`
/// goes into metadata, as the anchor does.
pub async fn create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<StoreRequest>,
) -> Result<(StatusCode, Json<MutationResponse>), ApiError> {
    let new = new_memory(request, agent_tag(&headers));
    let memory = state.service()?.store(new).await?;
    Ok((StatusCode::OK, Json(stored(memory.into()))))
}

/// `POST /api/memories/batch`: up to 100 memories embedded as one batch, each stored
/// or refused on its own, so bulk ingest runs at the model's batch speed rather than
/// one embedding per request.
pub async fn create_batch(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<BatchStoreRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    check_batch_size(request.memories.len())?;
    let agent = agent_tag(&headers);
    let batch = request
        .memories
        .into_iter()
        .map(|item| new_memory(item, agent.clone()))
        .collect();
    let outcomes = state.service()?.store_many(batch).await?;
    batch_response(outcomes)
}

/// The `agent:<id>` tag an `X-Agent-ID` header asks for.
fn agent_tag(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-agent-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|agent| format!("agent:{agent}"))
}

fn new_memory(request: StoreRequest, agent_tag: Option<String>) -> NewMemory {
    let mut tags = request.tags;
    tags.extend(agent_tag);
    let mut metadata = request.metadata;
    if let Some(conversation) = request.conversation_id {
        metadata.insert("conversation_id".into(), Value::String(conversation));
    }
    NewMemory {
        content: request.content,
        tags,
        memory_type: request.memory_type,
        metadata,
        created_at: None,
    }
}

fn check_batch_size(len: usize) -> Result<(), ApiError> {
    if len > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "{len} memories in one request; the limit is {MAX_BATCH}"
        )));
    }
    Ok(())
}

/// Per-item results. Invalid items and duplicates are reported in place; any other
/// failure is the server's and fails the request.
fn batch_response(
    outcomes: Vec<Result<crate::memory::Memory, ServiceError>>,
) -> Result<Json<BatchResponse>, ApiError> {
    let mut results = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        results.push(match outcome {
            Ok(memory) => stored(memory.into()),
            Err(
                e @ (ServiceError::Invalid(_)
                | ServiceError::Storage(StorageError::Duplicate { .. })),
            ) => refused(e),
            Err(other) => return Err(other.into()),
        });
    }
    let stored_count = results.iter().filter(|r| r.success).count();
    Ok(Json(BatchResponse {
        results,
        stored: stored_count,
    }))
}

fn stored(memory: Memory) -> MutationResponse {
    MutationResponse {
        success: true,
        message: "memory stored".into(),
        content_hash: memory.content_hash.clone(),
        memory: Some(memory),
    }
}

/// One memory of a batch that was not stored, and why; a duplicate names the
/// memory that already holds its content.
fn refused(error: ServiceError) -> MutationResponse {
    let content_hash = match &error {
        ServiceError::Storage(StorageError::Duplicate { content_hash }) => content_hash.clone(),
        _ => String::new(),
    };
    MutationResponse {
        success: false,
        message: error.to_string(),
        content_hash,
        memory: None,
    }
}

/// `GET /api/memories`: newest first, `page_size` capped at 100.
pub async fn list(
    State(state): State<Arc<AppState>>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ListResponse>, ApiError> {
    let page = query.page.unwrap_or(1).max(1);
    let page_size = query.page_size.unwrap_or(10).clamp(1, MAX_RESULTS);
    let filter = Filter {
        tags: query
            .tag
            .map(|t| t.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
        tag_match: query.tag_match.unwrap_or_default(),
        memory_type: query.memory_type,
        ..Filter::default()
    };
    let result = state.service()?.list(filter, page, page_size).await?;
    let shown = u64::from(page - 1) * u64::from(page_size) + result.memories.len() as u64;
    Ok(Json(ListResponse {
        memories: result.memories.into_iter().map(Into::into).collect(),
        total: result.total,
        page,
        page_size,
        has_more: shown < result.total,
    }))
}

/// `GET /api/memories/{hash}`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(hash): Path<String>,
) -> Result<Json<Memory>, ApiError> {
    Ok(Json(state.service()?.get(&hash).await?.into()))
}

/// `PUT /api/memories/{hash}`: tags replace, metadata merges.
pub async fn update(
    State(state): State<Arc<AppState>>,
    Path(hash): Path<String>,
    ApiJson(request): ApiJson<UpdateRequest>,
) -> Result<Json<MutationResponse>, ApiError> {
    let patch = MemoryPatch {
        tags: request.tags,
        memory_type: request.memory_type,
        metadata: request.metadata,
    };
    let memory: Memory = state.service()?.update(&hash, patch).await?.into();
    Ok(Json(MutationResponse {
        success: true,
        message: "memory updated".into(),
        content_hash: memory.content_hash.clone(),
        memory: Some(memory),
    }))
}

/// `DELETE /api/memories/{hash}`.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path(hash): Path<String>,
) -> Result<Json<MutationResponse>, ApiError> {
    let memory = state.service()?.delete(&hash).await?;
    Ok(Json(MutationResponse {
        success: true,
        message: "memory deleted".into(),
        content_hash: memory.content_hash,
        memory: None,
    }))
}

/// `POST /api/sessions`: the turns as one memory, `role: content` per line, of type
/// `session` and tagged `session:<id>`.
pub async fn create_session(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<SessionRequest>,
) -> Result<Json<MutationResponse>, ApiError> {
    let session_id = request.session_id.trim();
    if session_id.is_empty() || request.turns.is_empty() {
        return Err(ApiError::bad_request(
            "a session needs a session_id and at least one turn",
        ));
    }
    let content = request
        .turns
        .iter()
        .map(|turn| format!("{}: {}", turn.role.trim(), turn.content.trim()))
        .collect::<Vec<_>>()
        .join("\n");
    let mut tags = request.tags;
    tags.push(format!("session:{session_id}"));
    let mut metadata = request.metadata;
    metadata.insert("session_id".into(), Value::String(session_id.to_owned()));
    metadata.insert("turns".into(), Value::from(request.turns.len()));
    let new = NewMemory {
        content,
        tags,
        memory_type: Some("session".into()),
        metadata,
        created_at: None,
    };
    let memory = state.service()?.store(new).await?;
    Ok(Json(stored(memory.into())))
}

/// `POST /api/memories/import` (admin): stores memories with their original creation
/// times. Each result is reported on its own; duplicates do not fail the batch.
pub async fn import(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<ImportRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    check_batch_size(request.memories.len())?;
    let service = state.service()?;
    let utc = jiff::tz::TimeZone::UTC;
    let mut batch = Vec::with_capacity(request.memories.len());
    for item in request.memories {
        let mut new = new_memory(item.memory, None);
        new.created_at = Some(super::search::instant(&item.created_at, &utc)?);
        batch.push(new);
    }
    batch_response(service.store_many(batch).await?)
}

/// `POST /api/memories/delete`: deletes up to `limit` memories matching every given
/// filter, newest first; with `dry_run`, only names them. One filter at least, so an
/// empty body cannot empty the store.
pub async fn delete_matching(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<DeleteMatchingRequest>,
) -> Result<Json<DeleteMatchingResponse>, ApiError> {
    let tags: Vec<String> = request
        .tags
        .into_iter()
        .filter(|t| !t.trim().is_empty())
        .collect();
    if tags.is_empty() && request.memory_type.is_none() && request.period.is_empty() {
        return Err(ApiError::bad_request(
            "name what to delete: tags, memory_type, time, after or before",
        ));
    }
    let filter = super::search::filter(
        tags,
        request.tag_match,
        request.memory_type,
        &request.period,
    )?;
    let limit = request.limit.unwrap_or(MAX_RESULTS).clamp(1, MAX_RESULTS);
    let service = state.service()?;
    let page = service.list(filter, 1, limit).await?;
    let mut content_hashes = Vec::with_capacity(page.memories.len());
    for memory in page.memories {
        if !request.dry_run {
            match service.delete(&memory.content_hash).await {
                // Deleted meanwhile by someone else: the goal is reached all the same.
                Ok(_) | Err(ServiceError::Storage(StorageError::NotFound { .. })) => {}
                Err(e) => return Err(e.into()),
            }
        }
        content_hashes.push(memory.content_hash);
    }
    Ok(Json(DeleteMatchingResponse {
        success: true,
        has_more: page.total > content_hashes.len() as u64,
        matched: page.total,
        dry_run: request.dry_run,
        content_hashes,
    }))
}

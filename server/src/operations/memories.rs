//! Storing, reading, changing and deleting memories.

use mnemo_api::rest::{
    BatchResponse, BatchStoreRequest, DeleteMatchingRequest, DeleteMatchingResponse, ImportRequest,
    ListQuery, ListResponse, MAX_BATCH, MAX_RESULTS, Memory, MutationResponse, SessionRequest,
    StoreRequest, UpdateRequest,
};
use serde_json::Value;

use super::search::{filter, instant};
use super::{Caller, OpError};
use crate::auth::Scope;
use crate::memory::{self, Filter, MemoryPatch, NewMemory};
use crate::service::{IMPORTABLE, MemoryService, ServiceError};
use crate::storage::StorageError;

/// Stores one memory. `conversation_id` goes into metadata, as mcp-memory-service
/// does; the caller's agent becomes a tag.
pub async fn store(
    service: &MemoryService,
    caller: &Caller,
    request: StoreRequest,
) -> Result<MutationResponse, OpError> {
    caller.require(Scope::Write)?;
    let memory = service
        .store(new_memory(request, caller.agent_tag()))
        .await?;
    Ok(stored(memory.into()))
}

/// Stores up to [`MAX_BATCH`] memories embedded as one batch, each stored or refused
/// on its own, so bulk ingest runs at the model's batch speed rather than one
/// embedding per request.
pub async fn store_batch(
    service: &MemoryService,
    caller: &Caller,
    request: BatchStoreRequest,
) -> Result<BatchResponse, OpError> {
    caller.require(Scope::Write)?;
    check_batch_size(request.memories.len())?;
    let batch = request
        .memories
        .into_iter()
        .map(|item| new_memory(item, caller.agent_tag()))
        .collect();
    batch_response(service.store_many(batch).await?)
}

/// Stores memories with their original creation times (admin only: it writes the
/// past). Duplicates are reported in place and do not fail the batch.
pub async fn import(
    service: &MemoryService,
    caller: &Caller,
    request: ImportRequest,
) -> Result<BatchResponse, OpError> {
    caller.require(Scope::Admin)?;
    check_batch_size(request.memories.len())?;
    let utc = jiff::tz::TimeZone::UTC;
    let mut batch = Vec::with_capacity(request.memories.len());
    for item in request.memories {
        let mut new = new_memory(item.memory, None);
        let created_at = instant(&item.created_at, &utc)?;
        if !IMPORTABLE.contains(&created_at) {
            return Err(OpError::bad_request(format!(
                "created_at {created_at} is outside the years 0001 to 9999"
            )));
        }
        new.created_at = Some(created_at);
        batch.push(new);
    }
    batch_response(service.store_many(batch).await?)
}

/// Stores a conversation's turns as one memory, `role: content` per line, of type
/// `session` and tagged `session:<id>`.
pub async fn store_session(
    service: &MemoryService,
    caller: &Caller,
    request: SessionRequest,
) -> Result<MutationResponse, OpError> {
    caller.require(Scope::Write)?;
    let session_id = request.session_id.trim();
    if session_id.is_empty() || request.turns.is_empty() {
        return Err(OpError::bad_request(
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
        updated_at: None,
    };
    Ok(stored(service.store(new).await?.into()))
}

/// A page of memories, newest first, `page_size` capped at [`MAX_RESULTS`].
pub async fn list(service: &MemoryService, query: ListQuery) -> Result<ListResponse, OpError> {
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
    let result = service.list(filter, page, page_size).await?;
    let shown = u64::from(page - 1) * u64::from(page_size) + result.memories.len() as u64;
    Ok(ListResponse {
        memories: result.memories.into_iter().map(Into::into).collect(),
        total: result.total,
        page,
        page_size,
        has_more: shown < result.total,
    })
}

pub async fn get(service: &MemoryService, content_hash: &str) -> Result<Memory, OpError> {
    Ok(service.get(content_hash).await?.into())
}

/// Changes a memory's labels: tags replace, metadata merges, the content stays.
pub async fn update(
    service: &MemoryService,
    caller: &Caller,
    content_hash: &str,
    request: UpdateRequest,
) -> Result<MutationResponse, OpError> {
    caller.require(Scope::Write)?;
    if request.tags.is_none() && request.memory_type.is_none() && request.metadata.is_none() {
        return Err(OpError::bad_request(
            "nothing to update: send tags, memory_type or metadata (the content cannot change)",
        ));
    }
    let patch = MemoryPatch {
        tags: request.tags,
        memory_type: request.memory_type,
        metadata: request.metadata,
        ..MemoryPatch::default()
    };
    let memory: Memory = service.update(content_hash, patch).await?.into();
    Ok(MutationResponse {
        success: true,
        message: "memory updated".into(),
        content_hash: memory.content_hash.clone(),
        memory: Some(memory),
    })
}

pub async fn delete(
    service: &MemoryService,
    caller: &Caller,
    content_hash: &str,
) -> Result<MutationResponse, OpError> {
    caller.require(Scope::Write)?;
    let memory = service.delete(content_hash).await?;
    Ok(MutationResponse {
        success: true,
        message: "memory deleted".into(),
        content_hash: memory.content_hash,
        memory: None,
    })
}

/// Deletes up to `limit` memories matching every given filter, newest first; with
/// `dry_run`, only names them. One filter at least, so an empty request cannot
/// empty the store.
pub async fn delete_matching(
    service: &MemoryService,
    caller: &Caller,
    request: DeleteMatchingRequest,
) -> Result<DeleteMatchingResponse, OpError> {
    caller.require(Scope::Write)?;
    let tags: Vec<String> = request
        .tags
        .into_iter()
        .filter(|t| !t.trim().is_empty())
        .collect();
    if tags.is_empty() && request.memory_type.is_none() && request.period.is_empty() {
        return Err(OpError::bad_request(
            "name what to delete: tags, memory_type, time, after or before",
        ));
    }
    let filter = filter(
        tags,
        request.tag_match,
        request.memory_type,
        &request.period,
    )?;
    let limit = request.limit.unwrap_or(MAX_RESULTS).clamp(1, MAX_RESULTS);
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
    Ok(DeleteMatchingResponse {
        success: true,
        has_more: page.total > content_hashes.len() as u64,
        matched: page.total,
        dry_run: request.dry_run,
        content_hashes,
    })
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
        updated_at: None,
    }
}

fn check_batch_size(len: usize) -> Result<(), OpError> {
    if len > MAX_BATCH {
        return Err(OpError::bad_request(format!(
            "{len} memories in one request; the limit is {MAX_BATCH}"
        )));
    }
    Ok(())
}

/// Per-item results. Invalid items and duplicates are reported in place; any other
/// failure is the server's and fails the request.
fn batch_response(
    outcomes: Vec<Result<memory::Memory, ServiceError>>,
) -> Result<BatchResponse, OpError> {
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
    Ok(BatchResponse {
        results,
        stored: stored_count,
    })
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

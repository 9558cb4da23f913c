//! Every memory as JSON Lines, for `GET /api/export` and `mnemo-server export`.
//!
//! The export is a stream of keyset pages (`Storage::export_page`), so it holds one
//! page in memory whatever the database's size, and a memory stored or deleted
//! meanwhile never makes it skip or repeat another.

use futures::Stream;
use mnemo_api::rest::iso8601;
use mnemo_api::transfer::ExportedMemory;

use super::{Caller, OpError};
use crate::auth::Scope;
use crate::memory::Memory;
use crate::service::{MemoryService, ServiceError};
use crate::storage::{ExportCursor, StorageError};

/// Memories read per page.
const PAGE: u32 = 256;

/// Every memory, oldest first, one JSON object and a newline per item; with
/// `vectors`, each with its stored vector and the model that made it.
///
/// Admin only: it is everyone's memories in one answer, where a read key pages
/// through them a hundred at a time.
pub fn export(
    service: MemoryService,
    caller: &Caller,
    vectors: bool,
) -> Result<impl Stream<Item = Result<String, OpError>> + Send + 'static, OpError> {
    caller.require(Scope::Admin)?;
    Ok(async_stream::try_stream! {
        let model = service.embedder().spec().model_id.clone();
        let storage = service.storage();
        let mut cursor: Option<ExportCursor> = None;
        loop {
            let page = storage
                .export_page(cursor.as_ref(), PAGE)
                .await
                .map_err(ServiceError::from)?;
            let Some(last) = page.last() else { break };
            cursor = Some(ExportCursor::from(last));
            for memory in page {
                let embedding = if vectors {
                    match storage.stored_vector(&memory.content_hash).await {
                        Ok(vector) => Some(vector),
                        // Deleted since the page was read: it is not in the export.
                        Err(StorageError::NotFound { .. }) => continue,
                        Err(e) => Err(ServiceError::from(e))?,
                    }
                } else {
                    None
                };
                let model = embedding.as_ref().map(|_| model.clone());
                yield line(exported(memory, embedding, model));
            }
        }
    })
}

/// A memory as one line of an export.
fn exported(
    memory: Memory,
    embedding: Option<Vec<f32>>,
    embedding_model: Option<String>,
) -> ExportedMemory {
    ExportedMemory {
        created_at_iso: Some(iso8601(memory.created_at)),
        updated_at_iso: Some(iso8601(memory.updated_at)),
        content: memory.content,
        content_hash: memory.content_hash,
        tags: memory.tags,
        memory_type: memory.memory_type,
        metadata: memory.metadata,
        created_at: Some(memory.created_at),
        updated_at: Some(memory.updated_at),
        embedding,
        embedding_model,
    }
}

/// One JSON object and its newline. Serialising plain data cannot fail.
fn line(memory: ExportedMemory) -> String {
    let mut text = serde_json::to_string(&memory).unwrap_or_default();
    text.push('\n');
    text
}

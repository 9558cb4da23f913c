//! The memory operations, as async functions the HTTP layer (and later `/mcp`) calls.
//!
//! A call validates its input, embeds text on the embedding thread, then runs the
//! blocking store call on a blocking thread. The runtime's own threads only wait.

use std::sync::Arc;

use thiserror::Error;

use crate::embed::{EmbedError, Embedder};
use crate::memory::{
    Filter, InvalidInput, Memory, MemoryPatch, NewMemory, ScoredMemory, content_hash,
    normalize_tags, normalize_type,
};
use crate::store::{NewRecord, Page, Store, StoreError};

/// Largest page of a listing and most results of a search (DESIGN §5: no list is
/// unbounded).
pub const MAX_PAGE_SIZE: u32 = 100;
/// Default cap on a memory's content, in bytes.
pub const DEFAULT_MAX_CONTENT_BYTES: usize = 64 * 1024;

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error("a blocking task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The memory service: one store and one embedder, shared by every request.
#[derive(Clone)]
pub struct MemoryService {
    store: Arc<Store>,
    embedder: Embedder,
    max_content_bytes: usize,
}

impl MemoryService {
    pub fn new(store: Store, embedder: Embedder, max_content_bytes: usize) -> Self {
        Self {
            store: Arc::new(store),
            embedder,
            max_content_bytes,
        }
    }

    pub fn store_handle(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// Stores a memory. Duplicate content fails with [`StoreError::Duplicate`], which
    /// carries the existing hash.
    pub async fn store(&self, new: NewMemory) -> Result<Memory, ServiceError> {
        let content = new.content.trim();
        if content.is_empty() {
            return Err(InvalidInput::EmptyContent.into());
        }
        if content.len() > self.max_content_bytes {
            return Err(InvalidInput::ContentTooLong {
                actual: content.len(),
                limit: self.max_content_bytes,
            }
            .into());
        }
        let tags = normalize_tags(&new.tags)?;
        let memory_type = normalize_type(new.memory_type.as_deref())?;
        let hash = content_hash(content);
        // Skip the embedding for content that is already stored; the writer re-checks.
        match self.get(&hash).await {
            Ok(_) => return Err(StoreError::Duplicate { content_hash: hash }.into()),
            Err(ServiceError::Store(StoreError::NotFound { .. })) => {}
            Err(e) => return Err(e),
        }
        let vector = self.embedder.embed_one(content).await?;
        let record = NewRecord {
            content: content.to_owned(),
            content_hash: hash,
            tags,
            memory_type,
            metadata: new.metadata,
            vector,
            created_at: None,
        };
        self.blocking(move |store| store.insert(record)).await
    }

    pub async fn get(&self, content_hash: &str) -> Result<Memory, ServiceError> {
        let hash = content_hash.to_owned();
        self.blocking(move |store| store.get(&hash)).await
    }

    /// A page (1-based) of memories matching `filter`, newest first.
    pub async fn list(
        &self,
        filter: Filter,
        page: u32,
        page_size: u32,
    ) -> Result<Page, ServiceError> {
        let page_size = page_size.clamp(1, MAX_PAGE_SIZE);
        self.blocking(move |store| store.list(&filter, page.max(1), page_size))
            .await
    }

    pub async fn update(
        &self,
        content_hash: &str,
        mut patch: MemoryPatch,
    ) -> Result<Memory, ServiceError> {
        if let Some(tags) = &patch.tags {
            patch.tags = Some(normalize_tags(tags)?);
        }
        if let Some(memory_type) = &patch.memory_type {
            patch.memory_type = Some(normalize_type(memory_type.as_deref())?);
        }
        let hash = content_hash.to_owned();
        self.blocking(move |store| store.update(&hash, patch)).await
    }

    pub async fn delete(&self, content_hash: &str) -> Result<Memory, ServiceError> {
        let hash = content_hash.to_owned();
        self.blocking(move |store| store.delete(&hash)).await
    }

    /// The `k` (at most [`MAX_PAGE_SIZE`]) memories matching `filter` closest in
    /// meaning to `query`, best first.
    pub async fn search(
        &self,
        query: &str,
        k: u32,
        filter: Filter,
    ) -> Result<Vec<ScoredMemory>, ServiceError> {
        let k = k.min(MAX_PAGE_SIZE) as usize;
        let vector = self.embedder.embed_one(query).await?;
        self.blocking(move |store| store.search(&vector, k, &filter))
            .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let store = Arc::clone(&self.store);
        Ok(tokio::task::spawn_blocking(move || call(&store)).await??)
    }
}

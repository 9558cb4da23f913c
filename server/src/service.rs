//! The memory operations, as async functions the HTTP handlers call (and, through
//! them, the tools at `/mcp`).
//!
//! A call validates its input, embeds text on the embedding thread, then awaits
//! storage. The service holds storage as an `Arc<dyn Storage>`, so it neither knows
//! nor cares which database that is, nor how it keeps its blocking work off the
//! runtime.

use std::sync::Arc;

use thiserror::Error;

use crate::embed::{EmbedError, Embedder};
use crate::memory::{
    Filter, InvalidInput, Memory, MemoryPatch, NewMemory, ScoredMemory, check_metadata_size,
    content_hash, normalize_tags, normalize_type, refuse_nul, refuse_nul_in_metadata,
};
use crate::storage::{NewRecord, Page, Storage, StorageError};

/// Largest page of a listing and most results of a search: no list is unbounded.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Default cap on a memory's content, in bytes.
pub const DEFAULT_MAX_CONTENT_BYTES: usize = 64 * 1024;
/// Default cap on a search query, in characters: far more than the model reads (it
/// truncates at 256 tokens), far less than a request body may carry.
pub const DEFAULT_MAX_QUERY_CHARS: usize = 8 * 1024;
/// Default cap on a memory's metadata, in bytes of JSON: metadata is stored and sent
/// back whole, so it is bounded like content.
pub const DEFAULT_MAX_METADATA_BYTES: usize = 64 * 1024;

/// Times an import may carry, in epoch seconds: 0001-01-01 to the end of 9999, the
/// years RFC 3339 (and so every `*_iso` field) can write.
pub const IMPORTABLE: std::ops::Range<f64> = -62_135_596_800.0..253_402_300_800.0;

/// `vector` scaled to unit length, as every stored vector is (a zero vector stays).
fn unit(mut vector: Vec<f32>) -> Vec<f32> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

/// What one request may ask of the service, so that no input's size alone makes it
/// costly (`MNEMO_MAX_CONTENT_BYTES`, `MNEMO_MAX_QUERY_CHARS`, `MNEMO_MAX_METADATA_BYTES`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A memory's content, in bytes.
    pub content_bytes: usize,
    /// A search query, in characters.
    pub query_chars: usize,
    /// A memory's metadata as JSON, in bytes, after any update's merge.
    pub metadata_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            content_bytes: DEFAULT_MAX_CONTENT_BYTES,
            query_chars: DEFAULT_MAX_QUERY_CHARS,
            metadata_bytes: DEFAULT_MAX_METADATA_BYTES,
        }
    }
}

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

/// The memory service: one storage and one embedder, shared by every request.
#[derive(Clone)]
pub struct MemoryService {
    storage: Arc<dyn Storage>,
    embedder: Embedder,
    limits: Limits,
}

impl MemoryService {
    /// A service with the default [`Limits`].
    pub fn new(storage: Arc<dyn Storage>, embedder: Embedder) -> Self {
        Self {
            storage,
            embedder,
            limits: Limits::default(),
        }
    }

    /// The same service with other limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Refuses a query whose length alone would make a search costly.
    fn check_query(&self, query: &str) -> Result<(), ServiceError> {
        // Counting stops at the limit, so a huge query costs no more than a long one.
        let limit = self.limits.query_chars;
        let actual = query.chars().take(limit + 1).count();
        if actual > limit {
            return Err(InvalidInput::QueryTooLong {
                actual: query.chars().count(),
                limit,
            }
            .into());
        }
        Ok(())
    }

    /// The storage underneath, for what is not a memory operation: the change feed
    /// and detailed health.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// Stores a memory. Duplicate content fails with [`StorageError::Duplicate`], which
    /// carries the existing hash.
    pub async fn store(&self, new: NewMemory) -> Result<Memory, ServiceError> {
        self.store_many(vec![new])
            .await?
            .pop()
            .unwrap_or(Err(ServiceError::Storage(StorageError::Stopped)))
    }

    /// Stores several memories, each succeeding or failing on its own (in order): the
    /// texts go to the model as one batch and the rows to storage as one call, so a
    /// batch costs about what its embedding costs. A duplicate, of a stored memory or
    /// of an earlier item, fails only itself. The outer error is for failures that
    /// concern the whole batch (the embedder, or storage as a whole).
    pub async fn store_many(
        &self,
        batch: Vec<NewMemory>,
    ) -> Result<Vec<Result<Memory, ServiceError>>, ServiceError> {
        self.store_many_with_vectors(batch.into_iter().map(|new| (new, None)).collect())
            .await
    }

    /// [`Self::store_many`] where an item may bring its vector (an import of an
    /// export made with this model): that item is not embedded again. A vector of
    /// another width fails its item with [`StorageError::WrongDimension`].
    pub async fn store_many_with_vectors(
        &self,
        batch: Vec<(NewMemory, Option<Vec<f32>>)>,
    ) -> Result<Vec<Result<Memory, ServiceError>>, ServiceError> {
        let mut outcomes: Vec<Option<Result<Memory, ServiceError>>> = Vec::new();
        let mut pending: Vec<(usize, NewRecord)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let dimension = self.embedder.spec().dimension;
        for (index, (new, vector)) in batch.into_iter().enumerate() {
            outcomes.push(None);
            let prepared = self.prepare(new).and_then(|mut record| {
                if let Some(vector) = vector {
                    StorageError::check_dimension(dimension, &vector)?;
                    record.vector = unit(vector);
                }
                Ok(record)
            });
            match prepared {
                Ok(record) if !seen.insert(record.content_hash.clone()) => {
                    outcomes[index] = Some(Err(StorageError::Duplicate {
                        content_hash: record.content_hash,
                    }
                    .into()));
                }
                Ok(record) => pending.push((index, record)),
                Err(e) => outcomes[index] = Some(Err(e)),
            }
        }
        // Skip the embedding for content that is already stored; storage re-checks.
        let hashes: Vec<String> = pending
            .iter()
            .map(|(_, r)| r.content_hash.clone())
            .collect();
        let stored = self.storage.contains(&hashes).await?;
        let mut fresh = Vec::with_capacity(pending.len());
        for ((index, record), exists) in pending.into_iter().zip(stored) {
            if exists {
                outcomes[index] = Some(Err(StorageError::Duplicate {
                    content_hash: record.content_hash,
                }
                .into()));
            } else {
                fresh.push((index, record));
            }
        }
        if !fresh.is_empty() {
            let texts: Vec<String> = fresh
                .iter()
                .filter(|(_, r)| r.vector.is_empty())
                .map(|(_, r)| r.content.clone())
                .collect();
            let mut vectors = if texts.is_empty() {
                Vec::new()
            } else {
                self.embedder.embed(texts).await?
            }
            .into_iter();
            let (indexes, records): (Vec<usize>, Vec<NewRecord>) = fresh
                .into_iter()
                .map(|(index, mut record)| {
                    if record.vector.is_empty() {
                        record.vector = vectors.next().unwrap_or_default();
                    }
                    (index, record)
                })
                .unzip();
            let results = self.storage.insert_many(records).await?;
            for (index, result) in indexes.into_iter().zip(results) {
                outcomes[index] = Some(result.map_err(Into::into));
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Err(ServiceError::Storage(StorageError::Stopped))))
            .collect())
    }

    /// Validates and normalises a new memory into a record still without its vector.
    /// Imported times must be ones RFC 3339 can write, as every `*_iso` field does.
    fn prepare(&self, new: NewMemory) -> Result<NewRecord, ServiceError> {
        let content = new.content.trim();
        if content.is_empty() {
            return Err(InvalidInput::EmptyContent.into());
        }
        if content.len() > self.limits.content_bytes {
            return Err(InvalidInput::ContentTooLong {
                actual: content.len(),
                limit: self.limits.content_bytes,
            }
            .into());
        }
        check_metadata_size(&new.metadata, self.limits.metadata_bytes)?;
        for time in [new.created_at, new.updated_at].into_iter().flatten() {
            if !IMPORTABLE.contains(&time) {
                return Err(InvalidInput::TimeOutOfRange {
                    time: time.to_string(),
                }
                .into());
            }
        }
        refuse_nul("content", content)?;
        refuse_nul_in_metadata(&new.metadata)?;
        Ok(NewRecord {
            content: content.to_owned(),
            content_hash: content_hash(content),
            tags: normalize_tags(&new.tags)?,
            memory_type: normalize_type(new.memory_type.as_deref())?,
            metadata: new.metadata,
            vector: Vec::new(),
            created_at: new.created_at,
            updated_at: new.updated_at,
        })
    }

    pub async fn get(&self, content_hash: &str) -> Result<Memory, ServiceError> {
        Ok(self.storage.get(content_hash).await?)
    }

    /// A page (1-based) of memories matching `filter`, newest first.
    pub async fn list(
        &self,
        filter: Filter,
        page: u32,
        page_size: u32,
    ) -> Result<Page, ServiceError> {
        let page_size = page_size.clamp(1, MAX_PAGE_SIZE);
        Ok(self.storage.list(&filter, page.max(1), page_size).await?)
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
        if let Some(metadata) = &patch.metadata {
            // The patch alone past the limit is refused before storage is asked;
            // storage checks the merged result.
            check_metadata_size(metadata, self.limits.metadata_bytes)?;
            refuse_nul_in_metadata(metadata)?;
        }
        patch.max_metadata_bytes = Some(self.limits.metadata_bytes);
        Ok(self.storage.update(content_hash, patch).await?)
    }

    pub async fn delete(&self, content_hash: &str) -> Result<Memory, ServiceError> {
        Ok(self.storage.delete(content_hash).await?)
    }

    /// The `k` (at most [`MAX_PAGE_SIZE`]) memories matching `filter` closest in
    /// meaning to `query`, best first.
    pub async fn search(
        &self,
        query: &str,
        k: u32,
        filter: Filter,
    ) -> Result<Vec<ScoredMemory>, ServiceError> {
        self.check_query(query)?;
        let k = k.min(MAX_PAGE_SIZE) as usize;
        let vector = self.embedder.embed_one(query).await?;
        Ok(self.storage.search(&vector, k, &filter).await?)
    }

    /// The memory `content_hash` names and up to `k` memories nearest to it, ranked by
    /// its stored vector: nothing is embedded, so the answer needs no model time.
    pub async fn similar(
        &self,
        content_hash: &str,
        k: u32,
    ) -> Result<(Memory, Vec<ScoredMemory>), ServiceError> {
        let k = k.min(MAX_PAGE_SIZE) as usize;
        let (target, vector) = tokio::try_join!(
            self.storage.get(content_hash),
            self.storage.stored_vector(content_hash)
        )?;
        // One more, since the memory itself is (almost always) its own nearest.
        let mut hits = self
            .storage
            .search(&vector, k + 1, &Filter::default())
            .await?;
        hits.retain(|hit| hit.memory.content_hash != content_hash);
        hits.truncate(k);
        Ok((target, hits))
    }

    /// Hybrid search: the vector ranking and the full-text (BM25) ranking, each over
    /// the filtered memories, fused by reciprocal rank (k = 60). A rare exact token that
    /// the embedding blurs still surfaces through the keyword side.
    pub async fn search_hybrid(
        &self,
        query: &str,
        k: u32,
        filter: Filter,
    ) -> Result<Vec<HybridHit>, ServiceError> {
        self.check_query(query)?;
        let k = k.min(MAX_PAGE_SIZE) as usize;
        // Each side contributes more candidates than asked for, so fusion can promote
        // a memory that only one side ranks well.
        let depth = (k * 3).max(30);
        let vector = self.embedder.embed_one(query).await?;
        // The two rankings read on two pooled connections at once.
        let (semantic, keyword) = tokio::try_join!(
            self.storage.search(&vector, depth, &filter),
            self.storage.keyword_search(query, depth, &filter),
        )?;
        let mut fused = fuse_rankings(&semantic, &keyword);
        fused.truncate(k);
        // Hits only the keyword side found still need their similarity: one call for all.
        let keyword_only: Vec<String> = fused
            .iter()
            .filter(|(_, semantic_rank, _)| semantic_rank.is_none())
            .map(|(hash, _, _)| hash.clone())
            .collect();
        let mut similarities = if keyword_only.is_empty() {
            Vec::new()
        } else {
            self.storage.similarities(&vector, &keyword_only).await?
        }
        .into_iter();
        let mut hits = Vec::with_capacity(fused.len());
        for (_, semantic_rank, keyword_rank) in fused {
            let hit = match semantic_rank {
                Some(rank) => semantic[rank - 1].clone(),
                None => ScoredMemory {
                    memory: keyword[keyword_rank.unwrap_or(1) - 1].clone(),
                    cosine_similarity: similarities.next().unwrap_or_default(),
                },
            };
            hits.push(HybridHit {
                hit,
                semantic_rank,
                keyword_rank,
            });
        }
        Ok(hits)
    }

    /// Memories containing `text` (ASCII case ignored), newest first.
    pub async fn search_exact(
        &self,
        text: &str,
        k: u32,
        filter: Filter,
    ) -> Result<Vec<Memory>, ServiceError> {
        self.check_query(text)?;
        let k = k.min(MAX_PAGE_SIZE) as usize;
        Ok(self.storage.substring_search(text, k, &filter).await?)
    }

    /// The most used tags and their counts (at most `limit`).
    pub async fn tags(&self, limit: u32) -> Result<Vec<(String, u64)>, ServiceError> {
        Ok(self.storage.tag_counts(limit).await?)
    }

    /// The memory types in use and their counts (at most `limit`).
    pub async fn types(&self, limit: u32) -> Result<Vec<(String, u64)>, ServiceError> {
        Ok(self.storage.type_counts(limit).await?)
    }

    /// Memories created per day since `since`, days shifted by `offset` seconds.
    pub async fn daily_counts(
        &self,
        since: f64,
        offset: i32,
    ) -> Result<Vec<(i64, u64)>, ServiceError> {
        Ok(self.storage.daily_counts(since, offset).await?)
    }

    pub async fn count(&self) -> Result<u64, ServiceError> {
        Ok(self.storage.count().await?)
    }
}

/// A hybrid search hit and its 1-based rank on each side (`None`: not in that list).
#[derive(Debug, Clone)]
pub struct HybridHit {
    pub hit: ScoredMemory,
    pub semantic_rank: Option<usize>,
    pub keyword_rank: Option<usize>,
}

/// The constant of reciprocal-rank fusion; 60 is the value from Cormack et al. and the
/// one most hybrid search engines use.
const RRF_K: f64 = 60.0;

/// Reciprocal-rank fusion of two rankings: (hash, semantic rank, keyword rank), best
/// first. Ties keep the semantic order.
fn fuse_rankings(
    semantic: &[ScoredMemory],
    keyword: &[Memory],
) -> Vec<(String, Option<usize>, Option<usize>)> {
    let mut ranks: Vec<(String, Option<usize>, Option<usize>)> = semantic
        .iter()
        .enumerate()
        .map(|(i, hit)| (hit.memory.content_hash.clone(), Some(i + 1), None))
        .collect();
    for (i, memory) in keyword.iter().enumerate() {
        match ranks
            .iter_mut()
            .find(|(hash, _, _)| *hash == memory.content_hash)
        {
            Some(entry) => entry.2 = Some(i + 1),
            None => ranks.push((memory.content_hash.clone(), None, Some(i + 1))),
        }
    }
    let score = |r: &Option<usize>| r.map_or(0.0, |rank| 1.0 / (RRF_K + rank as f64));
    ranks.sort_by(|a, b| (score(&b.1) + score(&b.2)).total_cmp(&(score(&a.1) + score(&a.2))));
    ranks
}

//! What the memory service needs from a database, as one trait, [`Storage`], and the
//! types every backend shares. The service holds an `Arc<dyn Storage>` and never
//! learns which database is behind it.
//!
//! [`sqlite`] is the default backend: SQLite with sqlite-vec and FTS5, whose blocking
//! calls run on tokio's blocking threads inside the backend, nowhere else.
//! [`postgres`] is PostgreSQL with pgvector, for several servers on one database. The trait is
//! async and returns boxed futures, so it stays object-safe and a backend with a native
//! async client (PostgreSQL with pgvector through tokio-postgres or sqlx, LISTEN/NOTIFY
//! feeding [`Storage::subscribe`]) implements it without a blocking pool. The test
//! suite every backend must pass, written only against the trait, is `conformance`.
//!
//! # What every backend guarantees
//!
//! - **A write and its event commit together.** `insert`, `update` and `delete` each
//!   append exactly one change-feed event in the transaction that makes the change. A
//!   refused write (duplicate, unknown hash, wrong dimension) changes nothing and
//!   appends nothing.
//! - **Sequence numbers follow commit order** and are never reused, even once pruned:
//!   whoever has seen event `n` has seen every committed event before it. (A backend
//!   whose sequences can commit out of order, as PostgreSQL's can, serialises its
//!   appends.)
//! - **Subscribers hear only what committed,** after it committed, in sequence order,
//!   from a bounded buffer. One that falls behind gets
//!   [`RecvError::Lagged`](tokio::sync::broadcast::error::RecvError::Lagged) and
//!   reads what it missed with [`Storage::events_after`].
//! - **Reads see every write whose future has resolved,** searches included.
//! - **One memory per content hash.** Inserting stored content again is
//!   [`StorageError::Duplicate`], within one batch too.
//! - **A database belongs to one embedding model.** The first open records the
//!   [`EmbeddingSpec`]; opening it with another is [`StorageError::ModelMismatch`]
//!   and changes nothing.
//! - **Filters apply before ranking,** so a filtered search returns `k` results
//!   whenever `k` memories match.
//! - **Vector search is exact:** the true `k` nearest by cosine similarity (recall
//!   1.0), never an approximate index's guess.
//! - **Retention is applied by writes:** once a write commits, events older than
//!   [`Retention::max_age`] or beyond the newest [`Retention::max_rows`] are gone, while
//!   [`Storage::head_seq`] still counts them.
//!
//! [`EmbeddingSpec`]: crate::memory::EmbeddingSpec

#[cfg(test)]
pub(crate) mod conformance;
pub mod payload;
pub mod postgres;
pub mod sqlite;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Map, Value};
use thiserror::Error;
use tokio::sync::broadcast;

use crate::memory::{Filter, InvalidInput, Memory, MemoryPatch, ScoredMemory};

/// What every [`Storage`] method returns: a boxed future, so the trait stays usable as
/// `dyn Storage`.
pub type StorageFuture<'a, T> = BoxFuture<'a, Result<T, StorageError>>;

/// The memory database as the service sees it. See the module documentation for what
/// every implementation guarantees.
pub trait Storage: Send + Sync + 'static {
    /// Stores a new memory with its vector and appends its `memory_stored` event.
    fn insert(&self, record: NewRecord) -> StorageFuture<'_, Memory>;

    /// Stores several new memories, each succeeding or failing on its own, in order. The
    /// outer error is for a failure of the whole call, before any result exists.
    fn insert_many(
        &self,
        records: Vec<NewRecord>,
    ) -> StorageFuture<'_, Vec<Result<Memory, StorageError>>>;

    /// Replaces tags and type and merges metadata, as the patch says, and appends a
    /// `memory_updated` event.
    fn update<'a>(&'a self, content_hash: &'a str, patch: MemoryPatch)
    -> StorageFuture<'a, Memory>;

    /// Deletes a memory, appends a `memory_deleted` event and returns what it was.
    fn delete<'a>(&'a self, content_hash: &'a str) -> StorageFuture<'a, Memory>;

    fn get<'a>(&'a self, content_hash: &'a str) -> StorageFuture<'a, Memory>;

    /// Whether each content hash is stored, in order: one round trip for a batch.
    fn contains<'a>(&'a self, content_hashes: &'a [String]) -> StorageFuture<'a, Vec<bool>>;

    /// One page (1-based) of memories matching `filter`, newest first, and the total.
    fn list<'a>(&'a self, filter: &'a Filter, page: u32, page_size: u32)
    -> StorageFuture<'a, Page>;

    /// How many memories are stored.
    fn count(&self) -> StorageFuture<'_, u64>;

    /// Up to `limit` memories after `after` in export order (creation time, then
    /// content hash), first page with `None`. A keyset page: an export paging through
    /// a database that is being written never skips or repeats a memory that stays.
    fn export_page<'a>(
        &'a self,
        after: Option<&'a ExportCursor>,
        limit: u32,
    ) -> StorageFuture<'a, Vec<Memory>>;

    /// Up to `limit` tags with their memory counts, most used first.
    fn tag_counts(&self, limit: u32) -> StorageFuture<'_, Vec<(String, u64)>>;

    /// Up to `limit` memory types with their counts, most used first.
    fn type_counts(&self, limit: u32) -> StorageFuture<'_, Vec<(String, u64)>>;

    /// How many memories were created on each day since `since` (epoch seconds), a
    /// day being `floor((created_at + offset) / 86400)` for a UTC offset in seconds:
    /// `(day, count)` for the days that have any, oldest first. At most one row per
    /// day from `since` to now, so the caller bounds it by choosing `since`.
    fn daily_counts(&self, since: f64, offset: i32) -> StorageFuture<'_, Vec<(i64, u64)>>;

    /// The `k` memories matching `filter` whose vectors are closest to `vector`, best
    /// first: exact, and filtered before ranking.
    fn search<'a>(
        &'a self,
        vector: &'a [f32],
        k: usize,
        filter: &'a Filter,
    ) -> StorageFuture<'a, Vec<ScoredMemory>>;

    /// Up to `k` memories matching `filter` and any word of `query` by full-text
    /// search, best ranked first. A word is matched as text, never read as query
    /// syntax, so `E1234-XK` or `"` cannot make the call fail.
    fn keyword_search<'a>(
        &'a self,
        query: &'a str,
        k: usize,
        filter: &'a Filter,
    ) -> StorageFuture<'a, Vec<Memory>>;

    /// Up to `k` memories matching `filter` whose content contains `text`, ASCII case
    /// ignored, newest first.
    fn substring_search<'a>(
        &'a self,
        text: &'a str,
        k: usize,
        filter: &'a Filter,
    ) -> StorageFuture<'a, Vec<Memory>>;

    /// Cosine similarity of `vector` to each stored memory named, in order, in one
    /// call: hybrid search asks this for every hit only the keyword side found.
    /// An unknown hash is [`StorageError::NotFound`].
    fn similarities<'a>(
        &'a self,
        vector: &'a [f32],
        content_hashes: &'a [String],
    ) -> StorageFuture<'a, Vec<f64>>;

    /// The stored (L2-normalised) vector of one memory, for "more like this" searches
    /// that embed nothing. An unknown hash is [`StorageError::NotFound`].
    fn stored_vector<'a>(&'a self, content_hash: &'a str) -> StorageFuture<'a, Vec<f32>>;

    /// Up to `limit` change-feed events with a sequence number above `after`, in order.
    fn events_after(&self, after: i64, limit: u32) -> StorageFuture<'_, Vec<EventRow>>;

    /// The last sequence number ever assigned (0 before the first), pruned or not.
    fn head_seq(&self) -> StorageFuture<'_, i64>;

    /// The oldest event retention has kept, if any.
    fn oldest_seq(&self) -> StorageFuture<'_, Option<i64>>;

    /// Events as they commit, from now on. Subscribe before reading the table, then skip
    /// what was already read: no event falls between the two.
    fn subscribe(&self) -> broadcast::Receiver<Arc<EventRow>>;

    /// The backend's name in detailed health, with mcp-memory-service's spelling where
    /// it has one (`sqlite-vec`).
    fn backend(&self) -> &'static str;

    /// Where the data lives, for the log: a file's path, or a server database's
    /// address without credentials.
    fn location(&self) -> String;

    /// Bytes the data takes on disk.
    fn size_on_disk(&self) -> StorageFuture<'_, u64>;

    /// Called once as the server stops, after the last request: leaves the data
    /// complete where it rests (SQLite folds its write-ahead log into the file). A
    /// backend with nothing to do keeps this default.
    fn close(&self) -> StorageFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    /// Writes a consistent copy of the database, as of the moment the copy begins, to
    /// the new file `dest`, and checks it. Writes go on meanwhile.
    fn backup<'a>(&'a self, dest: &'a Path) -> StorageFuture<'a, BackupStats> {
        let _ = dest;
        Box::pin(async { Err(StorageError::unsupported(self.backend())) })
    }

    /// Replaces the whole database with the backup at `source` while serving: the
    /// backup must hold this database's model; the change feed continues after every
    /// number ever handed out with one event for the restore (`label` names the
    /// backup in it), and in-memory copies are rebuilt.
    fn restore<'a>(&'a self, source: &'a Path, label: &'a str) -> StorageFuture<'a, RestoreStats> {
        let _ = (source, label);
        Box::pin(async { Err(StorageError::unsupported(self.backend())) })
    }
}

/// What a finished backup holds.
#[derive(Debug, Clone)]
pub struct BackupStats {
    /// Size of the backup file.
    pub bytes: u64,
    /// Memories in it.
    pub memories: u64,
    /// The last change-feed sequence number it holds.
    pub head_seq: i64,
    /// How long the copy and its check took.
    pub elapsed: Duration,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreStats {
    /// Memories in the restored database.
    pub memories: u64,
    /// The restore's own event, the first of the restored database's feed.
    pub event: EventRow,
}

/// Sets the store's gauges (memories, database bytes) for a scrape of `/metrics`. A
/// figure the database cannot give now is left as it was and logged: a scrape never
/// fails for it.
pub async fn observe(storage: &dyn Storage) {
    let backend = storage.backend();
    let (count, bytes) = futures::join!(storage.count(), storage.size_on_disk());
    match count {
        Ok(count) => {
            metrics::gauge!(crate::telemetry::MEMORIES, "backend" => backend).set(count as f64);
        }
        Err(e) => tracing::debug!(error = %e, "cannot count the memories for /metrics"),
    }
    match bytes {
        Ok(bytes) => {
            metrics::gauge!(crate::telemetry::DATABASE_BYTES, "backend" => backend)
                .set(bytes as f64);
        }
        Err(e) => tracing::debug!(error = %e, "cannot size the database for /metrics"),
    }
}

/// A memory ready to store: validated, normalised, hashed and embedded.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub content: String,
    pub content_hash: String,
    pub tags: Vec<String>,
    pub memory_type: Option<String>,
    pub metadata: Map<String, Value>,
    /// L2-normalised embedding of `content`.
    pub vector: Vec<f32>,
    /// Keeps an original creation time (imports); `None` means now.
    pub created_at: Option<f64>,
    /// Keeps an original time of the last change (imports); `None` means now.
    pub updated_at: Option<f64>,
}

/// Where an export stopped: the last memory it wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportCursor {
    pub created_at: f64,
    pub content_hash: String,
}

impl From<&Memory> for ExportCursor {
    fn from(memory: &Memory) -> Self {
        Self {
            created_at: memory.created_at,
            content_hash: memory.content_hash.clone(),
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page {
    pub memories: Vec<Memory>,
    /// Memories matching the filter across all pages.
    pub total: u64,
}

/// A row of the change feed.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub seq: i64,
    pub at: f64,
    pub kind: String,
    pub content_hash: String,
    /// The payload's JSON text, as stored: sent to every subscriber as is, never
    /// re-serialised per subscriber.
    pub payload: String,
}

/// How long the change feed keeps events for clients to replay.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_age: Duration,
    pub max_rows: u64,
}

/// What can go wrong in storage, whichever the backend. Callers match on the variants;
/// none of them needs to inspect a message.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("no memory has content hash {content_hash}")]
    NotFound { content_hash: String },
    #[error("a memory with the same content already exists ({content_hash})")]
    Duplicate { content_hash: String },
    #[error(
        "the database at {location} holds vectors of model {stored_model:?} ({stored_dimension} dimensions), \
         but the server is configured with {configured_model:?} ({configured_dimension} dimensions); \
         use the model the database was created with, or re-embed the database"
    )]
    ModelMismatch {
        location: String,
        stored_model: String,
        stored_dimension: usize,
        configured_model: String,
        configured_dimension: usize,
    },
    #[error("a vector has {actual} dimensions; this database holds {expected}")]
    WrongDimension { expected: usize, actual: usize },
    #[error(
        "the database at {location} has schema version {found}, newer than this server's {supported}; \
         upgrade mnemo-server"
    )]
    SchemaTooNew {
        location: String,
        found: u32,
        supported: u32,
    },
    /// The transaction that held the write failed to commit, so the write was rolled
    /// back and can be retried. The source is shared by every write of that
    /// transaction.
    #[error("the transaction failed to commit, so this write was rolled back: {source}")]
    CommitFailed {
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// The disk (or the database's quota) is full, so the write was rolled back. The
    /// fix is space on the server, not a retry; clients are told so (507).
    #[error("the disk holding the database is full, so this write was rolled back: {source}")]
    Full {
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// A read was stopped before it finished: it ran past its time limit, or the
    /// caller that wanted it went away.
    #[error("a read was stopped: it ran past MNEMO_READ_TIMEOUT or its caller went away")]
    Interrupted,
    /// The write would break a limit only visible once merged with what is stored
    /// (metadata grown past its cap by an update). Nothing changed.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// A database file exists but is empty, where a database was expected. Starting
    /// afresh over it would hide a lost database, so the user decides.
    #[error(
        "the database file {location} is empty (0 bytes), where a database was expected; \
         restore it from a backup, or delete the file to start a new, empty store"
    )]
    EmptyFile { location: String },
    /// The database cannot be written: the file or its folder is read-only, or the
    /// file system is mounted read-only.
    #[error(
        "the database {location} cannot be written ({detail}); make the file, its -wal and -shm \
         files and its folder writable by the user running mnemo-server, then start again"
    )]
    ReadOnly { location: String, detail: String },
    /// The database fails its integrity check, or is not a database at all.
    #[error(
        "the database {location} is damaged ({detail}); restore it from a backup, or move it \
         and its -wal and -shm files aside to start a new store (`sqlite3 {location} .recover` \
         may save what is left)"
    )]
    Corrupt { location: String, detail: String },
    /// Another process has the SQLite database open for writing: a running server, or
    /// an offline command. SQLite files have one writer (ARCHITECTURE.md), so the
    /// second is refused rather than made to wait.
    #[error(
        "the database {location} is in use by another process (a running mnemo-server, or an \
         offline mnemo-server command); stop it first, or do this through the running server's \
         API (GET /api/export, POST /api/import, POST /api/admin/restore)"
    )]
    InUse { location: String },
    /// The database cannot be reached or did not answer in time (a server database
    /// that is down, restarting or unreachable). Nothing was done, or a write's
    /// outcome is unknown; a retry once it is back is safe, since writes are keyed
    /// by content. Clients are told 503.
    #[error("the database is unavailable: {context}: {source}")]
    Unavailable {
        context: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The backend cannot do this at all (a file backup of a PostgreSQL database).
    #[error("{what} is not available with the {backend} backend; {advice}")]
    Unsupported {
        what: &'static str,
        backend: &'static str,
        advice: &'static str,
    },
    /// The backend has shut down (its writer, pool or connection is gone).
    #[error("the storage has stopped taking requests")]
    Stopped,
    /// Any other failure of the backend (I/O, SQL, a lost connection, a crashed
    /// blocking task): nothing a caller can act on but report. The message names
    /// what was being done and the cause, so a log line of it alone is enough.
    #[error("{context}: {source}")]
    Backend {
        context: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StorageError {
    /// [`StorageError::WrongDimension`] unless `vector` has `expected` dimensions: what
    /// every backend checks before a vector reaches its database.
    pub fn check_dimension(expected: usize, vector: &[f32]) -> Result<(), Self> {
        if vector.len() == expected {
            Ok(())
        } else {
            Err(Self::WrongDimension {
                expected,
                actual: vector.len(),
            })
        }
    }

    /// Backups and restores, which only the SQLite backend makes itself.
    pub fn unsupported(backend: &'static str) -> Self {
        Self::Unsupported {
            what: "backup and restore through Mnemo",
            backend,
            advice: "back the database up with pg_dump and restore it with pg_restore \
                     (or your PostgreSQL provider's backups)",
        }
    }

    /// A [`StorageError::Backend`] saying what was being done when `source` failed.
    pub fn backend(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Backend {
            context: context.into(),
            source: source.into(),
        }
    }
}

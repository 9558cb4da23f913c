//! The memory database: SQLite in WAL mode with sqlite-vec vectors and an FTS5 index.
//!
//! # Threading
//!
//! SQLite allows one writer at a time. Rather than let many threads race for the write
//! lock (and surface "database is locked" under load, the failure that per-client
//! processes sharing one file run into), a [`Store`] owns exactly one read-write
//! connection on a dedicated writer thread. Writes are sent to it as commands and
//! committed in small groups: the thread takes every command already waiting, runs
//! each inside its own savepoint of one transaction, and commits once. One fsync then
//! pays for the whole group, and one bad command rolls back only itself.
//!
//! Reads never wait for the writer. They use a pool of read-only connections, which in
//! WAL mode see the last committed state while a write is in progress.
//!
//! Every method blocks. Async callers run them on blocking threads (see
//! [`crate::service`]); nothing here holds a lock across an `.await`.

mod filter;
pub mod migrations;
mod read;
mod vec_extension;
mod vectors;
mod write;
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use migrations::meta_keys;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use thiserror::Error;

use crate::memory::{EmbeddingSpec, Filter, Memory, MemoryPatch, ScoredMemory};
pub use read::{EventRow, Page};
use vectors::VectorCopy;
pub use write::NewRecord;
pub use writer::Retention;
use writer::{Command, Writer};

/// How long a connection waits for a lock before giving up (DESIGN §3).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Tunables of a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Read-only connections kept open for queries.
    pub readers: u32,
    /// Most write commands committed in one transaction.
    pub max_group_commit: usize,
    /// Bytes of the database file each connection maps into its address space.
    pub mmap_bytes: u64,
    /// Bytes of SQLite page cache per connection.
    pub cache_bytes: u64,
    /// How long, and how many, events the change feed keeps for replay.
    pub retention: Retention,
    /// Committed events kept in memory for live subscribers; one that falls further
    /// behind catches up from the events table.
    pub feed_capacity: usize,
    /// Keep a quantised copy of every vector in memory and search that (see
    /// [`vectors`]), rather than scanning the vec0 table: 1 byte per dimension plus
    /// 16 bytes per memory of RSS.
    pub memory_vectors: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            readers: 4,
            max_group_commit: 64,
            // About 600k 384-dimension vectors: address space, not RSS.
            mmap_bytes: 1 << 30,
            // SQLite's own default.
            cache_bytes: 2 << 20,
            retention: Retention {
                max_age: Duration::from_secs(7 * 24 * 3600),
                max_rows: 100_000,
            },
            feed_capacity: 1024,
            memory_vectors: true,
        }
    }
}

/// What can go wrong in the store. Handlers match on the variants; none of them needs
/// to inspect a message.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("no memory has content hash {content_hash}")]
    NotFound { content_hash: String },
    #[error("a memory with the same content already exists ({content_hash})")]
    Duplicate { content_hash: String },
    #[error(
        "the database at {path} holds vectors of model {stored_model:?} ({stored_dimension} dimensions), \
         but the server is configured with {configured_model:?} ({configured_dimension} dimensions); \
         use the model the database was created with, or re-embed the database"
    )]
    ModelMismatch {
        path: PathBuf,
        stored_model: String,
        stored_dimension: usize,
        configured_model: String,
        configured_dimension: usize,
    },
    #[error("a vector has {actual} dimensions; this database holds {expected}")]
    WrongDimension { expected: usize, actual: usize },
    #[error(
        "the database at {path} has schema version {found}, newer than this server's {supported}; \
         upgrade mnemo-server"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("cannot create the database folder {path}: {error}")]
    CreateDir {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the group commit failed, so this write was rolled back: {0}")]
    CommitFailed(String),
    #[error("the writer thread has stopped")]
    WriterGone,
    #[error("a blocking database task failed: {0}")]
    Task(String),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("no read connection available: {0}")]
    Pool(#[from] r2d2::Error),
}

/// The memory database. See the module documentation for how it uses threads.
pub struct Store {
    /// Sends write commands to the writer thread; joins it on drop.
    writer: Writer,
    /// Read-only connections, handed out one query at a time.
    readers: r2d2::Pool<SqliteConnectionManager>,
    /// The in-memory copy of the vectors that searches scan, when enabled.
    vectors: Option<std::sync::Arc<VectorCopy>>,
    /// Every committed event, in order, for live subscribers. A bounded ring: a
    /// subscriber that lags past it is told so and re-reads the events table.
    feed: tokio::sync::broadcast::Sender<std::sync::Arc<EventRow>>,
    path: PathBuf,
    dimension: usize,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, applies pending migrations
    /// and checks that it belongs to `spec`'s model.
    pub fn open(
        path: &Path,
        spec: &EmbeddingSpec,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        vec_extension::register();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| StoreError::CreateDir {
                path: parent.to_path_buf(),
                error,
            })?;
        }
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // A negative cache_size is in KiB.
        let cache_size = -((options.cache_bytes >> 10).max(1) as i64);
        conn.pragma_update(None, "cache_size", cache_size)?;
        migrate(&mut conn, path)?;
        pin_model(&mut conn, path, spec)?;

        let mmap_size = options.mmap_bytes as i64;
        let manager = SqliteConnectionManager::file(path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(move |c| {
                c.busy_timeout(BUSY_TIMEOUT)?;
                c.pragma_update(None, "cache_size", cache_size)?;
                // A vec0 KNN query reads every vector, and one vector by rowid walks
                // its chunk's overflow pages. Through SQLite's page cache each page is
                // a copy; memory-mapped, they read the OS page cache in place: 8.3 ->
                // 3.6 ms per vec0 query at 10k vectors, 3.6 -> 0.5 ms for the 20
                // lookups of a shortlist at 100k (BENCHMARKS.md).
                c.pragma_update(None, "mmap_size", mmap_size)
            });
        let readers = r2d2::Pool::builder()
            .max_size(options.readers.max(1))
            // r2d2's default is 30 s; a query should fail fast rather than hang.
            .connection_timeout(BUSY_TIMEOUT)
            .build(manager)?;

        let (feed, _) = tokio::sync::broadcast::channel(options.feed_capacity.max(1));
        // Filled by the writer thread before its first command (see `vectors`).
        let vectors = options
            .memory_vectors
            .then(|| std::sync::Arc::new(VectorCopy::new(spec.dimension)));
        Ok(Self {
            writer: Writer::spawn(
                conn,
                options.max_group_commit.max(1),
                options.retention,
                feed.clone(),
                vectors.clone(),
            ),
            readers,
            vectors,
            feed,
            path: path.to_path_buf(),
            dimension: spec.dimension,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores a new memory with its vector. Fails with [`StoreError::Duplicate`] if the
    /// content is already stored.
    pub fn insert(&self, record: NewRecord) -> Result<Memory, StoreError> {
        self.check_dimension(&record.vector)?;
        self.writer.submit(Command::Insert(record))
    }

    /// Stores several new memories, each succeeding or failing on its own, in order.
    /// They reach the writer together, so they usually commit as one group.
    pub fn insert_many(&self, records: Vec<NewRecord>) -> Vec<Result<Memory, StoreError>> {
        let mut checked = Vec::with_capacity(records.len());
        let mut commands = Vec::with_capacity(records.len());
        for record in records {
            match self.check_dimension(&record.vector) {
                Ok(()) => {
                    checked.push(None);
                    commands.push(Command::Insert(record));
                }
                Err(e) => checked.push(Some(Err(e))),
            }
        }
        let mut committed = self.writer.submit_many(commands).into_iter();
        checked
            .into_iter()
            .map(|c| c.unwrap_or_else(|| committed.next().unwrap_or(Err(StoreError::WriterGone))))
            .collect()
    }

    /// Whether searches scan the in-memory copy of the vectors (once it has loaded).
    pub fn searches_vector_copy(&self) -> bool {
        self.vectors.as_ref().is_some_and(|v| v.is_ready())
    }

    /// Replaces tags and type and merges metadata, as the patch says.
    pub fn update(&self, content_hash: &str, patch: MemoryPatch) -> Result<Memory, StoreError> {
        self.writer.submit(Command::Update {
            content_hash: content_hash.to_owned(),
            patch,
        })
    }

    /// Deletes a memory and returns what it was.
    pub fn delete(&self, content_hash: &str) -> Result<Memory, StoreError> {
        self.writer.submit(Command::Delete {
            content_hash: content_hash.to_owned(),
        })
    }

    pub fn get(&self, content_hash: &str) -> Result<Memory, StoreError> {
        read::get(&*self.readers.get()?, content_hash)
    }

    /// One page (1-based) of memories matching `filter`, newest first, and the total.
    pub fn list(&self, filter: &Filter, page: u32, page_size: u32) -> Result<Page, StoreError> {
        read::list(&*self.readers.get()?, filter, page, page_size)
    }

    /// The `k` memories matching `filter` whose vectors are closest to `vector`.
    pub fn search(
        &self,
        vector: &[f32],
        k: usize,
        filter: &Filter,
    ) -> Result<Vec<ScoredMemory>, StoreError> {
        self.check_dimension(vector)?;
        match &self.vectors {
            Some(vectors) if vectors.is_ready() => {
                read::search_copy(&*self.readers.get()?, vectors, vector, k, filter)
            }
            _ => read::search(&*self.readers.get()?, vector, k, filter),
        }
    }

    /// Memories matching any word of `query` by full-text search (BM25), best first.
    pub fn keyword_search(
        &self,
        query: &str,
        k: usize,
        filter: &Filter,
    ) -> Result<Vec<Memory>, StoreError> {
        read::keyword_search(&*self.readers.get()?, query, k, filter)
    }

    /// Memories containing `text` (ASCII case ignored), newest first.
    pub fn substring_search(
        &self,
        text: &str,
        k: usize,
        filter: &Filter,
    ) -> Result<Vec<Memory>, StoreError> {
        read::substring_search(&*self.readers.get()?, text, k, filter)
    }

    /// Cosine similarity of `vector` to a stored memory's vector.
    pub fn similarity(&self, vector: &[f32], content_hash: &str) -> Result<f64, StoreError> {
        read::similarity(&*self.readers.get()?, vector, content_hash)
    }

    /// Up to `limit` tags with their memory counts, most used first.
    pub fn tag_counts(&self, limit: u32) -> Result<Vec<(String, u64)>, StoreError> {
        read::tag_counts(&*self.readers.get()?, limit)
    }

    /// Up to `limit` memory types with their counts, most used first.
    pub fn type_counts(&self, limit: u32) -> Result<Vec<(String, u64)>, StoreError> {
        read::type_counts(&*self.readers.get()?, limit)
    }

    /// Bytes on disk: the database file plus its write-ahead log.
    pub fn size_on_disk(&self) -> u64 {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        [self.path.as_path(), wal.as_path()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Refuses a vector of another width before it reaches SQLite.
    fn check_dimension(&self, vector: &[f32]) -> Result<(), StoreError> {
        if vector.len() == self.dimension {
            Ok(())
        } else {
            Err(StoreError::WrongDimension {
                expected: self.dimension,
                actual: vector.len(),
            })
        }
    }

    /// Number of stored memories.
    pub fn count(&self) -> Result<u64, StoreError> {
        read::count(&*self.readers.get()?)
    }

    /// Live committed events from now on. Subscribe before reading the table, then
    /// skip what was already read: no event falls between the two.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<std::sync::Arc<EventRow>> {
        self.feed.subscribe()
    }

    /// The last event sequence number ever assigned (0 before the first).
    pub fn head_seq(&self) -> Result<i64, StoreError> {
        read::head_seq(&*self.readers.get()?)
    }

    /// The oldest event still kept, if any.
    pub fn oldest_seq(&self) -> Result<Option<i64>, StoreError> {
        read::oldest_seq(&*self.readers.get()?)
    }

    /// Up to `limit` change-feed events with a sequence number above `after`, in order.
    pub fn events_after(&self, after: i64, limit: u32) -> Result<Vec<EventRow>, StoreError> {
        read::events_after(&*self.readers.get()?, after, limit)
    }
}

/// Brings the schema up to [`migrations::latest_version`], each step in its own
/// transaction so that a failed step leaves the previous version intact.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let found: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let supported = migrations::latest_version();
    if found > supported {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported,
        });
    }
    for (index, sql) in migrations::MIGRATIONS
        .iter()
        .enumerate()
        .skip(found as usize)
    {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as u32 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// Records the model in a new database (creating its vector table), or checks that an
/// existing database was made with the same one.
fn pin_model(conn: &mut Connection, path: &Path, spec: &EmbeddingSpec) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let meta = |key: &str| -> rusqlite::Result<Option<String>> {
        tx.query_row("SELECT value FROM meta WHERE key = ?", [key], |r| r.get(0))
            .optional()
    };
    match (
        meta(meta_keys::EMBEDDING_MODEL)?,
        meta(meta_keys::EMBEDDING_DIMENSION)?,
    ) {
        (Some(model), Some(dimension)) => {
            let dimension: usize = dimension.parse().unwrap_or(0);
            if model != spec.model_id || dimension != spec.dimension {
                return Err(StoreError::ModelMismatch {
                    path: path.to_path_buf(),
                    stored_model: model,
                    stored_dimension: dimension,
                    configured_model: spec.model_id.clone(),
                    configured_dimension: spec.dimension,
                });
            }
        }
        _ => {
            tx.execute_batch(&migrations::vector_table_sql(spec.dimension))?;
            let mut insert = tx.prepare("INSERT INTO meta (key, value) VALUES (?, ?)")?;
            insert.execute([meta_keys::EMBEDDING_MODEL, &spec.model_id])?;
            insert.execute([meta_keys::EMBEDDING_DIMENSION, &spec.dimension.to_string()])?;
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests;

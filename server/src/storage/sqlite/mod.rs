//! The SQLite backend of [`Storage`]: WAL mode, sqlite-vec vectors and an FTS5 index.
//!
//! # Threading
//!
//! SQLite allows one writer at a time. Rather than let many threads race for the write
//! lock (and surface "database is locked" under load, the failure that per-client
//! processes sharing one file run into), a [`SqliteStore`] owns exactly one read-write
//! connection on a dedicated writer thread. Writes are sent to it as commands and
//! committed in small groups: the thread takes every command already waiting, runs
//! each inside its own savepoint of one transaction, and commits once. One fsync then
//! pays for the whole group, and one bad command rolls back only itself.
//!
//! Reads never wait for the writer. They use a pool of read-only connections, which in
//! WAL mode see the last committed state while a write is in progress.
//!
//! The inherent methods block, which keeps the store easy to drive from plain threads
//! and tests. The [`Storage`] implementation runs each of them on one of tokio's
//! blocking threads, the only place this backend meets async code; nothing here holds
//! a lock across an `.await`.
//!
//! # Modules
//!
//! Imports run one way, down this list: `writer` (the thread, which prunes through
//! `events`, restores through `backup` and leaves checkpoints to `checkpointer`) runs the statements of `write`; `write` appends its event through
//! `events` and reads back what it wrote through `read`; `read` queries with `filter`
//! (a [`Filter`] as SQL), `vectors` (the in-memory copy that searches scan) and `vec`
//! (sqlite-vec's registration and blob format), which `vectors` also decodes with.
//! `events` owns the change-feed table, `migrations` the schema, and `file` what
//! `open` checks before it trusts a file (created private, never empty, writable,
//! intact). `reembed` rewrites every vector with another model, outside a running
//! store.

mod backup;
mod checkpointer;
mod events;
mod file;
mod filter;
mod migrations;
mod pragmas;
mod read;
mod reembed;
mod vec;
mod vectors;
mod write;
mod writer;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use migrations::meta_keys;
use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use tokio::sync::broadcast;

use crate::memory::{EmbeddingSpec, Filter, Memory, MemoryPatch, ScoredMemory};
use crate::storage::{
    BackupStats, EventRow, ExportCursor, NewRecord, Page, RestoreStats, Retention, Storage,
    StorageError, StorageFuture,
};
pub use pragmas::{PragmaError, Pragmas};
pub use reembed::{Reembedded, reembed};
use vectors::VectorCopy;
use writer::{Command, Writer};

/// How long a connection waits for a lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Tunables of a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
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
    /// Keep a quantised copy of every vector in memory and search that (see the
    /// `vectors` module), rather than scanning the vec0 table: 1 byte per dimension plus
    /// 16 bytes per memory of RSS.
    pub memory_vectors: bool,
    /// Longest a read may run before SQLite interrupts it, so no query holds one of
    /// the few read connections for long.
    pub read_timeout: Duration,
    /// `MCP_MEMORY_SQLITE_PRAGMAS`, run on every connection after Mnemo's own
    /// settings, so a value given there wins.
    pub pragmas: Pragmas,
}

impl Default for SqliteOptions {
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
            read_timeout: Duration::from_secs(5),
            pragmas: Pragmas::default(),
        }
    }
}

impl From<rusqlite::Error> for StorageError {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            Some(ErrorCode::OperationInterrupted) => Self::Interrupted,
            Some(ErrorCode::DiskFull) => Self::Full {
                source: Arc::new(error),
            },
            _ => Self::backend("SQLite failed", error),
        }
    }
}

/// How many SQLite virtual-machine steps run between two checks of a read's deadline
/// and cancellation: about a millisecond of work.
const PROGRESS_STEPS: i32 = 1000;

thread_local! {
    /// Set while a blocking thread runs a read for an async caller: the flag that
    /// caller's future raises when it is dropped (the client went away, or the server
    /// is shutting down). Kept per thread so the blocking methods keep their plain
    /// signatures for tests and threads.
    static CANCELLED: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Raises its flag when dropped: held by the future that awaits a blocking read.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A pooled read connection whose statements SQLite interrupts once the read passes
/// its deadline or its caller is gone. The check is removed when it goes back to
/// the pool.
struct Reader(PooledConnection<SqliteConnectionManager>);

impl std::ops::Deref for Reader {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.0
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.0.progress_handler(0, None::<fn() -> bool>);
    }
}

impl From<r2d2::Error> for StorageError {
    fn from(error: r2d2::Error) -> Self {
        Self::backend("no read connection available", error)
    }
}

/// The memory database. See the module documentation for how it uses threads.
///
/// A cheap handle: clones share one database, and the writer thread stops (after the
/// commands already queued) when the last clone is dropped.
#[derive(Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
}

struct Shared {
    /// Sends write commands to the writer thread; joins it on drop.
    writer: Writer,
    /// Read-only connections, handed out one query at a time.
    readers: r2d2::Pool<SqliteConnectionManager>,
    /// The in-memory copy of the vectors that searches scan, when enabled.
    vectors: Option<Arc<VectorCopy>>,
    /// Every committed event, in order, for live subscribers. A bounded ring: a
    /// subscriber that lags past it is told so and re-reads the events table.
    subscribers: writer::Subscribers,
    path: PathBuf,
    /// Shared with the checkpoint thread, so [`SqliteStore::checkpoint`] never meets
    /// it mid-checkpoint.
    checkpoint_turn: checkpointer::CheckpointTurn,
    /// The model the database is pinned to: a restored backup must hold the same.
    spec: EmbeddingSpec,
    dimension: usize,
    read_timeout: Duration,
    /// The writer lock on the file (`file::lock`), released last, after the writer
    /// has closed its connection.
    _lock: std::fs::File,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, applies pending migrations
    /// and checks that it belongs to `spec`'s model.
    pub fn open(
        path: &Path,
        spec: &EmbeddingSpec,
        options: SqliteOptions,
    ) -> Result<Self, StorageError> {
        vec::register();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| {
                StorageError::backend(
                    format!("cannot create the database folder {}", parent.display()),
                    error,
                )
            })?;
        }
        file::prepare(path)?;
        let lock = file::lock(path)?;
        // A negative cache_size is in KiB.
        let cache_size = -((options.cache_bytes >> 10).max(1) as i64);
        for name in &options.pragmas.unknown {
            tracing::warn!(
                pragma = %name,
                "MCP_MEMORY_SQLITE_PRAGMAS names a pragma Mnemo does not apply; it is ignored"
            );
        }
        let pragmas = options.pragmas.clone();
        let mut conn =
            open_writer(path, cache_size, &pragmas).map_err(|e| file::opening_error(path, e))?;
        file::verify(&conn, path)?;
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
                c.pragma_update(None, "mmap_size", mmap_size)?;
                pragmas.apply_to(c)
            });
        let readers = r2d2::Pool::builder()
            .max_size(options.readers.max(1))
            // r2d2's default is 30 s; a query should fail fast rather than hang.
            .connection_timeout(BUSY_TIMEOUT)
            .build(manager)?;

        let (subscribers, _) = broadcast::channel(options.feed_capacity.max(1));
        // Filled by the writer thread before its first command (see `vectors`).
        let vectors = options
            .memory_vectors
            .then(|| Arc::new(VectorCopy::new(spec.dimension)));
        let checkpoint_turn = checkpointer::CheckpointTurn::default();
        Ok(Self {
            shared: Arc::new(Shared {
                writer: Writer::spawn(
                    conn,
                    options.max_group_commit.max(1),
                    options.retention,
                    subscribers.clone(),
                    vectors.clone(),
                    Arc::clone(&checkpoint_turn),
                ),
                checkpoint_turn,
                readers,
                vectors,
                subscribers,
                path: path.to_path_buf(),
                spec: spec.clone(),
                dimension: spec.dimension,
                read_timeout: options.read_timeout,
                _lock: lock,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Stores a new memory with its vector. Fails with [`StorageError::Duplicate`] if
    /// the content is already stored.
    pub fn insert(&self, record: NewRecord) -> Result<Memory, StorageError> {
        self.check_dimension(&record.vector)?;
        self.shared.writer.submit(Command::Insert(record))
    }

    /// Stores several new memories, each succeeding or failing on its own, in order.
    /// They reach the writer together, so they usually commit as one group.
    pub fn insert_many(&self, records: Vec<NewRecord>) -> Vec<Result<Memory, StorageError>> {
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
        let mut committed = self.shared.writer.submit_many(commands).into_iter();
        checked
            .into_iter()
            .map(|c| c.unwrap_or_else(|| committed.next().unwrap_or(Err(StorageError::Stopped))))
            .collect()
    }

    /// Whether searches scan the in-memory copy of the vectors (once it has loaded).
    pub fn searches_vector_copy(&self) -> bool {
        self.shared.vectors.as_ref().is_some_and(|v| v.is_ready())
    }

    /// Replaces tags and type and merges metadata, as the patch says.
    pub fn update(&self, content_hash: &str, patch: MemoryPatch) -> Result<Memory, StorageError> {
        self.shared.writer.submit(Command::Update {
            content_hash: content_hash.to_owned(),
            patch,
        })
    }

    /// Deletes a memory and returns what it was.
    pub fn delete(&self, content_hash: &str) -> Result<Memory, StorageError> {
        self.shared.writer.submit(Command::Delete {
            content_hash: content_hash.to_owned(),
        })
    }

    pub fn get(&self, content_hash: &str) -> Result<Memory, StorageError> {
        read::get(&*self.reader()?, content_hash)
    }

    /// Whether each content hash is stored, in order.
    pub fn contains(&self, content_hashes: &[String]) -> Result<Vec<bool>, StorageError> {
        content_hashes
            .iter()
            .map(|hash| match self.get(hash) {
                Ok(_) => Ok(true),
                Err(StorageError::NotFound { .. }) => Ok(false),
                Err(e) => Err(e),
            })
            .collect()
    }

    /// One page (1-based) of memories matching `filter`, newest first, and the total.
    pub fn list(&self, filter: &Filter, page: u32, page_size: u32) -> Result<Page, StorageError> {
        read::list(&*self.reader()?, filter, page, page_size)
    }

    /// Up to `limit` memories after `after`, in export order.
    pub fn export_page(
        &self,
        after: Option<&ExportCursor>,
        limit: u32,
    ) -> Result<Vec<Memory>, StorageError> {
        read::export_page(&*self.reader()?, after, limit)
    }

    /// The `k` memories matching `filter` whose vectors are closest to `vector`.
    pub fn search(
        &self,
        vector: &[f32],
        k: usize,
        filter: &Filter,
    ) -> Result<Vec<ScoredMemory>, StorageError> {
        self.check_dimension(vector)?;
        match &self.shared.vectors {
            Some(vectors) if vectors.is_ready() => {
                read::search_copy(&*self.reader()?, vectors, vector, k, filter)
            }
            _ => read::search(&*self.reader()?, vector, k, filter),
        }
    }

    /// Memories matching any word of `query` by full-text search (BM25), best first.
    pub fn keyword_search(
        &self,
        query: &str,
        k: usize,
        filter: &Filter,
    ) -> Result<Vec<Memory>, StorageError> {
        read::keyword_search(&*self.reader()?, query, k, filter)
    }

    /// Memories containing `text` (ASCII case ignored), newest first.
    pub fn substring_search(
        &self,
        text: &str,
        k: usize,
        filter: &Filter,
    ) -> Result<Vec<Memory>, StorageError> {
        read::substring_search(&*self.reader()?, text, k, filter)
    }

    /// Cosine similarity of `vector` to each named memory's vector, on one connection.
    pub fn similarities(
        &self,
        vector: &[f32],
        content_hashes: &[String],
    ) -> Result<Vec<f64>, StorageError> {
        let reader = self.reader()?;
        content_hashes
            .iter()
            .map(|hash| read::similarity(&reader, vector, hash))
            .collect()
    }

    /// The stored vector of one memory.
    pub fn stored_vector(&self, content_hash: &str) -> Result<Vec<f32>, StorageError> {
        read::stored_vector(&*self.reader()?, content_hash)
    }

    /// Up to `limit` tags with their memory counts, most used first.
    pub fn tag_counts(&self, limit: u32) -> Result<Vec<(String, u64)>, StorageError> {
        read::tag_counts(&*self.reader()?, limit)
    }

    /// Up to `limit` memory types with their counts, most used first.
    pub fn type_counts(&self, limit: u32) -> Result<Vec<(String, u64)>, StorageError> {
        read::type_counts(&*self.reader()?, limit)
    }

    /// Memories created per day since `since`, the days shifted by `offset` seconds.
    pub fn daily_counts(&self, since: f64, offset: i32) -> Result<Vec<(i64, u64)>, StorageError> {
        read::daily_counts(&*self.reader()?, since, offset)
    }

    /// Bytes on disk: the database file plus its write-ahead log.
    pub fn size_on_disk(&self) -> u64 {
        let mut wal = self.shared.path.clone().into_os_string();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        [self.shared.path.as_path(), wal.as_path()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Copies the write-ahead log into the database file and empties it, so the file
    /// alone holds every committed write (what a copy of it needs). Waits for a write
    /// in progress, at most the busy timeout.
    ///
    /// Another process reading the log keeps it: Litestream holds a read transaction
    /// on it for as long as it replicates and checkpoints by itself. Then the log is
    /// copied as far as that reader allows, and the server does not wait for it (a
    /// stop would otherwise hang for the busy timeout and fail).
    pub fn checkpoint(&self) -> Result<(), StorageError> {
        let _turn = checkpointer::take_turn(&self.shared.checkpoint_turn);
        let conn = Connection::open(&self.shared.path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(0))?;
        if busy != 0 {
            return Err(StorageError::backend(
                "checkpointing the write-ahead log",
                std::io::Error::other("a writer kept the log busy"),
            ));
        }
        // No waiting now: a reader still on the log is another process's.
        conn.busy_timeout(Duration::ZERO)?;
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy != 0 {
            tracing::info!(
                "another process (Litestream?) is reading the write-ahead log, so it is left \
                 for that process to checkpoint"
            );
        }
        Ok(())
    }

    /// Writes a consistent, checked copy of the database to the new file `dest`
    /// without stopping writes (see the `backup` module).
    pub fn backup(&self, dest: &Path) -> Result<BackupStats, StorageError> {
        backup::backup(&self.shared.path, dest)
    }

    /// Replaces the database with the backup at `source` (see the `backup` module):
    /// it is copied, checked and migrated beside the live file first, so a damaged
    /// backup or one of another model leaves the live database as it was.
    pub fn restore(&self, source: &Path, label: &str) -> Result<RestoreStats, StorageError> {
        let staging = backup::staging_path(&self.shared.path);
        let conn = backup::stage(source, &staging, &self.shared.spec)?;
        let result = self.shared.writer.restore(conn, label.to_owned());
        backup::remove_with_companions(&staging);
        result
    }

    /// The model recorded in the database at `path`, if it is a Mnemo database:
    /// what an offline command opens it with, without loading the model.
    pub fn pinned_model(path: &Path) -> Result<Option<EmbeddingSpec>, StorageError> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| file::opening_error(path, e))?;
        Ok(backup::read_pin(&conn)
            .map_err(|e| file::opening_error(path, e))?
            .map(|(model_id, dimension)| EmbeddingSpec {
                model_id,
                dimension,
            }))
    }

    /// A read connection bounded by [`SqliteOptions::read_timeout`] and, on a blocking
    /// thread serving an async caller, by that caller's cancellation.
    fn reader(&self) -> Result<Reader, StorageError> {
        let conn = self.shared.readers.get()?;
        let deadline = Instant::now() + self.shared.read_timeout;
        let cancelled = CANCELLED.with(|c| c.borrow().clone());
        conn.progress_handler(
            PROGRESS_STEPS,
            Some(move || {
                Instant::now() >= deadline
                    || cancelled
                        .as_ref()
                        .is_some_and(|c| c.load(Ordering::Relaxed))
            }),
        )?;
        Ok(Reader(conn))
    }

    /// Refuses a vector of another width before it reaches SQLite.
    fn check_dimension(&self, vector: &[f32]) -> Result<(), StorageError> {
        StorageError::check_dimension(self.shared.dimension, vector)
    }

    pub fn count(&self) -> Result<u64, StorageError> {
        read::count(&*self.reader()?)
    }

    /// Live committed events from now on. Subscribe before reading the table, then
    /// skip what was already read: no event falls between the two.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventRow>> {
        self.shared.subscribers.subscribe()
    }

    /// The last event sequence number ever assigned (0 before the first).
    pub fn head_seq(&self) -> Result<i64, StorageError> {
        events::head_seq(&*self.reader()?)
    }

    /// The oldest event still kept, if any.
    pub fn oldest_seq(&self) -> Result<Option<i64>, StorageError> {
        events::oldest_seq(&*self.reader()?)
    }

    /// Up to `limit` change-feed events with a sequence number above `after`, in order.
    pub fn events_after(&self, after: i64, limit: u32) -> Result<Vec<EventRow>, StorageError> {
        events::events_after(&*self.reader()?, after, limit)
    }

    /// Runs `call` on one of tokio's blocking threads with a handle to this store: how
    /// every [`Storage`] method reaches the blocking methods above.
    fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&SqliteStore) -> Result<T, StorageError> + Send + 'static,
    ) -> StorageFuture<'static, T> {
        let store = self.clone();
        let cancelled = Arc::new(AtomicBool::new(false));
        let guard = CancelOnDrop(Arc::clone(&cancelled));
        Box::pin(async move {
            // Dropped with this future, which stops the read it waits for.
            let _guard = guard;
            tokio::task::spawn_blocking(move || {
                CANCELLED.with(|c| *c.borrow_mut() = Some(cancelled));
                let result = call(&store);
                CANCELLED.with(|c| *c.borrow_mut() = None);
                result
            })
            .await
            .map_err(|e| StorageError::backend("a blocking database task failed", e))?
        })
    }
}

/// Each async method runs the blocking method of the same name through
/// `SqliteStore::blocking`, after copying its borrowed arguments, since a blocking
/// thread cannot borrow from the caller.
impl Storage for SqliteStore {
    fn insert(&self, record: NewRecord) -> StorageFuture<'_, Memory> {
        self.blocking(move |store| store.insert(record))
    }

    fn insert_many(
        &self,
        records: Vec<NewRecord>,
    ) -> StorageFuture<'_, Vec<Result<Memory, StorageError>>> {
        self.blocking(move |store| Ok(store.insert_many(records)))
    }

    fn update<'a>(
        &'a self,
        content_hash: &'a str,
        patch: MemoryPatch,
    ) -> StorageFuture<'a, Memory> {
        let hash = content_hash.to_owned();
        self.blocking(move |store| store.update(&hash, patch))
    }

    fn delete<'a>(&'a self, content_hash: &'a str) -> StorageFuture<'a, Memory> {
        let hash = content_hash.to_owned();
        self.blocking(move |store| store.delete(&hash))
    }

    fn get<'a>(&'a self, content_hash: &'a str) -> StorageFuture<'a, Memory> {
        let hash = content_hash.to_owned();
        self.blocking(move |store| store.get(&hash))
    }

    fn contains<'a>(&'a self, content_hashes: &'a [String]) -> StorageFuture<'a, Vec<bool>> {
        let hashes = content_hashes.to_vec();
        self.blocking(move |store| store.contains(&hashes))
    }

    fn list<'a>(
        &'a self,
        filter: &'a Filter,
        page: u32,
        page_size: u32,
    ) -> StorageFuture<'a, Page> {
        let filter = filter.clone();
        self.blocking(move |store| store.list(&filter, page, page_size))
    }

    fn count(&self) -> StorageFuture<'_, u64> {
        self.blocking(SqliteStore::count)
    }

    fn export_page<'a>(
        &'a self,
        after: Option<&'a ExportCursor>,
        limit: u32,
    ) -> StorageFuture<'a, Vec<Memory>> {
        let after = after.cloned();
        self.blocking(move |store| store.export_page(after.as_ref(), limit))
    }

    fn tag_counts(&self, limit: u32) -> StorageFuture<'_, Vec<(String, u64)>> {
        self.blocking(move |store| store.tag_counts(limit))
    }

    fn type_counts(&self, limit: u32) -> StorageFuture<'_, Vec<(String, u64)>> {
        self.blocking(move |store| store.type_counts(limit))
    }

    fn daily_counts(&self, since: f64, offset: i32) -> StorageFuture<'_, Vec<(i64, u64)>> {
        self.blocking(move |store| store.daily_counts(since, offset))
    }

    fn search<'a>(
        &'a self,
        vector: &'a [f32],
        k: usize,
        filter: &'a Filter,
    ) -> StorageFuture<'a, Vec<ScoredMemory>> {
        let (vector, filter) = (vector.to_vec(), filter.clone());
        self.blocking(move |store| store.search(&vector, k, &filter))
    }

    fn keyword_search<'a>(
        &'a self,
        query: &'a str,
        k: usize,
        filter: &'a Filter,
    ) -> StorageFuture<'a, Vec<Memory>> {
        let (query, filter) = (query.to_owned(), filter.clone());
        self.blocking(move |store| store.keyword_search(&query, k, &filter))
    }

    fn substring_search<'a>(
        &'a self,
        text: &'a str,
        k: usize,
        filter: &'a Filter,
    ) -> StorageFuture<'a, Vec<Memory>> {
        let (text, filter) = (text.to_owned(), filter.clone());
        self.blocking(move |store| store.substring_search(&text, k, &filter))
    }

    fn similarities<'a>(
        &'a self,
        vector: &'a [f32],
        content_hashes: &'a [String],
    ) -> StorageFuture<'a, Vec<f64>> {
        let (vector, hashes) = (vector.to_vec(), content_hashes.to_vec());
        self.blocking(move |store| store.similarities(&vector, &hashes))
    }

    fn stored_vector<'a>(&'a self, content_hash: &'a str) -> StorageFuture<'a, Vec<f32>> {
        let hash = content_hash.to_owned();
        self.blocking(move |store| store.stored_vector(&hash))
    }

    fn events_after(&self, after: i64, limit: u32) -> StorageFuture<'_, Vec<EventRow>> {
        self.blocking(move |store| store.events_after(after, limit))
    }

    fn head_seq(&self) -> StorageFuture<'_, i64> {
        self.blocking(SqliteStore::head_seq)
    }

    fn oldest_seq(&self) -> StorageFuture<'_, Option<i64>> {
        self.blocking(SqliteStore::oldest_seq)
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<EventRow>> {
        SqliteStore::subscribe(self)
    }

    fn backend(&self) -> &'static str {
        "sqlite-vec"
    }

    fn location(&self) -> String {
        self.path().display().to_string()
    }

    fn size_on_disk(&self) -> StorageFuture<'_, u64> {
        self.blocking(|store| Ok(store.size_on_disk()))
    }

    fn close(&self) -> StorageFuture<'_, ()> {
        self.blocking(SqliteStore::checkpoint)
    }

    fn backup<'a>(&'a self, dest: &'a Path) -> StorageFuture<'a, BackupStats> {
        let dest = dest.to_path_buf();
        self.blocking(move |store| SqliteStore::backup(store, &dest))
    }

    fn restore<'a>(&'a self, source: &'a Path, label: &'a str) -> StorageFuture<'a, RestoreStats> {
        let (source, label) = (source.to_path_buf(), label.to_owned());
        self.blocking(move |store| SqliteStore::restore(store, &source, &label))
    }
}

/// The one read-write connection, in WAL mode. Its first statement reads the file, so
/// a file that is not a database fails here.
fn open_writer(path: &Path, cache_size: i64, pragmas: &Pragmas) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "cache_size", cache_size)?;
    // The writer's mmap_size stays SQLite's default unless the user sets one.
    pragmas.apply_to(&conn)?;
    Ok(conn)
}

/// Brings the schema up to [`migrations::latest_version`], each step in its own
/// transaction so that a failed step leaves the previous version intact.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StorageError> {
    let found: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let supported = migrations::latest_version();
    if found > supported {
        return Err(StorageError::SchemaTooNew {
            location: path.display().to_string(),
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
fn pin_model(conn: &mut Connection, path: &Path, spec: &EmbeddingSpec) -> Result<(), StorageError> {
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
                return Err(StorageError::ModelMismatch {
                    location: path.display().to_string(),
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

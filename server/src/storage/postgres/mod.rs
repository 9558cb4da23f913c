//! The PostgreSQL backend of [`Storage`]: pgvector for vectors, a `tsvector` with a
//! GIN index for full-text search, and the events table as the change feed, so that
//! several Mnemo servers can share one database.
//!
//! # Concurrency
//!
//! There is no writer thread: every call borrows a connection from a pool
//! (deadpool-postgres over tokio-postgres) and awaits PostgreSQL, which never blocks
//! the runtime. Writes still take turns, across every server of the database, by
//! locking the feed's row first (see `write`), which keeps sequence numbers gap-free
//! and in commit order. Reads run beside them under MVCC.
//!
//! Each server follows the events table itself (see `feed`), woken by its own writes
//! and by the `NOTIFY` of other servers' writes, so a subscriber of any server hears
//! every write, in order, with the same sequence numbers.
//!
//! # Failure
//!
//! A database that is down, restarting or unreachable is
//! [`StorageError::Unavailable`] within the connect timeout, never a hang: the pool
//! gives up waiting, every statement carries a server-side timeout, and every call a
//! client-side one. Pooled connections are checked before use, so once the database
//! is back the next request succeeds without a restart.
//!
//! # Modules
//!
//! `connect` (URL, TLS, pool, error mapping) → `schema` (migrations, model pin,
//! vector index) → `write` (each write's statements and its event) → `read` (queries,
//! with `filter`) and `feed` (the follower and the listener); `keys` holds the managed
//! API keys that every server of the database shares.

mod connect;
mod feed;
mod filter;
mod keys;
mod read;
mod schema;
mod write;

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Client, Pool};
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::memory::{EmbeddingSpec, Filter, Memory, MemoryPatch, ScoredMemory, now_epoch};
use crate::storage::{
    EventRow, ExportCursor, NewRecord, Page, Retention, Storage, StorageError, StorageFuture,
};
use crate::telemetry;
use connect::Target;
use feed::Feed;
pub use keys::{KeyChangeError, KeyRow, PostgresKeys};

/// Tunables of a [`PostgresStore`].
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Connections kept open to the database.
    pub pool_size: usize,
    /// Longest wait to open a connection or borrow one from the pool.
    pub connect_timeout: Duration,
    /// Longest any one statement may run before PostgreSQL cancels it.
    pub statement_timeout: Duration,
    /// How long, and how many, events the change feed keeps for replay.
    pub retention: Retention,
    /// Committed events kept in memory for live subscribers.
    pub feed_capacity: usize,
    /// How nearest neighbours are found.
    pub index: VectorIndex,
}

/// How the PostgreSQL backend finds nearest neighbours (`MNEMO_PG_INDEX`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum VectorIndex {
    /// Every row the filter lets through is compared: recall@10 is 1.0, and a search
    /// costs time in proportion to the memories.
    #[default]
    Exact,
    /// pgvector's HNSW graph, walked with iterative index scans so that a filtered
    /// search still fills its results: much faster on large databases, at a recall
    /// below 1.0 (BENCHMARKS.md measures it).
    Hnsw,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            connect_timeout: connect::DEFAULT_CONNECT_TIMEOUT,
            statement_timeout: Duration::from_secs(5),
            retention: Retention {
                max_age: Duration::from_secs(7 * 24 * 3600),
                max_rows: 100_000,
            },
            feed_capacity: 1024,
            index: VectorIndex::Exact,
        }
    }
}

/// The memory database in PostgreSQL. A cheap handle: clones share one pool, and the
/// feed's tasks stop when the last clone is dropped.
#[derive(Clone)]
pub struct PostgresStore {
    shared: Arc<Shared>,
}

struct Shared {
    pool: Pool,
    feed: Feed,
    location: String,
    dimension: usize,
    index: VectorIndex,
    retention: Retention,
    /// The client-side bound on a whole call: a statement's timeout plus a
    /// connection's, so a database that stops answering mid-call is still reported.
    call_timeout: Duration,
    /// Stops the feed's tasks with the last handle.
    _stop: DropGuard,
}

impl PostgresStore {
    /// Connects to the database at `url`, applies pending migrations and checks that
    /// it belongs to `spec`'s model.
    pub async fn open(
        url: &str,
        spec: &EmbeddingSpec,
        options: PostgresOptions,
    ) -> Result<Self, StorageError> {
        let target = Target::parse(url, &options)?;
        let pool = target.pool(options.pool_size)?;
        let head = {
            let mut client = pool.get().await?;
            schema::migrate(&mut client, &target.location).await?;
            schema::pin_model(&mut client, &target.location, spec).await?;
            schema::vector_index(&mut client, options.index).await?;
            read::head_seq(&client).await?
        };
        let stop = CancellationToken::new();
        let feed = Feed::spawn(
            pool.clone(),
            target.clone(),
            head,
            options.feed_capacity,
            stop.clone(),
        );
        Ok(Self {
            shared: Arc::new(Shared {
                pool,
                feed,
                location: target.location,
                dimension: spec.dimension,
                index: options.index,
                retention: options.retention,
                call_timeout: options.statement_timeout + options.connect_timeout,
                _stop: stop.drop_guard(),
            }),
        })
    }

    async fn client(&self) -> Result<Client, StorageError> {
        Ok(self.shared.pool.get().await?)
    }

    /// Runs `call` within the client-side bound.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        tokio::time::timeout(self.shared.call_timeout, call)
            .await
            .map_err(|elapsed| StorageError::Unavailable {
                context: format!(
                    "PostgreSQL did not answer within {:?}",
                    self.shared.call_timeout
                ),
                source: Box::new(elapsed),
            })?
    }

    /// Refuses a vector of another width before it reaches the database.
    fn check_dimension(&self, vector: &[f32]) -> Result<(), StorageError> {
        StorageError::check_dimension(self.shared.dimension, vector)
    }

    /// Inserts each record in a savepoint of one transaction, so each succeeds or
    /// fails on its own and the batch costs one commit.
    async fn insert_records(
        &self,
        records: Vec<NewRecord>,
    ) -> Result<Vec<Result<Memory, StorageError>>, StorageError> {
        let mut results: Vec<Option<Result<Memory, StorageError>>> = records
            .iter()
            .map(|r| self.check_dimension(&r.vector).err().map(Err))
            .collect();
        if results.iter().all(Option::is_some) {
            return Ok(results.into_iter().flatten().collect());
        }
        let mut client = self.client().await?;
        let started = Instant::now();
        let mut tx = client.transaction().await?;
        let mut head = write::lock_feed(&tx).await?;
        let now = now_epoch();
        let single = records.len() == 1;
        for (record, result) in records.iter().zip(results.iter_mut()) {
            if result.is_some() {
                continue;
            }
            let outcome = if single {
                // One record needs no savepoint: a failure rolls back everything.
                write::insert(&tx, &mut head, record, now).await
            } else {
                let savepoint = tx.savepoint("record").await?;
                let outcome = write::insert(&savepoint, &mut head, record, now).await;
                if outcome.is_ok() {
                    savepoint.commit().await?;
                } else {
                    savepoint.rollback().await?;
                }
                outcome
            };
            *result = Some(outcome.map(|(memory, _)| memory));
        }
        write::finish(&tx, &head, &self.shared.retention, now).await?;
        let results: Vec<Result<Memory, StorageError>> = results.into_iter().flatten().collect();
        if head.moved {
            if let Err(e) = tx.commit().await {
                metrics::counter!(telemetry::COMMIT_FAILURES, "backend" => "postgresql")
                    .increment(1);
                let failed = commit_failed(e);
                return Ok(results
                    .into_iter()
                    .map(|r| r.and_then(|_| Err(failed())))
                    .collect());
            }
            committed(started, results.len());
        } else {
            tx.rollback().await?;
        }
        drop(client);
        self.announce(head.moved.then_some(head.seq)).await;
        Ok(results)
    }

    /// Commits a one-memory write (update or delete) made by `apply`.
    async fn write_one(&self, apply: WriteOne<'_>) -> Result<Memory, StorageError> {
        let mut client = self.client().await?;
        let started = Instant::now();
        let tx = client.transaction().await?;
        let mut head = write::lock_feed(&tx).await?;
        let now = now_epoch();
        let (memory, _event) = match apply {
            WriteOne::Update(hash, patch) => {
                write::update(&tx, &mut head, hash, patch, now).await?
            }
            WriteOne::Delete(hash) => write::delete(&tx, &mut head, hash, now).await?,
        };
        write::finish(&tx, &head, &self.shared.retention, now).await?;
        if let Err(e) = tx.commit().await {
            metrics::counter!(telemetry::COMMIT_FAILURES, "backend" => "postgresql").increment(1);
            return Err(commit_failed(e)());
        }
        committed(started, 1);
        drop(client);
        self.announce(Some(head.seq)).await;
        Ok(memory)
    }

    /// Waits (briefly) until this server's subscribers have been sent `seq`.
    async fn announce(&self, seq: Option<i64>) {
        if let Some(seq) = seq {
            self.shared.feed.sent(seq, self.shared.call_timeout).await;
        }
    }
}

/// Records a write transaction of `writes` writes that committed, begun at `started`
/// (the wait for the feed's row lock included: that is where servers take turns).
fn committed(started: Instant, writes: usize) {
    metrics::histogram!(telemetry::COMMIT_DURATION, "backend" => "postgresql")
        .record(started.elapsed());
    metrics::histogram!(telemetry::WRITE_GROUP, "backend" => "postgresql").record(writes as f64);
}

/// The error each write of a transaction whose commit failed gets. A lost connection
/// leaves the outcome unknown: that is [`StorageError::Unavailable`] (503), and a
/// retry is safe, since the same content is refused as a duplicate if it did commit.
/// Otherwise the transaction rolled back: [`StorageError::CommitFailed`].
fn commit_failed(error: tokio_postgres::Error) -> impl Fn() -> StorageError {
    let message = error.to_string();
    let lost = matches!(StorageError::from(error), StorageError::Unavailable { .. });
    move || {
        if lost {
            StorageError::Unavailable {
                context:
                    "the connection was lost while the write committed, so it may or may not have"
                        .into(),
                source: message.clone().into(),
            }
        } else {
            StorageError::CommitFailed {
                source: Arc::new(std::io::Error::other(message.clone())),
            }
        }
    }
}

/// The one-memory writes [`PostgresStore::write_one`] runs.
enum WriteOne<'a> {
    Update(&'a str, MemoryPatch),
    Delete(&'a str),
}

impl Storage for PostgresStore {
    fn insert(&self, record: NewRecord) -> StorageFuture<'_, Memory> {
        Box::pin(self.bounded(async move {
            self.insert_records(vec![record])
                .await?
                .pop()
                .unwrap_or(Err(StorageError::Stopped))
        }))
    }

    fn insert_many(
        &self,
        records: Vec<NewRecord>,
    ) -> StorageFuture<'_, Vec<Result<Memory, StorageError>>> {
        Box::pin(self.bounded(self.insert_records(records)))
    }

    fn update<'a>(
        &'a self,
        content_hash: &'a str,
        patch: MemoryPatch,
    ) -> StorageFuture<'a, Memory> {
        Box::pin(self.bounded(self.write_one(WriteOne::Update(content_hash, patch))))
    }

    fn delete<'a>(&'a self, content_hash: &'a str) -> StorageFuture<'a, Memory> {
        Box::pin(self.bounded(self.write_one(WriteOne::Delete(content_hash))))
    }

    fn get<'a>(&'a self, content_hash: &'a str) -> StorageFuture<'a, Memory> {
        Box::pin(self.bounded(async move { read::get(&self.client().await?, content_hash).await }))
    }

    fn contains<'a>(&'a self, content_hashes: &'a [String]) -> StorageFuture<'a, Vec<bool>> {
        Box::pin(
            self.bounded(
                async move { read::contains(&self.client().await?, content_hashes).await },
            ),
        )
    }

    fn list<'a>(
        &'a self,
        filter: &'a Filter,
        page: u32,
        page_size: u32,
    ) -> StorageFuture<'a, Page> {
        Box::pin(self.bounded(async move {
            read::list(&self.client().await?, filter, page, page_size).await
        }))
    }

    fn count(&self) -> StorageFuture<'_, u64> {
        Box::pin(self.bounded(async move { read::count(&self.client().await?).await }))
    }

    fn export_page<'a>(
        &'a self,
        after: Option<&'a ExportCursor>,
        limit: u32,
    ) -> StorageFuture<'a, Vec<Memory>> {
        Box::pin(
            self.bounded(
                async move { read::export_page(&self.client().await?, after, limit).await },
            ),
        )
    }

    fn tag_counts(&self, limit: u32) -> StorageFuture<'_, Vec<(String, u64)>> {
        Box::pin(self.bounded(async move { read::tag_counts(&self.client().await?, limit).await }))
    }

    fn type_counts(&self, limit: u32) -> StorageFuture<'_, Vec<(String, u64)>> {
        Box::pin(self.bounded(async move { read::type_counts(&self.client().await?, limit).await }))
    }

    fn daily_counts(&self, since: f64, offset: i32) -> StorageFuture<'_, Vec<(i64, u64)>> {
        Box::pin(
            self.bounded(
                async move { read::daily_counts(&self.client().await?, since, offset).await },
            ),
        )
    }

    fn search<'a>(
        &'a self,
        vector: &'a [f32],
        k: usize,
        filter: &'a Filter,
    ) -> StorageFuture<'a, Vec<ScoredMemory>> {
        Box::pin(self.bounded(async move {
            self.check_dimension(vector)?;
            read::search(&self.client().await?, vector, k, filter, self.shared.index).await
        }))
    }

    fn keyword_search<'a>(
        &'a self,
        query: &'a str,
        k: usize,
        filter: &'a Filter,
    ) -> StorageFuture<'a, Vec<Memory>> {
        Box::pin(self.bounded(async move {
            read::keyword_search(&self.client().await?, query, k, filter).await
        }))
    }

    fn substring_search<'a>(
        &'a self,
        text: &'a str,
        k: usize,
        filter: &'a Filter,
    ) -> StorageFuture<'a, Vec<Memory>> {
        Box::pin(self.bounded(async move {
            read::substring_search(&self.client().await?, text, k, filter).await
        }))
    }

    fn similarities<'a>(
        &'a self,
        vector: &'a [f32],
        content_hashes: &'a [String],
    ) -> StorageFuture<'a, Vec<f64>> {
        Box::pin(self.bounded(async move {
            self.check_dimension(vector)?;
            read::similarities(&self.client().await?, vector, content_hashes).await
        }))
    }

    fn stored_vector<'a>(&'a self, content_hash: &'a str) -> StorageFuture<'a, Vec<f32>> {
        Box::pin(self.bounded(async move {
            read::refuse_nul_hash(content_hash)?;
            let rows = read::query(
                &self.client().await?,
                "SELECT embedding FROM memories WHERE content_hash = $1",
                &[&content_hash],
            )
            .await?;
            let row = rows.first().ok_or_else(|| StorageError::NotFound {
                content_hash: content_hash.to_owned(),
            })?;
            Ok(row.try_get::<_, pgvector::Vector>(0)?.to_vec())
        }))
    }

    fn events_after(&self, after: i64, limit: u32) -> StorageFuture<'_, Vec<EventRow>> {
        Box::pin(
            self.bounded(
                async move { read::events_after(&self.client().await?, after, limit).await },
            ),
        )
    }

    fn head_seq(&self) -> StorageFuture<'_, i64> {
        Box::pin(self.bounded(async move { read::head_seq(&self.client().await?).await }))
    }

    fn oldest_seq(&self) -> StorageFuture<'_, Option<i64>> {
        Box::pin(self.bounded(async move { read::oldest_seq(&self.client().await?).await }))
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<EventRow>> {
        self.shared.feed.subscribe()
    }

    fn backend(&self) -> &'static str {
        "postgresql"
    }

    fn location(&self) -> String {
        self.shared.location.clone()
    }

    fn size_on_disk(&self) -> StorageFuture<'_, u64> {
        Box::pin(self.bounded(async move { read::size_on_disk(&self.client().await?).await }))
    }
}

#[cfg(test)]
mod tests;

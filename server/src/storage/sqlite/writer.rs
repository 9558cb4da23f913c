//! The writer thread: the only owner of the read-write connection, committing the
//! commands it receives in groups.

use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use rusqlite::{Connection, TransactionBehavior};

use super::backup;
use super::checkpointer::{CheckpointTurn, Checkpointer};
use super::events;
use super::vectors::VectorCopy;
use super::write::{self, Written};
use crate::memory::{Memory, MemoryPatch};
use crate::storage::{EventRow, NewRecord, RestoreStats, Retention, StorageError};
use crate::telemetry;

/// Commands waiting beyond this block their senders, which bounds the queue's memory.
const QUEUE_DEPTH: usize = 1024;

/// A change to the database.
pub(super) enum Command {
    Insert(NewRecord),
    Update {
        content_hash: String,
        patch: MemoryPatch,
    },
    Delete {
        content_hash: String,
    },
}

/// What the thread is asked to do: a write, committed with others in a group, or a
/// restore, which runs alone between two groups.
enum Job {
    Write {
        command: Command,
        reply: mpsc::SyncSender<Result<Memory, StorageError>>,
    },
    Restore {
        /// The checked and migrated copy of the backup (`backup::stage`).
        staging: Connection,
        /// The backup's name, for the restore's event.
        label: String,
        reply: mpsc::SyncSender<Result<RestoreStats, StorageError>>,
    },
}

/// Handle to the writer thread. Dropping it lets the thread finish the commands already
/// queued, then waits for it, so the connection is closed when the drop returns.
pub(super) struct Writer {
    jobs: Option<mpsc::SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread. Each committed event is sent to `subscribers` after its group
    /// commits, never before, so a subscriber never sees a change that could still
    /// roll back.
    pub fn spawn(
        conn: Connection,
        max_group: usize,
        retention: Retention,
        subscribers: Subscribers,
        vectors: Option<Arc<VectorCopy>>,
        checkpoint_turn: CheckpointTurn,
    ) -> Self {
        let (jobs, queue) = mpsc::sync_channel(QUEUE_DEPTH);
        let thread = std::thread::Builder::new()
            .name("mnemo-writer".into())
            .spawn(move || {
                run(
                    conn,
                    queue,
                    max_group,
                    retention,
                    subscribers,
                    vectors,
                    checkpoint_turn,
                )
            })
            .expect("the OS can start the writer thread");
        Self {
            jobs: Some(jobs),
            thread: Some(thread),
        }
    }

    /// Queues a command and waits until its group has committed.
    pub fn submit(&self, command: Command) -> Result<Memory, StorageError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let jobs = self.jobs.as_ref().ok_or(StorageError::Stopped)?;
        jobs.send(Job::Write { command, reply })
            .map_err(|_| StorageError::Stopped)?;
        answer.recv().map_err(|_| StorageError::Stopped)?
    }

    /// Replaces the database with `staging`'s once the writes queued before it have
    /// committed; the writes queued after it go to the restored database.
    pub fn restore(
        &self,
        staging: Connection,
        label: String,
    ) -> Result<RestoreStats, StorageError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let jobs = self.jobs.as_ref().ok_or(StorageError::Stopped)?;
        jobs.send(Job::Restore {
            staging,
            label,
            reply,
        })
        .map_err(|_| StorageError::Stopped)?;
        answer.recv().map_err(|_| StorageError::Stopped)?
    }

    /// Queues every command before waiting for any, so the writer can commit them in
    /// one group; returns their results in order.
    pub fn submit_many(&self, commands: Vec<Command>) -> Vec<Result<Memory, StorageError>> {
        let Some(jobs) = self.jobs.as_ref() else {
            return commands
                .iter()
                .map(|_| Err(StorageError::Stopped))
                .collect();
        };
        let answers: Vec<_> = commands
            .into_iter()
            .map(|command| {
                let (reply, answer) = mpsc::sync_channel(1);
                jobs.send(Job::Write { command, reply })
                    .ok()
                    .map(|()| answer)
            })
            .collect();
        answers
            .into_iter()
            .map(|answer| {
                answer
                    .ok_or(StorageError::Stopped)?
                    .recv()
                    .map_err(|_| StorageError::Stopped)?
            })
            .collect()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where committed events go: every live subscriber of the change feed.
pub(super) type Subscribers = tokio::sync::broadcast::Sender<Arc<EventRow>>;

fn run(
    mut conn: Connection,
    queue: mpsc::Receiver<Job>,
    max_group: usize,
    retention: Retention,
    subscribers: Subscribers,
    vectors: Option<Arc<VectorCopy>>,
    checkpoint_turn: CheckpointTurn,
) {
    // Checkpoints run beside the writer, never inside its commits (see `checkpointer`).
    let checkpointer = match conn
        .path()
        .map(std::path::PathBuf::from)
        .ok_or(rusqlite::Error::InvalidPath("an in-memory database".into()))
        .and_then(|path| Checkpointer::start(&conn, &path, checkpoint_turn))
    {
        Ok(checkpointer) => Some(checkpointer),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the checkpoint thread; the writer checkpoints inline");
            None
        }
    };
    if let Some(copy) = &vectors {
        let started = std::time::Instant::now();
        match copy.load(&conn) {
            Ok(count) => tracing::info!(
                vectors = count,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "in-memory vector copy loaded; searches use it from now on"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                "cannot load the in-memory vector copy; searches keep scanning the vec0 table"
            ),
        }
    }
    // A restore taken while gathering a group waits here for the group to commit.
    let mut held: Option<Job> = None;
    while let Some(first) = held.take().or_else(|| queue.recv().ok()) {
        let mut group = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Write { command, reply } => group.push((command, reply)),
                restore @ Job::Restore { .. } if group.is_empty() => {
                    run_restore(&mut conn, restore, &subscribers, vectors.as_deref());
                    if let Some(checkpointer) = &checkpointer {
                        checkpointer.after_commit();
                    }
                    break;
                }
                restore => {
                    held = Some(restore);
                    break;
                }
            }
            if group.len() < max_group {
                next = queue.try_recv().ok();
            }
        }
        if group.is_empty() {
            continue;
        }
        let mut results = commit_group(
            &mut conn,
            group.iter_mut().map(|(command, _)| command),
            &retention,
        );
        if let Some(checkpointer) = &checkpointer {
            checkpointer.after_commit();
        }
        // The copy changes after the commit and before anyone hears of it, so a
        // caller that searches right after its store finds what it stored.
        if let Some(vectors) = &vectors {
            vectors.apply(
                results
                    .iter_mut()
                    .filter_map(|r| r.as_mut().ok().and_then(|w| w.change.take()))
                    .collect(),
            );
        }
        for ((_, reply), result) in group.into_iter().zip(results) {
            let result = result.map(|written| {
                // No subscriber is not an error.
                let _ = subscribers.send(Arc::new(written.event));
                written.memory
            });
            // A caller that gave up waiting is not an error of the store.
            let _ = reply.send(result);
        }
    }
}

/// Swaps the staged database in, then rebuilds the vector copy from it and tells
/// every subscriber. Searches scan vec0 while the copy reloads.
fn run_restore(
    conn: &mut Connection,
    job: Job,
    subscribers: &Subscribers,
    vectors: Option<&VectorCopy>,
) {
    let Job::Restore {
        mut staging,
        label,
        reply,
    } = job
    else {
        return;
    };
    if let Some(copy) = vectors {
        copy.invalidate();
    }
    let result = backup::swap_in(conn, &mut staging, &label, crate::memory::now_epoch());
    if let Some(copy) = vectors
        && let Err(e) = copy.load(conn)
    {
        tracing::warn!(error = %e, "cannot reload the in-memory vector copy after the restore; searches scan the vec0 table");
    }
    if let Ok(stats) = &result {
        let _ = subscribers.send(Arc::new(stats.event.clone()));
    }
    let _ = reply.send(result);
}

/// Runs each command in its own savepoint of one transaction and commits once.
/// Returns one result per command, in order.
fn commit_group<'a>(
    conn: &mut Connection,
    commands: impl ExactSizeIterator<Item = &'a mut Command>,
    retention: &Retention,
) -> Vec<Result<Written, StorageError>> {
    let count = commands.len();
    let started = std::time::Instant::now();
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            metrics::counter!(telemetry::COMMIT_FAILURES, "backend" => "sqlite-vec").increment(1);
            let failed = group_failed(e);
            return (0..count).map(|_| Err(failed())).collect();
        }
    };
    let now = crate::memory::now_epoch();
    let mut results = Vec::with_capacity(count);
    for command in commands {
        results.push(apply_in_savepoint(&tx, command, now));
    }
    // Pruning rides along with the group, so retention costs no extra commit and a
    // busy feed never outgrows its bounds between two writes.
    if let Err(e) = events::prune_events(&tx, retention, now) {
        tracing::warn!(error = %e, "pruning the events table failed; will retry with the next write");
    }
    if let Err(e) = tx.commit() {
        metrics::counter!(telemetry::COMMIT_FAILURES, "backend" => "sqlite-vec").increment(1);
        let failed = group_failed(e);
        return results.into_iter().map(|r| r.and(Err(failed()))).collect();
    }
    metrics::histogram!(telemetry::COMMIT_DURATION, "backend" => "sqlite-vec")
        .record(started.elapsed());
    metrics::histogram!(telemetry::WRITE_GROUP, "backend" => "sqlite-vec").record(count as f64);
    results
}

/// The error every write of a group gets when the group's transaction fails: a full
/// disk is said as such (a retry will not help), anything else may be retried.
fn group_failed(error: rusqlite::Error) -> impl Fn() -> StorageError {
    let full = error.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull);
    let source: Arc<dyn std::error::Error + Send + Sync> = Arc::new(error);
    move || {
        let source = Arc::clone(&source);
        if full {
            StorageError::Full { source }
        } else {
            StorageError::CommitFailed { source }
        }
    }
}

fn apply_in_savepoint(
    tx: &rusqlite::Transaction<'_>,
    command: &mut Command,
    now: f64,
) -> Result<Written, StorageError> {
    // Savepoints nest inside the open transaction; dropping one unreleased rolls it back.
    tx.execute_batch("SAVEPOINT command")?;
    let result = match command {
        Command::Insert(record) => write::insert(tx, record, now),
        Command::Update {
            content_hash,
            patch,
        } => write::update(tx, content_hash, std::mem::take(patch), now),
        Command::Delete { content_hash } => write::delete(tx, content_hash, now),
    };
    let end = if result.is_ok() {
        "RELEASE command"
    } else {
        "ROLLBACK TO command; RELEASE command"
    };
    tx.execute_batch(end)?;
    result
}

//! Checkpoints on their own thread and connection, so the writer never runs one.
//!
//! SQLite's autocheckpoint runs inside the commit that crosses its threshold, on the
//! committing connection: the writer thread, so every write of that group waits for
//! the frames to be copied into the database file and that file to be synced. Usually
//! that is a few megabytes, but after a long reader (a backup holds its snapshot for
//! the whole copy) it is everything written meanwhile: seconds at 100k memories. Here
//! the writer only notices that the log has crossed the threshold (SQLite's WAL hook,
//! which replaces the autocheckpoint) and wakes this thread, whose PASSIVE checkpoint
//! runs beside the writer's commits in WAL mode. PASSIVE never waits for readers and
//! never resets the log behind one, which is also what Litestream needs.

use std::cell::Cell;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;

use rusqlite::Connection;

use super::BUSY_TIMEOUT;

thread_local! {
    /// Pages in the log after the last commit on this thread's writer connection,
    /// set by the WAL hook (a plain function, so it cannot capture state).
    static LOG_PAGES: Cell<i32> = const { Cell::new(0) };
}

fn record_log_pages(_wal: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    LOG_PAGES.with(|p| p.set(pages));
    Ok(())
}

/// Held by whoever checkpoints in this process (this thread, `SqliteStore::checkpoint`):
/// SQLite lets one checkpoint run at a time and answers a second PASSIVE one "busy"
/// at once, without waiting, so the two take turns here instead.
pub(super) type CheckpointTurn = Arc<Mutex<()>>;

/// Takes the turn, even from a holder that panicked: the lock guards no data.
pub(super) fn take_turn(turn: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    turn.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The checkpointing thread and what wakes it.
pub(super) struct Checkpointer {
    /// Log pages that call for a checkpoint: SQLite's `wal_autocheckpoint` as
    /// configured (1000 unless `MCP_MEMORY_SQLITE_PRAGMAS` says otherwise); 0 never
    /// checkpoints (Litestream's, then).
    threshold: i32,
    wake: Option<mpsc::SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Takes checkpointing over from `writer` (which must be the connection of the
    /// thread that later calls [`Checkpointer::after_commit`]); each checkpoint waits
    /// for `turn`.
    pub fn start(writer: &Connection, path: &Path, turn: CheckpointTurn) -> rusqlite::Result<Self> {
        let threshold: i32 = writer.pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))?;
        writer.wal_hook(Some(record_log_pages));
        if threshold <= 0 {
            return Ok(Self {
                threshold,
                wake: None,
                thread: None,
            });
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // One pending wake is enough: a checkpoint copies whatever is there.
        let (wake, woken) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("mnemo-checkpoint".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    let _turn = take_turn(&turn);
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        tracing::warn!(error = %e, "checkpointing the write-ahead log failed; the next one retries");
                    }
                }
            })
            .expect("the OS can start the checkpoint thread");
        Ok(Self {
            threshold,
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    /// Called by the writer after each commit: wakes the thread once the log has
    /// crossed the threshold.
    pub fn after_commit(&self) {
        let pages = LOG_PAGES.with(|p| p.replace(0));
        if let Some(wake) = &self.wake
            && pages >= self.threshold
        {
            let _ = wake.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.wake.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

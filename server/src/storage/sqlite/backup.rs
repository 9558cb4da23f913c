//! Backups and restores of the database file with SQLite's online backup API.
//!
//! A backup copies the pages of one read transaction of its own connection. In WAL
//! mode that transaction is a snapshot that stays fixed while the writer keeps
//! committing, and readers never block the writer, so the copy is consistent (every
//! write acknowledged before it began is in it) and writes are never stalled by it.
//! Without the open transaction, SQLite would end its read after every step and
//! restart the copy whenever another connection wrote, which under a steady write
//! load never finishes. The price of the snapshot is that the write-ahead log cannot
//! be reset past it until the copy ends: it grows by what is written meanwhile.
//!
//! A restore never touches the live database until the backup has been copied to a
//! staging file, checked (`integrity_check`, the model pin, the schema) and
//! migrated. The swap itself is the backup API again, staging file into the writer's
//! own connection, in one step: one write transaction, so it commits whole or not at
//! all, readers see the old or the new database and never a mix, and the file keeps
//! its inode and its write-ahead log (a Litestream replica sees an ordinary write).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde_json::{Map, Value, json};

use super::migrations::meta_keys;
use super::{BUSY_TIMEOUT, events, file};
use crate::memory::EmbeddingSpec;
use crate::storage::{BackupStats, EventRow, RestoreStats, StorageError, payload};

/// Pages copied per step of a backup: 4 MiB at SQLite's default page size. The
/// writer never waits for a step (see the module documentation); steps only bound
/// how long the copy runs before it notices an error.
const PAGES_PER_STEP: i32 = 1024;

/// The destination's page cache during a backup, in KiB: smaller than a step, so
/// each step's pages reach the file (and its sync) within the step.
const STEP_CACHE_KIB: i64 = 1024;

/// The change-feed kind a restore is recorded as: subscribers get it as a `resync`
/// with its sequence number as the SSE id.
const RESTORE_EVENT: &str = mnemo_api::events::RESYNC;

/// Copies the database at `source` into a new private file `dest` (which must not
/// exist), checks the copy with `integrity_check`, and only then gives it its name.
pub(super) fn backup(source: &Path, dest: &Path) -> Result<BackupStats, StorageError> {
    let started = Instant::now();
    let partial = partial_path(dest);
    let result = copy_and_check(source, &partial);
    let (memories, head_seq) = match result {
        Ok(counts) => counts,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    let publish = || -> std::io::Result<u64> {
        let file = File::open(&partial)?;
        file.sync_all()?;
        let bytes = file.metadata()?.len();
        std::fs::rename(&partial, dest)?;
        if let Some(dir) = dest.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(bytes)
    };
    let bytes = publish().map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        StorageError::backend(format!("writing the backup {}", dest.display()), e)
    })?;
    Ok(BackupStats {
        bytes,
        memories,
        head_seq,
        elapsed: started.elapsed(),
    })
}

/// The backup's contents in `partial`, checked; answers its memory count and head.
fn copy_and_check(source: &Path, partial: &Path) -> Result<(u64, i64), StorageError> {
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    src.busy_timeout(BUSY_TIMEOUT)?;
    // The snapshot every step copies from (see the module documentation).
    src.execute_batch("BEGIN DEFERRED")?;
    let memories: i64 = src.query_row("SELECT count(*) FROM memories", [], |r| r.get(0))?;
    let head_seq = events::head_seq(&src)?;
    create_private(partial)?;
    let mut dst = Connection::open(partial)?;
    // A new file needs no journal: a copy cut short is deleted, never reused. And
    // SQLite writes it out as it goes (a small cache) without syncing; `copy` syncs
    // after every step instead, so the kernel never holds the whole copy dirty and
    // flushes it at once, which would hold up the writer's own fsync behind it.
    dst.pragma_update(None, "journal_mode", "OFF")?;
    dst.pragma_update(None, "synchronous", "OFF")?;
    dst.pragma_update(None, "cache_size", -(STEP_CACHE_KIB))?;
    let file = File::open(partial)
        .map_err(|e| StorageError::backend(format!("opening {}", partial.display()), e))?;
    copy(&src, &mut dst, PAGES_PER_STEP, || {
        file.sync_data()
            .map_err(|e| StorageError::backend("syncing the backup file", e))
    })?;
    src.execute_batch("COMMIT")?;
    // The pages carry the live file's WAL flag; a backup is one self-contained file.
    dst.pragma_update(None, "journal_mode", "DELETE")?;
    file::check(&dst, partial, "integrity_check")?;
    Ok((memories as u64, head_seq))
}

/// Copies every page of `src` into `dst`, `pages` at a time (-1: all in one step),
/// calling `after_step` after each step (a backup syncs its file there).
fn copy(
    src: &Connection,
    dst: &mut Connection,
    pages: i32,
    mut after_step: impl FnMut() -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    let backup = Backup::new(src, dst)?;
    loop {
        let step = backup.step(pages)?;
        after_step()?;
        match step {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            // SQLite already waited the busy timeout for the lock.
            StepResult::Busy | StepResult::Locked => {
                return Err(StorageError::backend(
                    "copying the database",
                    std::io::Error::other("the database stayed locked past the busy timeout"),
                ));
            }
            _ => {}
        }
    }
}

/// Copies `backup` into a new private `staging` file, checks it (integrity, a Mnemo
/// database, `spec`'s model, a schema this server knows) and migrates it. The live
/// database is not touched; on any error the staging file is removed.
pub(super) fn stage(
    backup: &Path,
    staging: &Path,
    spec: &EmbeddingSpec,
) -> Result<Connection, StorageError> {
    let _ = std::fs::remove_file(staging);
    let result = stage_checked(backup, staging, spec);
    if result.is_err() {
        remove_with_companions(staging);
    }
    result
}

fn stage_checked(
    backup: &Path,
    staging: &Path,
    spec: &EmbeddingSpec,
) -> Result<Connection, StorageError> {
    let location = backup.display().to_string();
    if std::fs::metadata(backup).is_ok_and(|m| m.len() == 0) {
        return Err(StorageError::EmptyFile { location });
    }
    let src = Connection::open_with_flags(
        backup,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| file::opening_error(backup, e))?;
    create_private(staging)?;
    let mut conn = Connection::open(staging)?;
    copy(&src, &mut conn, -1, || Ok(())).map_err(|e| match e {
        StorageError::Backend { source, .. } => StorageError::Corrupt {
            location: location.clone(),
            detail: source.to_string(),
        },
        other => other,
    })?;
    drop(src);
    conn.pragma_update(None, "journal_mode", "DELETE")
        .map_err(|e| file::opening_error(backup, e))?;
    file::check(&conn, backup, "integrity_check")?;
    check_pin(&conn, backup, spec)?;
    super::migrate(&mut conn, backup)?;
    Ok(conn)
}

/// The model a Mnemo database was made with, or `None` for a file that is not one.
pub(super) fn read_pin(conn: &Connection) -> rusqlite::Result<Option<(String, usize)>> {
    let has_meta: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'meta'",
        [],
        |r| r.get(0),
    )?;
    if !has_meta {
        return Ok(None);
    }
    let value = |key: &str| -> rusqlite::Result<Option<String>> {
        conn.query_row("SELECT value FROM meta WHERE key = ?", [key], |r| r.get(0))
            .optional()
    };
    Ok(
        match (
            value(meta_keys::EMBEDDING_MODEL)?,
            value(meta_keys::EMBEDDING_DIMENSION)?,
        ) {
            (Some(model), Some(dimension)) => Some((model, dimension.parse().unwrap_or(0))),
            _ => None,
        },
    )
}

fn check_pin(conn: &Connection, backup: &Path, spec: &EmbeddingSpec) -> Result<(), StorageError> {
    let location = backup.display().to_string();
    match read_pin(conn).map_err(|e| file::opening_error(backup, e))? {
        None => Err(StorageError::Corrupt {
            location,
            detail: "it is not a Mnemo database (no model recorded in its meta table)".into(),
        }),
        Some((model, dimension)) if model != spec.model_id || dimension != spec.dimension => {
            Err(StorageError::ModelMismatch {
                location,
                stored_model: model,
                stored_dimension: dimension,
                configured_model: spec.model_id.clone(),
                configured_dimension: spec.dimension,
            })
        }
        Some(_) => Ok(()),
    }
}

/// Replaces the database of `conn` (the writer's) with `staging`'s, on the writer
/// thread. The staged feed is replaced by one event, the restore, numbered after
/// every sequence number the live database ever handed out, so no client's
/// `Last-Event-ID` can name a point of the restored past: a subscriber that saw
/// everything gets this event, any other is behind the oldest event and resyncs.
pub(super) fn swap_in(
    conn: &mut Connection,
    staging: &mut Connection,
    label: &str,
    now: f64,
) -> Result<RestoreStats, StorageError> {
    let head = events::head_seq(conn)?;
    let tx = staging.transaction()?;
    tx.execute_batch("DELETE FROM events; DELETE FROM sqlite_sequence WHERE name = 'events';")?;
    tx.execute(
        "INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)",
        [head],
    )?;
    let memories: i64 = tx.query_row("SELECT count(*) FROM memories", [], |r| r.get(0))?;
    let seq = head + 1;
    let mut fields = Map::new();
    fields.insert("reason".into(), json!("restore"));
    fields.insert("backup_id".into(), json!(label));
    fields.insert("head_seq".into(), json!(seq));
    fields.insert("memories".into(), json!(memories));
    fields.insert(
        "message".into(),
        Value::from(format!(
            "the database was restored from backup {label}; reload your view"
        )),
    );
    let payload = payload::finish(fields, now);
    tx.execute(
        "INSERT INTO events (seq, at, kind, content_hash, payload) VALUES (?, ?, ?, '', ?)",
        params![seq, now, RESTORE_EVENT, payload],
    )?;
    tx.commit()?;
    copy(staging, conn, -1, || Ok(()))?;
    Ok(RestoreStats {
        memories: memories as u64,
        event: EventRow {
            seq,
            at: now,
            kind: RESTORE_EVENT.to_owned(),
            content_hash: String::new(),
            payload,
        },
    })
}

/// Where a backup is written before it is checked and named.
fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// The staging file of a restore into the database at `live`.
pub(super) fn staging_path(live: &Path) -> PathBuf {
    let mut name = live.as_os_str().to_owned();
    name.push(".restoring");
    PathBuf::from(name)
}

/// Removes `path` and the journal, log and shared-memory files SQLite keeps beside it.
pub(super) fn remove_with_companions(path: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let _ = std::fs::remove_file(file::companion(path, suffix));
    }
}

/// A new file only its owner may read, so SQLite writes into a private file from the
/// first page on.
fn create_private(path: &Path) -> Result<(), StorageError> {
    let _ = std::fs::remove_file(path);
    file::create_private(path)
        .map(drop)
        .map_err(|e| StorageError::backend(format!("creating {}", path.display()), e))
}

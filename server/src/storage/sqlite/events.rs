//! The change-feed table, `events`: every statement that touches it.
//!
//! Writes append their event inside their own savepoint (see `write`), and pruning
//! rides along with each group's transaction (see `writer`), so the table never
//! disagrees with the data and never outgrows its retention between two writes. The
//! readers below serve replay and catch-up.

use mnemo_api::events::EventKind;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde_json::{Map, Value, json};

use crate::memory::Memory;
use crate::storage::{EventRow, Retention, StorageError};

/// Characters of content carried in an event, as mcp-memory-service's feed does.
const PREVIEW_CHARS: usize = 100;

/// The fields of a memory that a feed subscriber needs to react without a lookup.
pub(in crate::storage) fn summary(memory: &Memory) -> Map<String, Value> {
    let preview: String = memory.content.chars().take(PREVIEW_CHARS).collect();
    let Value::Object(map) = json!({
        "content_hash": memory.content_hash,
        "content_preview": preview,
        "tags": memory.tags,
        "memory_type": memory.memory_type,
    }) else {
        unreachable!("json! of an object literal is an object")
    };
    map
}

pub(super) fn append_event(
    tx: &Transaction<'_>,
    kind: EventKind,
    memory: &Memory,
    mut payload: Map<String, Value>,
    now: f64,
) -> Result<EventRow, StorageError> {
    payload.insert("timestamp".into(), json!(now));
    let payload = Value::Object(payload).to_string();
    tx.prepare_cached("INSERT INTO events (at, kind, content_hash, payload) VALUES (?, ?, ?, ?)")?
        .execute(params![now, kind.as_str(), memory.content_hash, payload])?;
    Ok(EventRow {
        seq: tx.last_insert_rowid(),
        at: now,
        kind: kind.as_str().to_owned(),
        content_hash: memory.content_hash.clone(),
        payload,
    })
}

/// Deletes events older than the retention age and beyond the newest `max_rows`.
/// Both deletes are index range scans, cheap when there is nothing to delete.
pub(super) fn prune_events(
    tx: &Transaction<'_>,
    retention: &Retention,
    now: f64,
) -> Result<(), StorageError> {
    tx.prepare_cached("DELETE FROM events WHERE at < ?")?
        .execute([now - retention.max_age.as_secs_f64()])?;
    tx.prepare_cached("DELETE FROM events WHERE seq <= (SELECT max(seq) FROM events) - ?")?
        .execute([retention.max_rows as i64])?;
    Ok(())
}

pub(super) fn events_after(
    conn: &Connection,
    after: i64,
    limit: u32,
) -> Result<Vec<EventRow>, StorageError> {
    let rows = conn
        .prepare_cached(
            "SELECT seq, at, kind, content_hash, payload FROM events \
             WHERE seq > ? ORDER BY seq LIMIT ?",
        )?
        .query_map(rusqlite::params![after, limit], |row| {
            Ok(EventRow {
                seq: row.get(0)?,
                at: row.get(1)?,
                kind: row.get(2)?,
                content_hash: row.get(3)?,
                payload: row.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The last sequence number ever assigned (0 before the first event), pruned or not.
pub(super) fn head_seq(conn: &Connection) -> Result<i64, StorageError> {
    Ok(conn
        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'events'")?
        .query_row([], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// The oldest event still in the table, if any.
pub(super) fn oldest_seq(conn: &Connection) -> Result<Option<i64>, StorageError> {
    Ok(conn
        .prepare_cached("SELECT min(seq) FROM events")?
        .query_row([], |r| r.get(0))?)
}

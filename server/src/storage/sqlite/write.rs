//! The statements of each write command. They run on the writer thread, inside the
//! group's transaction, and each appends its change-feed event in that same
//! transaction, so the feed can never disagree with the data.

use mnemo_api::events::EventKind;
use rusqlite::{OptionalExtension, Transaction, params};
use serde_json::Value;

use super::events::append_event;
use super::migrations::VECTOR_TABLE;
use super::read;
use super::vec::vector_bytes;
use super::vectors::Change;
use crate::memory::{Memory, MemoryPatch};
use crate::storage::payload;
use crate::storage::{EventRow, NewRecord, StorageError};

/// A write's outcome: the memory as it now is (or was, for a delete), its event, and
/// what the in-memory vector copy must do once the write has committed.
pub(super) struct Written {
    pub memory: Memory,
    pub event: EventRow,
    pub change: Option<Change>,
}

pub(super) fn insert(
    tx: &Transaction<'_>,
    record: &NewRecord,
    now: f64,
) -> Result<Written, StorageError> {
    let existing: Option<i64> = tx
        .prepare_cached("SELECT id FROM memories WHERE content_hash = ?")?
        .query_row([&record.content_hash], |r| r.get(0))
        .optional()?;
    if existing.is_some() {
        return Err(StorageError::Duplicate {
            content_hash: record.content_hash.clone(),
        });
    }
    let created_at = record.created_at.unwrap_or(now);
    let metadata = Value::Object(record.metadata.clone()).to_string();
    tx.prepare_cached(
        "INSERT INTO memories (content_hash, content, memory_type, metadata, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        record.content_hash,
        record.content,
        record.memory_type,
        metadata,
        created_at,
        record.updated_at.unwrap_or(now)
    ])?;
    let id = tx.last_insert_rowid();
    set_tags(tx, id, &record.tags)?;
    tx.prepare_cached(&format!(
        "INSERT INTO {VECTOR_TABLE} (rowid, embedding) VALUES (?, ?)"
    ))?
    .execute(params![id, vector_bytes(&record.vector)])?;

    let memory = read::get(tx, &record.content_hash)?;
    let event = append_event(
        tx,
        EventKind::MemoryStored,
        &memory,
        payload::stored(&memory),
        now,
    )?;
    Ok(Written {
        memory,
        event,
        change: Some(Change::Insert {
            id,
            vector: record.vector.clone(),
        }),
    })
}

pub(super) fn update(
    tx: &Transaction<'_>,
    content_hash: &str,
    patch: MemoryPatch,
    now: f64,
) -> Result<Written, StorageError> {
    let id = id_of(tx, content_hash)?;
    let mut memory = read::get(tx, content_hash)?;
    let changed = patch.apply_to(&mut memory)?;
    if changed.contains_key("tags") {
        set_tags(tx, id, &memory.tags)?;
    }
    tx.prepare_cached(
        "UPDATE memories SET memory_type = ?, metadata = ?, updated_at = ? WHERE id = ?",
    )?
    .execute(params![
        memory.memory_type,
        Value::Object(memory.metadata.clone()).to_string(),
        now,
        id
    ])?;
    memory.updated_at = now;

    let changes = payload::updated(content_hash, changed);
    let event = append_event(tx, EventKind::MemoryUpdated, &memory, changes, now)?;
    Ok(Written {
        memory,
        event,
        change: None,
    })
}

pub(super) fn delete(
    tx: &Transaction<'_>,
    content_hash: &str,
    now: f64,
) -> Result<Written, StorageError> {
    let id = id_of(tx, content_hash)?;
    let memory = read::get(tx, content_hash)?;
    tx.prepare_cached(&format!("DELETE FROM {VECTOR_TABLE} WHERE rowid = ?"))?
        .execute([id])?;
    // memory_tags rows go by ON DELETE CASCADE, the FTS row by trigger.
    tx.prepare_cached("DELETE FROM memories WHERE id = ?")?
        .execute([id])?;
    let event = append_event(
        tx,
        EventKind::MemoryDeleted,
        &memory,
        payload::deleted(&memory),
        now,
    )?;
    Ok(Written {
        memory,
        event,
        change: Some(Change::Delete { id }),
    })
}

fn id_of(tx: &Transaction<'_>, content_hash: &str) -> Result<i64, StorageError> {
    tx.prepare_cached("SELECT id FROM memories WHERE content_hash = ?")?
        .query_row([content_hash], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StorageError::NotFound {
            content_hash: content_hash.to_owned(),
        })
}

fn set_tags(tx: &Transaction<'_>, id: i64, tags: &[String]) -> Result<(), StorageError> {
    tx.prepare_cached("DELETE FROM memory_tags WHERE memory_id = ?")?
        .execute([id])?;
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO memory_tags (memory_id, tag, position) VALUES (?, ?, ?)",
    )?;
    for (position, tag) in tags.iter().enumerate() {
        insert.execute(params![id, tag, position as i64])?;
    }
    Ok(())
}

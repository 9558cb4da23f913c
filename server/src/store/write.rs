//! The statements of each write command. They run on the writer thread, inside the
//! group's transaction, and each appends its change-feed event in that same
//! transaction, so the feed can never disagree with the data.

use crate::store::migrations::VECTOR_TABLE;
use mnemo_api::events::EventKind;
use rusqlite::{OptionalExtension, Transaction, params};
use serde_json::{Map, Value, json};

use super::StoreError;
use super::read::{self, EventRow};
use super::vectors::Change;
use crate::memory::{Memory, MemoryPatch, merge_metadata};

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
}

/// Characters of content carried in an event, as the anchor's feed does.
const PREVIEW_CHARS: usize = 100;

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
) -> Result<Written, StoreError> {
    let existing: Option<i64> = tx
        .prepare_cached("SELECT id FROM memories WHERE content_hash = ?")?
        .query_row([&record.content_hash], |r| r.get(0))
        .optional()?;
    if existing.is_some() {
        return Err(StoreError::Duplicate {
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
        now
    ])?;
    let id = tx.last_insert_rowid();
    set_tags(tx, id, &record.tags)?;
    tx.prepare_cached(&format!(
        "INSERT INTO {VECTOR_TABLE} (rowid, embedding) VALUES (?, ?)"
    ))?
    .execute(params![id, vector_bytes(&record.vector)])?;

    let memory = read::get(tx, &record.content_hash)?;
    let event = append_event(tx, EventKind::MemoryStored, &memory, summary(&memory), now)?;
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
) -> Result<Written, StoreError> {
    let id = id_of(tx, content_hash)?;
    let mut memory = read::get(tx, content_hash)?;
    let mut changed = Map::new();
    if let Some(tags) = patch.tags {
        set_tags(tx, id, &tags)?;
        changed.insert("tags".into(), json!(tags));
        memory.tags = tags;
    }
    if let Some(memory_type) = patch.memory_type {
        changed.insert("memory_type".into(), json!(memory_type));
        memory.memory_type = memory_type;
    }
    if let Some(metadata) = patch.metadata {
        merge_metadata(&mut memory.metadata, metadata);
        changed.insert("metadata".into(), Value::Object(memory.metadata.clone()));
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

    changed.insert("content_hash".into(), json!(content_hash));
    let event = append_event(tx, EventKind::MemoryUpdated, &memory, changed, now)?;
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
) -> Result<Written, StoreError> {
    let id = id_of(tx, content_hash)?;
    let memory = read::get(tx, content_hash)?;
    tx.prepare_cached(&format!("DELETE FROM {VECTOR_TABLE} WHERE rowid = ?"))?
        .execute([id])?;
    // memory_tags rows go by ON DELETE CASCADE, the FTS row by trigger.
    tx.prepare_cached("DELETE FROM memories WHERE id = ?")?
        .execute([id])?;
    let event = append_event(tx, EventKind::MemoryDeleted, &memory, summary(&memory), now)?;
    Ok(Written {
        memory,
        event,
        change: Some(Change::Delete { id }),
    })
}

fn id_of(tx: &Transaction<'_>, content_hash: &str) -> Result<i64, StoreError> {
    tx.prepare_cached("SELECT id FROM memories WHERE content_hash = ?")?
        .query_row([content_hash], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound {
            content_hash: content_hash.to_owned(),
        })
}

fn set_tags(tx: &Transaction<'_>, id: i64, tags: &[String]) -> Result<(), StoreError> {
    tx.prepare_cached("DELETE FROM memory_tags WHERE memory_id = ?")?
        .execute([id])?;
    let mut insert =
        tx.prepare_cached("INSERT OR IGNORE INTO memory_tags (memory_id, tag) VALUES (?, ?)")?;
    for tag in tags {
        insert.execute(params![id, tag])?;
    }
    Ok(())
}

/// The fields of a memory that a feed subscriber needs to react without a lookup.
fn summary(memory: &Memory) -> Map<String, Value> {
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

fn append_event(
    tx: &Transaction<'_>,
    kind: EventKind,
    memory: &Memory,
    mut payload: Map<String, Value>,
    now: f64,
) -> Result<EventRow, StoreError> {
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

/// sqlite-vec reads a float vector as its little-endian bytes.
pub(super) fn vector_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Deletes events older than the retention age and beyond the newest `max_rows`.
/// Both deletes are index range scans, cheap when there is nothing to delete.
pub(super) fn prune_events(
    tx: &Transaction<'_>,
    retention: &super::writer::Retention,
    now: f64,
) -> Result<(), StoreError> {
    tx.prepare_cached("DELETE FROM events WHERE at < ?")?
        .execute([now - retention.max_age.as_secs_f64()])?;
    tx.prepare_cached("DELETE FROM events WHERE seq <= (SELECT max(seq) FROM events) - ?")?
        .execute([retention.max_rows as i64])?;
    Ok(())
}

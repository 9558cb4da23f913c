//! The statements of each write, inside one transaction that also appends the
//! write's change-feed event, so the feed can never disagree with the data.
//!
//! Every write transaction first locks the feed's one row ([`lock_feed`]) and only
//! then touches memories. Writes from every server therefore take turns, like the
//! SQLite backend's single writer: sequence numbers come out gap-free and in commit
//! order, and two writes can never wait on each other's rows in opposite orders.

use deadpool_postgres::GenericClient;
use mnemo_api::events::EventKind;
use pgvector::Vector;
use serde_json::{Map, Value};

use super::read::{self, MEMORY_COLUMNS, memory_from_row};
use crate::memory::{Memory, MemoryPatch};
use crate::storage::payload;
use crate::storage::{EventRow, NewRecord, Retention, StorageError};

/// The notification channel a commit with events signals on.
pub(super) const CHANNEL: &str = "mnemo_events";

/// The feed's head, locked for the transaction: the sequence number the next event
/// of this transaction takes is `head + 1`.
pub(super) struct Head {
    pub seq: i64,
    /// Whether this transaction appended an event (and so must move the head).
    pub moved: bool,
}

/// Locks the feed's row until the transaction ends and reads its head.
pub(super) async fn lock_feed(tx: &impl GenericClient) -> Result<Head, StorageError> {
    let seq = read::query(tx, "SELECT head FROM feed FOR UPDATE", &[]).await?[0].try_get(0)?;
    Ok(Head { seq, moved: false })
}

/// Inserts one memory and its event. The same content already stored is
/// [`StorageError::Duplicate`], and leaves the transaction usable.
pub(super) async fn insert(
    tx: &impl GenericClient,
    head: &mut Head,
    record: &NewRecord,
    now: f64,
) -> Result<(Memory, EventRow), StorageError> {
    // Normalised by the service: unique, in the order given, which the array keeps.
    let tags = record.tags.clone();
    let memory = Memory {
        content: record.content.clone(),
        content_hash: record.content_hash.clone(),
        tags,
        memory_type: record.memory_type.clone(),
        metadata: record.metadata.clone(),
        created_at: record.created_at.unwrap_or(now),
        updated_at: record.updated_at.unwrap_or(now),
    };
    let inserted = read::query(
        tx,
        "INSERT INTO memories \
           (content_hash, content, tags, memory_type, metadata, created_at, updated_at, embedding) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (content_hash) DO NOTHING RETURNING id",
        &[
            &memory.content_hash,
            &memory.content,
            &memory.tags,
            &memory.memory_type,
            &Value::Object(memory.metadata.clone()),
            &memory.created_at,
            &memory.updated_at,
            &Vector::from(record.vector.clone()),
        ],
    )
    .await?;
    if inserted.is_empty() {
        return Err(StorageError::Duplicate {
            content_hash: record.content_hash.clone(),
        });
    }
    let event = append_event(
        tx,
        head,
        EventKind::MemoryStored,
        &memory,
        payload::stored(&memory),
        now,
    )
    .await?;
    Ok((memory, event))
}

pub(super) async fn update(
    tx: &impl GenericClient,
    head: &mut Head,
    content_hash: &str,
    patch: MemoryPatch,
    now: f64,
) -> Result<(Memory, EventRow), StorageError> {
    read::refuse_nul_hash(content_hash)?;
    let rows = read::query(
        tx,
        &format!("SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.content_hash = $1 FOR UPDATE"),
        &[&content_hash],
    )
    .await?;
    let mut memory = match rows.first() {
        Some(row) => memory_from_row(row)?,
        None => {
            return Err(StorageError::NotFound {
                content_hash: content_hash.to_owned(),
            });
        }
    };
    let changed = patch.apply_to(&mut memory)?;
    memory.updated_at = now;
    read::query(
        tx,
        "UPDATE memories SET tags = $1, memory_type = $2, metadata = $3, updated_at = $4 \
         WHERE content_hash = $5",
        &[
            &memory.tags,
            &memory.memory_type,
            &Value::Object(memory.metadata.clone()),
            &now,
            &content_hash,
        ],
    )
    .await?;
    let changes = payload::updated(content_hash, changed);
    let event = append_event(tx, head, EventKind::MemoryUpdated, &memory, changes, now).await?;
    Ok((memory, event))
}

pub(super) async fn delete(
    tx: &impl GenericClient,
    head: &mut Head,
    content_hash: &str,
    now: f64,
) -> Result<(Memory, EventRow), StorageError> {
    read::refuse_nul_hash(content_hash)?;
    let rows = read::query(
        tx,
        &format!("DELETE FROM memories m WHERE m.content_hash = $1 RETURNING {MEMORY_COLUMNS}"),
        &[&content_hash],
    )
    .await?;
    let memory = match rows.first() {
        Some(row) => memory_from_row(row)?,
        None => {
            return Err(StorageError::NotFound {
                content_hash: content_hash.to_owned(),
            });
        }
    };
    let event = append_event(
        tx,
        head,
        EventKind::MemoryDeleted,
        &memory,
        payload::deleted(&memory),
        now,
    )
    .await?;
    Ok((memory, event))
}

/// Appends the next event; the head moves only once the row is in.
async fn append_event(
    tx: &impl GenericClient,
    head: &mut Head,
    kind: EventKind,
    memory: &Memory,
    payload: Map<String, Value>,
    now: f64,
) -> Result<EventRow, StorageError> {
    let event = EventRow {
        seq: head.seq + 1,
        at: now,
        kind: kind.as_str().to_owned(),
        content_hash: memory.content_hash.clone(),
        payload: payload::finish(payload, now),
    };
    read::query(
        tx,
        "INSERT INTO events (seq, at, kind, content_hash, payload) VALUES ($1, $2, $3, $4, $5)",
        &[
            &event.seq,
            &event.at,
            &event.kind,
            &event.content_hash,
            &event.payload,
        ],
    )
    .await?;
    head.seq = event.seq;
    head.moved = true;
    Ok(event)
}

/// Moves the head past this transaction's events, signals the other servers (the
/// notification is delivered at commit, and only if it commits), and prunes what
/// retention no longer keeps. Pruning rides along with the write, so it runs once
/// per write whichever server takes it, and costs no transaction of its own.
pub(super) async fn finish(
    tx: &impl GenericClient,
    head: &Head,
    retention: &Retention,
    now: f64,
) -> Result<(), StorageError> {
    if !head.moved {
        return Ok(());
    }
    read::query(tx, "UPDATE feed SET head = $1", &[&head.seq]).await?;
    read::query(tx, &format!("NOTIFY {CHANNEL}"), &[]).await?;
    let cutoff = now - retention.max_age.as_secs_f64();
    let keep_after = head.seq - retention.max_rows.min(i64::MAX as u64) as i64;
    read::query(
        tx,
        "DELETE FROM events WHERE at < $1 OR seq <= $2",
        &[&cutoff, &keep_after],
    )
    .await?;
    Ok(())
}

//! What a change-feed event says about a memory: enough for a subscriber to react
//! without a lookup, never more than [`MAX_EVENT_BYTES`], whatever the memory holds.
//!
//! Every event sits in the broadcast ring and, for a subscriber catching up, in a page
//! read from the table, so its size multiplies by the ring's length and by the number
//! of subscribers. Bounding each event bounds both. Every backend builds its payloads
//! here, so subscribers see the same JSON whichever database is behind the server.

use serde_json::{Map, Value, json};

use crate::memory::Memory;

/// The most bytes an event's payload takes as JSON.
pub const MAX_EVENT_BYTES: usize = 4096;

/// Characters of content carried in an event, as mcp-memory-service's feed does.
const PREVIEW_CHARS: usize = 100;

/// `memory_stored`: the memory in brief, with mcp-memory-service's `message`.
pub fn stored(memory: &Memory) -> Map<String, Value> {
    let mut payload = summary(memory);
    payload.insert("message".into(), json!("New memory stored successfully"));
    payload
}

/// `memory_deleted`: the memory in brief, with mcp-memory-service's `success` and
/// `message`.
pub fn deleted(memory: &Memory) -> Map<String, Value> {
    let mut payload = summary(memory);
    payload.insert("success".into(), json!(true));
    payload.insert("message".into(), json!("Memory deleted successfully"));
    payload
}

/// `memory_updated`: what the update set (`changed`), as it stands after the merge.
pub fn updated(content_hash: &str, mut changed: Map<String, Value>) -> Map<String, Value> {
    changed.insert("content_hash".into(), json!(content_hash));
    changed.insert("message".into(), json!("Memory updated successfully"));
    changed
}

/// The memory in brief: its hash, the start of its content (with "..." when cut, as
/// mcp-memory-service writes it), its tags and type.
fn summary(memory: &Memory) -> Map<String, Value> {
    let mut preview: String = memory.content.chars().take(PREVIEW_CHARS).collect();
    if preview.len() < memory.content.len() {
        preview.push_str("...");
    }
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

/// The payload's JSON text, stamped with `now` (ISO 8601, as mcp-memory-service
/// sends it) and bounded: when it would pass
/// [`MAX_EVENT_BYTES`], the metadata and then the tags are left out, and
/// `metadata_truncated` / `tags_truncated` say so (a subscriber that needs them reads
/// the memory).
pub fn finish(mut payload: Map<String, Value>, now: f64) -> String {
    payload.insert("timestamp".into(), json!(mnemo_api::rest::iso8601(now)));
    // Every write serialises its event once; only an oversized one is cut and
    // serialised again.
    let mut text = serde_json::to_string(&payload).unwrap_or_default();
    for (field, flag) in [
        ("metadata", "metadata_truncated"),
        ("tags", "tags_truncated"),
    ] {
        if text.len() <= MAX_EVENT_BYTES {
            break;
        }
        if payload.remove(field).is_some() {
            payload.insert(flag.into(), Value::Bool(true));
            text = serde_json::to_string(&payload).unwrap_or_default();
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(tags: usize, metadata_bytes: usize) -> Memory {
        let mut metadata = Map::new();
        metadata.insert("blob".into(), json!("m".repeat(metadata_bytes)));
        Memory {
            content: "é".repeat(5000),
            content_hash: "h".repeat(64),
            tags: (0..tags).map(|i| format!("{i:0>100}")).collect(),
            memory_type: Some("t".repeat(100)),
            metadata,
            created_at: 0.0,
            updated_at: 0.0,
        }
    }

    fn with_metadata(memory: &Memory) -> Map<String, Value> {
        let mut payload = stored(memory);
        payload.insert("metadata".into(), Value::Object(memory.metadata.clone()));
        payload
    }

    #[test]
    fn a_small_event_is_whole() {
        let small = memory(3, 100);
        let text = finish(with_metadata(&small), 1.0);
        let payload: Map<String, Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(payload["metadata"], json!(small.metadata));
        assert_eq!(payload["tags"].as_array().unwrap().len(), 3);
        let preview = payload["content_preview"].as_str().unwrap();
        assert_eq!(preview.chars().count(), 103);
        assert!(preview.ends_with("é..."), "{preview}");
        assert!(
            payload["timestamp"]
                .as_str()
                .unwrap()
                .starts_with("1970-01-01T00:00:01")
        );
        assert!(!payload.contains_key("metadata_truncated"));
    }

    #[test]
    fn large_fields_give_way_in_order() {
        let big_metadata = memory(3, 60_000);
        let text = finish(with_metadata(&big_metadata), 1.0);
        assert!(text.len() <= MAX_EVENT_BYTES, "{}", text.len());
        let payload: Map<String, Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(payload["metadata_truncated"], true);
        assert_eq!(payload["tags"].as_array().unwrap().len(), 3);

        let everything = memory(64, 60_000);
        let text = finish(with_metadata(&everything), 1.0);
        assert!(text.len() <= MAX_EVENT_BYTES, "{}", text.len());
        let payload: Map<String, Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(payload["tags_truncated"], true);
        assert_eq!(payload["content_hash"], json!(everything.content_hash));
    }
}

//! The memory as the server sees it, and the rules that make two memories the same.
//!
//! Identity is the SHA-256 of the trimmed content, with case preserved: "Hello" and
//! "hello" are two memories (mcp-memory-service lower-cases, Mnemo does not).
//! Tags are normalised here, once, so that every write path stores them the same way.
//!
//! These are the domain types every layer shares (the embedding model's spec
//! included), so this module imports none of the others.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Most tags one memory may carry.
pub const MAX_TAGS: usize = 64;
/// Longest tag, in characters, after trimming.
pub const MAX_TAG_CHARS: usize = 100;
/// Longest memory type, in characters.
pub const MAX_TYPE_CHARS: usize = 100;

/// A stored memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    pub content: String,
    pub content_hash: String,
    /// Normalised, sorted.
    pub tags: Vec<String>,
    pub memory_type: Option<String>,
    pub metadata: Map<String, Value>,
    /// Seconds since the Unix epoch.
    pub created_at: f64,
    pub updated_at: f64,
}

impl From<Memory> for mnemo_api::rest::Memory {
    fn from(m: Memory) -> Self {
        Self {
            created_at_iso: mnemo_api::rest::iso8601(m.created_at),
            updated_at_iso: mnemo_api::rest::iso8601(m.updated_at),
            content: m.content,
            content_hash: m.content_hash,
            tags: m.tags,
            memory_type: m.memory_type,
            metadata: m.metadata,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// The embedding model a set of vectors belongs to. The model produces it and storage
/// pins the first one it sees, so vectors of two models never mix in one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingSpec {
    pub model_id: String,
    pub dimension: usize,
}

/// What a caller asks to store.
#[derive(Debug, Clone, Default)]
pub struct NewMemory {
    pub content: String,
    pub tags: Vec<String>,
    pub memory_type: Option<String>,
    pub metadata: Map<String, Value>,
    /// Keeps an original creation time (imports); `None` means now.
    pub created_at: Option<f64>,
    /// Keeps an original time of the last change (imports); `None` means now.
    pub updated_at: Option<f64>,
}

/// A change to an existing memory. `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct MemoryPatch {
    /// Replaces every tag.
    pub tags: Option<Vec<String>>,
    /// `Some(None)` clears the type.
    pub memory_type: Option<Option<String>>,
    /// Merged key by key into the existing metadata; a `null` value removes its key.
    pub metadata: Option<Map<String, Value>>,
    /// The most bytes the merged metadata may take as JSON; storage refuses an update
    /// past it with [`InvalidInput::MetadataTooLarge`] and changes nothing. Checked
    /// there because only the merge shows the size. `None`: no limit.
    pub max_metadata_bytes: Option<usize>,
}

pub use mnemo_api::rest::TagMatch;

/// Restrictions applied before ranking or paging, so that a filtered search still
/// fills its `k` when `k` matching memories exist.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Normalised like stored tags before use. Empty means no tag filter.
    pub tags: Vec<String>,
    pub tag_match: TagMatch,
    pub memory_type: Option<String>,
    /// Only memories created at or after this epoch second.
    pub after: Option<f64>,
    /// Only memories created strictly before this epoch second.
    pub before: Option<f64>,
}

/// One search result: the memory and how close it is to the query.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredMemory {
    pub memory: Memory,
    /// Cosine similarity in [-1, 1].
    pub cosine_similarity: f64,
}

impl ScoredMemory {
    /// mcp-memory-service's score, `1 - cosine_distance / 2`, so that existing
    /// `similarity_threshold` settings keep their meaning.
    pub fn similarity_score(&self) -> f64 {
        1.0 - (1.0 - self.cosine_similarity) / 2.0
    }
}

/// Input that breaks a rule of this module.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum InvalidInput {
    #[error("content is empty; a memory needs some text")]
    EmptyContent,
    #[error("content is {actual} bytes; the limit is {limit} bytes")]
    ContentTooLong { actual: usize, limit: usize },
    #[error("{actual} tags given; a memory may carry at most {MAX_TAGS}")]
    TooManyTags { actual: usize },
    #[error("tag {tag:?} is longer than {MAX_TAG_CHARS} characters")]
    TagTooLong { tag: String },
    #[error(
        "tag {tag:?} contains a comma; give each tag as its own list item (lists and filters split tags at commas)"
    )]
    TagComma { tag: String },
    #[error("memory_type is longer than {MAX_TYPE_CHARS} characters")]
    TypeTooLong,
    #[error("the query is {actual} characters; the limit is {limit} (MNEMO_MAX_QUERY_CHARS)")]
    QueryTooLong { actual: usize, limit: usize },
    #[error(
        "metadata takes {actual} bytes as JSON; the limit is {limit} bytes (MNEMO_MAX_METADATA_BYTES)"
    )]
    MetadataTooLarge { actual: usize, limit: usize },
    #[error("time {time} is outside the years 0001 to 9999")]
    TimeOutOfRange { time: String },
    #[error("{field} contains a NUL character (\\u0000), which a memory cannot hold")]
    NulCharacter { field: &'static str },
}

/// Refuses U+0000 in text to be stored. PostgreSQL's `text` and `jsonb` cannot hold
/// it, so neither backend accepts it, and a memory moves between them unchanged.
pub fn refuse_nul(field: &'static str, text: &str) -> Result<(), InvalidInput> {
    if text.contains('\0') {
        Err(InvalidInput::NulCharacter { field })
    } else {
        Ok(())
    }
}

/// [`refuse_nul`] for every key and string of a metadata object, however deep.
pub fn refuse_nul_in_metadata(metadata: &Map<String, Value>) -> Result<(), InvalidInput> {
    fn check(value: &Value) -> Result<(), InvalidInput> {
        match value {
            Value::String(text) => refuse_nul("metadata", text),
            Value::Array(items) => items.iter().try_for_each(check),
            Value::Object(map) => refuse_nul_in_metadata(map),
            _ => Ok(()),
        }
    }
    metadata.iter().try_for_each(|(key, value)| {
        refuse_nul("metadata", key)?;
        check(value)
    })
}

/// SHA-256 (lower-case hex) of the content with surrounding whitespace trimmed.
pub fn content_hash(content: &str) -> String {
    hex::encode(Sha256::digest(content.trim().as_bytes()))
}

/// Trims and lower-cases each tag, drops empty ones and later duplicates, and keeps
/// the order given (mcp-memory-service keeps it; a client may put the main tag first).
///
/// A comma is refused: list filters (`?tag=a,b`, mcp-memory-service's tag strings)
/// split on it, so a tag holding one could be stored but never found.
pub fn normalize_tags<S: AsRef<str>>(tags: &[S]) -> Result<Vec<String>, InvalidInput> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len().min(MAX_TAGS));
    let mut seen = std::collections::HashSet::with_capacity(tags.len().min(MAX_TAGS));
    for tag in tags {
        let tag = tag.as_ref().trim().to_lowercase();
        if tag.is_empty() {
            continue;
        }
        if tag.chars().count() > MAX_TAG_CHARS {
            return Err(InvalidInput::TagTooLong { tag });
        }
        if tag.contains(',') {
            return Err(InvalidInput::TagComma { tag });
        }
        refuse_nul("a tag", &tag)?;
        if seen.insert(tag.clone()) {
            out.push(tag);
        }
    }
    if out.len() > MAX_TAGS {
        return Err(InvalidInput::TooManyTags { actual: out.len() });
    }
    Ok(out)
}

/// Trims a memory type; an empty one means "no type".
pub fn normalize_type(memory_type: Option<&str>) -> Result<Option<String>, InvalidInput> {
    match memory_type.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) if t.chars().count() > MAX_TYPE_CHARS => Err(InvalidInput::TypeTooLong),
        Some(t) => refuse_nul("memory_type", t).map(|()| Some(t.to_owned())),
    }
}

impl MemoryPatch {
    /// Applies the patch to `memory` and returns the fields it set, as they now stand
    /// (what a `memory_updated` event carries). Refuses, changing nothing that counts,
    /// when the merged metadata passes [`MemoryPatch::max_metadata_bytes`]. Every
    /// backend applies patches through this, so they merge alike.
    pub fn apply_to(self, memory: &mut Memory) -> Result<Map<String, Value>, InvalidInput> {
        let mut changed = Map::new();
        if let Some(metadata) = self.metadata {
            let mut merged = memory.metadata.clone();
            merge_metadata(&mut merged, metadata);
            if let Some(limit) = self.max_metadata_bytes {
                check_metadata_size(&merged, limit)?;
            }
            changed.insert("metadata".into(), Value::Object(merged.clone()));
            memory.metadata = merged;
        }
        if let Some(tags) = self.tags {
            // Normalised by the caller; a patch keeps the order given, first of each.
            let mut seen = std::collections::HashSet::with_capacity(tags.len());
            let tags: Vec<String> = tags
                .into_iter()
                .filter(|t| seen.insert(t.clone()))
                .collect();
            changed.insert("tags".into(), Value::from(tags.clone()));
            memory.tags = tags;
        }
        if let Some(memory_type) = self.memory_type {
            changed.insert("memory_type".into(), Value::from(memory_type.clone()));
            memory.memory_type = memory_type;
        }
        Ok(changed)
    }
}

/// Applies a metadata patch: keys in `patch` overwrite, `null` values delete.
pub fn merge_metadata(base: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        if value.is_null() {
            base.remove(&key);
        } else {
            base.insert(key, value);
        }
    }
}

/// Refuses metadata whose JSON text is longer than `limit` bytes. Counts as it
/// serialises, allocating nothing.
pub fn check_metadata_size(
    metadata: &Map<String, Value>,
    limit: usize,
) -> Result<(), InvalidInput> {
    let actual = json_len(metadata);
    if actual > limit {
        return Err(InvalidInput::MetadataTooLarge { actual, limit });
    }
    Ok(())
}

/// The length of `value` as compact JSON text.
fn json_len(value: &impl serde::Serialize) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Serialising a map of JSON values cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

/// Current time as float epoch seconds, the unit every timestamp here uses.
pub fn now_epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Surrounding whitespace does not change identity, case does.
    #[test]
    fn hash_trims_but_keeps_case() {
        assert_eq!(content_hash("  Hello \n"), content_hash("Hello"));
        assert_ne!(content_hash("Hello"), content_hash("hello"));
        assert_eq!(
            content_hash("hello"),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }

    /// Tags come out trimmed, lower-cased, unique, non-empty, in the order given.
    #[test]
    fn tags_are_normalised() {
        let tags = normalize_tags(&[" Rust", "rust", "", "  ", "DB ", "alpha"]).unwrap();
        assert_eq!(tags, vec!["rust", "db", "alpha"]);
    }

    /// A tag with a comma is refused, naming the tag: filters split at commas.
    #[test]
    fn tag_with_a_comma_is_refused() {
        let error = normalize_tags(&["ok", "a,b"]).unwrap_err();
        assert_eq!(error, InvalidInput::TagComma { tag: "a,b".into() });
        assert!(error.to_string().contains("own list item"));
    }

    /// Over-long tags and too many tags are refused, not truncated.
    #[test]
    fn tag_bounds_are_enforced() {
        let long = "x".repeat(MAX_TAG_CHARS + 1);
        assert!(matches!(
            normalize_tags(&[long]),
            Err(InvalidInput::TagTooLong { .. })
        ));
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert_eq!(
            normalize_tags(&many),
            Err(InvalidInput::TooManyTags {
                actual: MAX_TAGS + 1
            })
        );
    }

    /// Metadata merges key by key and null removes a key.
    #[test]
    fn metadata_merges() {
        let mut base = json!({"a": 1, "b": 2}).as_object().unwrap().clone();
        let patch = json!({"b": null, "c": 3}).as_object().unwrap().clone();
        merge_metadata(&mut base, patch);
        assert_eq!(Value::Object(base), json!({"a": 1, "c": 3}));
    }

    /// mcp-memory-service's score maps cosine 1 to 1, 0 to 0.5 and -1 to 0.
    #[test]
    fn similarity_score_scale() {
        let hit = |c| ScoredMemory {
            memory: Memory {
                content: String::new(),
                content_hash: String::new(),
                tags: vec![],
                memory_type: None,
                metadata: Map::new(),
                created_at: 0.0,
                updated_at: 0.0,
            },
            cosine_similarity: c,
        };
        assert_eq!(hit(1.0).similarity_score(), 1.0);
        assert_eq!(hit(0.0).similarity_score(), 0.5);
        assert_eq!(hit(-1.0).similarity_score(), 0.0);
    }

    proptest::proptest! {
        /// Any tags and type, however odd their characters, normalise or are refused;
        /// whatever is kept obeys the rules.
        #[test]
        fn labels_of_any_text_never_panic(
            tags in proptest::collection::vec(proptest::prelude::any::<String>(), 0..8),
            memory_type in proptest::option::of(proptest::prelude::any::<String>()),
        ) {
            if let Ok(tags) = normalize_tags(&tags) {
                proptest::prop_assert!(tags.iter().all(|t| !t.is_empty() && t.trim() == t));
                let unique: std::collections::HashSet<&String> = tags.iter().collect();
                proptest::prop_assert_eq!(unique.len(), tags.len());
                proptest::prop_assert!(tags.iter().all(|t| !t.contains(',')));
            }
            let _ = normalize_type(memory_type.as_deref());
            let _ = content_hash(memory_type.as_deref().unwrap_or_default());
        }
    }
}

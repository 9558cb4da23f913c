//! What the tools answer: `structuredContent` of a declared `outputSchema`, and a
//! compact text block for clients (and models) that read text only.

use std::fmt::Write as _;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use mnemo_api::rest::{self, DeleteMatchingResponse, DetailedHealth, SearchResponse};

/// Contents longer than this many characters are cut in lists and search results;
/// `memory_get` always gives the whole text.
pub const PREVIEW_CHARS: usize = 500;

/// Cut contents in the text block, where one line per memory keeps it compact.
const LINE_CHARS: usize = 160;

/// A memory as a tool shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MemoryItem {
    /// Pass this to memory_get, memory_update or memory_delete.
    pub content_hash: String,
    pub content: String,
    /// The content was cut; memory_get gives the whole text.
    pub truncated: bool,
    pub tags: Vec<String>,
    pub memory_type: Option<String>,
    pub metadata: Map<String, Value>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub updated_at: String,
}

impl MemoryItem {
    /// The memory with its content cut to [`PREVIEW_CHARS`] and a marker.
    pub fn preview(memory: rest::Memory) -> Self {
        let mut item = Self::full(memory);
        if let Some(cut) = truncate(&item.content, PREVIEW_CHARS) {
            item.content = format!(
                "{cut}… [truncated; memory_get with this content_hash gives the full text]"
            );
            item.truncated = true;
        }
        item
    }

    pub fn full(memory: rest::Memory) -> Self {
        Self {
            content_hash: memory.content_hash,
            content: memory.content,
            truncated: false,
            tags: memory.tags,
            memory_type: memory.memory_type,
            metadata: memory.metadata,
            created_at: memory.created_at_iso,
            updated_at: memory.updated_at_iso,
        }
    }

    /// One line: the start of the content, then tags, type and hash.
    fn line(&self) -> String {
        let first = self.content.lines().next().unwrap_or_default();
        let mut line = match truncate(first, LINE_CHARS) {
            Some(cut) => format!("{cut}…"),
            None if first.len() < self.content.len() => format!("{first}…"),
            None => first.to_owned(),
        };
        if !self.tags.is_empty() {
            let _ = write!(line, " [tags: {}]", self.tags.join(", "));
        }
        if let Some(kind) = &self.memory_type {
            let _ = write!(line, " [type: {kind}]");
        }
        let _ = write!(line, " (hash {})", self.content_hash);
        line
    }
}

/// The first `max` characters of `text`, or `None` when it is not longer.
fn truncate(text: &str, max: usize) -> Option<&str> {
    text.char_indices().nth(max).map(|(at, _)| &text[..at])
}

/// Something a tool answers: its structured form and its text block.
pub trait ToolOutput: Serialize {
    fn text(&self) -> String;
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StoreOutput {
    pub content_hash: String,
    /// The content was already stored; nothing changed.
    pub duplicate: bool,
}

/// mcp-memory-service's wording: the Claude Code hooks' MCP mode takes a store as
/// done only when the text holds `(hash: <hex>)`. A duplicate is stored, so it says
/// so in the same shape.
impl ToolOutput for StoreOutput {
    fn text(&self) -> String {
        if self.duplicate {
            format!(
                "Memory already stored (hash: {}); nothing changed",
                self.content_hash
            )
        } else {
            format!("Memory stored successfully (hash: {})", self.content_hash)
        }
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SearchHit {
    /// 0 to 1, higher is closer. Filter-only matches (exact mode) score 1.
    pub score: f64,
    pub memory: MemoryItem,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SearchOutput {
    pub query: String,
    /// semantic, hybrid or exact.
    pub mode: String,
    pub count: usize,
    /// Best first.
    pub results: Vec<SearchHit>,
}

impl From<SearchResponse> for SearchOutput {
    fn from(response: SearchResponse) -> Self {
        Self {
            query: response.query,
            mode: response.search_type,
            count: response.results.len(),
            results: response
                .results
                .into_iter()
                .map(|r| SearchHit {
                    score: r.similarity_score,
                    memory: MemoryItem::preview(r.memory),
                })
                .collect(),
        }
    }
}

impl ToolOutput for SearchOutput {
    fn text(&self) -> String {
        if self.results.is_empty() {
            return format!("no memories match \"{}\" ({})", self.query, self.mode);
        }
        let mut text = format!(
            "{} result(s) for \"{}\" ({}):",
            self.count, self.query, self.mode
        );
        for (i, hit) in self.results.iter().enumerate() {
            let _ = write!(
                text,
                "\n{}. [{:.2}] {}",
                i + 1,
                hit.score,
                hit.memory.line()
            );
        }
        text
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ListOutput {
    /// Newest first.
    pub memories: Vec<MemoryItem>,
    /// Matching memories in all pages.
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
    /// Another page follows; ask for page + 1.
    pub has_more: bool,
}

impl From<rest::ListResponse> for ListOutput {
    fn from(response: rest::ListResponse) -> Self {
        Self {
            memories: response
                .memories
                .into_iter()
                .map(MemoryItem::preview)
                .collect(),
            total: response.total,
            page: response.page,
            page_size: response.page_size,
            has_more: response.has_more,
        }
    }
}

impl ToolOutput for ListOutput {
    fn text(&self) -> String {
        let mut text = format!(
            "page {} ({} per page) of {} memories:",
            self.page, self.page_size, self.total
        );
        if self.memories.is_empty() {
            text.push_str(" none here");
        }
        for memory in &self.memories {
            let _ = write!(text, "\n- {}", memory.line());
        }
        if self.has_more {
            let _ = write!(text, "\nmore: ask for page {}", self.page + 1);
        }
        text
    }
}

impl ToolOutput for MemoryItem {
    fn text(&self) -> String {
        let mut text = self.content.clone();
        let _ = write!(text, "\n\nhash {}", self.content_hash);
        if !self.tags.is_empty() {
            let _ = write!(text, "; tags: {}", self.tags.join(", "));
        }
        if let Some(kind) = &self.memory_type {
            let _ = write!(text, "; type: {kind}");
        }
        let _ = write!(text, "; created {}", self.created_at);
        if !self.metadata.is_empty() {
            let _ = write!(text, "; metadata: {}", Value::Object(self.metadata.clone()));
        }
        text
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct UpdateOutput {
    pub content_hash: String,
    pub memory: MemoryItem,
}

impl ToolOutput for UpdateOutput {
    fn text(&self) -> String {
        format!("updated: {}", self.memory.line())
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DeleteOutput {
    /// Deleted (or, in a dry run, that would be deleted), newest first.
    pub content_hashes: Vec<String>,
    /// Matching memories in all, including any beyond this call's limit.
    pub matched: u64,
    pub dry_run: bool,
    /// More memories match than this call handled; call again.
    pub has_more: bool,
}

impl From<DeleteMatchingResponse> for DeleteOutput {
    fn from(r: DeleteMatchingResponse) -> Self {
        Self {
            content_hashes: r.content_hashes,
            matched: r.matched,
            dry_run: r.dry_run,
            has_more: r.has_more,
        }
    }
}

impl ToolOutput for DeleteOutput {
    fn text(&self) -> String {
        let n = self.content_hashes.len();
        let mut text = match (self.dry_run, n) {
            (_, 0) => "no memory matches; nothing deleted".to_owned(),
            (true, _) => format!("dry run: would delete {n} of {} matching", self.matched),
            (false, _) => format!("deleted {n} of {} matching", self.matched),
        };
        for hash in &self.content_hashes {
            let _ = write!(text, "\n- {hash}");
        }
        if self.has_more {
            text.push_str("\nmore match: call again");
        }
        text
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct HealthOutput {
    /// "healthy" or "loading".
    pub status: String,
    pub version: String,
    pub memories: u64,
    pub model: String,
    pub dimension: usize,
    pub uptime_seconds: f64,
    /// SHA-256 of the server's certificate, when it serves HTTPS.
    pub tls_fingerprint: Option<String>,
    /// The server's pin (SHA-256 of its public key), when it serves HTTPS.
    pub tls_pin: Option<String>,
}

impl From<DetailedHealth> for HealthOutput {
    fn from(h: DetailedHealth) -> Self {
        Self {
            status: serde_json::to_value(h.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            version: h.version,
            memories: h.memories,
            model: h.model,
            dimension: h.dimension,
            uptime_seconds: h.uptime_seconds,
            tls_fingerprint: h.tls_fingerprint,
            tls_pin: h.tls_pin,
        }
    }
}

/// `check_database_health` answers as mcp-memory-service does: its JSON after a
/// title line, as text (its clients parse the text), and the same object structured.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LegacyHealthOutput {
    pub version: String,
    pub validation: LegacyValidation,
    /// The storage figures: backend, total_memories, unique_tags, database_size_mb, …
    pub statistics: Map<String, Value>,
    /// Always empty: mcp-memory-service's integrity monitor has no counterpart.
    pub integrity: Map<String, Value>,
    pub performance: LegacyPerformance,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LegacyValidation {
    /// "healthy" or "unhealthy".
    pub status: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LegacyPerformance {
    pub storage: Map<String, Value>,
    pub server: Map<String, Value>,
}

impl From<DetailedHealth> for LegacyHealthOutput {
    fn from(h: DetailedHealth) -> Self {
        let healthy = h.status == mnemo_api::health::HealthStatus::Healthy;
        let mut server = Map::new();
        server.insert(
            "storage_type".into(),
            Value::from(h.storage.backend.clone()),
        );
        server.insert("uptime_seconds".into(), Value::from(h.uptime_seconds));
        Self {
            version: h.version,
            validation: LegacyValidation {
                status: if healthy { "healthy" } else { "unhealthy" }.into(),
                message: if healthy {
                    format!("{} database validation successful", h.storage.backend)
                } else {
                    "the memory server is not ready".into()
                },
            },
            statistics: match serde_json::to_value(&h.storage) {
                Ok(Value::Object(map)) => map,
                _ => Map::new(),
            },
            integrity: Map::new(),
            performance: LegacyPerformance {
                storage: Map::new(),
                server,
            },
        }
    }
}

impl ToolOutput for LegacyHealthOutput {
    fn text(&self) -> String {
        let json = serde_json::to_string_pretty(self).unwrap_or_default();
        format!("Database Health Check Results:\n{json}")
    }
}

impl ToolOutput for HealthOutput {
    fn text(&self) -> String {
        format!(
            "{}: Mnemo {}, {} memories, model {} ({} dimensions), up {:.0} s",
            self.status,
            self.version,
            self.memories,
            self.model,
            self.dimension,
            self.uptime_seconds
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(content: &str) -> rest::Memory {
        rest::Memory {
            content: content.into(),
            content_hash: "h".into(),
            tags: vec!["a".into()],
            memory_type: None,
            metadata: Map::new(),
            created_at: 0.0,
            created_at_iso: rest::iso8601(0.0),
            updated_at: 0.0,
            updated_at_iso: rest::iso8601(0.0),
        }
    }

    #[test]
    fn long_contents_are_cut_on_a_character_boundary_with_a_marker() {
        let long = "é".repeat(PREVIEW_CHARS + 1);
        let item = MemoryItem::preview(memory(&long));
        assert!(item.truncated);
        assert!(item.content.starts_with(&"é".repeat(PREVIEW_CHARS)));
        assert!(item.content.contains("[truncated; memory_get"));

        let exact = "x".repeat(PREVIEW_CHARS);
        let item = MemoryItem::preview(memory(&exact));
        assert!(!item.truncated);
        assert_eq!(item.content, exact);
    }

    #[test]
    fn text_lines_show_the_hash() {
        let item = MemoryItem::preview(memory("first line\nsecond"));
        assert_eq!(item.line(), "first line… [tags: a] (hash h)");
    }
}

//! The REST API's request and response bodies (ARCHITECTURE.md, "REST contract").
//!
//! Field names and shapes follow the Python `mcp-memory-service`, so its clients work
//! against Mnemo unchanged. Optional request fields default when absent, and unknown
//! fields are ignored, as mcp-memory-service does.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

/// Largest `page_size`, `n_results` and `limit` any endpoint accepts.
pub const MAX_RESULTS: u32 = 100;

/// A memory as the API shows it: float epoch timestamps plus RFC 3339 (UTC, `Z`) copies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Memory {
    pub content: String,
    pub content_hash: String,
    pub tags: Vec<String>,
    pub memory_type: Option<String>,
    pub metadata: Map<String, Value>,
    pub created_at: f64,
    pub created_at_iso: String,
    pub updated_at: f64,
    pub updated_at_iso: String,
}

/// RFC 3339 in UTC with microseconds and a `Z`, as mcp-memory-service writes `*_iso` fields.
pub fn iso8601(epoch_seconds: f64) -> String {
    let micros = (epoch_seconds * 1e6).round() as i64;
    match jiff::Timestamp::from_microsecond(micros) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        Err(_) => String::new(),
    }
}

/// `POST /api/memories`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct StoreRequest {
    #[schema(min_length = 1, pattern = r"\S")]
    pub content: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub memory_type: Option<String>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Recorded in metadata, as mcp-memory-service does.
    #[serde(default)]
    pub conversation_id: Option<String>,
}

/// The answer to a store, update or delete: mcp-memory-service's envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MutationResponse {
    pub success: bool,
    pub message: String,
    pub content_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
}

/// Whether a tag filter needs any or all of its tags.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum TagMatch {
    #[default]
    Any,
    All,
}

/// `GET /api/memories` query string.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub page: Option<u32>,
    pub page_size: Option<u32>,
    /// Comma-separated.
    pub tag: Option<String>,
    pub tag_match: Option<TagMatch>,
    pub memory_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListResponse {
    pub memories: Vec<Memory>,
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
    pub has_more: bool,
}

/// `PUT /api/memories/{hash}`. Tags replace, metadata merges (a `null` value removes
/// its key), `memory_type: null` clears the type.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(min_properties = 1)]
pub struct UpdateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Absent (not sent) keeps the type; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_type: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// Tells "absent" (outer `None`) from "null" (`Some(None)`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// How `POST /api/search` matches.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Nearest vectors.
    #[default]
    Semantic,
    /// Vector and full-text (BM25) rankings fused by reciprocal rank.
    Hybrid,
    /// Case-insensitive substring, newest first.
    Exact,
}

impl SearchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Semantic => "semantic",
            Self::Hybrid => "hybrid",
            Self::Exact => "exact",
        }
    }
}

/// An instant in a request: float epoch seconds or an RFC 3339 string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Instant {
    Epoch(f64),
    Text(String),
}

fn default_n_results() -> u32 {
    10
}

/// `POST /api/search`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchRequest {
    #[schema(min_length = 1, pattern = r"\S")]
    pub query: String,
    #[serde(default = "default_n_results")]
    #[schema(minimum = 1, maximum = 100)]
    pub n_results: u32,
    /// On the `similarity_score` scale (0..1).
    #[serde(default)]
    pub similarity_threshold: Option<f64>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub tag_match: TagMatch,
    #[serde(default)]
    pub memory_type: Option<String>,
    #[serde(default)]
    pub mode: SearchMode,
    /// `after`, `before`, and Mnemo's `time` and `tz`.
    #[serde(flatten)]
    pub period: Period,
}

/// `GET /api/search/similar/{hash}?n_results=`: 1 to [`MAX_RESULTS`], 10 by default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SimilarQuery {
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub n_results: Option<u32>,
}

/// When the memories a request means were created: `after` and `before` (epoch
/// seconds or RFC 3339), and a Mnemo extension, `time`: a period in words ("last
/// week", "since march"), combined with the bounds. A phrase inside longer text is
/// found ("what did I note yesterday" reads as yesterday), so a whole question can
/// be passed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Period {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Instant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Instant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// IANA zone or offset for calendar boundaries; UTC by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
}

impl Period {
    pub fn is_empty(&self) -> bool {
        self.after.is_none() && self.before.is_none() && self.time.is_none()
    }
}

impl SearchRequest {
    /// A semantic search for `query` with every other field at its default.
    pub fn new(query: impl Into<String>) -> Self {
        Self {
            query: query.into(),
            n_results: default_n_results(),
            similarity_threshold: None,
            tags: Vec::new(),
            tag_match: TagMatch::Any,
            memory_type: None,
            mode: SearchMode::Semantic,
            period: Period::default(),
        }
    }
}

/// One hit of any search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchResult {
    pub memory: Memory,
    /// `1 - cosine_distance / 2`, mcp-memory-service's scale.
    pub similarity_score: f64,
    pub cosine_similarity: f64,
    pub relevance_reason: String,
}

/// The envelope every search endpoint answers with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchResponse {
    pub results: Vec<SearchResult>,
    pub total_found: usize,
    pub query: String,
    pub search_type: String,
    pub processing_time_ms: f64,
}

/// `POST /api/search/by-tag`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TagSearchRequest {
    #[schema(min_items = 1)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub match_all: bool,
    #[serde(default = "default_n_results")]
    #[schema(minimum = 1, maximum = 100)]
    pub limit: u32,
}

/// `POST /api/search/by-time`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TimeSearchRequest {
    /// "yesterday", "last week", "last 7 days", …
    #[schema(min_length = 1, pattern = r"\S")]
    pub query: String,
    #[serde(default = "default_n_results")]
    #[schema(minimum = 1, maximum = 100)]
    pub n_results: u32,
    /// Ranks the memories of the period by meaning; without it, newest first.
    #[serde(default)]
    pub semantic_query: Option<String>,
    /// IANA zone or offset for calendar boundaries; UTC by default.
    #[serde(default)]
    pub tz: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TagCount {
    pub tag: String,
    pub count: u64,
}

/// `GET /api/tags`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TagsResponse {
    pub tags: Vec<TagCount>,
}

/// An element of `GET /api/types`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TypeCount {
    pub memory_type: String,
    pub count: u64,
}

/// One turn of a conversation in `POST /api/sessions`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Turn {
    pub role: String,
    pub content: String,
}

/// `POST /api/sessions`: a conversation stored as one memory of type `session`, tagged
/// `session:<id>`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionRequest {
    #[schema(min_length = 1, pattern = r"\S")]
    pub session_id: String,
    #[schema(min_items = 1)]
    pub turns: Vec<Turn>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// One memory of `POST /api/memories/import` (admin): a store request that keeps its
/// original creation time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportedMemory {
    #[serde(flatten)]
    pub memory: StoreRequest,
    pub created_at: Instant,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportRequest {
    pub memories: Vec<ImportedMemory>,
}

/// `POST /api/memories/batch`: up to [`MAX_BATCH`] store requests, embedded as one batch.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct BatchStoreRequest {
    pub memories: Vec<StoreRequest>,
}

/// Most memories in one batch store or import.
pub const MAX_BATCH: usize = 100;

/// Per-memory outcome of a batch store or an import, in request order; duplicates and
/// invalid items fail only themselves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BatchResponse {
    pub results: Vec<MutationResponse>,
    pub stored: usize,
}

/// `POST /api/memories/delete` (Mnemo extension): deletes the memories that match
/// every given filter, newest first, at most `limit` per call. At least one filter
/// is required, so an empty body cannot empty the store.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct DeleteMatchingRequest {
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub tag_match: TagMatch,
    #[serde(default)]
    pub memory_type: Option<String>,
    #[serde(flatten)]
    pub period: Period,
    /// Report what would be deleted, delete nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// At most this many per call (default and cap [`MAX_RESULTS`]).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeleteMatchingResponse {
    pub success: bool,
    /// The memories deleted (or, in a dry run, that would be), newest first.
    pub content_hashes: Vec<String>,
    /// How many memories match in all, including those beyond `limit`.
    pub matched: u64,
    pub dry_run: bool,
    /// More memories match than this call handled; call again.
    pub has_more: bool,
}

/// `POST /api/auth/proof` (public): a fresh random nonce, as hex (16 to 64 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProofRequest {
    #[schema(pattern = "^([0-9a-fA-F]{2}){16,64}$")]
    pub nonce: String,
}

/// The answer: one proof per key the server holds (at most 32), each the hex of
/// HMAC-SHA256(SHA-256(key), nonce ‖ the SPKI pin of the certificate the connection was
/// served with; nothing over plain HTTP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProofResponse {
    pub proofs: Vec<String>,
}

/// `POST /api/events/ticket`: a single-use credential for `?ticket=` on either event
/// stream, with the scope of the key that asked. mcp-memory-service's body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TicketResponse {
    pub ticket: String,
    /// 60: the ticket must open a stream within this time.
    pub expires_in_seconds: f64,
    /// The query parameter that carries it: `ticket`.
    pub param_name: String,
}

/// `GET /api/events/stats` (admin): the change feed's subscribers and their lag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FeedStats {
    pub subscribers: usize,
    /// Subscribers closed because they fell behind and stopped reading.
    pub stalled_disconnects: u64,
    /// The sequence number of the newest event.
    pub head_seq: i64,
    /// At most 1000.
    pub clients: Vec<FeedClient>,
}

/// One subscriber of the change feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FeedClient {
    pub id: u64,
    /// The peer address, when known.
    pub client: Option<String>,
    pub connected_seconds: f64,
    /// The last event delivered to it.
    pub last_event_id: i64,
    /// Events committed but not yet delivered to it.
    pub lag: i64,
}

/// An import answers like a batch store.
pub type ImportResponse = BatchResponse;

/// `GET /api/health/detailed`: Mnemo's flat fields, plus mcp-memory-service's
/// `timestamp`, `storage` and `statistics` objects, which its Claude Code hooks read for
/// their banner. No database path: mcp-memory-service removed it as an information
/// leak (GHSA-73hc-m4hx-79pj), and so does Mnemo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DetailedHealth {
    pub status: crate::health::HealthStatus,
    pub version: String,
    /// ISO 8601, UTC: when this report was made.
    #[serde(default)]
    pub timestamp: String,
    pub uptime_seconds: f64,
    pub model: String,
    pub dimension: usize,
    pub memories: u64,
    pub database_bytes: u64,
    #[serde(default)]
    pub storage: StorageHealth,
    #[serde(default)]
    pub statistics: HealthStatistics,
    /// SHA-256 of the served certificate, when TLS is on, as
    /// `openssl x509 -noout -fingerprint -sha256` prints it. It changes whenever the
    /// certificate is re-issued.
    pub tls_fingerprint: Option<String>,
    /// SHA-256 of the served certificate's SubjectPublicKeyInfo, when TLS is on: the pin
    /// clients trust, also in mDNS `fp`. It changes only with the key.
    #[serde(default)]
    pub tls_pin: Option<String>,
}

/// mcp-memory-service's `storage` object of the detailed health.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StorageHealth {
    /// `sqlite-vec` (mcp-memory-service's name for SQLite) or `postgresql`.
    pub backend: String,
    /// `connected` once the database is open.
    pub status: String,
    pub accessible: bool,
    pub embedding_model: String,
    pub embedding_dimension: usize,
    pub total_memories: u64,
    pub unique_tags: u64,
    /// Memories created in the last 7 days.
    pub memories_this_week: u64,
    pub database_size_bytes: u64,
    /// Rounded to two decimals, as mcp-memory-service does.
    pub database_size_mb: f64,
}

/// mcp-memory-service's `statistics` object of the detailed health.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthStatistics {
    pub total_memories: u64,
    pub unique_tags: u64,
    pub memories_this_week: u64,
    pub database_size_mb: f64,
    pub backend: String,
}

/// Megabytes (MiB) rounded to two decimals, as mcp-memory-service reports sizes.
pub fn size_mb(bytes: u64) -> f64 {
    (bytes as f64 / (1024.0 * 1024.0) * 100.0).round() / 100.0
}

/// `GET /api/stats/daily?days=&tz=`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DailyQuery {
    /// 1 to 366; 90 when absent.
    #[serde(default)]
    pub days: Option<u32>,
    /// The IANA zone (or offset) the days are cut in; UTC when absent.
    #[serde(default)]
    pub tz: Option<String>,
}

/// One day of `GET /api/stats/daily`: the date in the asked time zone and how many
/// memories stored then still exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DailyCount {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub count: u64,
}

/// `GET /api/stats/daily?days=N&tz=…`: one entry per day, oldest first, the last
/// being today; days without memories count 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DailyStats {
    pub days: Vec<DailyCount>,
    /// The time zone the days were cut in (`UTC` unless `tz` named another).
    pub tz: String,
}

/// A managed API key as `GET /api/keys` lists it: never its secret or its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    /// `read`, `write` or `admin`.
    pub scope: String,
    /// ISO 8601.
    pub created_at: String,
}

/// `GET /api/keys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyInfo>,
}

/// `POST /api/keys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreateKey {
    pub name: String,
    /// `read`, `write` or `admin`.
    pub scope: String,
}

/// The answer to `POST /api/keys`: the only time the key itself is ever shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub info: KeyInfo,
    pub key: String,
}

/// `GET /api/auth/scope`: what the presented key may do, so a client can show only
/// the controls that will work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyScope {
    /// `read`, `write` or `admin`.
    pub scope: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `*_iso` strings are UTC with microseconds and `Z`.
    #[test]
    fn iso_format() {
        assert_eq!(iso8601(0.0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(iso8601(1_700_000_000.25), "2023-11-14T22:13:20.250000Z");
    }

    /// An update tells an absent memory_type from an explicit null.
    #[test]
    fn update_distinguishes_null_from_absent() {
        let absent: UpdateRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.memory_type, None);
        let null: UpdateRequest = serde_json::from_str(r#"{"memory_type":null}"#).unwrap();
        assert_eq!(null.memory_type, Some(None));
        // A client (the bridge) must not turn "keep the type" into "clear it".
        assert_eq!(serde_json::to_string(&absent).unwrap(), "{}");
        assert_eq!(
            serde_json::to_string(&null).unwrap(),
            r#"{"memory_type":null}"#
        );
    }
}

//! Moving memories between servers: `GET /api/export` writes JSON Lines, one
//! [`ExportedMemory`] per line, and `POST /api/import` reads the same lines back and
//! answers an [`ImportReport`]. `mnemo-server export|import` use the same format
//! offline, so a file written by one is read by the other.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

/// The media type of an export: JSON Lines, one memory per line.
pub const JSONL: &str = "application/x-ndjson";

/// Longest line an import reads, in bytes: a memory at the largest content and
/// metadata limits, with a vector, fits many times over. A longer line is reported
/// as an error and skipped without being held in memory.
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// Most problem lines an [`ImportReport`] lists one by one; past that only the counts
/// grow, so a report stays small whatever the import's size.
pub const MAX_REPORTED_LINES: usize = 1000;

/// One memory of an export, one JSON object per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExportedMemory {
    pub content: String,
    /// SHA-256 of the trimmed content. On import it is recomputed from `content`,
    /// never trusted, so a line whose hash disagrees still lands under the right one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub content_hash: String,
    /// In the order given.
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub memory_type: Option<String>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Seconds since the Unix epoch. Missing on import: now.
    #[serde(default)]
    pub created_at: Option<f64>,
    /// Seconds since the Unix epoch. Missing on import: the creation time.
    #[serde(default)]
    pub updated_at: Option<f64>,
    /// The same times in RFC 3339, for people reading the file; import reads the
    /// numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at_iso: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at_iso: Option<String>,
    /// The stored vector (`?vectors=true`), L2-normalised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
    /// The model that made `embedding`. An import uses a vector only from the
    /// model it runs with; otherwise it refuses the line rather than mix models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_model: Option<String>,
}

/// `GET /api/export?vectors=true`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Include each memory's vector and the model that made it.
    #[serde(default)]
    pub vectors: bool,
}

/// What became of one line of an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineStatus {
    /// Stored.
    Accepted,
    /// Its content is already stored (by an earlier import, or an earlier line):
    /// importing the same file twice changes nothing.
    Duplicate,
    /// Not stored: the line is not a memory, or breaks a rule; `message` says which.
    Error,
}

/// One line of an import that was not simply accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LineReport {
    /// 1-based line number in the body.
    pub line: u64,
    pub status: LineStatus,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub content_hash: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The answer to `POST /api/import`: counts of every line, and each duplicate or
/// error by line number (the first [`MAX_REPORTED_LINES`] of them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ImportReport {
    /// Lines read, blank ones included.
    pub lines: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub errors: u64,
    /// Duplicates and errors, in line order.
    pub problems: Vec<LineReport>,
    /// More problems happened than `problems` lists.
    pub problems_truncated: bool,
}

impl ImportReport {
    /// Counts one line's outcome, listing it unless it was accepted.
    pub fn record(&mut self, report: LineReport) {
        match report.status {
            LineStatus::Accepted => {
                self.accepted += 1;
                return;
            }
            LineStatus::Duplicate => self.duplicates += 1,
            LineStatus::Error => self.errors += 1,
        }
        if self.problems.len() < MAX_REPORTED_LINES {
            self.problems.push(report);
        } else {
            self.problems_truncated = true;
        }
    }
}

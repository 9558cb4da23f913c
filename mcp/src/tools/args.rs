//! The arguments of the advertised tools. Field docs become the `description`s a
//! model reads in `tools/list`, so they say what to pass, not how it is stored.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::ops::{OpsError, OpsErrorKind};
use mnemo_api::rest::{SearchMode, TagMatch};

/// Largest page of `memory_list` and most results of `memory_search`.
pub const MAX_LIMIT: u32 = mnemo_api::rest::MAX_RESULTS;

/// `value` (or `default` when absent) if it lies in `min..=max`; otherwise an argument
/// error naming the argument and the range. Out-of-range values are refused, not
/// clamped, so that a model learns the bounds its schema declares.
pub fn in_range(
    name: &str,
    value: Option<u32>,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, OpsError> {
    let value = value.unwrap_or(default);
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(out_of_range(name, value, min, max))
    }
}

/// The argument error of a value outside `min..=max`.
pub fn out_of_range(name: &str, value: impl std::fmt::Display, min: u32, max: u32) -> OpsError {
    OpsError::new(
        OpsErrorKind::Invalid,
        format!("{name} is {value}; give a value from {min} to {max}"),
    )
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreArgs {
    /// The text to remember: one self-contained fact, decision or note. Identical
    /// text is stored once.
    pub content: String,
    /// Short labels to find it by later, e.g. ["project-x", "decision"].
    #[serde(default)]
    pub tags: Vec<String>,
    /// A kind such as "note", "decision", "task" or "reference".
    #[serde(default)]
    pub memory_type: Option<String>,
    /// Any extra JSON attributes to keep with it.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchArgs {
    /// What to look for, in words. Semantic mode matches meaning, so "puppy" finds
    /// a memory about a dog.
    pub query: String,
    /// "semantic" (default) ranks by meaning, "hybrid" also ranks by keywords (best
    /// for names and rare terms), "exact" finds the text as a substring.
    #[serde(default)]
    pub mode: Option<SearchMode>,
    /// How many results, 1 to 100 (default 10).
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
    /// Only memories with these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// With several tags: "any" (default) or "all" of them.
    #[serde(default)]
    pub tag_match: Option<TagMatch>,
    /// Only memories of this type.
    #[serde(default)]
    pub memory_type: Option<String>,
    /// Only memories created in this period, in words: "yesterday", "last week",
    /// "last 3 days", "since march", "2025-06".
    #[serde(default)]
    pub time: Option<String>,
    /// Only memories created at or after this instant (RFC 3339, e.g.
    /// "2025-06-01T00:00:00Z").
    #[serde(default)]
    pub after: Option<String>,
    /// Only memories created before this instant (RFC 3339).
    #[serde(default)]
    pub before: Option<String>,
    /// Drop results whose score is below this (0 to 1).
    #[serde(default)]
    #[schemars(range(min = 0, max = 1))]
    pub min_score: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// Page number, from 1.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub page: Option<u32>,
    /// Memories per page, 1 to 100 (default 20).
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub page_size: Option<u32>,
    /// Only memories with these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// With several tags: "any" (default) or "all" of them.
    #[serde(default)]
    pub tag_match: Option<TagMatch>,
    /// Only memories of this type.
    #[serde(default)]
    pub memory_type: Option<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetArgs {
    /// The memory's content_hash, as search and list results show it.
    pub content_hash: String,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateArgs {
    /// The memory's content_hash. Its content cannot change; store a new memory
    /// and delete the old one instead.
    pub content_hash: String,
    /// Replaces all of its tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Replaces its type; an empty string clears it.
    #[serde(default)]
    pub memory_type: Option<String>,
    /// Merged into its metadata; a null value removes that key.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteArgs {
    /// Delete this one memory. Give either this or filters, not both.
    #[serde(default)]
    pub content_hash: Option<String>,
    /// Delete memories with these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// With several tags: "any" (default) or "all" of them.
    #[serde(default)]
    pub tag_match: Option<TagMatch>,
    /// Delete memories of this type.
    #[serde(default)]
    pub memory_type: Option<String>,
    /// Delete memories created in this period, in words ("last week").
    #[serde(default)]
    pub time: Option<String>,
    /// Delete memories created at or after this instant (RFC 3339).
    #[serde(default)]
    pub after: Option<String>,
    /// Delete memories created before this instant (RFC 3339).
    #[serde(default)]
    pub before: Option<String>,
    /// Only report what would be deleted. Use it first when deleting by filter.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthArgs {}

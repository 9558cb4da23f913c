//! Read-only MCP resources: what a client such as Claude Desktop can attach to a
//! conversation without a model calling a tool.
//!
//! The URIs are mcp-memory-service's (`memory://stats`, `memory://tags`,
//! `memory://recent/{n}`, `memory://tag/{tag}`, `memory://search/{query}`), plus
//! `memory://memory/{content_hash}` for one memory. Each is read through the same
//! [`MemoryOps`] as the tools, so `/mcp` and the bridge serve the same resources,
//! and the JSON is the REST API's bodies, so a resource reads like the endpoint it
//! mirrors.

use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use rmcp::ErrorData;
use rmcp::model::{Resource, ResourceContents, ResourceTemplate};
use serde::Serialize;
use serde_json::json;

use crate::ops::{MemoryOps, OpsError, OpsErrorKind};
use crate::tools::args::MAX_LIMIT;
use mnemo_api::rest::{ListQuery, SearchRequest};

const JSON: &str = "application/json";
/// How many results `memory://search/{query}` gives, as mcp-memory-service does.
const SEARCH_RESULTS: u32 = 10;
/// How many of the most used tags `resources/list` offers as `memory://tag/{tag}`.
const LISTED_TAGS: usize = 5;

/// One readable resource, parsed from its URI.
#[derive(Debug, Clone, PartialEq)]
pub enum ResourceUri {
    Stats,
    Tags,
    Recent(u32),
    Tag(String),
    Search(String),
    Memory(String),
}

impl ResourceUri {
    /// Parses a `memory://` URI; the error says which URIs exist.
    pub fn parse(uri: &str) -> Result<Self, OpsError> {
        let unknown = || {
            OpsError::new(
                OpsErrorKind::NotFound,
                format!(
                    "no resource {uri}; resources/list and resources/templates/list name \
                     the resources (memory://stats, memory://tags, memory://recent/{{n}}, \
                     memory://tag/{{tag}}, memory://search/{{query}}, \
                     memory://memory/{{content_hash}})"
                ),
            )
        };
        let rest = uri.strip_prefix("memory://").ok_or_else(unknown)?;
        let (kind, argument) = match rest.split_once('/') {
            Some((kind, argument)) => (kind, Some(decode(argument)?)),
            None => (rest, None),
        };
        let nonempty = |argument: Option<String>| argument.filter(|a| !a.trim().is_empty());
        match (kind, argument) {
            ("stats", None) => Ok(Self::Stats),
            ("tags", None) => Ok(Self::Tags),
            ("recent", Some(n)) => {
                let n: u32 = n.parse().map_err(|_| {
                    OpsError::new(
                        OpsErrorKind::Invalid,
                        format!(
                            "memory://recent/{{n}} takes a number from 1 to {MAX_LIMIT}, not {n:?}"
                        ),
                    )
                })?;
                crate::tools::args::in_range("n", Some(n), n, 1, MAX_LIMIT).map(Self::Recent)
            }
            ("tag", argument) => nonempty(argument).map(Self::Tag).ok_or_else(unknown),
            ("search", argument) => nonempty(argument).map(Self::Search).ok_or_else(unknown),
            ("memory", argument) => nonempty(argument).map(Self::Memory).ok_or_else(unknown),
            _ => Err(unknown()),
        }
    }
}

fn decode(argument: &str) -> Result<String, OpsError> {
    percent_decode_str(argument)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            OpsError::new(
                OpsErrorKind::Invalid,
                "the resource URI is not UTF-8 once decoded",
            )
        })
}

/// The URI of `memory://tag/{tag}` for a tag, escaped so that any tag makes one segment.
pub fn tag_uri(tag: &str) -> String {
    format!(
        "memory://tag/{}",
        utf8_percent_encode(tag, NON_ALPHANUMERIC)
    )
}

/// The fixed resources, then the most used tags (best effort: a listing must not fail
/// because the catalogue could not be read).
pub async fn list<M: MemoryOps>(ops: &M, caller: Option<&M::Caller>) -> Vec<Resource> {
    let mut resources = vec![
        Resource::new("memory://stats", "stats")
            .with_title("Memory statistics")
            .with_description("The server's health: memory count, tags, database size, model.")
            .with_mime_type(JSON),
        Resource::new("memory://tags", "tags")
            .with_title("Tags and their counts")
            .with_description("Every tag in use, with how many memories carry it, most used first.")
            .with_mime_type(JSON),
        Resource::new("memory://recent/10", "recent")
            .with_title("Recent memories")
            .with_description("The 10 newest memories.")
            .with_mime_type(JSON),
    ];
    if let Some(caller) = caller
        && let Ok(tags) = ops.tags(caller).await
    {
        resources.extend(tags.tags.into_iter().take(LISTED_TAGS).map(|t| {
            Resource::new(tag_uri(&t.tag), format!("tag:{}", t.tag))
                .with_title(format!("Memories tagged {:?}", t.tag))
                .with_description(format!(
                    "The {} newest memories tagged {:?}.",
                    MAX_LIMIT, t.tag
                ))
                .with_mime_type(JSON)
        }));
    }
    resources
}

/// The parameterised resources, as RFC 6570 templates.
pub fn templates() -> Vec<ResourceTemplate> {
    let template = |uri: &str, name: &str, title: &str, description: String| {
        ResourceTemplate::new(uri, name)
            .with_title(title)
            .with_description(description)
            .with_mime_type(JSON)
    };
    vec![
        template(
            "memory://recent/{n}",
            "recent",
            "Recent memories",
            format!("The n newest memories, n from 1 to {MAX_LIMIT}."),
        ),
        template(
            "memory://tag/{tag}",
            "tag",
            "Memories by tag",
            format!("The {MAX_LIMIT} newest memories carrying a tag."),
        ),
        template(
            "memory://search/{query}",
            "search",
            "Search memories",
            format!("The {SEARCH_RESULTS} memories closest in meaning to the query."),
        ),
        template(
            "memory://memory/{content_hash}",
            "memory",
            "One memory",
            "A memory in full, by its content_hash.".to_owned(),
        ),
    ]
}

/// Reads one resource as JSON text. A URI that names no resource is refused as such;
/// an operation that fails says what to do, as a failed tool call does.
pub async fn read<M: MemoryOps>(
    ops: &M,
    caller: &M::Caller,
    uri: &str,
) -> Result<ResourceContents, ErrorData> {
    let resource = ResourceUri::parse(uri).map_err(|e| match e.kind {
        OpsErrorKind::NotFound => ErrorData::resource_not_found(e.message, None),
        _ => ErrorData::invalid_params(e.message, None),
    })?;
    let text = contents(ops, caller, resource)
        .await
        .map_err(|e| operation_failed(&e))?;
    Ok(ResourceContents::TextResourceContents {
        uri: uri.to_owned(),
        mime_type: Some(JSON.to_owned()),
        text,
        meta: None,
    })
}

async fn contents<M: MemoryOps>(
    ops: &M,
    caller: &M::Caller,
    resource: ResourceUri,
) -> Result<String, OpsError> {
    match resource {
        ResourceUri::Stats => pretty(&ops.health(caller).await?),
        ResourceUri::Tags => {
            let tags = ops.tags(caller).await?.tags;
            pretty(&json!({ "count": tags.len(), "tags": tags }))
        }
        ResourceUri::Recent(n) => {
            let page = ops.list(caller, newest(n, None)).await?;
            pretty(&json!({ "count": page.memories.len(), "memories": page.memories }))
        }
        ResourceUri::Tag(tag) => {
            let page = ops
                .list(caller, newest(MAX_LIMIT, Some(tag.clone())))
                .await?;
            pretty(&json!({
                "tag": tag,
                "count": page.memories.len(),
                "total": page.total,
                "memories": page.memories,
            }))
        }
        ResourceUri::Search(query) => {
            let request = SearchRequest {
                n_results: SEARCH_RESULTS,
                ..SearchRequest::new(query)
            };
            pretty(&ops.search(caller, request).await?)
        }
        ResourceUri::Memory(hash) => pretty(&ops.get(caller, hash).await?),
    }
}

fn newest(n: u32, tag: Option<String>) -> ListQuery {
    ListQuery {
        page: Some(1),
        page_size: Some(n),
        tag,
        tag_match: None,
        memory_type: None,
    }
}

fn pretty(value: &impl Serialize) -> Result<String, OpsError> {
    serde_json::to_string_pretty(value).map_err(|e| {
        OpsError::new(
            OpsErrorKind::Internal,
            format!("could not encode the resource: {e}"),
        )
    })
}

/// A failed operation as the JSON-RPC error MCP specifies: resource-not-found for a
/// memory that does not exist, else an internal error, with the advice of a failed
/// tool call. (rmcp sends resource-not-found as invalid params to 2026-07-28 peers,
/// as that revision of the protocol says.)
pub fn operation_failed(error: &OpsError) -> ErrorData {
    let message = crate::tools::explain(error);
    match error.kind {
        OpsErrorKind::NotFound => ErrorData::resource_not_found(message, None),
        OpsErrorKind::Invalid => ErrorData::invalid_params(message, None),
        _ => ErrorData::internal_error(message, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_with_their_arguments_decoded() {
        assert_eq!(
            ResourceUri::parse("memory://stats").unwrap(),
            ResourceUri::Stats
        );
        assert_eq!(
            ResourceUri::parse("memory://tags").unwrap(),
            ResourceUri::Tags
        );
        assert_eq!(
            ResourceUri::parse("memory://recent/7").unwrap(),
            ResourceUri::Recent(7)
        );
        assert_eq!(
            ResourceUri::parse(&tag_uri("to do/later")).unwrap(),
            ResourceUri::Tag("to do/later".into())
        );
        assert_eq!(
            ResourceUri::parse("memory://search/python%20programming").unwrap(),
            ResourceUri::Search("python programming".into())
        );
        assert_eq!(
            ResourceUri::parse("memory://memory/abc").unwrap(),
            ResourceUri::Memory("abc".into())
        );
    }

    #[test]
    fn bad_uris_say_what_exists() {
        for uri in [
            "file:///etc/passwd",
            "memory://nothing",
            "memory://stats/x",
            "memory://tag/",
            "memory://search/%20",
        ] {
            let e = ResourceUri::parse(uri).unwrap_err();
            assert_eq!(e.kind, OpsErrorKind::NotFound, "{uri}");
            assert!(
                e.message.contains("memory://recent/{n}"),
                "{uri}: {}",
                e.message
            );
        }
        for uri in [
            "memory://recent/0",
            "memory://recent/101",
            "memory://recent/ten",
            "memory://tag/%FF",
        ] {
            assert_eq!(
                ResourceUri::parse(uri).unwrap_err().kind,
                OpsErrorKind::Invalid,
                "{uri}"
            );
        }
    }
}

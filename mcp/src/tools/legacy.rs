//! mcp-memory-service's tool names. They are accepted, so prompts and configurations
//! written for `mcp-memory-service` keep working, but not listed: a model should
//! learn one name per tool. Each maps its own argument names onto the advertised
//! tool and answers with that tool's output.

use std::collections::BTreeSet;

use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::args::{DeleteArgs, HealthArgs, ListArgs, SearchArgs, StoreArgs, UpdateArgs};
use super::output::{
    DeleteOutput, LegacyHealthOutput, ListOutput, SearchOutput, StoreOutput, UpdateOutput,
};
use super::{Registry, Who, answer};
use crate::ops::MemoryOps;
use mnemo_api::rest::TagMatch;

/// Tags as mcp-memory-service took them: a list, or one comma-separated string.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Tags {
    List(Vec<String>),
    Text(String),
}

impl Tags {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::List(tags) => tags,
            Self::Text(text) => text
                .split(',')
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect(),
        }
    }
}

fn tags(lists: impl IntoIterator<Item = Option<Tags>>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    lists
        .into_iter()
        .flatten()
        .flat_map(Tags::into_vec)
        .filter(|t| seen.insert(t.clone()))
        .collect()
}

/// `store_memory`: mcp-memory-service kept tags and type inside `metadata`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct StoreMemory {
    pub content: String,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub tags: Option<Tags>,
    #[serde(default)]
    pub memory_type: Option<String>,
}

impl From<StoreMemory> for StoreArgs {
    fn from(legacy: StoreMemory) -> Self {
        let mut metadata = legacy.metadata.unwrap_or_default();
        let inner_tags = metadata
            .remove("tags")
            .and_then(|v| serde_json::from_value::<Tags>(v).ok());
        let inner_type = match metadata.remove("type") {
            Some(Value::String(t)) => Some(t),
            _ => None,
        };
        Self {
            content: legacy.content,
            tags: tags([legacy.tags, inner_tags]),
            memory_type: legacy.memory_type.or(inner_type),
            metadata: (!metadata.is_empty()).then_some(metadata),
        }
    }
}

/// `retrieve_memory`: semantic search.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct RetrieveMemory {
    pub query: String,
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub n_results: Option<u32>,
    #[serde(default)]
    #[schemars(range(min = 0, max = 1))]
    pub similarity_threshold: Option<f64>,
}

impl From<RetrieveMemory> for SearchArgs {
    fn from(legacy: RetrieveMemory) -> Self {
        Self {
            query: legacy.query,
            limit: Some(legacy.n_results.unwrap_or(5)),
            min_score: legacy.similarity_threshold,
            ..Self::default()
        }
    }
}

/// `recall_memory`: a question with a time phrase in it ("what did we decide last
/// week about the API"); the phrase limits the period, the whole text ranks.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct RecallMemory {
    pub query: String,
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub n_results: Option<u32>,
}

impl From<RecallMemory> for SearchArgs {
    fn from(legacy: RecallMemory) -> Self {
        Self {
            time: Some(legacy.query.clone()),
            query: legacy.query,
            limit: Some(legacy.n_results.unwrap_or(5)),
            ..Self::default()
        }
    }
}

/// `search_by_tag`: newest memories with any (or all) of the tags.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct SearchByTag {
    pub tags: Tags,
    #[serde(default)]
    pub match_all: bool,
    #[serde(default)]
    pub limit: Option<u32>,
}

impl From<SearchByTag> for ListArgs {
    fn from(legacy: SearchByTag) -> Self {
        Self {
            tags: legacy.tags.into_vec(),
            tag_match: Some(if legacy.match_all {
                TagMatch::All
            } else {
                TagMatch::Any
            }),
            page_size: legacy.limit,
            ..Self::default()
        }
    }
}

/// `delete_memory`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct DeleteMemory {
    pub content_hash: String,
}

impl From<DeleteMemory> for DeleteArgs {
    fn from(legacy: DeleteMemory) -> Self {
        Self {
            content_hash: Some(legacy.content_hash),
            ..Self::default()
        }
    }
}

/// `delete_by_tag`: older mcp-memory-service versions took one `tag`, newer ones `tags`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct DeleteByTag {
    #[serde(default)]
    pub tags: Option<Tags>,
    #[serde(default)]
    pub tag: Option<Tags>,
}

impl From<DeleteByTag> for DeleteArgs {
    fn from(legacy: DeleteByTag) -> Self {
        Self {
            tags: tags([legacy.tags, legacy.tag]),
            ..Self::default()
        }
    }
}

/// `list_memories`: one `tag`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct ListMemories {
    #[serde(default)]
    pub page: Option<u32>,
    #[serde(default)]
    pub page_size: Option<u32>,
    #[serde(default)]
    pub tag: Option<Tags>,
    #[serde(default)]
    pub memory_type: Option<String>,
}

impl From<ListMemories> for ListArgs {
    fn from(legacy: ListMemories) -> Self {
        Self {
            page: legacy.page,
            page_size: legacy.page_size,
            tags: tags([legacy.tag]),
            memory_type: legacy.memory_type,
            ..Self::default()
        }
    }
}

/// `update_memory_metadata`: `updates` held tags, type and metadata keys together.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct UpdateMemoryMetadata {
    pub content_hash: String,
    pub updates: Map<String, Value>,
    /// Accepted and ignored: an update never changes the creation time.
    #[serde(default)]
    pub preserve_timestamps: Option<bool>,
}

impl From<UpdateMemoryMetadata> for UpdateArgs {
    fn from(legacy: UpdateMemoryMetadata) -> Self {
        let mut updates = legacy.updates;
        let new_tags = updates
            .remove("tags")
            .and_then(|v| serde_json::from_value::<Tags>(v).ok())
            .map(Tags::into_vec);
        let memory_type = match updates
            .remove("memory_type")
            .or_else(|| updates.remove("type"))
        {
            Some(Value::String(t)) => Some(t),
            Some(Value::Null) => Some(String::new()),
            _ => None,
        };
        let metadata = match updates.remove("metadata") {
            Some(Value::Object(mut inner)) => {
                inner.extend(updates);
                inner
            }
            _ => updates,
        };
        Self {
            content_hash: legacy.content_hash,
            tags: new_tags,
            memory_type,
            metadata: (!metadata.is_empty()).then_some(metadata),
        }
    }
}

#[tool_router(router = legacy_router, vis = "pub(super)")]
impl<M: MemoryOps> Registry<M> {
    /// Legacy name of memory_store.
    #[tool(
        title = "Store memory (legacy name)",
        output_schema = schema_for_output::<StoreOutput>(),
        annotations(read_only_hint = false, open_world_hint = false)
    )]
    async fn store_memory(
        &self,
        who: Who<M>,
        Parameters(a): Parameters<StoreMemory>,
    ) -> CallToolResult {
        self.memory_store(who, Parameters(a.into())).await
    }

    /// Legacy name of memory_search.
    #[tool(
        title = "Retrieve memory (legacy name)",
        output_schema = schema_for_output::<SearchOutput>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn retrieve_memory(
        &self,
        who: Who<M>,
        Parameters(a): Parameters<RetrieveMemory>,
    ) -> CallToolResult {
        self.memory_search(who, Parameters(a.into())).await
    }

    /// Legacy name of memory_search with a time phrase.
    #[tool(
        title = "Recall memory (legacy name)",
        output_schema = schema_for_output::<SearchOutput>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn recall_memory(
        &self,
        who: Who<M>,
        Parameters(a): Parameters<RecallMemory>,
    ) -> CallToolResult {
        self.memory_search(who, Parameters(a.into())).await
    }

    /// Legacy name of memory_list by tags.
    #[tool(
        title = "Search by tag (legacy name)",
        output_schema = schema_for_output::<ListOutput>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn search_by_tag(
        &self,
        who: Who<M>,
        Parameters(a): Parameters<SearchByTag>,
    ) -> CallToolResult {
        self.memory_list(who, Parameters(a.into())).await
    }

    /// Legacy name of memory_delete by hash.
    #[tool(
        title = "Delete memory (legacy name)",
        output_schema = schema_for_output::<DeleteOutput>(),
        annotations(read_only_hint = false, open_world_hint = false)
    )]
    async fn delete_memory(
        &self,
        who: Who<M>,
        Parameters(a): Parameters<DeleteMemory>,
    ) -> CallToolResult {
        self.memory_delete(who, Parameters(a.into())).await
    }

    /// Legacy name of memory_delete by tags.
    #[tool(
        title = "Delete by tag (legacy name)",
        output_schema = schema_for_output::<DeleteOutput>(),
        annotations(read_only_hint = false, open_world_hint = false)
    )]
    async fn delete_by_tag(
        &self,
        who: Who<M>,
        Parameters(a): Parameters<DeleteByTag>,
    ) -> CallToolResult {
        self.memory_delete(who, Parameters(a.into())).await
    }

    /// Legacy name of memory_health, in mcp-memory-service's shape.
    #[tool(
        title = "Check database health (legacy name)",
        output_schema = schema_for_output::<LegacyHealthOutput>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn check_database_health(
        &self,
        who: Who<M>,
        Parameters(_): Parameters<HealthArgs>,
    ) -> CallToolResult {
        answer(self.ops.health(&who.0).await.map(LegacyHealthOutput::from))
    }

    /// Legacy name of memory_list.
    #[tool(
        title = "List memories (legacy name)",
        output_schema = schema_for_output::<ListOutput>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_memories(
        &self,
        who: Who<M>,
        Parameters(a): Parameters<ListMemories>,
    ) -> CallToolResult {
        self.memory_list(who, Parameters(a.into())).await
    }

    /// Legacy name of memory_update.
    #[tool(
        title = "Update memory metadata (legacy name)",
        output_schema = schema_for_output::<UpdateOutput>(),
        annotations(read_only_hint = false, open_world_hint = false)
    )]
    async fn update_memory_metadata(
        &self,
        who: Who<M>,
        Parameters(a): Parameters<UpdateMemoryMetadata>,
    ) -> CallToolResult {
        self.memory_update(who, Parameters(a.into())).await
    }
}

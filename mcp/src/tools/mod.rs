//! The MCP tool registry (ARCHITECTURE.md, "MCP"): one set of tools, served by the server at
//! `/mcp` and by `mnemo-bridge` over stdio.
//!
//! [`Registry`] is generic over [`MemoryOps`], so both programs serve the same
//! names, schemas and outputs; only the way an operation reaches the database
//! differs. Tool failures are `isError` results whose text says what to do next,
//! because clients show a protocol error to the model without its message.
//!
//! * [`args`]: the tools' arguments, whose doc comments the model reads.
//! * [`output`]: structured results and their compact text.
//! * [`legacy`]: mcp-memory-service's tool names, accepted but not listed.
//! * `schema`: the schemas as strict validators accept them (no `format` values
//!   outside JSON Schema's own, which schemars writes for Rust number types).

pub mod args;
pub mod legacy;
pub mod output;
mod schema;

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::{Extension, ToolCallContext, schema_for_output};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_router};

use crate::ops::{MemoryOps, OpsError, OpsErrorKind};
use crate::resources;
use args::{DeleteArgs, GetArgs, HealthArgs, ListArgs, SearchArgs, StoreArgs, UpdateArgs};
use mnemo_api::rest::{
    DeleteMatchingRequest, Instant, ListQuery, Period, SearchRequest, StoreRequest, TagMatch,
    UpdateRequest,
};
use output::{
    DeleteOutput, HealthOutput, ListOutput, MemoryItem, SearchOutput, StoreOutput, ToolOutput,
    UpdateOutput,
};

/// The name MCP clients see in `initialize` and `server/discover`.
pub const SERVER_NAME: &str = "mnemo";

const INSTRUCTIONS: &str = "Mnemo is a memory shared by several assistants and people. \
    Store durable facts, decisions and preferences with memory_store; look them up by \
    meaning with memory_search before asking the user again. Results name each memory's \
    content_hash, which memory_get, memory_update and memory_delete take.";

/// The caller of a tool, as [`MemoryOps::caller`] read it from the request.
pub type Who<M> = Extension<Arc<<M as MemoryOps>::Caller>>;

/// The tools over a [`MemoryOps`].
pub struct Registry<M> {
    ops: Arc<M>,
    version: &'static str,
    tools: ToolRouter<Self>,
    legacy: ToolRouter<Self>,
}

// By hand: a derive would require `M: Clone`, and only the `Arc` is cloned.
impl<M> Clone for Registry<M> {
    fn clone(&self) -> Self {
        Self {
            ops: Arc::clone(&self.ops),
            version: self.version,
            tools: self.tools.clone(),
            legacy: self.legacy.clone(),
        }
    }
}

#[tool_router(router = tool_router)]
impl<M: MemoryOps> Registry<M> {
    /// A registry over `ops` that reports `version` (the serving program's) to clients.
    pub fn new(ops: Arc<M>, version: &'static str) -> Self {
        Self {
            ops,
            version,
            tools: Self::tool_router(),
            legacy: Self::legacy_router(),
        }
    }

    /// Remember a piece of text (a fact, decision, preference or note) for later
    /// searches by you, other assistants and people sharing this memory.
    #[tool(
        title = "Store a memory",
        output_schema = schema_for_output::<StoreOutput>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    pub async fn memory_store(
        &self,
        who: Who<M>,
        Parameters(args): Parameters<StoreArgs>,
    ) -> CallToolResult {
        let request = StoreRequest {
            content: args.content,
            tags: args.tags,
            memory_type: args.memory_type.filter(|t| !t.trim().is_empty()),
            metadata: args.metadata.unwrap_or_default(),
            conversation_id: None,
        };
        let stored = match self.ops.store(&who.0, request).await {
            Ok(r) => Ok(StoreOutput {
                content_hash: r.content_hash,
                duplicate: false,
            }),
            Err(e) if e.kind == OpsErrorKind::Duplicate && e.content_hash.is_some() => {
                Ok(StoreOutput {
                    content_hash: e.content_hash.unwrap_or_default(),
                    duplicate: true,
                })
            }
            Err(e) => Err(e),
        };
        answer(stored)
    }

    /// Find memories by meaning (default), by meaning and keywords (hybrid) or by
    /// exact text, optionally only those with given tags, type or creation time.
    #[tool(
        title = "Search memories",
        output_schema = schema_for_output::<SearchOutput>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    pub async fn memory_search(
        &self,
        who: Who<M>,
        Parameters(args): Parameters<SearchArgs>,
    ) -> CallToolResult {
        let limit = match args::in_range("limit", args.limit, 10, 1, args::MAX_LIMIT) {
            Ok(limit) => limit,
            Err(e) => return answer::<SearchOutput>(Err(e)),
        };
        if let Some(score) = args.min_score
            && !(0.0..=1.0).contains(&score)
        {
            return answer::<SearchOutput>(Err(args::out_of_range("min_score", score, 0, 1)));
        }
        let request = SearchRequest {
            n_results: limit,
            similarity_threshold: args.min_score,
            tags: args.tags,
            tag_match: args.tag_match.unwrap_or_default(),
            memory_type: args.memory_type,
            mode: args.mode.unwrap_or_default(),
            period: Period {
                after: args.after.map(Instant::Text),
                before: args.before.map(Instant::Text),
                time: args.time,
                tz: None,
            },
            ..SearchRequest::new(args.query)
        };
        answer(
            self.ops
                .search(&who.0, request)
                .await
                .map(SearchOutput::from),
        )
    }

    /// List memories newest first, a page at a time, optionally only those with given
    /// tags or type.
    #[tool(
        title = "List memories",
        output_schema = schema_for_output::<ListOutput>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    pub async fn memory_list(
        &self,
        who: Who<M>,
        Parameters(args): Parameters<ListArgs>,
    ) -> CallToolResult {
        let tags: Vec<String> = args
            .tags
            .iter()
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        let bounds = args::in_range("page", args.page, 1, 1, u32::MAX).and_then(|page| {
            args::in_range("page_size", args.page_size, 20, 1, args::MAX_LIMIT)
                .map(|size| (page, size))
        });
        let (page, page_size) = match bounds {
            Ok(bounds) => bounds,
            Err(e) => return answer::<ListOutput>(Err(e)),
        };
        let query = ListQuery {
            page: Some(page),
            page_size: Some(page_size),
            tag: (!tags.is_empty()).then(|| tags.join(",")),
            tag_match: args.tag_match,
            memory_type: args.memory_type,
        };
        answer(self.ops.list(&who.0, query).await.map(ListOutput::from))
    }

    /// Read one memory in full, by its content_hash.
    #[tool(
        title = "Read a memory",
        output_schema = schema_for_output::<MemoryItem>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    pub async fn memory_get(
        &self,
        who: Who<M>,
        Parameters(args): Parameters<GetArgs>,
    ) -> CallToolResult {
        answer(
            self.ops
                .get(&who.0, args.content_hash)
                .await
                .map(MemoryItem::full),
        )
    }

    /// Change a memory's tags, type or metadata. Its content stays as it is.
    #[tool(
        title = "Update a memory",
        output_schema = schema_for_output::<UpdateOutput>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    pub async fn memory_update(
        &self,
        who: Who<M>,
        Parameters(args): Parameters<UpdateArgs>,
    ) -> CallToolResult {
        let request = UpdateRequest {
            tags: args.tags,
            memory_type: args
                .memory_type
                .map(|t| Some(t).filter(|t| !t.trim().is_empty())),
            metadata: args.metadata,
        };
        let updated = self.ops.update(&who.0, args.content_hash, request).await;
        answer(updated.and_then(|r| match r.memory {
            Some(memory) => Ok(UpdateOutput {
                content_hash: r.content_hash,
                memory: MemoryItem::preview(memory),
            }),
            None => Err(OpsError::new(
                OpsErrorKind::Internal,
                "the server did not return the updated memory",
            )),
        }))
    }

    /// Delete one memory by content_hash, or the memories matching tags, type or time
    /// (up to 100 a call). Use dry_run first to see what a filter would delete.
    #[tool(
        title = "Delete memories",
        output_schema = schema_for_output::<DeleteOutput>(),
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    pub async fn memory_delete(
        &self,
        who: Who<M>,
        Parameters(args): Parameters<DeleteArgs>,
    ) -> CallToolResult {
        answer(self.delete(&who.0, args).await)
    }

    /// Whether the memory server is up, how many memories it holds and which model
    /// it uses.
    #[tool(
        title = "Memory server health",
        output_schema = schema_for_output::<HealthOutput>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    pub async fn memory_health(
        &self,
        who: Who<M>,
        Parameters(_): Parameters<HealthArgs>,
    ) -> CallToolResult {
        answer(self.ops.health(&who.0).await.map(HealthOutput::from))
    }
}

impl<M: MemoryOps> Registry<M> {
    async fn delete(&self, caller: &M::Caller, args: DeleteArgs) -> Result<DeleteOutput, OpsError> {
        let has_filter = !args.tags.is_empty()
            || args.memory_type.is_some()
            || args.time.is_some()
            || args.after.is_some()
            || args.before.is_some();
        match args.content_hash {
            Some(_) if has_filter => Err(OpsError::new(
                OpsErrorKind::Invalid,
                "give either content_hash or filters (tags, memory_type, time, after, before), not both",
            )),
            Some(hash) if args.dry_run => {
                let memory = self.ops.get(caller, hash).await?;
                Ok(DeleteOutput {
                    content_hashes: vec![memory.content_hash],
                    matched: 1,
                    dry_run: true,
                    has_more: false,
                })
            }
            Some(hash) => {
                let deleted = self.ops.delete(caller, hash).await?;
                Ok(DeleteOutput {
                    content_hashes: vec![deleted.content_hash],
                    matched: 1,
                    dry_run: false,
                    has_more: false,
                })
            }
            None if !has_filter => Err(OpsError::new(
                OpsErrorKind::Invalid,
                "say what to delete: a content_hash, or filters (tags, memory_type, time, after, before)",
            )),
            None => {
                let request = DeleteMatchingRequest {
                    tags: args.tags,
                    tag_match: args.tag_match.unwrap_or(TagMatch::Any),
                    memory_type: args.memory_type,
                    period: Period {
                        after: args.after.map(Instant::Text),
                        before: args.before.map(Instant::Text),
                        time: args.time,
                        tz: None,
                    },
                    dry_run: args.dry_run,
                    limit: None,
                };
                Ok(self.ops.delete_matching(caller, request).await?.into())
            }
        }
    }

    /// The definition of an advertised or legacy tool.
    fn tool(&self, name: &str) -> Option<&Tool> {
        self.tools.get(name).or_else(|| self.legacy.get(name))
    }
}

/// Whether a tool only reads (its `readOnlyHint`); any other tool needs the write scope.
fn reads_only(tool: &Tool) -> bool {
    tool.annotations.as_ref().and_then(|a| a.read_only_hint) == Some(true)
}

/// A tool's answer: the output with its text, or an `isError` result telling the
/// caller what to do about the failure.
fn answer<T: ToolOutput>(result: Result<T, OpsError>) -> CallToolResult {
    match result {
        Ok(output) => match serde_json::to_value(&output) {
            Ok(value) => {
                let mut result = CallToolResult::structured(value);
                result.content = vec![ContentBlock::text(output.text())];
                result
            }
            Err(e) => failure(&OpsError::new(
                OpsErrorKind::Internal,
                format!("could not encode the result: {e}"),
            )),
        },
        Err(error) => failure(&error),
    }
}

fn failure(error: &OpsError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(explain(error))])
}

/// A failure's message followed by what the caller should do about it.
pub(crate) fn explain(error: &OpsError) -> String {
    let advice = match error.kind {
        OpsErrorKind::Invalid => {
            "Correct the argument the message names (tools/list gives each tool's schema), \
             then call again."
        }
        OpsErrorKind::NotFound => {
            "Find the right content_hash with memory_search or memory_list, then call again."
        }
        OpsErrorKind::Duplicate => "The content is already stored; use that memory.",
        OpsErrorKind::Unauthorized => {
            "The API key is missing or wrong: set MCP_API_KEY for mnemo-bridge, or send \
             `Authorization: Bearer <key>` to /mcp. Ask the user for the server's key."
        }
        OpsErrorKind::Forbidden => {
            "This API key may only read. Ask the user for a key with the write scope."
        }
        OpsErrorKind::Unavailable => {
            "The memory server is busy or starting; retry in a few seconds."
        }
        OpsErrorKind::Unreachable => {
            "The memory server cannot be reached. Tell the user; `mnemo-bridge --check` \
             shows which server the bridge looks for and why it fails."
        }
        OpsErrorKind::Internal => {
            "The memory server failed; its log has the details. Retrying is unlikely to help."
        }
        OpsErrorKind::Misconfigured => {
            "This is a setting in the MCP client's configuration, not in your arguments: \
             tell the user what the message says; retrying will not help until they fix it \
             and restart the client."
        }
    };
    format!("{}. {advice}", error.message.trim_end_matches('.'))
}

impl<M: MemoryOps> ServerHandler for Registry<M> {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new(SERVER_NAME, self.version))
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        // A caller who may not write is not shown the writing tools: a model should
        // not plan with tools that can only fail for it.
        let may_write = self
            .ops
            .caller(&context.extensions)
            .is_ok_and(|caller| self.ops.authorize_write(&caller).is_ok());
        // The legacy names stay unlisted: a model should learn one name per tool.
        let tools = self
            .tools
            .list_all()
            .into_iter()
            .filter(|tool| may_write || reads_only(tool))
            .map(schema::polish)
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(tool) = self.tool(&request.name) else {
            return Err(ErrorData::invalid_params(
                format!("no tool named {}; tools/list names the tools", request.name),
                None,
            ));
        };
        let caller = match self.ops.caller(&context.extensions) {
            Ok(caller) => caller,
            Err(error) => return Ok(failure(&error).into()),
        };
        let writes = !reads_only(tool);
        if writes && let Err(error) = self.ops.authorize_write(&caller) {
            return Ok(failure(&error).into());
        }
        // The tool methods take the caller back out as their `Who` argument.
        let mut context = context;
        context.extensions.insert(Arc::new(caller));
        let router = if self.tools.has_route(&request.name) {
            &self.tools
        } else {
            &self.legacy
        };
        router
            .call(ToolCallContext::new(self, request, context))
            .await
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tool(name).cloned().map(schema::polish)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let caller = self.ops.caller(&context.extensions).ok();
        let resources = resources::list(&*self.ops, caller.as_ref()).await;
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let caller = self
            .ops
            .caller(&context.extensions)
            .map_err(|e| resources::operation_failed(&e))?;
        let contents = resources::read(&*self.ops, &caller, &request.uri).await?;
        // Memories change under every client: a reader must not serve a cached copy.
        Ok(ReadResourceResult::new(vec![contents])
            .with_ttl_ms(0)
            .into())
    }
}

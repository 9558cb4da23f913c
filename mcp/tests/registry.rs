//! The tool registry behind an in-process rmcp client, over a fake [`MemoryOps`]
//! that records what each tool asked for. The real operations are tested end to end
//! by the server's and the bridge's tests; here the subject is the mapping from tool
//! arguments (advertised and legacy) to REST requests, and from failures to results.

use std::sync::{Arc, Mutex};

use mnemo_api::health::HealthStatus;
use mnemo_api::rest::{
    self, DeleteMatchingRequest, DeleteMatchingResponse, DetailedHealth, ListQuery, ListResponse,
    Memory, MutationResponse, SearchRequest, SearchResponse, SearchResult, StoreRequest, TagCount,
    TagsResponse, UpdateRequest,
};
use mnemo_mcp::ops::{MemoryOps, OpsError, OpsErrorKind};
use mnemo_mcp::tools::Registry;
use mnemo_mcp::tools::output::PREVIEW_CHARS;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ErrorCode, Extensions, ReadResourceRequestParams,
    ResourceContents,
};
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

/// Records each operation as `(name, request as JSON)` and answers from a script.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<(String, Value)>>,
    /// When set, every operation fails with this.
    fail: Option<OpsError>,
    read_only: bool,
    long_content: bool,
}

impl Recorder {
    fn record<T: serde::Serialize>(&self, op: &str, request: &T) -> Result<(), OpsError> {
        self.calls
            .lock()
            .unwrap()
            .push((op.to_owned(), serde_json::to_value(request).unwrap()));
        match &self.fail {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn memory(&self, hash: &str) -> Memory {
        let content = if self.long_content {
            "word ".repeat(PREVIEW_CHARS)
        } else {
            "a dog named Rex".to_owned()
        };
        Memory {
            content,
            content_hash: hash.into(),
            tags: vec!["pets".into()],
            memory_type: Some("note".into()),
            metadata: Default::default(),
            created_at: 1.0,
            created_at_iso: rest::iso8601(1.0),
            updated_at: 1.0,
            updated_at_iso: rest::iso8601(1.0),
        }
    }

    fn mutation(&self, hash: &str) -> MutationResponse {
        MutationResponse {
            success: true,
            message: "ok".into(),
            content_hash: hash.into(),
            memory: Some(self.memory(hash)),
        }
    }
}

impl MemoryOps for Recorder {
    type Caller = ();

    fn caller(&self, _extensions: &Extensions) -> Result<(), OpsError> {
        Ok(())
    }

    async fn store(&self, _: &(), request: StoreRequest) -> Result<MutationResponse, OpsError> {
        self.record("store", &request)?;
        Ok(self.mutation("h1"))
    }
    async fn search(&self, _: &(), request: SearchRequest) -> Result<SearchResponse, OpsError> {
        self.record("search", &request)?;
        Ok(SearchResponse {
            results: vec![SearchResult {
                memory: self.memory("h1"),
                similarity_score: 0.75,
                cosine_similarity: 0.5,
                relevance_reason: "semantic similarity".into(),
            }],
            total_found: 1,
            query: request.query,
            search_type: request.mode.as_str().into(),
            processing_time_ms: 1.0,
        })
    }
    async fn list(&self, _: &(), query: ListQuery) -> Result<ListResponse, OpsError> {
        self.record("list", &query)?;
        Ok(ListResponse {
            memories: vec![self.memory("h1")],
            total: 3,
            page: query.page.unwrap_or(1),
            page_size: query.page_size.unwrap_or(10),
            has_more: true,
        })
    }
    async fn get(&self, _: &(), content_hash: String) -> Result<Memory, OpsError> {
        self.record("get", &content_hash)?;
        Ok(self.memory(&content_hash))
    }
    async fn update(
        &self,
        _: &(),
        content_hash: String,
        request: UpdateRequest,
    ) -> Result<MutationResponse, OpsError> {
        self.record("update", &json!({"hash": content_hash, "request": request}))?;
        Ok(self.mutation(&content_hash))
    }
    async fn delete(&self, _: &(), content_hash: String) -> Result<MutationResponse, OpsError> {
        self.record("delete", &content_hash)?;
        Ok(self.mutation(&content_hash))
    }
    async fn delete_matching(
        &self,
        _: &(),
        request: DeleteMatchingRequest,
    ) -> Result<DeleteMatchingResponse, OpsError> {
        self.record("delete_matching", &request)?;
        Ok(DeleteMatchingResponse {
            success: true,
            content_hashes: vec!["h1".into()],
            matched: 1,
            dry_run: request.dry_run,
            has_more: false,
        })
    }
    async fn tags(&self, _: &()) -> Result<TagsResponse, OpsError> {
        self.record("tags", &())?;
        let tags = ["pets", "to do/later", "a", "b", "c", "d"];
        Ok(TagsResponse {
            tags: tags
                .iter()
                .map(|t| TagCount {
                    tag: (*t).into(),
                    count: 2,
                })
                .collect(),
        })
    }
    async fn health(&self, _: &()) -> Result<DetailedHealth, OpsError> {
        self.record("health", &())?;
        Ok(DetailedHealth {
            status: HealthStatus::Healthy,
            version: "test".into(),
            uptime_seconds: 1.0,
            model: "m".into(),
            dimension: 384,
            memories: 1,
            database_bytes: 0,
            timestamp: String::new(),
            storage: Default::default(),
            statistics: Default::default(),
            tls_fingerprint: None,
            tls_pin: None,
        })
    }
    fn authorize_write(&self, _caller: &()) -> Result<(), OpsError> {
        if self.read_only {
            return Err(OpsError::new(
                OpsErrorKind::Forbidden,
                "this key has the read scope",
            ));
        }
        Ok(())
    }
}

struct Harness {
    ops: Arc<Recorder>,
    client: RunningService<RoleClient, ()>,
}

impl Harness {
    async fn new(ops: Recorder) -> Self {
        let ops = Arc::new(ops);
        let registry = Registry::new(Arc::clone(&ops), "test");
        let (server_io, client_io) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            if let Ok(server) = registry.serve(server_io).await {
                let _ = server.waiting().await;
            }
        });
        let client = ().serve(client_io).await.expect("initialize");
        Self { ops, client }
    }

    async fn call(&self, tool: &str, args: Value) -> CallToolResult {
        let Value::Object(args) = args else {
            panic!("arguments must be an object")
        };
        self.client
            .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
            .await
            .unwrap_or_else(|e| panic!("{tool}: {e}"))
    }

    /// The one operation the last call made, and its request.
    fn last(&self) -> (String, Value) {
        let calls = self.ops.calls.lock().unwrap();
        calls.last().cloned().expect("no operation was called")
    }
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn lists_seven_tools_with_both_schemas_and_hides_legacy_names() {
    let h = Harness::new(Recorder::default()).await;
    let info = h.client.peer_info().expect("server info");
    let implementation = info.server_info.as_ref().expect("server name and version");
    assert_eq!(implementation.name, "mnemo");
    assert_eq!(implementation.version, "test");

    let tools = h.client.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "memory_delete",
            "memory_get",
            "memory_health",
            "memory_list",
            "memory_search",
            "memory_store",
            "memory_update"
        ]
    );
    for tool in &tools {
        assert_eq!(tool.input_schema.get("type"), Some(&json!("object")));
        let output = tool.output_schema.as_ref().expect("output schema");
        assert_eq!(output.get("type"), Some(&json!("object")), "{}", tool.name);
        assert!(
            tool.description.is_some(),
            "{} has no description",
            tool.name
        );
    }
    // Every tool has a title and is closed-world; no schema carries a `format` that
    // JSON Schema does not define; the bounds the server enforces are declared.
    for tool in &tools {
        assert!(tool.title.is_some(), "{} has no title", tool.name);
        let annotations = tool.annotations.as_ref().expect("annotations");
        assert_eq!(annotations.open_world_hint, Some(false), "{}", tool.name);
        let schemas = json!([tool.input_schema, tool.output_schema]).to_string();
        for format in ["uint", "int32", "int64", "double", "float"] {
            assert!(
                !schemas.contains(&format!("\"format\":\"{format}")),
                "{}: {schemas}",
                tool.name
            );
        }
    }
    let bound = |tool: &str, field: &str| {
        let tool = tools.iter().find(|t| t.name == tool).unwrap();
        let schema = &tool.input_schema["properties"][field];
        (schema["minimum"].clone(), schema["maximum"].clone())
    };
    assert_eq!(bound("memory_search", "limit"), (json!(1), json!(100)));
    assert_eq!(bound("memory_list", "page_size"), (json!(1), json!(100)));
    assert_eq!(bound("memory_list", "page").0, json!(1));
    // Every argument is described for the model.
    let search = tools.iter().find(|t| t.name == "memory_search").unwrap();
    let properties = search.input_schema["properties"].as_object().unwrap();
    for (name, schema) in properties {
        let described = schema.get("description").is_some()
            || schema.get("$ref").is_some()
            || schema.get("anyOf").is_some();
        assert!(described, "memory_search.{name} has no description");
    }
}

#[tokio::test]
async fn advertised_tools_map_to_rest_requests() {
    let h = Harness::new(Recorder::default()).await;

    let r = h
        .call(
            "memory_store",
            json!({"content": "a dog named Rex", "tags": ["pets"]}),
        )
        .await;
    assert_eq!(r.is_error, Some(false));
    assert_eq!(r.structured_content.as_ref().unwrap()["content_hash"], "h1");
    assert_eq!(text(&r), "Memory stored successfully (hash: h1)");
    let (op, request) = h.last();
    assert_eq!(op, "store");
    assert_eq!(request["tags"], json!(["pets"]));

    // Out of its declared range, an argument is refused with the range, not clamped.
    let r = h
        .call("memory_search", json!({"query": "puppy", "limit": 500}))
        .await;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text(&r).contains("limit is 500; give a value from 1 to 100"),
        "{}",
        text(&r)
    );
    let r = h.call("memory_list", json!({"page_size": 0})).await;
    assert!(text(&r).contains("page_size is 0"), "{}", text(&r));
    let r = h
        .call(
            "memory_search",
            json!({"query": "puppy", "mode": "hybrid", "limit": 100, "tags": ["pets"],
                   "tag_match": "all", "time": "last week", "after": "2025-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(
        r.structured_content.as_ref().unwrap()["results"][0]["score"],
        0.75
    );
    assert!(
        text(&r).contains("1. [0.75] a dog named Rex"),
        "{}",
        text(&r)
    );
    let (_, request) = h.last();
    assert_eq!(request["mode"], "hybrid");
    assert_eq!(request["n_results"], 100);
    assert_eq!(request["tag_match"], "all");
    assert_eq!(request["time"], "last week");
    assert_eq!(request["after"], "2025-01-01T00:00:00Z");

    let r = h
        .call("memory_list", json!({"page": 2, "tags": ["a", "b"]}))
        .await;
    assert_eq!(r.structured_content.as_ref().unwrap()["has_more"], true);
    assert!(text(&r).contains("more: ask for page 3"));
    let (_, request) = h.last();
    assert_eq!(
        request,
        json!({"page": 2, "page_size": 20, "tag": "a,b", "tag_match": null, "memory_type": null})
    );

    h.call(
        "memory_update",
        json!({"content_hash": "h1", "memory_type": ""}),
    )
    .await;
    let (_, request) = h.last();
    assert_eq!(
        request["request"]["memory_type"],
        Value::Null,
        "empty type clears"
    );

    let r = h
        .call("memory_delete", json!({"tags": ["old"], "dry_run": true}))
        .await;
    assert!(
        text(&r).starts_with("dry run: would delete 1 of 1"),
        "{}",
        text(&r)
    );
    let (op, request) = h.last();
    assert_eq!(op, "delete_matching");
    assert_eq!(request["dry_run"], true);

    h.call("memory_delete", json!({"content_hash": "h9"})).await;
    assert_eq!(h.last(), ("delete".to_owned(), json!("h9")));

    let r = h.call("memory_health", json!({})).await;
    assert_eq!(r.structured_content.as_ref().unwrap()["status"], "healthy");
}

#[tokio::test]
async fn every_legacy_alias_maps_its_own_arguments() {
    let h = Harness::new(Recorder::default()).await;
    let cases = [
        (
            "store_memory",
            json!({"content": "x", "metadata": {"tags": "a, b", "type": "note", "source": "chat"}}),
            "store",
            json!({"content": "x", "tags": ["a", "b"], "memory_type": "note",
                   "metadata": {"source": "chat"}, "conversation_id": null}),
        ),
        (
            "retrieve_memory",
            json!({"query": "puppy", "n_results": 3}),
            "search",
            json!({"query": "puppy", "n_results": 3}),
        ),
        (
            "recall_memory",
            json!({"query": "what did I note last week"}),
            "search",
            json!({"query": "what did I note last week", "n_results": 5,
                   "time": "what did I note last week"}),
        ),
        (
            "search_by_tag",
            json!({"tags": ["pets", "dogs"]}),
            "list",
            json!({"tag": "pets,dogs", "tag_match": "any"}),
        ),
        (
            "delete_memory",
            json!({"content_hash": "h7"}),
            "delete",
            json!("h7"),
        ),
        (
            "delete_by_tag",
            json!({"tag": "old"}),
            "delete_matching",
            json!({"tags": ["old"], "dry_run": false}),
        ),
        ("check_database_health", json!({}), "health", Value::Null),
        (
            "list_memories",
            json!({"page": 2, "page_size": 5, "tag": "pets"}),
            "list",
            json!({"page": 2, "page_size": 5, "tag": "pets"}),
        ),
        (
            "update_memory_metadata",
            json!({"content_hash": "h1", "updates": {"tags": ["x"], "type": "fact", "priority": 2},
                   "preserve_timestamps": true}),
            "update",
            json!({"hash": "h1", "request": {"tags": ["x"], "memory_type": "fact",
                   "metadata": {"priority": 2}}}),
        ),
    ];
    for (tool, args, op, expected) in cases {
        let r = h.call(tool, args).await;
        assert_eq!(r.is_error, Some(false), "{tool}: {}", text(&r));
        let (called, request) = h.last();
        assert_eq!(called, op, "{tool}");
        // Only the fields the case names are compared.
        match &expected {
            Value::Object(fields) => {
                for (key, value) in fields {
                    assert_eq!(&request[key], value, "{tool}: {key} in {request}");
                }
            }
            other => assert_eq!(&request, other, "{tool}"),
        }
    }
}

/// The legacy store and health answer in mcp-memory-service's words: the Claude Code
/// hooks' MCP mode finds `(hash: <hex>)` in the text, and parses the health JSON.
#[tokio::test]
async fn legacy_store_and_health_answer_as_mcp_memory_service() {
    let h = Harness::new(Recorder::default()).await;
    let r = h.call("store_memory", json!({"content": "x"})).await;
    assert_eq!(text(&r), "Memory stored successfully (hash: h1)");

    let r = h.call("check_database_health", json!({})).await;
    let text = text(&r);
    let json = text
        .strip_prefix("Database Health Check Results:\n")
        .unwrap_or_else(|| panic!("{text}"));
    let health: Value = serde_json::from_str(json).unwrap();
    assert_eq!(health["validation"]["status"], "healthy", "{health}");
    assert_eq!(health["version"], "test");
    for key in [
        "total_memories",
        "unique_tags",
        "database_size_mb",
        "backend",
    ] {
        assert!(health["statistics"].get(key).is_some(), "{key} in {health}");
    }
    assert!(health["performance"]["server"].is_object());
    assert_eq!(r.structured_content.as_ref(), Some(&health));
}

#[tokio::test]
async fn failures_are_error_results_that_say_what_to_do() {
    let h = Harness::new(Recorder {
        fail: Some(OpsError::new(
            OpsErrorKind::NotFound,
            "no memory has content hash zz",
        )),
        ..Recorder::default()
    })
    .await;
    let r = h.call("memory_get", json!({"content_hash": "zz"})).await;
    assert_eq!(r.is_error, Some(true));
    assert!(r.structured_content.is_none());
    assert_eq!(
        text(&r),
        "no memory has content hash zz. Find the right content_hash with memory_search or memory_list, then call again."
    );

    let r = h.call("memory_store", json!({"tags": ["x"]})).await;
    assert_eq!(
        r.is_error,
        Some(true),
        "a missing argument is an error result"
    );
    assert!(text(&r).contains("content"), "{}", text(&r));

    let r = h
        .call("memory_search", json!({"query": "x", "bogus": 1}))
        .await;
    assert_eq!(r.is_error, Some(true), "unknown arguments are refused");

    let r = h
        .call(
            "memory_delete",
            json!({"content_hash": "h1", "tags": ["x"]}),
        )
        .await;
    assert!(text(&r).starts_with("give either content_hash or filters"));
    let r = h.call("memory_delete", json!({})).await;
    assert!(text(&r).starts_with("say what to delete"));

    let unknown = h
        .client
        .call_tool(CallToolRequestParams::new("no_such_tool"))
        .await;
    assert!(unknown.is_err(), "an unknown tool is a protocol error");
}

#[tokio::test]
async fn duplicates_are_not_failures() {
    let h = Harness::new(Recorder {
        fail: Some(OpsError {
            kind: OpsErrorKind::Duplicate,
            message: "a memory with the same content already exists".into(),
            content_hash: Some("h1".into()),
        }),
        ..Recorder::default()
    })
    .await;
    let r = h.call("memory_store", json!({"content": "x"})).await;
    assert_eq!(r.is_error, Some(false));
    assert_eq!(r.structured_content.unwrap()["duplicate"], true);
}

#[tokio::test]
async fn a_read_only_caller_may_search_but_not_write() {
    let h = Harness::new(Recorder {
        read_only: true,
        ..Recorder::default()
    })
    .await;
    let r = h.call("memory_search", json!({"query": "x"})).await;
    assert_eq!(r.is_error, Some(false));
    // It is shown only the tools it may use.
    let mut listed: Vec<String> = h
        .client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    listed.sort_unstable();
    assert_eq!(
        listed,
        [
            "memory_get",
            "memory_health",
            "memory_list",
            "memory_search"
        ]
    );
    for (tool, args) in [
        ("memory_store", json!({"content": "x"})),
        ("store_memory", json!({"content": "x"})),
        ("memory_delete", json!({"content_hash": "h"})),
        (
            "update_memory_metadata",
            json!({"content_hash": "h", "updates": {}}),
        ),
    ] {
        let r = h.call(tool, args).await;
        assert_eq!(r.is_error, Some(true), "{tool}");
        assert!(
            text(&r).contains("key with the write scope"),
            "{tool}: {}",
            text(&r)
        );
    }
    let writes = h
        .ops
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|(op, _)| op != "search")
        .count();
    assert_eq!(writes, 0, "no write reached the operations");
}

#[tokio::test]
async fn long_contents_are_truncated_in_lists_but_not_in_get() {
    let h = Harness::new(Recorder {
        long_content: true,
        ..Recorder::default()
    })
    .await;
    let r = h.call("memory_list", json!({})).await;
    let item = &r.structured_content.unwrap()["memories"][0];
    assert_eq!(item["truncated"], true);
    assert!(
        item["content"]
            .as_str()
            .unwrap()
            .ends_with("gives the full text]")
    );

    let r = h.call("memory_get", json!({"content_hash": "h1"})).await;
    let item = r.structured_content.unwrap();
    assert_eq!(item["truncated"], false);
    assert_eq!(item["content"].as_str().unwrap().len(), 5 * PREVIEW_CHARS);
}

impl Harness {
    async fn read(&self, uri: &str) -> Result<Value, rmcp::ServiceError> {
        let result = self
            .client
            .read_resource(ReadResourceRequestParams::new(uri))
            .await?;
        let [
            ResourceContents::TextResourceContents {
                text, mime_type, ..
            },
        ] = &result.contents[..]
        else {
            panic!("{uri}: not one text content: {result:?}");
        };
        assert_eq!(mime_type.as_deref(), Some("application/json"));
        Ok(serde_json::from_str(text).expect("JSON text"))
    }
}

#[tokio::test]
async fn resources_are_listed_and_read_through_the_operations() {
    let h = Harness::new(Recorder::default()).await;
    let listed = h.client.list_all_resources().await.unwrap();
    let uris: Vec<&str> = listed.iter().map(|r| r.uri.as_str()).collect();
    // The fixed three, then the five most used tags, escaped into one segment each.
    assert_eq!(
        uris,
        [
            "memory://stats",
            "memory://tags",
            "memory://recent/10",
            "memory://tag/pets",
            "memory://tag/to%20do%2Flater",
            "memory://tag/a",
            "memory://tag/b",
            "memory://tag/c"
        ]
    );
    let templates = h.client.list_all_resource_templates().await.unwrap();
    let templates: Vec<&str> = templates.iter().map(|t| t.uri_template.as_str()).collect();
    assert!(
        templates.contains(&"memory://memory/{content_hash}"),
        "{templates:?}"
    );

    let recent = h.read("memory://recent/3").await.unwrap();
    assert_eq!(recent["count"], 1);
    assert_eq!(recent["memories"][0]["content_hash"], "h1");
    let (op, query) = h.last();
    assert_eq!(
        (op.as_str(), &query["page"], &query["page_size"]),
        ("list", &json!(1), &json!(3))
    );

    let tagged = h.read("memory://tag/to%20do%2Flater").await.unwrap();
    assert_eq!(tagged["tag"], "to do/later");
    assert_eq!(h.last().1["tag"], "to do/later");

    let found = h.read("memory://search/a%20dog").await.unwrap();
    assert_eq!(found["query"], "a dog");
    assert_eq!(h.last().1["n_results"], 10);

    let one = h.read("memory://memory/abc").await.unwrap();
    assert_eq!(one["content_hash"], "abc");
    let tags = h.read("memory://tags").await.unwrap();
    assert_eq!(
        (tags["count"].clone(), tags["tags"][0].clone()),
        (json!(6), json!({"tag": "pets", "count": 2}))
    );
    assert_eq!(h.read("memory://stats").await.unwrap()["dimension"], 384);
}

#[tokio::test]
async fn resource_failures_are_json_rpc_errors_that_say_what_to_do() {
    let code = |e: rmcp::ServiceError| match e {
        rmcp::ServiceError::McpError(e) => (e.code, e.message.into_owned()),
        other => panic!("not an MCP error: {other}"),
    };
    let h = Harness::new(Recorder::default()).await;
    let (c, message) = code(h.read("memory://nothing").await.unwrap_err());
    assert_eq!(c, ErrorCode::RESOURCE_NOT_FOUND);
    assert!(message.contains("memory://recent/{n}"), "{message}");
    let (c, message) = code(h.read("memory://recent/500").await.unwrap_err());
    assert_eq!(c, ErrorCode::INVALID_PARAMS);
    assert!(message.contains("from 1 to 100"), "{message}");

    let failing = Harness::new(Recorder {
        fail: Some(OpsError::new(
            OpsErrorKind::NotFound,
            "no memory has content hash abc",
        )),
        ..Recorder::default()
    })
    .await;
    let (c, message) = code(failing.read("memory://memory/abc").await.unwrap_err());
    assert_eq!(c, ErrorCode::RESOURCE_NOT_FOUND);
    assert!(message.contains("memory_search"), "{message}");
    // A listing survives a catalogue it cannot read: the fixed resources remain.
    assert_eq!(failing.client.list_all_resources().await.unwrap().len(), 3);
}

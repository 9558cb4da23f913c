//! The bridge's registry (its REST client behind the tools) connected to an rmcp
//! client over `tokio::io::duplex`, against a real server in the same process: each
//! legacy alias's arguments must arrive at the server as the memory they describe.
//! `mcp/tests/registry.rs` checks the same mapping against a recording fake.

use clap::Parser;
use mnemo_server::testing::{MASTER_KEY, TestServer};
use reqwest::Method;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

struct Setup {
    client: RunningService<RoleClient, ()>,
    server: TestServer,
}

impl Setup {
    async fn new() -> Self {
        let server = TestServer::spawn_loading_with(|_| {}).await;
        let trust = server.dir.path().join("trust.json");
        let bridge = mnemo_bridge::Config::parse_from([
            "mnemo-bridge",
            "--server-url",
            server.url(),
            "--api-key",
            MASTER_KEY,
            "--auto-discover",
            "false",
            "--trust-file",
            &trust.display().to_string(),
        ]);
        let registry = mnemo_bridge::registry(&bridge);
        let (server_io, client_io) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            if let Ok(running) = registry.serve(server_io).await {
                let _ = running.waiting().await;
            }
        });
        let client = ().serve(client_io).await.expect("initialize");
        Self { client, server }
    }

    async fn call(&self, tool: &str, args: Value) -> CallToolResult {
        let Value::Object(args) = args else {
            panic!("arguments must be an object")
        };
        let result = self
            .client
            .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
            .await
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert_eq!(result.is_error, Some(false), "{tool}: {:?}", result.content);
        result
    }

    /// `GET path` on the REST API, with the key.
    async fn rest_get(&self, path: &str) -> Value {
        let response = self.server.request(Method::GET, path);
        response.send().await.unwrap().json().await.unwrap()
    }

    /// The memory as the REST API shows it.
    async fn memory(&self, hash: &str) -> Value {
        self.rest_get(&format!("/api/memories/{hash}")).await
    }

    async fn count(&self) -> u64 {
        let health = self.rest_get("/api/health/detailed").await;
        health["memories"].as_u64().unwrap_or(u64::MAX)
    }
}

fn structured(result: &CallToolResult) -> &Value {
    result
        .structured_content
        .as_ref()
        .expect("structuredContent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_aliases_reach_the_server_as_they_mean() {
    let s = Setup::new().await;
    // The server loads in the background; the bridge waits out its "loading" answers.
    let stored = s
        .call(
            "store_memory",
            json!({"content": "My dog Rex loves long walks on the beach",
                   "metadata": {"tags": "pets, dogs", "type": "note", "source": "chat"}}),
        )
        .await;
    let dog = structured(&stored)["content_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let memory = s.memory(&dog).await;
    assert_eq!(
        memory["tags"],
        json!(["pets", "dogs"]),
        "in the order given"
    );
    assert_eq!(memory["memory_type"], "note");
    assert_eq!(memory["metadata"], json!({"source": "chat"}));
    s.call(
        "store_memory",
        json!({"content": "The quarterly budget review is on Friday", "tags": ["work"]}),
    )
    .await;

    let found = s
        .call("retrieve_memory", json!({"query": "puppy", "n_results": 1}))
        .await;
    assert_eq!(structured(&found)["count"], 1);
    assert_eq!(
        structured(&found)["results"][0]["memory"]["content_hash"],
        dog.as_str()
    );

    let recalled = s
        .call(
            "recall_memory",
            json!({"query": "what about dogs today", "n_results": 2}),
        )
        .await;
    assert_eq!(structured(&recalled)["count"], 2, "both were stored today");

    let tagged = s.call("search_by_tag", json!({"tags": "work"})).await;
    assert_eq!(structured(&tagged)["total"], 1);

    let listed = s
        .call(
            "list_memories",
            json!({"page": 1, "page_size": 1, "tag": "pets"}),
        )
        .await;
    assert_eq!(
        structured(&listed)["memories"][0]["content_hash"],
        dog.as_str()
    );

    s.call(
        "update_memory_metadata",
        json!({"content_hash": dog, "updates": {"tags": ["pets"], "priority": "high"}}),
    )
    .await;
    let memory = s.memory(&dog).await;
    assert_eq!(memory["tags"], json!(["pets"]));
    assert_eq!(memory["memory_type"], "note", "the type is kept");
    assert_eq!(memory["metadata"]["priority"], "high");

    let health = s.call("check_database_health", json!({})).await;
    assert_eq!(structured(&health)["statistics"]["total_memories"], 2);

    s.call("delete_by_tag", json!({"tags": ["work"]})).await;
    assert_eq!(s.count().await, 1);
    s.call("delete_memory", json!({"content_hash": dog})).await;
    assert_eq!(s.count().await, 0);
}

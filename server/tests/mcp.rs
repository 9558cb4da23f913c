//! `/mcp` over real HTTP with the real model and a real SQLite file: auth, per-tool
//! scopes, both protocol eras, and change events for MCP writes. The official
//! Python client runs against it in the e2e crate (`e2e/tests/mcp_clients.rs`).

use mnemo_server::auth::{KeyFile, Scope};
use mnemo_server::testing::{MASTER_KEY, TestServer, next_event};
use reqwest::Method;
use serde_json::{Value, json};

const STATELESS: &str = "2026-07-28";

/// One JSON-RPC request in the stateless era (`_meta` carries the version);
/// returns the HTTP status and the JSON-RPC message answering it.
async fn rpc(server: &TestServer, key: Option<&str>, method: &str, params: Value) -> (u16, Value) {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": STATELESS,
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let mut request = server
        .http
        .post(format!("{}/mcp", server.url()))
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", STATELESS)
        // The 2026-07-28 era repeats the method (and tool name) in headers, so
        // proxies can route without reading the body.
        .header("Mcp-Method", method);
    if let Some(name) = params.get("name").and_then(Value::as_str) {
        request = request.header("Mcp-Name", name);
    }
    request = request.json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    (status, answer(&body))
}

/// The JSON-RPC answer in a body that is plain JSON or an SSE stream of messages.
fn answer(body: &str) -> Value {
    if let Ok(value) = serde_json::from_str(body) {
        return value;
    }
    body.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
        .find(|message| message.get("id").is_some())
        .unwrap_or_else(|| panic!("no JSON-RPC answer in {body:?}"))
}

async fn call(server: &TestServer, key: &str, tool: &str, args: Value) -> Value {
    let (status, message) = rpc(
        server,
        Some(key),
        "tools/call",
        json!({"name": tool, "arguments": args}),
    )
    .await;
    assert_eq!(status, 200, "{message}");
    message["result"].clone()
}

/// A legacy-era (2025-06-18) `initialize` request, which opens a session.
fn legacy_initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"}}})
}

fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn mcp_needs_a_key() {
    let server = TestServer::spawn().await;
    let (status, body) = rpc(&server, None, "tools/list", json!({})).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthorized", "the REST error body: {body}");
    let (status, _) = rpc(&server, Some("wrong"), "tools/list", json!({})).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn stateless_requests_store_and_find_by_meaning() {
    let server = TestServer::spawn().await;
    let (status, listed) = rpc(&server, Some(MASTER_KEY), "tools/list", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(listed["result"]["tools"].as_array().unwrap().len(), 7);

    let stored = call(
        &server,
        MASTER_KEY,
        "memory_store",
        json!({"content": "My dog Rex loves long walks on the beach", "tags": ["pets"]}),
    )
    .await;
    assert_eq!(stored["isError"], false, "{stored}");
    let hash = stored["structuredContent"]["content_hash"]
        .as_str()
        .unwrap();

    let found = call(
        &server,
        MASTER_KEY,
        "memory_search",
        json!({"query": "puppy"}),
    )
    .await;
    assert_eq!(
        found["structuredContent"]["results"][0]["memory"]["content_hash"],
        hash
    );

    // The REST API sees the same memory: one store behind both.
    let (status, memory) = server
        .send(Method::GET, &format!("/api/memories/{hash}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(memory["tags"], json!(["pets"]));

    let recalled = call(
        &server,
        MASTER_KEY,
        "recall_memory",
        json!({"query": "what about my dog today"}),
    )
    .await;
    assert_eq!(recalled["structuredContent"]["count"], 1, "{recalled}");
    let old = call(
        &server,
        MASTER_KEY,
        "memory_search",
        json!({"query": "dog", "time": "last year"}),
    )
    .await;
    assert_eq!(old["structuredContent"]["count"], 0, "{old}");

    let bad = call(
        &server,
        MASTER_KEY,
        "memory_search",
        json!({"query": "dog", "time": "when pigs fly"}),
    )
    .await;
    assert_eq!(bad["isError"], true);
    assert!(text(&bad).contains("could not understand the time expression"));
    assert!(
        text(&bad).ends_with("Correct the argument the message names (tools/list gives each tool's schema), then call again."),
        "{}",
        text(&bad)
    );
}

#[tokio::test]
async fn a_read_key_searches_but_cannot_write() {
    let server = TestServer::spawn().await;
    let (_, reader) = KeyFile::new(server.dir.path())
        .add("reader", Scope::Read)
        .unwrap();
    let found = call(&server, &reader, "memory_search", json!({"query": "x"})).await;
    assert_eq!(found["isError"], false, "{found}");
    let refused = call(&server, &reader, "memory_store", json!({"content": "x"})).await;
    assert_eq!(refused["isError"], true);
    assert!(text(&refused).contains("read scope"), "{}", text(&refused));
    let (_, count) = server.send(Method::GET, "/api/health/detailed", None).await;
    assert_eq!(count["memories"], 0, "nothing was stored");
}

/// A memory stored, updated and deleted through `/mcp` reaches SSE subscribers.
#[tokio::test]
async fn mcp_writes_emit_change_events() {
    let server = TestServer::spawn().await;
    let mut events = server.events(None).await;
    assert_eq!(
        next_event(&mut events).await.event,
        "connection_established"
    );

    let stored = call(
        &server,
        MASTER_KEY,
        "memory_store",
        json!({"content": "an MCP write"}),
    )
    .await;
    let hash = stored["structuredContent"]["content_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    call(
        &server,
        MASTER_KEY,
        "memory_update",
        json!({"content_hash": hash, "tags": ["x"]}),
    )
    .await;
    call(
        &server,
        MASTER_KEY,
        "memory_delete",
        json!({"content_hash": hash}),
    )
    .await;
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let event = next_event(&mut events).await;
        if event.event != "heartbeat" {
            let data: Value = serde_json::from_str(&event.data).unwrap();
            assert_eq!(data["content_hash"], hash.as_str(), "{data}");
            kinds.push(event.event);
        }
    }
    assert_eq!(kinds, ["memory_stored", "memory_updated", "memory_deleted"]);
}

/// The legacy era: `initialize` with an older version is answered with that
/// version, and the session id it returns carries the next requests.
#[tokio::test]
async fn legacy_sessions_echo_the_clients_version() {
    let server = TestServer::spawn().await;
    let response = server
        .request(Method::POST, "/mcp")
        .header("Accept", "application/json, text/event-stream")
        .json(&legacy_initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("mcp-session-id"));
    let init = answer(&response.text().await.unwrap());
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(init["result"]["serverInfo"]["name"], "mnemo");
    assert_eq!(
        init["result"]["serverInfo"]["version"],
        env!("CARGO_PKG_VERSION")
    );
}

/// On loopback, rmcp's DNS-rebinding guard refuses a foreign `Host`; a server on a
/// LAN address accepts the names the LAN uses (the key still guards it).
#[tokio::test]
async fn host_names_on_loopback_and_on_the_lan() {
    async fn status_with_host(server: &TestServer) -> u16 {
        server
            .request(Method::POST, "/mcp")
            .header("Host", "mybox.local:8000")
            .header("Accept", "application/json, text/event-stream")
            .json(&legacy_initialize())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
    let loopback = TestServer::spawn().await;
    assert_eq!(status_with_host(&loopback).await, 403);
    let lan = TestServer::spawn_with(|config| config.host = [0, 0, 0, 0].into()).await;
    assert_eq!(status_with_host(&lan).await, 200);
}

/// `X-Agent-ID` on the HTTP request that carries a tool call tags the memory, as it
/// does on `POST /api/memories`: the operation gets the caller, not a blank header.
#[tokio::test]
async fn the_agent_header_reaches_mcp_tools() {
    let server = TestServer::spawn().await;
    let params = json!({
        "name": "memory_store",
        "arguments": {"content": "stored by a named agent"},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": STATELESS,
            "io.modelcontextprotocol/clientCapabilities": {},
        },
    });
    let response = server
        .http
        .post(format!("{}/mcp", server.url()))
        .bearer_auth(MASTER_KEY)
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", STATELESS)
        .header("Mcp-Method", "tools/call")
        .header("Mcp-Name", "memory_store")
        .header("X-Agent-ID", "claude-code")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let stored = answer(&response.text().await.unwrap());
    let hash = stored["result"]["structuredContent"]["content_hash"]
        .as_str()
        .unwrap_or_else(|| panic!("{stored}"))
        .to_owned();
    let (_, memory) = server
        .send(Method::GET, &format!("/api/memories/{hash}"), None)
        .await;
    assert_eq!(memory["tags"], json!(["agent:claude-code"]), "{memory}");
}

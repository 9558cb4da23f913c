//! `/mcp` for plain JSON-RPC, as mcp-memory-service's documentation checks a server:
//! `curl -X POST /mcp -H 'Content-Type: application/json' -d '{"jsonrpc":"2.0",
//! "method":"tools/list","id":1}'`, over real HTTP against a real server. MCP
//! clients keep streamable HTTP with sessions (here, and with the official Python
//! client in `e2e/tests/mcp_clients.rs`).

use mnemo_server::auth::{KeyFile, Scope};
use mnemo_server::testing::{MASTER_KEY, TestServer};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};

/// POSTs `message` to `/mcp` with the master key and `accept` (none if `None`);
/// returns the status, the content type and the body.
async fn post(
    server: &TestServer,
    key: &str,
    accept: Option<&str>,
    session: Option<&str>,
    message: Value,
) -> (u16, String, String) {
    let mut request = server
        .http
        .post(format!("{}/mcp", server.url()))
        .bearer_auth(key)
        .header(CONTENT_TYPE, "application/json")
        .body(message.to_string());
    if let Some(accept) = accept {
        request = request.header(ACCEPT, accept);
    }
    if let Some(session) = session {
        request = request.header("Mcp-Session-Id", session);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, response.text().await.unwrap())
}

fn tools_list() -> Value {
    json!({"jsonrpc": "2.0", "method": "tools/list", "id": 1})
}

/// A JSON answer to a plain request: 200, `application/json`, the JSON-RPC response.
fn json_answer((status, kind, body): (u16, String, String)) -> Value {
    assert_eq!(status, 200, "{body}");
    assert_eq!(kind, "application/json", "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// curl's and httpx's `*/*`, `application/json` alone and no `Accept` at all get the
/// tool list as JSON, without a session.
#[tokio::test]
async fn plain_json_rpc_gets_a_json_answer() {
    let server = TestServer::spawn().await;
    for accept in [Some("*/*"), Some("application/json"), None] {
        let answer = json_answer(post(&server, MASTER_KEY, accept, None, tools_list()).await);
        assert_eq!(answer["id"], 1, "{answer}");
        let tools = answer["result"]["tools"].as_array().unwrap();
        assert!(
            tools.iter().any(|t| t["name"] == "memory_store"),
            "{accept:?}: {answer}"
        );
    }
}

/// Plain requests call tools statelessly, each with the scope of its own key.
#[tokio::test]
async fn plain_tool_calls_store_and_search_with_their_keys_scope() {
    let server = TestServer::spawn().await;
    let call = |name: &str, arguments: Value| {
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
               "params": {"name": name, "arguments": arguments}})
    };
    let stored = json_answer(
        post(
            &server,
            MASTER_KEY,
            Some("*/*"),
            None,
            call("memory_store", json!({"content": "plain curl stored this"})),
        )
        .await,
    );
    assert_eq!(stored["result"]["isError"], false, "{stored}");
    let found = json_answer(
        post(
            &server,
            MASTER_KEY,
            Some("*/*"),
            None,
            call("memory_search", json!({"query": "stored by curl"})),
        )
        .await,
    );
    assert!(
        found.to_string().contains("plain curl stored this"),
        "{found}"
    );
    let (_, reader) = KeyFile::new(server.dir.path())
        .add("reader", Scope::Read)
        .unwrap();
    let refused = json_answer(
        post(
            &server,
            &reader,
            Some("application/json"),
            None,
            call("memory_store", json!({"content": "not allowed"})),
        )
        .await,
    );
    assert_eq!(refused["result"]["isError"], true, "{refused}");
}

/// A plain `initialize` is answered in JSON and opens no session; a notification
/// gets 202; a body that is not JSON-RPC is an error, not a hang.
#[tokio::test]
async fn plain_initialize_notifications_and_garbage() {
    let server = TestServer::spawn().await;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "curl", "version": "8"}}});
    let response = server
        .http
        .post(format!("{}/mcp", server.url()))
        .bearer_auth(MASTER_KEY)
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "*/*")
        .body(initialize.to_string())
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("mcp-session-id").is_none());
    let kind = response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.text().await.unwrap();
    let answer = json_answer((200, kind, body));
    assert_eq!(answer["result"]["serverInfo"]["name"], "mnemo", "{answer}");

    let notification = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _, _) = post(&server, MASTER_KEY, Some("*/*"), None, notification).await;
    assert_eq!(status, 202);

    let response = server
        .http
        .post(format!("{}/mcp", server.url()))
        .bearer_auth(MASTER_KEY)
        .header(CONTENT_TYPE, "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
}

/// An MCP client (it accepts both JSON and SSE) still gets a session from
/// `initialize` and SSE answers in it; without a session, a legacy request it sends
/// is served statelessly instead of refused.
#[tokio::test]
async fn mcp_clients_keep_streamable_http() {
    let server = TestServer::spawn().await;
    const BOTH: &str = "application/json, text/event-stream";
    let both = Some(BOTH);
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "client", "version": "1"}}});
    let response = server
        .http
        .post(format!("{}/mcp", server.url()))
        .bearer_auth(MASTER_KEY)
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, BOTH)
        .body(initialize.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[CONTENT_TYPE], "text/event-stream");
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    drop(response);
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _, _) = post(&server, MASTER_KEY, both, Some(&session), initialized).await;
    assert_eq!(status, 202);
    let (status, kind, body) = post(&server, MASTER_KEY, both, Some(&session), tools_list()).await;
    assert_eq!(
        (status, kind.as_str()),
        (200, "text/event-stream"),
        "{body}"
    );
    assert!(body.contains("memory_store"), "{body}");

    let sessionless = json_answer(post(&server, MASTER_KEY, both, None, tools_list()).await);
    assert!(sessionless["result"]["tools"].is_array(), "{sessionless}");
}

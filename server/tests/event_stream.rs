//! `GET /api/events/stream` (unnamed events for a browser's `onmessage`), the
//! single-use tickets of `POST /api/events/ticket`, and where a credential may sit in
//! a URL, over real HTTP with the real model and a real SQLite file. The headless
//! browser drives the same routes in `e2e/tests/browser.rs`.

use mnemo_server::auth::{KeyFile, Scope};
use mnemo_server::testing::sse::sse_stream;
use mnemo_server::testing::{MASTER_KEY, SseStream, TestServer, next_event};
use reqwest::{Method, Response};
use serde_json::{Value, json};

/// The `data` of the next event, which must be unnamed (SSE's default type
/// `message`, the one `onmessage` receives), skipping heartbeats.
async fn next_data(stream: &mut SseStream) -> (String, Value) {
    loop {
        let event = next_event(stream).await;
        assert_eq!(event.event, "message", "named event on the unnamed stream");
        let data: Value = serde_json::from_str(&event.data).unwrap();
        if data["type"] != "heartbeat" {
            return (event.id, data);
        }
    }
}

/// Opens `path` (with `query`, no header key) and asserts it is an event stream.
async fn open(server: &TestServer, path: &str, query: &[(&str, &str)]) -> SseStream {
    let response = server
        .http
        .get(format!("{}{path}", server.url()))
        .query(query)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path} {query:?}");
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    sse_stream(response)
}

/// The error code of a refusal, which must be a JSON error body with a message.
async fn refusal(response: Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON error body");
    let message = body["message"].as_str().unwrap_or_default().to_owned();
    assert!(!message.is_empty(), "{body}");
    (status, body["error"].as_str().unwrap().to_owned(), message)
}

async fn ticket(server: &TestServer, key: &str) -> String {
    let response = server
        .http
        .post(format!("{}/api/events/ticket", server.url()))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expires_in_seconds"], 60.0, "{body}");
    assert_eq!(body["param_name"], "ticket", "{body}");
    body["ticket"].as_str().unwrap().to_owned()
}

/// Every event on the unnamed stream names its type in `data`; changes keep their
/// ids and mcp-memory-service's payload.
#[tokio::test]
async fn the_unnamed_stream_types_every_event() {
    let server = TestServer::spawn().await;
    let mut stream = open(&server, "/api/events/stream", &[("api_key", MASTER_KEY)]).await;
    let (id, greeting) = next_data(&mut stream).await;
    assert_eq!(greeting["type"], "connection_established", "{greeting}");
    assert!(greeting["connection_id"].is_string(), "{greeting}");
    assert_eq!(id, "");

    let hash = server
        .store(json!({"content": "typed", "tags": ["t"]}))
        .await;
    let (status, _) = server
        .send(Method::DELETE, &format!("/api/memories/{hash}"), None)
        .await;
    assert_eq!(status, 200);
    let (stored_id, stored) = next_data(&mut stream).await;
    assert_eq!(stored["type"], "memory_stored", "{stored}");
    assert_eq!(stored["content_hash"], hash.as_str());
    assert_eq!(stored["tags"], json!(["t"]));
    let (deleted_id, deleted) = next_data(&mut stream).await;
    assert_eq!(deleted["type"], "memory_deleted", "{deleted}");
    assert_eq!(deleted["success"], true);
    assert!(deleted_id.parse::<i64>().unwrap() > stored_id.parse::<i64>().unwrap());
}

/// The unnamed stream replays after `Last-Event-ID` like `/api/events`, and a
/// position that is not a number is a JSON 400.
#[tokio::test]
async fn the_unnamed_stream_replays_after_the_last_id() {
    let server = TestServer::spawn().await;
    for content in ["one", "two", "three"] {
        server.store(json!({"content": content})).await;
    }
    let response = server
        .request(Method::GET, "/api/events/stream")
        .header("Last-Event-ID", "1")
        .send()
        .await
        .unwrap();
    let mut stream = sse_stream(response);
    assert_eq!(
        next_data(&mut stream).await.1["type"],
        "connection_established"
    );
    for (id, content) in [("2", "two"), ("3", "three")] {
        let (seen, data) = next_data(&mut stream).await;
        assert_eq!(
            (seen.as_str(), &data["content_preview"]),
            (id, &json!(content))
        );
    }
    let bad = server
        .request(Method::GET, "/api/events/stream?last_event_id=abc")
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(bad).await.0, 400);
}

/// `?api_key=` opens both streams and no other route: elsewhere it is a 401 that
/// says why, even next to a good header, and even on `/mcp`.
#[tokio::test]
async fn a_key_in_the_url_only_opens_the_streams() {
    let server = TestServer::spawn().await;
    for path in ["/api/events", "/api/events/stream"] {
        let mut stream = open(&server, path, &[("api_key", MASTER_KEY)]).await;
        next_event(&mut stream).await;
    }
    let refused = [
        (Method::GET, "/api/memories"),
        (Method::GET, "/api/health/detailed"),
        (Method::POST, "/api/events/ticket"),
        (Method::GET, "/api/events/stats"),
        (Method::POST, "/mcp"),
    ];
    for (method, path) in refused {
        for with_header in [false, true] {
            let mut request = server
                .http
                .request(method.clone(), format!("{}{path}", server.url()))
                .query(&[("api_key", MASTER_KEY)]);
            if with_header {
                request = request.bearer_auth(MASTER_KEY);
            }
            let (status, code, message) = refusal(request.send().await.unwrap()).await;
            assert_eq!((status, code.as_str()), (401, "unauthorized"), "{path}");
            assert!(message.contains("proxy logs"), "{message}");
        }
    }
    let missing = server
        .http
        .get(format!("{}/api/memories", server.url()))
        .send()
        .await
        .unwrap();
    let (status, _, message) = refusal(missing).await;
    assert_eq!(status, 401);
    assert!(
        message.contains("X-API-Key") && message.contains("?ticket="),
        "{message}"
    );
}

/// Any key, even read-only, buys a ticket; the ticket opens either stream exactly
/// once and nothing else.
#[tokio::test]
async fn a_ticket_opens_one_stream_once() {
    let server = TestServer::spawn().await;
    let (_, reader) = KeyFile::new(server.dir.path())
        .add("reader", Scope::Read)
        .unwrap();
    for path in ["/api/events", "/api/events/stream"] {
        let ticket = ticket(&server, &reader).await;
        let mut stream = open(&server, path, &[("ticket", &ticket)]).await;
        next_event(&mut stream).await;
        let again = server
            .http
            .get(format!("{}{path}", server.url()))
            .query(&[("ticket", &ticket)])
            .send()
            .await
            .unwrap();
        let (status, code, message) = refusal(again).await;
        assert_eq!((status, code.as_str()), (401, "unauthorized"));
        assert!(message.contains("POST /api/events/ticket"), "{message}");
    }
    // A ticket is no key elsewhere, and cannot buy another ticket.
    for (method, path) in [
        (Method::GET, "/api/memories"),
        (Method::POST, "/api/events/ticket"),
    ] {
        let ticket = ticket(&server, MASTER_KEY).await;
        let response = server
            .http
            .request(method, format!("{}{path}", server.url()))
            .query(&[("ticket", &ticket)])
            .send()
            .await
            .unwrap();
        assert_eq!(refusal(response).await.0, 401, "{path}");
    }
    for wrong in ["", "not-a-ticket", "é"] {
        let response = server
            .http
            .get(format!("{}/api/events/stream", server.url()))
            .query(&[("ticket", wrong)])
            .send()
            .await
            .unwrap();
        assert_eq!(refusal(response).await.0, 401, "{wrong:?}");
    }
    let keyless = server
        .http
        .post(format!("{}/api/events/ticket", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(keyless).await.0, 401);
    let wrong_key = server
        .http
        .post(format!("{}/api/events/ticket", server.url()))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(wrong_key).await.0, 401);
}

/// A web app on an allowed origin may send its key in `Authorization` to buy a
/// ticket: the preflight's requested headers are echoed, since the Fetch standard's
/// `*` does not cover `Authorization`.
#[tokio::test]
async fn a_cross_origin_ticket_request_passes_its_preflight() {
    let origin = "http://app.example";
    let server = TestServer::spawn_with(|c| c.cors_origins = vec![origin.into()]).await;
    let preflight = server
        .http
        .request(
            Method::OPTIONS,
            format!("{}/api/events/ticket", server.url()),
        )
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], origin);
    let allowed = headers["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed.eq_ignore_ascii_case("authorization"), "{allowed}");
}

//! The REST API over real HTTP, with the real model and a real SQLite file: auth,
//! CRUD, search and every error path (the routes and error bodies of
//! mcp-memory-service).

use mnemo_server::auth::{KeyFile, Scope};
use mnemo_server::testing::{MASTER_KEY, TestServer, next_event};
use reqwest::Method;
use serde_json::{Value, json};

const DOG: &str = "My dog loves to play fetch in the park";
const TAX: &str = "Quarterly tax filing is due in April";
const COFFEE: &str = "The espresso machine needs descaling";

/// Asserts the JSON error shape and returns its code.
fn error_code(body: &Value) -> &str {
    assert_eq!(body["message"], body["detail"], "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

/// Every route and a request that exercises it.
fn routes(hash: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, "/api/health/detailed".into(), None),
        (
            Method::POST,
            "/api/memories".into(),
            Some(json!({"content": "matrix store"})),
        ),
        (Method::GET, "/api/memories".into(), None),
        (Method::GET, format!("/api/memories/{hash}"), None),
        (
            Method::PUT,
            format!("/api/memories/{hash}"),
            Some(json!({"tags": ["x"]})),
        ),
        (
            Method::POST,
            "/api/search".into(),
            Some(json!({"query": "dog"})),
        ),
        (
            Method::POST,
            "/api/search/by-tag".into(),
            Some(json!({"tags": ["x"]})),
        ),
        (
            Method::POST,
            "/api/search/by-time".into(),
            Some(json!({"query": "today"})),
        ),
        (Method::GET, "/api/tags".into(), None),
        (Method::GET, "/api/types".into(), None),
        (
            Method::POST,
            "/api/sessions".into(),
            Some(json!({"session_id": "m", "turns": [{"role": "user", "content": "hi"}]})),
        ),
        (
            Method::POST,
            "/api/memories/batch".into(),
            Some(json!({"memories": [{"content": "matrix batch"}]})),
        ),
        (Method::DELETE, format!("/api/memories/{hash}"), None),
    ]
}

/// No key and a wrong key get 401 with WWW-Authenticate on every route but health;
/// both header forms of a key pass (`?api_key=` opens only the event streams:
/// `tests/event_stream.rs`).
#[tokio::test]
async fn auth_matrix() {
    let server = TestServer::spawn_with(|c| c.allow_anonymous = false).await;
    let hash = server.store(json!({"content": DOG})).await;
    for (method, path, body) in routes(&hash) {
        let url = format!("{}{path}", server.url());
        for key in [None, Some("wrong-key")] {
            let mut request = server.http.request(method.clone(), &url);
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path} with {key:?}");
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            let body: Value = response.json().await.unwrap();
            assert_eq!(error_code(&body), "unauthorized");
        }
    }
    let health = server
        .http
        .get(format!("{}/api/health", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    type WithKey = fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder;
    let forms: [(&str, WithKey); 2] = [
        ("bearer", |r| r.bearer_auth(MASTER_KEY)),
        ("x-api-key", |r| r.header("X-API-Key", MASTER_KEY)),
    ];
    for (name, form) in &forms {
        let response = form(
            server
                .http
                .get(format!("{}/api/memories/{hash}", server.url())),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 200, "key as {name}");
    }
}

/// With anonymous access on, no key may read and write, but a wrong key is still 401.
#[tokio::test]
async fn anonymous_access_never_accepts_a_wrong_key() {
    let server = TestServer::spawn_with(|c| c.allow_anonymous = true).await;
    let url = format!("{}/api/memories", server.url());
    let anonymous = server
        .http
        .post(&url)
        .json(&json!({"content": DOG}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 200);
    let wrong = server
        .http
        .post(&url)
        .bearer_auth("wrong")
        .json(&json!({"content": TAX}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let import = server
        .http
        .post(format!("{url}/import"))
        .json(&json!({"memories": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(import.status(), 401, "anonymous never gets admin");
}

/// A read-scope key reads but gets 403 on writes; a write key cannot import (admin).
#[tokio::test]
async fn scopes_are_enforced() {
    let server = TestServer::spawn().await;
    let keys = KeyFile::new(server.dir.path());
    let (_, reader) = keys.add("reader", Scope::Read).unwrap();
    let (_, writer) = keys.add("writer", Scope::Write).unwrap();
    let hash = server.store(json!({"content": DOG})).await;
    for (method, path, body) in routes(&hash) {
        let mut request = server
            .http
            .request(method.clone(), format!("{}{path}", server.url()))
            .bearer_auth(&reader);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let status = request.send().await.unwrap().status().as_u16();
        let writes = method != Method::GET && !path.starts_with("/api/search");
        if writes {
            assert_eq!(status, 403, "{method} {path}");
        } else {
            assert_eq!(status, 200, "{method} {path}");
        }
    }
    let import = server
        .http
        .post(format!("{}/api/memories/import", server.url()))
        .bearer_auth(&writer)
        .json(&json!({"memories": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(import.status(), 403);
    let body: Value = import.json().await.unwrap();
    assert_eq!(error_code(&body), "forbidden");
}

/// Store, get, update (tags replace, metadata merges), paginate 25 as 10/10/5, delete.
#[tokio::test]
async fn crud_round_trip() {
    let server = TestServer::spawn().await;
    let response = server
        .request(Method::POST, "/api/memories")
        .header("X-Agent-ID", "laptop")
        .json(
            &json!({"content": DOG, "tags": ["Pets"], "memory_type": "note",
                      "metadata": {"a": 1, "b": 2}, "conversation_id": "c1"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["success"], true);
    let hash = body["content_hash"].as_str().unwrap().to_owned();
    let memory = &body["memory"];
    assert_eq!(memory["tags"], json!(["pets", "agent:laptop"]));
    assert_eq!(memory["metadata"]["conversation_id"], "c1");
    assert!(memory["created_at"].as_f64().unwrap() > 1.7e9);
    assert!(memory["created_at_iso"].as_str().unwrap().ends_with('Z'));

    let (status, got) = server
        .send(Method::GET, &format!("/api/memories/{hash}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(&got, memory);

    let (status, updated) = server
        .send(
            Method::PUT,
            &format!("/api/memories/{hash}"),
            Some(json!({"tags": ["walks"], "metadata": {"b": null, "c": 3}})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["memory"]["tags"], json!(["walks"]));
    assert_eq!(
        updated["memory"]["metadata"],
        json!({"a": 1, "c": 3, "conversation_id": "c1"})
    );
    assert_eq!(updated["memory"]["memory_type"], "note");

    for i in 0..24 {
        server
            .store(json!({"content": format!("note number {i}")}))
            .await;
    }
    let mut seen = Vec::new();
    for (page, expected, more) in [(1, 10, true), (2, 10, true), (3, 5, false)] {
        let (status, list) = server
            .send(
                Method::GET,
                &format!("/api/memories?page={page}&page_size=10"),
                None,
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(list["memories"].as_array().unwrap().len(), expected);
        assert_eq!(list["has_more"], more);
        assert_eq!(list["total"], 25);
        seen.extend(
            list["memories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["content_hash"].clone()),
        );
    }
    seen.dedup();
    assert_eq!(seen.len(), 25);

    let (status, deleted) = server
        .send(Method::DELETE, &format!("/api/memories/{hash}"), None)
        .await;
    assert_eq!((status, deleted["success"].clone()), (200, json!(true)));
    let (status, body) = server
        .send(Method::GET, &format!("/api/memories/{hash}"), None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "not_found");
}

/// The dog memory ranks first for "puppy playing outside", with mcp-memory-service's score.
#[tokio::test]
async fn semantic_search_over_http() {
    let server = TestServer::spawn().await;
    for text in [TAX, DOG, COFFEE] {
        server.store(json!({"content": text})).await;
    }
    let (status, body) = server
        .send(
            Method::POST,
            "/api/search",
            Some(json!({"query": "puppy playing outside", "n_results": 3})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["memory"]["content"], DOG);
    let score = results[0]["similarity_score"].as_f64().unwrap();
    let cosine = results[0]["cosine_similarity"].as_f64().unwrap();
    assert!((score - (1.0 - (1.0 - cosine) / 2.0)).abs() < 1e-9);
    assert_eq!(body["total_found"], 3);
    assert_eq!(body["search_type"], "semantic");
    assert!(body["processing_time_ms"].as_f64().is_some());

    let (_, filtered) = server
        .send(
            Method::POST,
            "/api/search",
            Some(json!({"query": "puppy", "n_results": 3, "similarity_threshold": 0.99})),
        )
        .await;
    assert_eq!(filtered["total_found"], 0);
}

/// Hybrid search finds a rare exact token that semantic search ranks low.
#[tokio::test]
async fn hybrid_finds_a_rare_token() {
    let server = TestServer::spawn().await;
    // The code sits in a memory about something else; the distractors are error
    // reports with look-alike codes, which the embedding finds closer.
    let needle = "Grandma's apple pie needs more cinnamon, see card E1234-XK";
    server.store(json!({"content": needle})).await;
    for i in 0..30 {
        let code = format!("E{}-{}", 5000 + i * 37, ["QZ", "XR", "KM"][i % 3]);
        server
            .store(json!({"content": format!("Error code {code} appeared in the deploy logs")}))
            .await;
    }
    let query = json!({"query": "E1234-XK", "n_results": 3});
    let (_, semantic) = server
        .send(Method::POST, "/api/search", Some(query.clone()))
        .await;
    let semantic_top: Vec<&str> = semantic["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["memory"]["content"].as_str().unwrap())
        .collect();
    assert!(
        !semantic_top.contains(&needle),
        "semantic alone found it: {semantic_top:?}"
    );

    let mut hybrid = query;
    hybrid["mode"] = json!("hybrid");
    let (status, body) = server.send(Method::POST, "/api/search", Some(hybrid)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["memory"]["content"], needle);
    assert!(
        body["results"][0]["relevance_reason"]
            .as_str()
            .unwrap()
            .contains("keyword rank 1")
    );

    let (_, exact) = server
        .send(
            Method::POST,
            "/api/search",
            Some(json!({"query": "e1234-xk", "mode": "exact"})),
        )
        .await;
    assert_eq!(exact["total_found"], 1);
}

/// Tag filters: `any` matches one of the tags, `all` needs every one.
#[tokio::test]
async fn tag_any_and_all() {
    let server = TestServer::spawn().await;
    server
        .store(json!({"content": DOG, "tags": ["pets", "outdoor"]}))
        .await;
    server
        .store(json!({"content": TAX, "tags": ["money"]}))
        .await;
    server
        .store(json!({"content": COFFEE, "tags": ["kitchen", "outdoor"]}))
        .await;
    let count = |body: &Value| body["total_found"].as_u64().unwrap();
    let (_, any) = server
        .send(
            Method::POST,
            "/api/search/by-tag",
            Some(json!({"tags": ["pets", "money"]})),
        )
        .await;
    assert_eq!(count(&any), 2);
    let (_, all) = server
        .send(
            Method::POST,
            "/api/search/by-tag",
            Some(json!({"tags": ["pets", "outdoor"], "match_all": true})),
        )
        .await;
    assert_eq!(count(&all), 1);
    assert_eq!(all["results"][0]["memory"]["content"], DOG);
    let (_, search_all) = server
        .send(
            Method::POST,
            "/api/search",
            Some(json!({"query": "coffee", "tags": ["kitchen", "outdoor"], "tag_match": "all"})),
        )
        .await;
    assert_eq!(count(&search_all), 1);
    let (_, listed) = server
        .send(
            Method::GET,
            "/api/memories?tag=pets,money&tag_match=any",
            None,
        )
        .await;
    assert_eq!(listed["total"], 2);
    let (status, tags) = server.send(Method::GET, "/api/tags", None).await;
    assert_eq!(status, 200);
    assert_eq!(tags["tags"][0], json!({"tag": "outdoor", "count": 2}));
}

/// A session becomes one memory of type `session` tagged `session:<id>`.
#[tokio::test]
async fn sessions_are_stored_as_one_memory() {
    let server = TestServer::spawn().await;
    let (status, body) = server
        .send(
            Method::POST,
            "/api/sessions",
            Some(json!({"session_id": "abc", "turns": [
                {"role": "user", "content": "Where did I park?"},
                {"role": "assistant", "content": "Level 3, row F."}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let memory = &body["memory"];
    assert_eq!(memory["memory_type"], "session");
    assert_eq!(memory["tags"], json!(["session:abc"]));
    assert_eq!(
        memory["content"],
        "user: Where did I park?\nassistant: Level 3, row F."
    );
    let (_, types) = server.send(Method::GET, "/api/types", None).await;
    assert_eq!(types, json!([{"memory_type": "session", "count": 1}]));
}

/// Bad input: each error path has its status and the JSON error body.
#[tokio::test]
async fn error_paths() {
    let server = TestServer::spawn_with(|c| c.max_body_bytes = 100_000).await;
    let hash = server.store(json!({"content": DOG})).await;
    let post_raw = |path: &str, body: &'static str| {
        server
            .request(Method::POST, path)
            .header("content-type", "application/json")
            .body(body)
    };

    let response = post_raw("/api/memories", "{not json").send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        error_code(&response.json().await.unwrap()),
        "malformed_json"
    );

    let response = post_raw("/api/memories", r#"{"tags": ["no content"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert_eq!(error_code(&response.json().await.unwrap()), "invalid_body");

    let response = post_raw("/api/search", r#"{"query": 42}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);

    let response = server
        .request(Method::POST, "/api/memories")
        .body(r#"{"content": "no content type"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    let huge = json!({"content": "x".repeat(200_000)});
    let (status, body) = server.send(Method::POST, "/api/memories", Some(huge)).await;
    assert_eq!((status, error_code(&body)), (413, "body_too_large"));

    let long = json!({"content": "y".repeat(70_000)});
    let (status, body) = server.send(Method::POST, "/api/memories", Some(long)).await;
    assert_eq!((status, error_code(&body)), (400, "invalid_input"));

    for bad in [
        json!({"content": "  "}),
        json!({"content": "t", "tags": ["z".repeat(101)]}),
    ] {
        let (status, body) = server.send(Method::POST, "/api/memories", Some(bad)).await;
        assert_eq!((status, error_code(&body)), (400, "invalid_input"));
    }
    let many: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
    let (status, _) = server
        .send(
            Method::POST,
            "/api/memories",
            Some(json!({"content": "tags", "tags": many})),
        )
        .await;
    assert_eq!(status, 400);

    let (status, body) = server
        .send(Method::POST, "/api/memories", Some(json!({"content": DOG})))
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["success"], false);
    assert_eq!(body["content_hash"], hash.as_str());
    assert_eq!(error_code(&body), "duplicate");

    for (method, path) in [
        (Method::GET, "/api/memories/0000"),
        (Method::PUT, "/api/memories/0000"),
        (Method::DELETE, "/api/memories/0000"),
        (Method::GET, "/api/nothing-here"),
    ] {
        let body = (method == Method::PUT).then(|| json!({"tags": []}));
        let (status, body) = server.send(method.clone(), path, body).await;
        assert_eq!(
            (status, error_code(&body)),
            (404, "not_found"),
            "{method} {path}"
        );
    }

    let (status, body) = server
        .send(Method::POST, "/api/search", Some(json!({"query": " "})))
        .await;
    assert_eq!((status, error_code(&body)), (400, "bad_request"));
    let (status, _) = server
        .send(
            Method::POST,
            "/api/search",
            Some(json!({"query": "x", "mode": "fuzzy"})),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = server
        .send(
            Method::POST,
            "/api/search",
            Some(json!({"query": "x", "after": "not a time"})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = server
        .send(Method::GET, "/api/memories?page=abc", None)
        .await;
    assert_eq!(status, 400);
}

/// Lists and searches never return more than 100 items, whatever is asked, even
/// when more exist.
#[tokio::test]
async fn lists_are_capped_at_100() {
    let server = TestServer::spawn().await;
    for batch in 0..2 {
        let memories: Vec<Value> = (0..60)
            .map(|i| json!({"content": format!("capped note {batch}-{i}"), "created_at": 1.7e9}))
            .collect();
        let (status, body) = server
            .send(
                Method::POST,
                "/api/memories/import",
                Some(json!({"memories": memories})),
            )
            .await;
        assert_eq!((status, body["stored"].clone()), (200, json!(60)), "{body}");
    }
    let (_, list) = server
        .send(Method::GET, "/api/memories?page_size=5000", None)
        .await;
    assert_eq!(list["page_size"], 100);
    assert_eq!(list["memories"].as_array().unwrap().len(), 100);
    assert_eq!(
        (list["total"].clone(), list["has_more"].clone()),
        (json!(120), json!(true))
    );
    for mode in ["semantic", "hybrid", "exact"] {
        let (status, found) = server
            .send(
                Method::POST,
                "/api/search",
                Some(json!({"query": "capped note", "n_results": 5000, "mode": mode})),
            )
            .await;
        assert_eq!(status, 200, "{found}");
        assert_eq!(found["total_found"], 100, "{mode}");
    }
}

/// Failed authentications past the quota get 429 with Retry-After; a valid key still works.
#[tokio::test]
async fn failed_auth_is_rate_limited() {
    let server = TestServer::spawn_with(|c| c.auth_failures_per_minute = 3).await;
    let url = format!("{}/api/memories", server.url());
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = server
            .http
            .get(&url)
            .bearer_auth("guess")
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            assert!(response.headers().contains_key("retry-after"));
            let body: Value = response.json().await.unwrap();
            assert_eq!(error_code(&body), "rate_limited");
        }
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    let (status, _) = server.send(Method::GET, "/api/memories", None).await;
    assert_eq!(status, 200);
}

/// CORS answers preflights for the configured origin only.
#[tokio::test]
async fn cors_follows_the_configured_origins() {
    let server =
        TestServer::spawn_with(|c| c.cors_origins = vec!["http://app.example".into()]).await;
    let preflight = |origin: &'static str| {
        server
            .http
            .request(Method::OPTIONS, format!("{}/api/memories", server.url()))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .send()
    };
    let allowed = preflight("http://app.example").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://app.example"
    );
    let other = preflight("http://evil.example").await.unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
}

/// Detailed health reports the model, the count and the database size, also under
/// mcp-memory-service's names (`storage`, `statistics`), and never the database path.
#[tokio::test]
async fn detailed_health() {
    let server = TestServer::spawn().await;
    server
        .store(json!({"content": DOG, "tags": ["pets", "dogs"]}))
        .await;
    let (status, body) = server.send(Method::GET, "/api/health/detailed", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dimension"], 384);
    assert_eq!(body["memories"], 1);
    assert!(body["database_bytes"].as_u64().unwrap() > 0);
    assert!(body["model"].as_str().unwrap().contains("MiniLM"));
    assert!(body.get("database_path").is_none(), "{body}");
    assert!(!body.to_string().contains(".db"), "a path leaked: {body}");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    let storage = &body["storage"];
    assert!(["sqlite-vec", "postgresql"].contains(&storage["backend"].as_str().unwrap()));
    assert_eq!(storage["status"], "connected");
    assert_eq!(storage["accessible"], true);
    assert_eq!(storage["total_memories"], 1);
    assert_eq!(storage["unique_tags"], 2);
    assert!(
        storage["embedding_model"]
            .as_str()
            .unwrap()
            .contains("MiniLM")
    );
    let statistics = &body["statistics"];
    assert_eq!(statistics["total_memories"], 1);
    assert_eq!(statistics["unique_tags"], 2);
    assert_eq!(statistics["memories_this_week"], 1);
    assert!(statistics["database_size_mb"].as_f64().unwrap() >= 0.0);
    assert_eq!(statistics["backend"], storage["backend"]);
}

/// 32 clients storing and searching at once: no 5xx, and the final count equals the
/// acknowledged stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_lose_nothing() {
    const CLIENTS: usize = 32;
    const ROUNDS: usize = 6;
    let server = std::sync::Arc::new(TestServer::spawn().await);
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let server = server.clone();
            tokio::spawn(async move {
                let mut stored = 0;
                for round in 0..ROUNDS {
                    let content =
                        format!("client {client} round {round}: a note about the weekly planning");
                    let (status, body) = server
                        .send(
                            Method::POST,
                            "/api/memories",
                            Some(json!({"content": content})),
                        )
                        .await;
                    assert!(status < 500, "{status} {body}");
                    if status == 200 {
                        stored += 1;
                    }
                    let (status, body) = server
                        .send(
                            Method::POST,
                            "/api/search",
                            Some(json!({"query": "weekly planning", "n_results": 5})),
                        )
                        .await;
                    assert_eq!(status, 200, "{body}");
                }
                stored
            })
        })
        .collect();
    let acknowledged: usize = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .sum();
    assert_eq!(acknowledged, CLIENTS * ROUNDS);
    let (_, list) = server
        .send(Method::GET, "/api/memories?page_size=1", None)
        .await;
    assert_eq!(list["total"], acknowledged);
}

/// By-time search with "yesterday" and "last 7 days" around memories back-dated by the
/// admin import; duplicates in an import are reported without failing the batch.
#[tokio::test]
async fn by_time_search_over_imported_memories() {
    let server = TestServer::spawn().await;
    let now = jiff::Timestamp::now();
    let today_noon = now
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .at(12, 0, 0, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap();
    let days_ago = |n: i64| {
        today_noon
            .checked_sub(jiff::Span::new().days(n))
            .unwrap()
            .timestamp()
            .as_second()
    };
    let (status, body) = server
        .send(
            Method::POST,
            "/api/memories/import",
            Some(json!({"memories": [
                {"content": DOG, "created_at": days_ago(1)},
                {"content": TAX, "created_at": days_ago(3)},
                {"content": COFFEE, "created_at": format!("{}", today_noon.checked_sub(jiff::Span::new().days(30)).unwrap().timestamp())},
                {"content": DOG, "created_at": days_ago(2)},
            ]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stored"], 3);
    assert_eq!(body["results"][3]["success"], false);
    assert_eq!(
        body["results"][1]["memory"]["created_at"],
        days_ago(3) as f64
    );

    let contents = |body: &Value| -> Vec<String> {
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["memory"]["content"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, yesterday) = server
        .send(
            Method::POST,
            "/api/search/by-time",
            Some(json!({"query": "yesterday"})),
        )
        .await;
    assert_eq!(status, 200, "{yesterday}");
    assert_eq!(contents(&yesterday), [DOG]);
    assert_eq!(yesterday["search_type"], "time");

    let (_, week) = server
        .send(
            Method::POST,
            "/api/search/by-time",
            Some(json!({"query": "last 7 days"})),
        )
        .await;
    assert_eq!(contents(&week), [DOG, TAX], "newest first");
    let (_, ranked) = server
        .send(
            Method::POST,
            "/api/search/by-time",
            Some(json!({"query": "last 7 days", "semantic_query": "taxes and filing"})),
        )
        .await;
    assert_eq!(contents(&ranked)[0], TAX);

    let (status, body) = server
        .send(
            Method::POST,
            "/api/search/by-time",
            Some(json!({"query": "next blursday"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        error_code(&body) == "bad_request"
            && body["message"].as_str().unwrap().contains("yesterday")
    );
    let (status, body) = server
        .send(
            Method::POST,
            "/api/search/by-time",
            Some(json!({"query": "today", "tz": "Mars/Olympus"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    let (_, after) = server
        .send(
            Method::POST,
            "/api/search",
            Some(json!({"query": "anything", "after": iso(days_ago(4)), "before": days_ago(2) as f64})),
        )
        .await;
    assert_eq!(contents(&after), [TAX]);
}

fn iso(epoch: i64) -> String {
    jiff::Timestamp::from_second(epoch).unwrap().to_string()
}

/// A batch store embeds and stores every new item, reports each in request order, and
/// refuses only the items that are duplicates (of a stored memory or of an earlier
/// item) or invalid; the stored ones are searchable and on the change feed.
#[tokio::test]
async fn batch_store_reports_each_item() {
    let server = TestServer::spawn().await;
    let existing = server.store(json!({"content": DOG})).await;
    let mut feed = server.events(Some(1)).await;
    let (status, body) = server
        .send(
            Method::POST,
            "/api/memories/batch",
            Some(json!({"memories": [
                {"content": TAX, "tags": ["Money"], "memory_type": "todo"},
                {"content": DOG},
                {"content": "   "},
                {"content": COFFEE, "metadata": {"room": "kitchen"}, "conversation_id": "c1"},
                {"content": format!("  {TAX} ")},
                {"content": "bad tag", "tags": ["z".repeat(101)]},
            ]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stored"], 2, "{body}");
    let results = body["results"].as_array().unwrap();
    let success: Vec<bool> = results.iter().map(|r| r["success"] == true).collect();
    assert_eq!(success, [true, false, false, true, false, false]);
    assert_eq!(results[0]["memory"]["tags"], json!(["money"]));
    assert_eq!(results[0]["memory"]["memory_type"], "todo");
    assert_eq!(results[1]["content_hash"], existing.as_str());
    assert_eq!(results[4]["content_hash"], results[0]["content_hash"]);
    assert_eq!(results[3]["memory"]["metadata"]["conversation_id"], "c1");
    assert!(results[2]["message"].as_str().unwrap().contains("empty"));

    assert_eq!(next_event(&mut feed).await.event, "connection_established");
    for expected in [TAX, COFFEE] {
        let event = next_event(&mut feed).await;
        assert_eq!(event.event, "memory_stored");
        assert!(event.data.contains(&expected[..20]), "{}", event.data);
    }
    let (_, found) = server
        .send(
            Method::POST,
            "/api/search",
            Some(json!({"query": "coffee machine maintenance", "n_results": 1})),
        )
        .await;
    assert_eq!(found["results"][0]["memory"]["content"], COFFEE);
    let (_, list) = server
        .send(Method::GET, "/api/memories?page_size=1", None)
        .await;
    assert_eq!(list["total"], 3);
}

/// `X-Agent-ID` tags every item of a batch, as it tags a single store.
#[tokio::test]
async fn batch_store_applies_agent_tag() {
    let server = TestServer::spawn().await;
    let response = server
        .request(Method::POST, "/api/memories/batch")
        .header("X-Agent-ID", "planner")
        .json(&json!({"memories": [{"content": DOG}, {"content": TAX, "tags": ["x"]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["results"][0]["memory"]["tags"],
        json!(["agent:planner"])
    );
    assert_eq!(
        body["results"][1]["memory"]["tags"],
        json!(["x", "agent:planner"])
    );
}

/// A batch of 100 is accepted; 101 is refused whole with 400 and the JSON error body,
/// storing nothing; an empty batch stores nothing; a body of the wrong shape gets 422.
#[tokio::test]
async fn batch_store_limits_and_shape() {
    let server = TestServer::spawn().await;
    let items = |n: usize| -> Value {
        json!({"memories": (0..n).map(|i| json!({"content": format!("batch item number {i}")})).collect::<Vec<_>>()})
    };
    let (status, body) = server
        .send(Method::POST, "/api/memories/batch", Some(items(101)))
        .await;
    assert_eq!((status, error_code(&body)), (400, "bad_request"), "{body}");
    assert!(body["message"].as_str().unwrap().contains("100"));
    let (_, list) = server
        .send(Method::GET, "/api/memories?page_size=1", None)
        .await;
    assert_eq!(list["total"], 0);

    let (status, body) = server
        .send(Method::POST, "/api/memories/batch", Some(items(100)))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stored"], 100);
    assert_eq!(body["results"].as_array().unwrap().len(), 100);

    let (status, body) = server
        .send(Method::POST, "/api/memories/batch", Some(items(0)))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stored"], 0);

    for bad in [
        json!({"memories": "nope"}),
        json!({"content": DOG}),
        json!([1]),
    ] {
        let (status, body) = server
            .send(Method::POST, "/api/memories/batch", Some(bad))
            .await;
        assert_eq!((status, error_code(&body)), (422, "invalid_body"), "{body}");
    }
    let response = server
        .request(Method::POST, "/api/memories/batch")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        error_code(&response.json().await.unwrap()),
        "malformed_json"
    );
}

/// `POST /api/memories/delete` refuses an empty filter and an unreadable time phrase,
/// previews with `dry_run`, and deletes only what matches.
#[tokio::test]
async fn rest_delete_by_filter() {
    let server = TestServer::spawn().await;
    for (content, tag) in [
        ("alpha note", "old"),
        ("beta note", "old"),
        ("gamma note", "keep"),
    ] {
        let (status, _) = server
            .send(
                Method::POST,
                "/api/memories",
                Some(json!({"content": content, "tags": [tag]})),
            )
            .await;
        assert_eq!(status, 200);
    }
    let (status, body) = server
        .send(Method::POST, "/api/memories/delete", Some(json!({})))
        .await;
    assert_eq!(status, 400, "no filter deletes nothing: {body}");
    assert_eq!(body["error"], "bad_request");

    let (status, body) = server
        .send(
            Method::POST,
            "/api/memories/delete",
            Some(json!({"time": "someday maybe"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    let (_, dry) = server
        .send(
            Method::POST,
            "/api/memories/delete",
            Some(json!({"tags": ["old"], "dry_run": true, "limit": 1})),
        )
        .await;
    assert_eq!(dry["matched"], 2);
    assert_eq!(dry["content_hashes"].as_array().unwrap().len(), 1);
    assert_eq!(dry["has_more"], true);

    let (status, done) = server
        .send(
            Method::POST,
            "/api/memories/delete",
            Some(json!({"tags": ["old"], "time": "today"})),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["content_hashes"].as_array().unwrap().len(), 2);
    assert_eq!(done["has_more"], false);
    let (_, health) = server.send(Method::GET, "/api/health/detailed", None).await;
    assert_eq!(health["memories"], 1, "only the kept memory is left");
}

/// Text holding U+0000 (which PostgreSQL cannot store) is refused with a 400 naming
/// the field, on every backend, and stores nothing.
#[tokio::test]
async fn nul_characters_are_refused() {
    let server = TestServer::spawn().await;
    for body in [
        json!({"content": "before\0after"}),
        json!({"content": "fine", "tags": ["a\0"]}),
        json!({"content": "fine", "metadata": {"k": ["x\0"]}}),
    ] {
        let (status, reply) = server.send(Method::POST, "/api/memories", Some(body)).await;
        assert_eq!(status, 400, "{reply}");
        assert!(
            reply["message"].as_str().unwrap().contains("NUL"),
            "{reply}"
        );
    }
    let (status, reply) = server.send(Method::GET, "/api/memories/a%00b", None).await;
    assert_eq!(status, 404, "{reply}");
    let (_, listed) = server.send(Method::GET, "/api/memories", None).await;
    assert_eq!(listed["total"], 0, "{listed}");
}

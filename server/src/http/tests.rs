//! The fast tier: the whole router driven with `oneshot`, no socket, over a real
//! SQLite file and the fake embedding model, so auth and every error body are
//! checked in milliseconds without ONNX. The real model's behaviour is tested end to
//! end in `server/tests/`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use mnemo_api::error::ErrorBody;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::{AppState, router};
use crate::auth::Auth;
use crate::auth::{KeyFile, KeyRing};
use crate::config::Config;
use crate::embed::Embedder;
use crate::embed::fake::FakeModel;
use crate::service::MemoryService;
use crate::storage::sqlite::{SqliteOptions, SqliteStore};

const KEY: &str = "fast-tier-master-key";

struct App {
    router: Router,
    dir: TempDir,
    _shutdown: tokio_util::sync::DropGuard,
}

/// A router over a fresh database with the fake model; `loaded: false` leaves the
/// service unpublished, as while the real model loads.
fn app(loaded: bool, tweak: impl FnOnce(&mut Config)) -> App {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_data_dir(dir.path());
    config.max_body_bytes = 4096;
    tweak(&mut config);
    let ring = KeyRing::new(Some(KEY.into()), KeyFile::new(dir.path()));
    let auth = Auth::new(
        ring,
        config.allow_anonymous,
        config.auth_failures_per_minute,
    );
    let state = Arc::new(AppState::new(auth));
    let shutdown = CancellationToken::new();
    if loaded {
        let embedder = Embedder::start(Box::new(FakeModel::new(8)), 1);
        let options = SqliteOptions::default();
        let path = dir.path().join("memories.db");
        let store = SqliteStore::open(&path, embedder.spec(), options).unwrap();
        let service = MemoryService::new(Arc::new(store), embedder).with_limits(config.limits());
        state.publish(service, &config, shutdown.clone());
    }
    App {
        router: router(state, &config, shutdown.clone()),
        dir,
        _shutdown: shutdown.drop_guard(),
    }
}

/// Sends a request with the master key (unless `key` says otherwise); returns the
/// status, the headers and the body as JSON.
async fn send(
    app: &App,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_owned()));
    let response = app
        .router
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, json)
}

/// The JSON error body: `error`, `message`, and `detail` equal to the message.
fn error_code(body: &Value) -> String {
    let parsed: ErrorBody = serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("not the error body ({e}): {body}"));
    assert_eq!(parsed.detail, parsed.message, "{body}");
    assert!(!parsed.message.is_empty(), "{body}");
    parsed.error
}

/// Metadata past `MNEMO_MAX_METADATA_BYTES` is a 400 naming the setting on every way
/// in (a store, a batch item, a session, an update), and nothing is stored.
#[tokio::test]
async fn oversized_metadata_is_refused_everywhere() {
    let app = app(true, |c| c.max_metadata_bytes = 200);
    let big = format!(r#"{{"blob": "{}"}}"#, "m".repeat(300));
    let (status, _, stored) = send(
        &app,
        Method::POST,
        "/api/memories",
        Some(KEY),
        Some(r#"{"content": "kept"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    let hash = stored["content_hash"].as_str().unwrap();
    let cases = [
        (
            Method::POST,
            "/api/memories".to_owned(),
            format!(r#"{{"content": "a", "metadata": {big}}}"#),
        ),
        (
            Method::POST,
            "/api/sessions".to_owned(),
            format!(
                r#"{{"session_id": "s1", "turns": [{{"role": "user", "content": "b"}}], "metadata": {big}}}"#
            ),
        ),
        (
            Method::PUT,
            format!("/api/memories/{hash}"),
            format!(r#"{{"metadata": {big}}}"#),
        ),
    ];
    for (method, path, body) in cases {
        let what = format!("{method} {path}");
        let (status, _, json) = send(&app, method, &path, Some(KEY), Some(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {json}");
        assert_eq!(error_code(&json), "invalid_input", "{what}");
        assert!(
            json["message"]
                .as_str()
                .unwrap()
                .contains("MNEMO_MAX_METADATA_BYTES"),
            "{what}: {json}"
        );
    }
    let batch =
        format!(r#"{{"memories": [{{"content": "c", "metadata": {big}}}, {{"content": "d"}}]}}"#);
    let (status, _, json) = send(
        &app,
        Method::POST,
        "/api/memories/batch",
        Some(KEY),
        Some(&batch),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["stored"], 1, "{json}");
    assert_eq!(json["results"][0]["success"], false, "{json}");
    let (_, _, list) = send(&app, Method::GET, "/api/memories", Some(KEY), None).await;
    assert_eq!(list["total"], 2, "{list}");
}

/// Every refusal of a bad request names its cause in the JSON error body.
#[tokio::test]
async fn bad_requests_get_the_json_error_body() {
    let app = app(true, |_| {});
    let cases: [(Method, &str, Option<&str>, StatusCode, &str); 9] = [
        (
            Method::POST,
            "/api/memories",
            Some("{not json"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            Method::POST,
            "/api/memories",
            Some(r#"{"tags": 5}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            Method::POST,
            "/api/memories",
            Some(r#"{"content": "  "}"#),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::POST,
            "/api/search",
            Some(r#"{"query": " "}"#),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::POST,
            "/api/search",
            Some(r#"{"query": "x", "time": "when pigs fly"}"#),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::GET,
            "/api/memories?page=abc",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            Method::GET,
            "/api/memories/0000",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/api/nothing-here",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::PATCH,
            "/api/memories",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let what = format!("{method} {path} {body:?}");
        let (got, _, json) = send(&app, method, path, Some(KEY), body).await;
        assert_eq!(got, status, "{what}: {json}");
        assert_eq!(error_code(&json), code, "{what}");
    }
    let big = json!({"content": "x".repeat(8192)}).to_string();
    let (status, _, json) = send(&app, Method::POST, "/api/memories", Some(KEY), Some(&big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(&json), "body_too_large");
}

/// A duplicate is 409 with both mcp-memory-service's envelope and the error body.
#[tokio::test]
async fn a_duplicate_names_the_memory_that_holds_its_content() {
    let app = app(true, |_| {});
    let body = r#"{"content": "the same words"}"#;
    let (status, _, first) = send(&app, Method::POST, "/api/memories", Some(KEY), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, _, again) = send(&app, Method::POST, "/api/memories", Some(KEY), Some(body)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(again["success"], false);
    assert_eq!(again["content_hash"], first["content_hash"]);
    assert_eq!(error_code(&again), "duplicate");
}

/// Without a key: 401 with `WWW-Authenticate`; a read key writing: 403; too many
/// failures: 429 with `Retry-After`; health stays public.
#[tokio::test]
async fn refusals_by_auth() {
    let app = app(true, |c| c.auth_failures_per_minute = 2);
    let (status, headers, json) = send(&app, Method::GET, "/api/tags", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    assert_eq!(error_code(&json), "unauthorized");

    let (_, reader) = KeyFile::new(app.dir.path())
        .add("reader", crate::auth::Scope::Read)
        .unwrap();
    let body = Some(r#"{"content": "a reader may not"}"#);
    let (status, _, json) = send(&app, Method::POST, "/api/memories", Some(&reader), body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&json), "forbidden");
    let (status, _, _) = send(&app, Method::GET, "/api/tags", Some(&reader), None).await;
    assert_eq!(status, StatusCode::OK);

    // The keyless request above was the first failure of the quota of two.
    let (status, _, _) = send(&app, Method::GET, "/api/tags", Some("wrong"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, headers, json) = send(&app, Method::GET, "/api/tags", Some("wrong"), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key(header::RETRY_AFTER));
    assert_eq!(error_code(&json), "rate_limited");

    let (status, _, json) = send(&app, Method::GET, "/api/health", None, None).await;
    assert_eq!(
        (status, &json["status"]),
        (StatusCode::OK, &json!("healthy"))
    );
}

/// While the model loads, data routes answer 503 `loading` and health says so.
#[tokio::test]
async fn loading_is_503_with_the_error_body() {
    let app = app(false, |_| {});
    let (status, _, json) = send(&app, Method::GET, "/api/memories", Some(KEY), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&json), "loading");
    for path in ["/api/health", "/health"] {
        let (status, _, json) = send(&app, Method::GET, path, None, None).await;
        assert_eq!(
            (status, &json["status"]),
            (StatusCode::SERVICE_UNAVAILABLE, &json!("loading")),
            "{path}"
        );
    }
}

/// `/health` is `/api/health`, public, for health checks written for
/// mcp-memory-service.
#[tokio::test]
async fn health_answers_at_both_paths() {
    let app = app(true, |_| {});
    for path in ["/api/health", "/health"] {
        let (status, _, json) = send(&app, Method::GET, path, None, None).await;
        assert_eq!(
            (status, &json["status"]),
            (StatusCode::OK, &json!("healthy")),
            "{path}"
        );
    }
}

/// A handler that panics answers the JSON 500; the panic does not close the connection.
#[tokio::test]
async fn a_panicking_handler_answers_the_json_500() {
    let app = Router::new()
        .route(
            "/boom",
            axum::routing::get(|| async {
                let zone = "+中";
                // The byte split that `timeexpr::parse_offset` once made.
                let (_, _) = zone.split_at(2);
                "unreachable"
            }),
        )
        .layer(super::catch_panics());
    let request = Request::get("/boom").body(Body::empty()).unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let json: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(error_code(&json), "internal");
}

/// `tz: "+中"` panicked three handlers; now each refuses the zone with a 400.
#[tokio::test]
async fn a_multibyte_offset_is_a_bad_request_on_every_route_that_reads_tz() {
    let app = app(true, |_| {});
    let cases = [
        (
            "/api/search",
            r#"{"query": "x", "tz": "+中", "time": "today"}"#,
        ),
        ("/api/search/by-time", r#"{"query": "today", "tz": "+中"}"#),
        (
            "/api/memories/delete",
            r#"{"time": "today", "tz": "+中", "dry_run": true}"#,
        ),
    ];
    for (path, body) in cases {
        let (status, _, json) = send(&app, Method::POST, path, Some(KEY), Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {json}");
        assert_eq!(error_code(&json), "bad_request", "{path}");
    }
}

/// Sends `GET /api/tags` with one raw header; returns the status.
async fn status_with(app: &App, name: &str, value: &[u8]) -> StatusCode {
    let request = Request::get("/api/tags")
        .header(name, axum::http::HeaderValue::from_bytes(value).unwrap())
        .body(Body::empty())
        .unwrap();
    app.router.clone().oneshot(request).await.unwrap().status()
}

/// The Bearer scheme is case-insensitive; with anonymous access on, a credential that
/// is there but not a valid key is refused whatever its scheme or bytes, and only a
/// request with none at all is anonymous.
#[tokio::test]
async fn anonymous_access_refuses_every_present_credential_that_is_not_a_key() {
    let app = app(true, |c| c.allow_anonymous = true);
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let value = format!("{scheme} {KEY}");
        let status = status_with(&app, "authorization", value.as_bytes()).await;
        assert_eq!(status, StatusCode::OK, "{scheme}");
    }
    let refused: [(&str, &[u8]); 9] = [
        ("authorization", b"bearer wrong"),
        ("authorization", b"Bearer"),
        ("authorization", b"Basic dXNlcjpwYXNz"),
        ("authorization", b"Token wrong"),
        ("authorization", KEY.as_bytes()),
        ("authorization", b"Bearer \xff\xfe"),
        ("x-api-key", b"wrong"),
        ("x-api-key", b"\xff\xfe"),
        ("authorization", b"\xc3\x28"),
    ];
    for (name, value) in refused {
        let status = status_with(&app, name, value).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {value:?}");
    }
    let (status, _, _) = send(&app, Method::GET, "/api/tags?api_key=wrong", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = send(&app, Method::GET, "/api/tags", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

/// Whatever the size of the input an error quotes, the error stays small: a 1 MB
/// phrase once came back as a 2 MB error.
#[tokio::test]
async fn errors_quote_a_bounded_excerpt_of_the_input() {
    let app = app(true, |c| c.max_body_bytes = 4 << 20);
    let huge = "z".repeat(1 << 20);
    let cases = [
        ("/api/search", json!({"query": "x", "time": huge})),
        ("/api/search", json!({"query": "x", "tz": huge})),
        ("/api/search", json!({"query": "x", "after": huge})),
        ("/api/search/by-time", json!({"query": huge})),
        ("/api/memories", json!({"content": "x", "tags": huge})),
        ("/api/memories", json!({"content": "x", "tags": [huge]})),
    ];
    for (path, body) in cases {
        let body = body.to_string();
        let (status, _, json) = send(&app, Method::POST, path, Some(KEY), Some(&body)).await;
        assert!(status.is_client_error(), "{path}: {status}");
        error_code(&json);
        let size = json.to_string().len();
        assert!(size < 2048, "{path}: a {size}-byte error");
    }
}

/// An array where an object is expected is refused, not read field by field; a PUT
/// that names no field it can change is a 400, not a silent "updated".
#[tokio::test]
async fn arrays_and_empty_updates_are_refused() {
    let app = app(true, |_| {});
    let body = Some(r#" ["stored from an array"]"#);
    let (status, _, json) = send(&app, Method::POST, "/api/memories", Some(KEY), body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
    assert_eq!(error_code(&json), "invalid_body");
    let body = Some(r#"{"content": "to be updated"}"#);
    let (_, _, stored) = send(&app, Method::POST, "/api/memories", Some(KEY), body).await;
    let path = format!("/api/memories/{}", stored["content_hash"].as_str().unwrap());
    for body in [
        r#"{}"#,
        r#"{"content": "new words"}"#,
        r#"{"tgas": ["typo"]}"#,
    ] {
        let (status, _, json) = send(&app, Method::PUT, &path, Some(KEY), Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {json}");
        assert_eq!(error_code(&json), "bad_request");
    }
    let body = Some(r#"{"tags": ["kept"]}"#);
    let (status, _, json) = send(&app, Method::PUT, &path, Some(KEY), body).await;
    assert_eq!(
        (status, &json["memory"]["tags"]),
        (StatusCode::OK, &json!(["kept"]))
    );
}

/// An import's timestamps must fall in the years 0001 to 9999.
#[tokio::test]
async fn imported_timestamps_outside_years_1_to_9999_are_refused() {
    let app = app(true, |_| {});
    for created_at in [
        json!(-62_135_596_801.0),
        json!(253_402_300_800.0),
        json!(1e300),
    ] {
        let body = json!({"memories": [{"content": "from far away", "created_at": created_at}]});
        let body = body.to_string();
        let (status, _, json) = send(
            &app,
            Method::POST,
            "/api/memories/import",
            Some(KEY),
            Some(&body),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{created_at}: {json}");
        assert_eq!(error_code(&json), "bad_request");
    }
    let body =
        json!({"memories": [{"content": "the first day", "created_at": "0001-01-01T00:00:00Z"}]});
    let body = body.to_string();
    let (status, _, json) = send(
        &app,
        Method::POST,
        "/api/memories/import",
        Some(KEY),
        Some(&body),
    )
    .await;
    assert_eq!(
        (status, &json["stored"]),
        (StatusCode::OK, &json!(1)),
        "{json}"
    );
}

/// An error axum answers itself (a path that is not UTF-8) gets the JSON body too.
#[tokio::test]
async fn extractor_rejections_get_the_json_error_body() {
    let app = app(true, |_| {});
    let (status, _, json) = send(&app, Method::GET, "/api/memories/%FF%FE", Some(KEY), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(error_code(&json), "bad_request");
}

/// A full disk (SQLITE_FULL, directly or through a failed commit) is 507
/// `storage_full`, not a generic 500.
#[test]
fn storage_errors_a_client_can_act_on_have_their_own_status() {
    use super::error::ApiError;
    use crate::service::ServiceError;
    use crate::storage::StorageError;
    let status = |error: StorageError| ApiError::from(ServiceError::Storage(error)).status();
    let full = rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
        Some("database or disk is full".into()),
    );
    assert_eq!(status(full.into()), StatusCode::INSUFFICIENT_STORAGE);
    let interrupted = rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERRUPT),
        None,
    );
    assert_eq!(status(interrupted.into()), StatusCode::SERVICE_UNAVAILABLE);
    let other = StorageError::backend("reading", rusqlite::Error::InvalidQuery);
    assert_eq!(status(other), StatusCode::INTERNAL_SERVER_ERROR);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Any bytes as a content hash in a path, percent-encoded, answer a JSON error or
    /// a memory, never a 5xx.
    #[test]
    fn any_hash_in_a_path_answers_json(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let encoded: String = bytes.iter().map(|b| format!("%{b:02X}")).collect();
        runtime.block_on(async {
            let app = app(true, |_| {});
            let path = format!("/api/memories/{encoded}");
            for method in [Method::GET, Method::DELETE, Method::PUT] {
                let body = (method == Method::PUT).then_some(r#"{"tags": ["t"]}"#);
                let (status, _, json) = send(&app, method.clone(), &path, Some(KEY), body).await;
                assert!(status.is_client_error(), "{method} {path}: {status} {json}");
                error_code(&json);
            }
        });
    }
}

/// `POST /api/auth/proof` needs no key and answers while loading, with the master key's
/// proof for the nonce (no pin over plain HTTP); a bad nonce or body is the JSON error
/// body; and proofs use up the same quota as failed logins.
#[tokio::test]
async fn proof_is_public_bounded_and_rate_limited() {
    let app = app(false, |c| c.auth_failures_per_minute = 4);
    let nonce = [5u8; 32];
    let body = json!({"nonce": hex::encode(nonce)}).to_string();
    let (status, _, json) = send(&app, Method::POST, "/api/auth/proof", None, Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let proofs: Vec<String> = serde_json::from_value(json["proofs"].clone()).unwrap();
    assert!(mnemo_certs::proof::holds(&proofs, KEY, &nonce, None));
    assert!(!mnemo_certs::proof::holds(&proofs, "other", &nonce, None));
    assert!(!json.to_string().contains(KEY));

    let short = json!({"nonce": "abcd"}).to_string();
    let (status, _, json) = send(&app, Method::POST, "/api/auth/proof", None, Some(&short)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&json), "invalid_nonce");
    let (status, _, json) = send(
        &app,
        Method::POST,
        "/api/auth/proof",
        None,
        Some(r#"{"nonce": 5}"#),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&json), "invalid_body");

    // Two requests so far counted; two more are allowed, then 429 for proofs and logins.
    for _ in 0..2 {
        let (status, _, _) = send(&app, Method::POST, "/api/auth/proof", None, Some(&body)).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, headers, json) =
        send(&app, Method::POST, "/api/auth/proof", None, Some(&body)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key(header::RETRY_AFTER));
    assert_eq!(error_code(&json), "rate_limited");
    let (status, _, _) = send(&app, Method::GET, "/api/tags", Some("wrong"), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

/// `GET /api/search/similar/{hash}` ranks the other memories by the stored vector,
/// leaves the memory itself out, bounds `n_results`, and answers JSON 404 for an
/// unknown hash and JSON 400 for a bad or out-of-range `n_results`.
#[tokio::test]
async fn similar_by_hash_finds_neighbours_and_refuses_bad_input() {
    let app = app(true, |_| {});
    let mut hashes = Vec::new();
    for content in ["first memory", "second memory", "third memory"] {
        let body = json!({"content": content}).to_string();
        let (status, _, stored) =
            send(&app, Method::POST, "/api/memories", Some(KEY), Some(&body)).await;
        assert_eq!(status, StatusCode::OK, "{stored}");
        hashes.push(stored["content_hash"].as_str().unwrap().to_owned());
    }
    let path = format!("/api/search/similar/{}?n_results=5", hashes[0]);
    let (status, _, body) = send(&app, Method::GET, &path, Some(KEY), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["search_type"], "similar");
    assert!(
        body["query"]
            .as_str()
            .unwrap()
            .starts_with("Similar to: first memory")
    );
    let found: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["memory"]["content_hash"].as_str().unwrap())
        .collect();
    assert_eq!(found.len(), 2, "{body}");
    assert!(!found.contains(&hashes[0].as_str()), "{body}");
    assert_eq!(body["total_found"], 2);

    let path = format!("/api/search/similar/{}?n_results=1", hashes[0]);
    let (_, _, body) = send(&app, Method::GET, &path, Some(KEY), None).await;
    assert_eq!(body["results"].as_array().unwrap().len(), 1, "{body}");

    let unknown = format!("/api/search/similar/{}", "0".repeat(64));
    let (status, _, body) = send(&app, Method::GET, &unknown, Some(KEY), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");

    for query in [
        "n_results=0",
        "n_results=101",
        "n_results=abc",
        "n_results=-1",
    ] {
        let path = format!("/api/search/similar/{}?{query}", hashes[0]);
        let (status, _, body) = send(&app, Method::GET, &path, Some(KEY), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        error_code(&body);
    }
    let path = format!("/api/search/similar/{}", hashes[0]);
    let (status, _, body) = send(&app, Method::GET, &path, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

/// A tag holding a comma is refused with a 400 that names it, on store and update;
/// tags otherwise come back de-duplicated in the order given.
#[tokio::test]
async fn tags_keep_their_order_and_refuse_commas() {
    let app = app(true, |_| {});
    let (status, _, stored) = send(
        &app,
        Method::POST,
        "/api/memories",
        Some(KEY),
        Some(r#"{"content": "ordered", "tags": ["Zeta", "alpha", "zeta", "mid"]}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    let hash = stored["content_hash"].as_str().unwrap();
    let (_, _, got) = send(
        &app,
        Method::GET,
        &format!("/api/memories/{hash}"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(got["tags"], json!(["zeta", "alpha", "mid"]), "{got}");

    let (status, _, body) = send(
        &app,
        Method::POST,
        "/api/memories",
        Some(KEY),
        Some(r#"{"content": "comma", "tags": ["a,b"]}"#),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    error_code(&body);
    assert!(
        body["message"].as_str().unwrap().contains("\"a,b\""),
        "{body}"
    );

    let (status, _, body) = send(
        &app,
        Method::PUT,
        &format!("/api/memories/{hash}"),
        Some(KEY),
        Some(r#"{"tags": ["fine", "not,fine"]}"#),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (_, _, got) = send(
        &app,
        Method::GET,
        &format!("/api/memories/{hash}"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(
        got["tags"],
        json!(["zeta", "alpha", "mid"]),
        "unchanged: {got}"
    );
}

/// A CORS preflight from an allowed origin gets the headers it asked for echoed,
/// `Authorization` included (a `*` answer would not cover it); another origin gets
/// no CORS grant.
#[tokio::test]
async fn cors_preflight_echoes_the_requested_headers() {
    let app = app(true, |c| c.cors_origins = vec!["http://app.example".into()]);
    let preflight = |origin: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/api/memories")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization,content-type,x-agent-id",
            )
            .body(Body::empty())
            .unwrap()
    };
    let response = app
        .router
        .clone()
        .oneshot(preflight("http://app.example"))
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let headers = response.headers();
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "http://app.example"
    );
    let allowed = headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for name in ["authorization", "content-type", "x-agent-id"] {
        assert!(allowed.contains(name), "{name} not in {allowed}");
    }
    assert!(!allowed.contains('*'), "{allowed}");
    assert!(
        headers[header::ACCESS_CONTROL_ALLOW_METHODS]
            .to_str()
            .unwrap()
            .contains("POST")
    );

    let other = app
        .router
        .clone()
        .oneshot(preflight("http://evil.example"))
        .await
        .unwrap();
    assert!(
        other
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );
}

/// `GET /metrics` needs a key of any scope (401 with the error body without one) unless
/// `MNEMO_METRICS_PUBLIC` opens it; it answers the text exposition format.
#[tokio::test]
async fn metrics_need_a_key_unless_public() {
    let closed = app(true, |_| {});
    let (status, _, json) = send(&closed, Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&json), "unauthorized");
    let (_, reader) = KeyFile::new(closed.dir.path())
        .add("prometheus", crate::auth::Scope::Read)
        .unwrap();
    let (status, headers, body) = scrape(&closed, Some(&reader)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(
        body.contains("# TYPE mnemo_http_requests_total counter"),
        "{body}"
    );

    let open = app(true, |c| c.metrics_public = true);
    let (status, _, body) = scrape(&open, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("process_resident_memory_bytes"), "{body}");
}

/// Requests are labelled with the route's template, never the path: a memory's hash or
/// an unknown path cannot become a label value.
#[tokio::test]
async fn request_metrics_label_the_route_template() {
    let app = app(true, |_| {});
    // Other tests in this process count requests too: compare with a scrape taken first.
    let (_, _, before) = scrape(&app, Some(KEY)).await;
    let (_, _, stored) = send(
        &app,
        Method::POST,
        "/api/memories",
        Some(KEY),
        Some(r#"{"content": "labelled by template"}"#),
    )
    .await;
    let hash = stored["content_hash"].as_str().unwrap().to_owned();
    let (status, _, _) = send(
        &app,
        Method::GET,
        &format!("/api/memories/{hash}"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let stray = "/api/no-such-route-7f3a9c";
    let (status, _, _) = send(&app, Method::GET, stray, Some(KEY), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, _, body) = scrape(&app, Some(KEY)).await;
    let moved = |labels: &str| {
        let series = format!("mnemo_http_requests_total{{{labels}}}");
        series_value(&body, &series) - series_value(&before, &series)
    };
    assert!(
        moved(r#"method="GET",route="/api/memories/{hash}",status="200""#) >= 1.0,
        "{body}"
    );
    assert!(
        moved(r#"method="GET",route="unmatched",status="404""#) >= 1.0,
        "{body}"
    );
    assert!(!body.contains(&hash), "a hash became a label: {body}");
    assert!(!body.contains(stray), "a path became a label: {body}");
}

/// The value of `series` (name and labels, as written) in an exposition text; 0 when
/// absent.
fn series_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// `GET /metrics` with `key`: status, headers and the exposition text.
async fn scrape(app: &App, key: Option<&str>) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut request = Request::builder().uri("/metrics");
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let response = app
        .router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
        .await
        .unwrap();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

/// Every way a credential is refused is counted under its reason, and 429s apart;
/// while the model loads, `/metrics` still answers.
#[tokio::test]
async fn auth_refusals_are_counted_by_reason() {
    let limited = app(true, |c| c.auth_failures_per_minute = 2);
    let (_, reader) = KeyFile::new(limited.dir.path())
        .add("reader", crate::auth::Scope::Read)
        .unwrap();
    let body = Some(r#"{"content": "not for a reader"}"#);
    let refusals = [
        (
            "/api/tags",
            None,
            Method::GET,
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/api/tags",
            Some("wrong"),
            Method::GET,
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/api/memories",
            Some(&reader),
            Method::POST,
            body,
            StatusCode::FORBIDDEN,
        ),
        (
            "/api/tags?api_key=x",
            Some(KEY),
            Method::GET,
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/api/events?ticket=bogus",
            None,
            Method::GET,
            None,
            StatusCode::UNAUTHORIZED,
        ),
        // The third failed key of this address within the minute: over the quota of 2.
        (
            "/api/tags",
            Some("wrong"),
            Method::GET,
            None,
            StatusCode::TOO_MANY_REQUESTS,
        ),
    ];
    // The recorder is one per process and other tests refuse keys too: what counts is
    // how far each series moved across this test's own requests.
    let (_, _, before) = scrape(&limited, Some(KEY)).await;
    for (path, key, method, body, expected) in refusals {
        let (status, _, json) = send(&limited, method, path, key, body).await;
        assert_eq!(status, expected, "{path}: {json}");
    }
    let (_, _, text) = scrape(&limited, Some(KEY)).await;
    let moved = |series: &str| series_value(&text, series) - series_value(&before, series);
    for reason in [
        "missing",
        "invalid",
        "insufficient_scope",
        "key_in_url",
        "ticket",
    ] {
        let series = format!(r#"mnemo_auth_failures_total{{reason="{reason}"}}"#);
        assert!(moved(&series) >= 1.0, "{series}: {text}");
    }
    assert!(moved("mnemo_auth_rate_limited_total") >= 1.0, "{text}");

    let loading = app(false, |_| {});
    let (status, _, text) = scrape(&loading, Some(KEY)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
}

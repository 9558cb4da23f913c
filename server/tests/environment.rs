//! The developer's shell does not reach the tests: test settings
//! (`Config::for_data_dir`, and so every `TestServer`) and `ServerProcess` children
//! ignore each `MCP_*`/`MNEMO_*` variable the test did not set itself.
//!
//! A test cannot change its own process's environment (`std::env::set_var` is unsafe
//! in edition 2024 and `unsafe_code` is denied). So each test here re-runs this test
//! binary, filtered to itself, with a hostile environment, and the copy does the
//! checking.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use mnemo_server::Config;
use mnemo_server::testing::{MASTER_KEY, ServerProcess, TestServer};
use reqwest::{Method, StatusCode};

/// Set in the copy, so that it checks instead of re-running itself.
const IN_HOSTILE_COPY: &str = "MNEMO_TEST_IN_HOSTILE_COPY";

/// Where the hostile environment points the database; nothing may appear there.
const HOSTILE_DATABASE: &str = "MNEMO_TEST_HOSTILE_DATABASE";

/// What a developer might have exported: each would change what a test sees.
const HOSTILE: &[(&str, &str)] = &[
    ("MCP_ALLOW_ANONYMOUS_ACCESS", "true"),
    ("MCP_API_KEY", "hostile-key-0123456789"),
    ("MCP_HTTP_HOST", "0.0.0.0"),
    ("MCP_HTTP_PORT", "9"),
    ("MCP_HTTPS_ENABLED", "true"),
    ("MCP_MDNS_ENABLED", "true"),
    ("MCP_CORS_ORIGINS", "http://hostile.example"),
    ("MNEMO_MEMORY_VECTORS", "false"),
    ("MNEMO_AUTH_FAILURES_PER_MINUTE", "1"),
    ("MNEMO_MAX_CONTENT_BYTES", "10"),
    (
        "MNEMO_DATABASE_URL",
        "postgres://hostile@127.0.0.1:9/hostile",
    ),
];

/// In the copy, returns `true`: the caller checks. Otherwise runs `test` in a copy of
/// this binary with [`HOSTILE`] exported, asserts that it ran and passed, that the
/// hostile database path stayed unused, and returns `false`.
fn in_hostile_copy(test: &str) -> bool {
    if std::env::var_os(IN_HOSTILE_COPY).is_some() {
        return true;
    }
    let elsewhere = tempfile::tempdir().unwrap();
    let database = elsewhere.path().join("hostile.db");
    let output = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--test-threads", "1"])
        .envs(HOSTILE.iter().copied())
        .env("MCP_MEMORY_SQLITE_PATH", &database)
        .env("MNEMO_DATA_DIR", elsewhere.path())
        .env(HOSTILE_DATABASE, &database)
        .env(IN_HOSTILE_COPY, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{test} failed with the hostile environment:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("1 passed"), "{test} did not run:\n{stdout}");
    let left: Vec<_> = std::fs::read_dir(elsewhere.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "the hostile data folder was used: {left:?}"
    );
    false
}

/// A request to `url` with `key` as Bearer token, if any; returns the status.
async fn status(url: &str, key: Option<&str>) -> StatusCode {
    let mut request = reqwest::Client::new().get(format!("{url}/api/memories"));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap().status()
}

/// Test settings are the compiled-in defaults whatever the shell exports, and an
/// in-process server built from them needs its key (as `/mcp` and REST tests assume).
#[test]
fn test_settings_ignore_the_environment() {
    if !in_hostile_copy("test_settings_ignore_the_environment") {
        return;
    }
    let config = Config::for_data_dir("/nowhere");
    assert_eq!(config.host, IpAddr::from([127, 0, 0, 1]));
    assert_eq!(config.port, 0);
    assert_eq!(config.data_dir.as_deref(), Some(Path::new("/nowhere")));
    assert_eq!(config.sqlite_path, None);
    assert!(config.api_key.is_none());
    assert!(!config.allow_anonymous);
    assert!(!config.https_enabled);
    assert!(!config.mdns_enabled);
    assert!(config.cors_origins.is_empty());
    assert!(config.memory_vectors);
    assert_eq!(config.auth_failures_per_minute, 30);
    assert_eq!(
        config.max_content_bytes,
        mnemo_server::service::DEFAULT_MAX_CONTENT_BYTES
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let server = TestServer::spawn().await;
        assert!(server.url().starts_with("http://127.0.0.1:"));
        assert_eq!(status(server.url(), None).await, StatusCode::UNAUTHORIZED);
        let mcp = server
            .http
            .request(Method::POST, format!("{}/mcp", server.url()))
            .header("Accept", "application/json, text/event-stream")
            .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
            .send()
            .await
            .unwrap();
        assert_eq!(mcp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(status(server.url(), Some(MASTER_KEY)).await, StatusCode::OK);
    });
}

/// A server process sees only the fixture's settings and the test's own: none of the
/// shell's, and the ones the test sets win.
#[test]
fn server_processes_see_only_what_the_test_sets() {
    if !in_hostile_copy("server_processes_see_only_what_the_test_sets") {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        data.path(),
        &[
            ("MCP_API_KEY", "asked-for-key-0123456789"),
            ("MCP_CORS_ORIGINS", "http://asked.example"),
        ],
    );
    assert!(
        server.url().starts_with("http://127.0.0.1:"),
        "{}",
        server.url()
    );
    assert_ne!(server.port(), 9);
    assert!(data.path().join("memories.db").is_file());
    let hostile = std::env::var_os(HOSTILE_DATABASE).unwrap();
    assert!(!Path::new(&hostile).exists());

    let url = server.url();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(status(url, None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            status(url, Some("hostile-key-0123456789")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(url, Some("asked-for-key-0123456789")).await,
            StatusCode::OK
        );
        let preflight = |origin: &'static str| {
            reqwest::Client::new()
                .request(Method::OPTIONS, format!("{url}/api/memories"))
                .header("Origin", origin)
                .header("Access-Control-Request-Method", "POST")
                .send()
        };
        let asked = preflight("http://asked.example").await.unwrap();
        assert_eq!(
            asked.headers()["access-control-allow-origin"],
            "http://asked.example"
        );
        let hostile = preflight("http://hostile.example").await.unwrap();
        assert!(
            !hostile
                .headers()
                .contains_key("access-control-allow-origin")
        );
    });
}

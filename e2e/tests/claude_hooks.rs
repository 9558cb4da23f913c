//! The Claude Code hooks' own memory client against the real `mnemo-server`:
//! `claude-hooks/utilities/memory-client.js` (with the `mcp-client.js` and
//! `tls-options.js` it requires) from mcp-memory-service 12.4.0's source archive
//! ([`mnemo_e2e::mcp_memory_service`]), unchanged, driven by node through
//! `e2e/node/claude_hooks_client.cjs` as the session-start hook drives it.
//!
//! * HTTP mode: the client calls `/api/health/detailed` (the hooks' shipped
//!   `useDetailedHealthCheck`), `POST /api/memories`, `/api/search`,
//!   `/api/search/by-time` and `/api/search/by-tag` with `X-API-Key`.
//! * MCP mode: the client spawns its `serverCommand` and speaks MCP over its stdio.
//!   For Mnemo that command is `mnemo-bridge`, set up with mcp-memory-service's own
//!   setting names (`MCP_MEMORY_HTTP_ENDPOINT` ending in `/api`,
//!   `MCP_MEMORY_API_KEY`), as a user moving over keeps them. It calls the legacy
//!   tools `check_database_health`, `store_memory` (success only when the text holds
//!   `(hash: …)`), `retrieve_memory` and `recall_memory`.
//!
//! A real model and real SQLite; needs node on `PATH` and `make test-python` (for
//! the archive's download).

use std::path::Path;
use std::process::Command;

use mnemo_e2e::mcp_memory_service::{archive, extract};
use mnemo_server::testing::{ServerProcess, workspace_binary};
use serde_json::{Value, json};

const KEY: &str = "claude-hooks-key";
const CONTENT: &str =
    "The staging database is backed up every night at two by the cron job on host atlas.";
const QUERY: &str = "when do backups of the staging database run";
const TAGS: [&str; 2] = ["claude-code", "backups"];

/// The files of the archive the client loads.
const CLIENT_FILES: [&str; 3] = [
    "claude-hooks/utilities/memory-client.js",
    "claude-hooks/utilities/mcp-client.js",
    "claude-hooks/utilities/tls-options.js",
];

/// Runs the driver with the hooks' `memoryService` `config` and `env`; returns each
/// step's result by name. The driver must finish cleanly.
fn drive(hooks: &Path, config: &Value, env: &[(&str, String)]) -> Value {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("node/claude_hooks_client.cjs");
    let scenario = json!({"config": config, "content": CONTENT, "tags": TAGS, "query": QUERY});
    let output = Command::new("node")
        .arg(driver)
        .arg(hooks.join(CLIENT_FILES[0]))
        .arg(scenario.to_string())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("NO_COLOR", "1")
        .current_dir(hooks)
        .output()
        .expect("node is installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the driver failed:\n{stdout}\n{stderr}"
    );
    let mut steps = serde_json::Map::new();
    // The client logs to stdout too ("[Memory Client] …").
    for line in stdout.lines().filter(|l| l.starts_with("{\"step\"")) {
        let step: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}\n{stderr}"));
        steps.insert(
            step["step"].as_str().unwrap().to_owned(),
            step["result"].clone(),
        );
    }
    eprintln!("{}", serde_json::to_string_pretty(&steps).unwrap());
    Value::Object(steps)
}

/// The memories the client's `queryMemories` returned must include the stored one.
fn assert_found(steps: &Value, step: &str, hash: &str) {
    let found = steps[step]
        .as_array()
        .unwrap_or_else(|| panic!("{step}: {steps}"));
    let hit = found
        .iter()
        .find(|m| m["content_hash"] == hash)
        .unwrap_or_else(|| panic!("{step} did not return the stored memory: {steps}"));
    assert_eq!(hit["content"], CONTENT);
}

fn setup() -> (tempfile::TempDir, tempfile::TempDir, ServerProcess) {
    let hooks = tempfile::tempdir().unwrap();
    extract(&archive(), hooks.path(), &CLIENT_FILES);
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &[("MCP_API_KEY", KEY)]);
    (hooks, data, server)
}

/// HTTP mode: connected by its health check, the detailed health carries the fields
/// the session-start banner shows, the store is recognised with its hash, and search
/// by meaning, by time and by tag finds the memory.
#[test]
fn memory_client_in_http_mode() {
    let (hooks, _data, server) = setup();
    let config = json!({
        "protocol": "http",
        "http": {
            "endpoint": server.url(),
            "apiKey": KEY,
            "healthCheckTimeout": 10000,
            "useDetailedHealthCheck": true,
        },
    });
    let steps = drive(hooks.path(), &config, &[]);

    assert_eq!(steps["connect"]["activeProtocol"], "http", "{steps}");
    assert_eq!(steps["connect"]["httpAvailable"], true, "{steps}");

    let health = &steps["health"];
    assert_eq!(health["success"], true, "{steps}");
    // What session-start.js's parseHealthDataToStorageInfo reads for its banner.
    let data = &health["data"];
    assert!(data["storage"]["backend"].is_string(), "{data}");
    assert!(data["statistics"]["total_memories"].is_u64(), "{data}");
    assert!(data["statistics"]["unique_tags"].is_u64(), "{data}");
    assert!(data["statistics"]["database_size_mb"].is_number(), "{data}");
    // mcp-memory-service stopped sending it (GHSA-73hc-m4hx-79pj).
    assert!(data["storage"].get("database_path").is_none(), "{data}");

    let store = &steps["store"];
    assert_eq!(store["success"], true, "{steps}");
    let hash = store["contentHash"].as_str().expect("a content hash");
    assert_eq!(hash.len(), 64, "{hash}");

    assert_found(&steps, "query", hash);
    let hit = &steps["query"][0];
    assert_eq!(
        hit["content_hash"], hash,
        "the closest memory first: {steps}"
    );
    assert!(hit["similarity_score"].as_f64().unwrap() > 0.3, "{hit}");
    assert_eq!(hit["tags"], json!(TAGS), "tags in the order given: {hit}");
    // The client turns seconds into milliseconds; a number in either is a date.
    assert!(hit["created_at"].as_f64().unwrap() > 1.0e12, "{hit}");

    assert_found(&steps, "by_time", hash);
    let by_tags = steps["by_tags_and_time"].as_array().expect("an array");
    assert!(by_tags.iter().any(|m| m["content_hash"] == hash), "{steps}");
}

/// MCP mode through `mnemo-bridge`: connected by `initialize`, health answered with
/// mcp-memory-service's JSON, the store recognised by its `(hash: …)` text, and the
/// memory retrieved by meaning.
#[test]
fn memory_client_in_mcp_mode_through_the_bridge() {
    let (hooks, data, server) = setup();
    let bridge = workspace_binary("mnemo-bridge");
    let config = json!({
        "protocol": "mcp",
        "mcp": {
            "serverCommand": [bridge],
            "serverWorkingDir": hooks.path(),
            // The hooks ship 2 s and 3 s for a local Python server; a loaded CI
            // machine embedding with the real model needs more.
            "connectionTimeout": 30000,
            "toolCallTimeout": 30000,
        },
    });
    let mut env = vec![
        ("MCP_MEMORY_HTTP_ENDPOINT", format!("{}/api", server.url())),
        ("MCP_MEMORY_API_KEY", KEY.to_owned()),
        ("MCP_MEMORY_AUTO_DISCOVER", "false".to_owned()),
        (
            "MNEMO_BRIDGE_TRUST_FILE",
            data.path().join("trust.json").display().to_string(),
        ),
    ];
    if let Some(fp) = server.fingerprint() {
        env.push(("MCP_MEMORY_CERT_FINGERPRINT", fp.to_owned()));
    }
    let steps = drive(hooks.path(), &config, &env);

    assert_eq!(steps["connect"]["activeProtocol"], "mcp", "{steps}");
    assert_eq!(steps["connect"]["mcpAvailable"], true, "{steps}");

    // mcp-memory-service answers "Database Health Check Results:\n{json}"; the
    // client's parser keeps the JSON object (in a one-element array).
    let health = &steps["health"];
    assert_eq!(health["success"], true, "{steps}");
    let data = &health["data"][0];
    assert_eq!(data["validation"]["status"], "healthy", "{steps}");
    assert!(data["statistics"]["total_memories"].is_u64(), "{steps}");

    let store = &steps["store"];
    assert_eq!(store["success"], true, "{steps}");
    let hash = store["contentHash"].as_str().expect("a content hash");
    assert_eq!(hash.len(), 64, "{hash}");

    // The client parses retrieve_memory's text only when it is JSON, which neither
    // mcp-memory-service's nor Mnemo's is: queryMemories answers [] from both. It
    // must still answer an array; the text it received must name the memory.
    assert!(steps["query"].is_array(), "{steps}");
    let raw = &steps["retrieve_raw"];
    assert_ne!(raw["isError"], true, "{raw}");
    let text = raw["content"][0]["text"].as_str().expect("a text block");
    assert!(
        text.contains(hash),
        "retrieve_memory did not find {hash}: {text}"
    );
    assert!(text.contains("staging database is backed up"), "{text}");
}

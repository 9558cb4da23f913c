//! The `mnemo-server` binary, started as a user would: it becomes healthy with the
//! real model, and it refuses to start, with an error naming the file, when the model
//! or ONNX Runtime is missing or broken.

use std::path::Path;

use mnemo_server::Config;
use mnemo_server::testing::{ServerProcess, add_key};

/// The key the servers in these tests are started with, unless a test wants none.
const KEY: &str = "binary-test-key";

/// Starts with the real model, logs where data, cache and model are, and turns
/// healthy.
#[tokio::test]
async fn server_becomes_healthy_with_the_real_model() {
    let dir = tempfile::tempdir().unwrap();
    // NO_COLOR empty: colour is left to whether stdout is a terminal (it is a pipe).
    let mut server = ServerProcess::spawn(dir.path(), &[("MCP_API_KEY", KEY), ("NO_COLOR", "")]);
    server.wait_for_log("listening");
    // While the model loads, health answers 503 `loading`: expected, not an error.
    let early = reqwest::get(format!("{}/api/health", server.url()))
        .await
        .unwrap();
    assert_eq!(
        early.status(),
        503,
        "the model loaded before the first health check"
    );
    let loading = server.wait_for_log("loading");
    for field in [
        "data_dir=",
        "database=",
        "cache_dir=",
        "model_dir=",
        "onnxruntime=",
    ] {
        assert!(loading.contains(field), "{field} missing from {loading}");
    }
    assert!(loading.contains(&dir.path().display().to_string()));
    let healthy = server.wait_for_log("healthy");
    assert!(healthy.contains("dimension=384"), "{healthy}");

    let response = reqwest::Client::new()
        .get(format!("{}/api/health", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "healthy");
    assert!(dir.path().join("memories.db").is_file());
    for line in server.log() {
        assert!(
            !line.contains('\u{1b}'),
            "a colour code in the log: {line:?}"
        );
        assert!(!line.contains("ERROR"), "an error logged: {line}");
    }
}

/// Without MCP_API_KEY the first start writes a key to <data dir>/api_key (mode 0600),
/// logs the path but never the key, and the key works; a `keys add` key works too.
#[tokio::test]
async fn generated_and_managed_keys_work() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let reader_key = add_key(dir.path(), "laptop", "read");

    let mut server = ServerProcess::spawn(dir.path(), &[] as &[(&str, &str)]);
    server.wait_for_log("listening");
    let key_line = server
        .log()
        .iter()
        .find(|l| l.contains("api_key"))
        .cloned()
        .unwrap();
    let key_file = dir.path().join("api_key");
    let master = std::fs::read_to_string(&key_file).unwrap();
    assert!(!master.trim().is_empty());
    assert!(
        key_line.contains(&key_file.display().to_string()),
        "{key_line}"
    );
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    server.wait_for_log("healthy");
    assert!(
        server
            .log()
            .iter()
            .all(|line| !line.contains(master.trim())),
        "the key was logged"
    );

    let client = reqwest::Client::new();
    let url = format!("{}/api/memories", server.url());
    let as_master = client
        .get(&url)
        .bearer_auth(master.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(as_master.status(), 200);
    let as_reader = client
        .get(&url)
        .header("X-API-Key", &reader_key)
        .send()
        .await
        .unwrap();
    assert_eq!(as_reader.status(), 200);
    let write = client
        .post(&url)
        .header("X-API-Key", &reader_key)
        .json(&serde_json::json!({"content": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 403);
}

/// Starts the server with one setting overridden and returns its failure message.
fn start_failure(extra_env: &[(&str, &Path)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![("MCP_API_KEY", Path::new(KEY))];
    env.extend_from_slice(extra_env);
    let server = ServerProcess::spawn(dir.path(), &env);
    let (status, stderr) = server.finish();
    assert!(!status.success(), "the server started anyway");
    assert!(!stderr.contains("panicked"), "it panicked: {stderr}");
    stderr
}

/// A model folder without the model names the missing file and the fix.
#[test]
fn missing_model_is_a_clear_error() {
    let empty = tempfile::tempdir().unwrap();
    let stderr = start_failure(&[("MNEMO_MODEL_DIR", empty.path())]);
    assert!(
        stderr.contains(&empty.path().join("model.onnx").display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("make provision"), "{stderr}");
}

/// A file that is not a shared library, given as ONNX Runtime, is named in the error.
#[test]
fn broken_onnxruntime_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libonnxruntime.so");
    std::fs::write(&fake, b"not a library").unwrap();
    let stderr = start_failure(&[("ORT_DYLIB_PATH", &fake)]);
    assert!(stderr.contains("ONNX Runtime at"), "{stderr}");
    assert!(stderr.contains(&fake.display().to_string()), "{stderr}");
}

/// A corrupt model.onnx is reported as such, with the folder it came from.
#[test]
fn corrupt_model_is_a_clear_error() {
    let real = Config::for_data_dir(std::env::temp_dir()).model_files();
    let copy = tempfile::tempdir().unwrap();
    for name in mnemo_server::embed::MODEL_FILES {
        std::fs::copy(real.model_file(name), copy.path().join(name)).unwrap();
    }
    let mut bytes = std::fs::read(copy.path().join("model.onnx")).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(copy.path().join("model.onnx"), bytes).unwrap();
    let stderr = start_failure(&[("MNEMO_MODEL_DIR", copy.path())]);
    assert!(stderr.contains("cannot be loaded"), "{stderr}");
    assert!(
        stderr.contains(&copy.path().display().to_string()),
        "{stderr}"
    );
}

/// `MCP_MEMORY_SQLITE_PRAGMAS` in mcp-memory-service's format: the honoured pragmas
/// start a working server, an unknown one is named in a warning, and a pragma that
/// would break Mnemo's guarantees stops the start, naming it.
#[tokio::test]
async fn sqlite_pragmas_are_honoured_or_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let pragmas = "busy_timeout=15000,cache_size=-8000,temp_store=MEMORY,mmap_size=0,\
                   wal_autocheckpoint=500,journal_mode=WAL,synchronous=NORMAL,page_size=8192";
    let server = ServerProcess::start(
        dir.path(),
        &[("MCP_API_KEY", KEY), ("MCP_MEMORY_SQLITE_PRAGMAS", pragmas)],
    );
    let stored = reqwest::Client::new()
        .post(format!("{}/api/memories", server.url()))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"content": "tuned and working"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 200);
    let warning = server
        .log()
        .iter()
        .find(|line| line.contains("MCP_MEMORY_SQLITE_PRAGMAS"))
        .cloned()
        .unwrap_or_else(|| panic!("no warning: {:?}", server.log()));
    assert!(
        warning.contains("WARN") && warning.contains("page_size"),
        "{warning}"
    );
    server.terminate().unwrap();

    for (pragmas, named) in [
        (
            "cache_size=10000,journal_mode=DELETE",
            "journal_mode=DELETE",
        ),
        ("synchronous=OFF", "synchronous=OFF"),
        ("busy_timeout=soon", "busy_timeout"),
    ] {
        let stderr = start_failure(&[("MCP_MEMORY_SQLITE_PRAGMAS", Path::new(pragmas))]);
        assert!(stderr.contains(named), "{pragmas}: {stderr}");
        assert!(
            stderr.contains("MCP_MEMORY_SQLITE_PRAGMAS"),
            "{pragmas}: {stderr}"
        );
    }
}

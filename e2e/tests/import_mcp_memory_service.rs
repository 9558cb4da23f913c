//! `mnemo-server import-from mcp-memory-service` on a database the real Python server
//! wrote: mcp-memory-service-lite 12.4.0 (installed by `make test-python` into its
//! own venv on Debian's python3, whose sqlite3 loads extensions as sqlite-vec needs),
//! run with its ONNX model copied from Mnemo's provisioned one under a temporary
//! `$HOME`, fed through its REST API, one memory deleted (its soft delete), stopped;
//! then imported, and what Mnemo holds compared with what the Python server answered.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use mnemo_server::Config;
use mnemo_server::testing::{ServerProcess, free_port, lines_of, server_command};
use serde_json::{Value, json};

const KEY: &str = "python-server-key-0123456789";

/// The Python server's `memory` command, from `make test-python`.
fn memory_command() -> PathBuf {
    let path = mnemo_e2e::tools_dir().join("mcp-memory-service-lite/bin/memory");
    assert!(
        path.exists(),
        "{} is missing: run `make test-python` (which `make test` runs)",
        path.display()
    );
    path
}

/// The model where mcp-memory-service's ONNX backend looks for it, so it downloads
/// nothing: Mnemo's provisioned all-MiniLM-L6-v2, the same weights.
fn place_model(home: &Path) {
    let source = Config::for_data_dir(home).model_files().model_dir;
    let target = home.join(".cache/mcp_memory/onnx_models/all-MiniLM-L6-v2/onnx");
    std::fs::create_dir_all(&target).unwrap();
    for name in mnemo_server::embed::MODEL_FILES {
        std::fs::copy(source.join(name), target.join(name)).unwrap();
    }
}

struct PythonServer {
    child: Child,
    url: String,
    lines: Receiver<String>,
}

impl PythonServer {
    fn start(home: &Path, database: &Path) -> Self {
        let port = free_port().unwrap();
        let mut child = Command::new(memory_command())
            .args(["server", "--http", "--http-host", "127.0.0.1"])
            .args(["--http-port", &port.to_string()])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("MCP_MEMORY_STORAGE_BACKEND", "sqlite_vec")
            .env("MCP_MEMORY_SQLITE_PATH", database)
            .env("MCP_API_KEY", KEY)
            .env("MCP_MEMORY_ONNX_ALLOW_DOWNLOAD", "0")
            .env("MCP_MDNS_ENABLED", "false")
            .env("HF_HUB_OFFLINE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = lines_of(child.stderr.take());
        let mut server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            lines,
        };
        server.wait_for("Uvicorn running");
        server
    }

    /// Reads its log until a line holds `needle`; fails with the log if it exits.
    fn wait_for(&mut self, needle: &str) {
        let mut log = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(180)) {
                Ok(line) if line.contains(needle) => return,
                Ok(line) => log.push(line),
                Err(_) => panic!(
                    "the Python server printed no {needle:?}; it printed:\n{}",
                    log.join("\n")
                ),
            }
        }
    }

    /// SIGTERM, as systemd stops it, and waits.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap();
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> Value {
    let mut request = reqwest::Client::new().request(method, url).bearer_auth(KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{status}: {body}");
    body
}

/// Four memories stored by the real Python server, one deleted there: the import
/// skips the soft-deleted row, counts it, and brings the other three over with their
/// content, tags in order, type, metadata and both times, embedded again so search
/// finds them.
#[tokio::test]
async fn imports_what_the_python_server_wrote() {
    let home = tempfile::tempdir().unwrap();
    place_model(home.path());
    let database = home.path().join("sqlite_vec.db");
    let python = PythonServer::start(home.path(), &database);
    let memories = [
        json!({"content": "The boiler needs a service every spring.", "tags": ["House", "boiler"],
               "memory_type": "note", "metadata": {"cost": 120, "by": {"name": "Ann"}}}),
        json!({"content": "Granny's apple cake needs sour apples.", "tags": ["recipe", "cake", "family"],
               "memory_type": "recipe"}),
        json!({"content": "Football practice moved to Thursday evenings.", "tags": ["kids"]}),
        json!({"content": "A scratch note to delete.", "tags": ["tmp"]}),
    ];
    let mut stored = Vec::new();
    for memory in memories {
        let body = call(
            reqwest::Method::POST,
            format!("{}/api/memories", python.url),
            Some(memory),
        )
        .await;
        stored.push(body["memory"].clone());
    }
    let deleted = stored.pop().unwrap();
    call(
        reqwest::Method::DELETE,
        format!(
            "{}/api/memories/{}",
            python.url,
            deleted["content_hash"].as_str().unwrap()
        ),
        None,
    )
    .await;
    python.stop();

    let data = tempfile::tempdir().unwrap();
    let output = server_command(data.path())
        .args(["import-from", "mcp-memory-service"])
        .arg(&database)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!("import from the Python server's database:\n{said}");
    assert!(
        said.contains("Read 4 rows") && said.contains("1 soft-deleted (skipped), 3 to import"),
        "{said}"
    );
    assert!(
        said.contains("3 accepted, 0 duplicates (already stored), 0 errors"),
        "{said}"
    );

    let exported = server_command(data.path()).arg("export").output().unwrap();
    assert!(exported.status.success());
    let imported: Vec<Value> = exported
        .stdout
        .lines()
        .map(|line| serde_json::from_str(&line.unwrap()).unwrap())
        .collect();
    assert_eq!(imported.len(), 3);
    for original in &stored {
        let twin = imported
            .iter()
            .find(|m| m["content"] == original["content"])
            .unwrap_or_else(|| panic!("{} was not imported", original["content"]));
        for field in ["tags", "memory_type", "created_at", "updated_at"] {
            assert_eq!(
                twin[field], original[field],
                "{field} of {}",
                original["content"]
            );
        }
        let metadata = original["metadata"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert_eq!(twin["metadata"], Value::Object(metadata));
    }
    assert!(!imported.iter().any(|m| m["content"] == deleted["content"]));

    let server = ServerProcess::start(data.path(), &[("MCP_API_KEY", KEY)]);
    let found = call(
        reqwest::Method::POST,
        format!("{}/api/search", server.url()),
        Some(json!({"query": "when does the heating get checked", "n_results": 1})),
    )
    .await;
    assert_eq!(
        found["results"][0]["memory"]["content"],
        "The boiler needs a service every spring."
    );
}

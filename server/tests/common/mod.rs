//! Fixtures shared by the server's integration tests: the real embedding model,
//! loaded once per test binary, services over fresh temporary databases, and
//! in-process HTTP servers on port 0.

#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use mnemo_server::Config;
use mnemo_server::Server;
use mnemo_server::embed::{Embedder, FastEmbedModel};
use mnemo_server::http::AppState;
use mnemo_server::service::{DEFAULT_MAX_CONTENT_BYTES, MemoryService};
use mnemo_server::storage::sqlite::{SqliteOptions, SqliteStore};
use reqwest::{Method, RequestBuilder};
use serde_json::Value;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// The real all-MiniLM-L6-v2, from the provisioning cache (or MNEMO_MODEL_DIR and
/// ORT_DYLIB_PATH). Loading takes a fraction of a second; sharing it keeps the suite fast.
pub fn embedder() -> Embedder {
    static EMBEDDER: OnceLock<Embedder> = OnceLock::new();
    EMBEDDER
        .get_or_init(|| {
            let config = Config::for_data_dir(std::env::temp_dir());
            let model = FastEmbedModel::load(&config.model_files(), &config.model_id, 2)
                .unwrap_or_else(|e| panic!("{e}"));
            Embedder::start(Box::new(model), 32)
        })
        .clone()
}

/// An HTTPS client that trusts exactly the certificate with fingerprint `pin`.
pub fn pinned_client(pin: mnemo_certs::Fingerprint) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(mnemo_certs::pinned_client_config(pin))
        .build()
        .unwrap()
}

/// A memory service over a new database in its own temporary folder.
pub struct TestService {
    pub service: MemoryService,
    pub dir: TempDir,
}

impl TestService {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let service = open_service(&dir);
        Self { service, dir }
    }
}

/// Opens (or reopens) the service whose database lives in `dir`.
pub fn open_service(dir: &TempDir) -> MemoryService {
    open_service_with(dir, SqliteOptions::default())
}

/// Opens the service in `dir` with the given store settings.
pub fn open_service_with(dir: &TempDir, options: SqliteOptions) -> MemoryService {
    let embedder = embedder();
    let store =
        SqliteStore::open(&dir.path().join("memories.db"), embedder.spec(), options).unwrap();
    MemoryService::new(Arc::new(store), embedder, DEFAULT_MAX_CONTENT_BYTES)
}

/// A parsed SSE stream.
pub type SseStream = std::pin::Pin<
    Box<
        dyn futures::Stream<
                Item = Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<reqwest::Error>,
                >,
            > + Send,
    >,
>;

/// The next SSE event, or a panic after 20 s: a missing event fails the test instead
/// of hanging it.
pub async fn next_event(stream: &mut SseStream) -> eventsource_stream::Event {
    use futures::StreamExt;
    tokio::time::timeout(std::time::Duration::from_secs(20), stream.next())
        .await
        .expect("no SSE event within 20 s")
        .expect("the stream ended")
        .expect("a well-formed SSE event")
}

/// The all-scopes key every [`TestServer`] is configured with.
pub const MASTER_KEY: &str = "test-master-key-0123456789";

/// An in-process server on 127.0.0.1:0 over a fresh database, stopped on drop.
pub struct TestServer {
    pub url: String,
    pub dir: TempDir,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    /// The server's state, for tests that watch its internals (the change feed).
    pub state: Arc<AppState>,
    task: Option<tokio::task::JoinHandle<Result<(), mnemo_server::startup::ServeError>>>,
}

impl TestServer {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns with the test defaults (master key, loopback, port 0), then `tweak`.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_data_dir(dir.path());
        config.api_key = Some(MASTER_KEY.parse().unwrap());
        config.auth_failures_per_minute = 10_000;
        tweak(&mut config);
        // Bound before the server task starts, so requests never race its startup.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if config.https_enabled {
            "https"
        } else {
            "http"
        };
        let url = format!("{scheme}://{}", listener.local_addr().unwrap());
        let service = open_service_with(&dir, config.store_options());
        let shutdown = CancellationToken::new();
        let server = Server::prepare(config, listener).unwrap();
        let state = Arc::clone(server.state());
        // Over HTTPS the test client pins the server's own certificate.
        let http = match &state.tls_fingerprint {
            Some(fp) => pinned_client(fp.parse().unwrap()),
            None => reqwest::Client::new(),
        };
        let task = tokio::spawn(server.serve_loaded(service, shutdown.clone()));
        Self {
            url,
            dir,
            http,
            shutdown,
            state,
            task: Some(task),
        }
    }

    /// Cancels the server and waits until it has stopped; returns how long that took.
    pub async fn stop(mut self) -> std::time::Duration {
        let started = std::time::Instant::now();
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        started.elapsed()
    }

    /// Opens `GET /api/events` (with `Last-Event-ID` if given) as a stream of SSE events.
    pub async fn events(&self, last_event_id: Option<i64>) -> SseStream {
        let mut request = self.request(Method::GET, "/api/events");
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        Box::pin(eventsource_stream::EventStream::new(
            response.bytes_stream(),
        ))
    }

    /// A request with the master key as a Bearer token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(MASTER_KEY)
    }

    /// Sends `body` as JSON with the master key; returns status and JSON body.
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A running server process, killed on drop.
pub struct ServerProcess {
    pub child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    pub log: Vec<String>,
}

impl ServerProcess {
    pub fn spawn(data_dir: &std::path::Path, extra_env: &[(&str, &std::path::Path)]) -> Self {
        Self::start(data_dir, extra_env, Some("binary-test-key"))
    }

    pub fn spawn_without_key(data_dir: &std::path::Path) -> Self {
        Self::start(data_dir, &[], None)
    }

    pub fn start(
        data_dir: &std::path::Path,
        extra_env: &[(&str, &std::path::Path)],
        key: Option<&str>,
    ) -> Self {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mnemo-server"));
        match key {
            Some(key) => command.env("MCP_API_KEY", key),
            None => command.env_remove("MCP_API_KEY"),
        };
        command
            .env("MNEMO_DATA_DIR", data_dir)
            .env("MCP_HTTP_HOST", "127.0.0.1")
            .env("MCP_HTTP_PORT", "0")
            .env("MCP_MDNS_ENABLED", "false")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn mnemo-server");
        let lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
        Self {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// Reads log lines until one contains `needle`; returns it.
    pub fn wait_for_log(&mut self, needle: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            self.log.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
        panic!(
            "server exited before logging {needle:?}; log: {:#?}",
            self.log
        );
    }

    /// Waits for the process to end and returns its exit status and stderr.
    pub fn finish(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        (status, stderr)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address from the `listening addr=...` log line.
pub fn listening_addr(line: &str) -> String {
    let start = line.find("addr=").expect("addr field") + "addr=".len();
    line[start..].split_whitespace().next().unwrap().to_owned()
}

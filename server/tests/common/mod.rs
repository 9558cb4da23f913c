//! Fixtures shared by the server's integration tests: the real embedding model,
//! loaded once per test binary, services over fresh temporary databases, and
//! in-process HTTP servers on port 0.

#![allow(dead_code)]

use std::sync::OnceLock;

use mnemo_server::Config;
use mnemo_server::embed::{Embedder, FastEmbedModel};
use mnemo_server::service::{DEFAULT_MAX_CONTENT_BYTES, MemoryService};
use mnemo_server::store::{Store, StoreOptions};
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
    let embedder = embedder();
    let store = Store::open(
        &dir.path().join("memories.db"),
        embedder.spec(),
        StoreOptions::default(),
    )
    .unwrap();
    MemoryService::new(store, embedder, DEFAULT_MAX_CONTENT_BYTES)
}

/// The all-scopes key every [`TestServer`] is configured with.
pub const MASTER_KEY: &str = "test-master-key-0123456789";

/// An in-process server on 127.0.0.1:0 over a fresh database, stopped on drop.
pub struct TestServer {
    pub url: String,
    pub dir: TempDir,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
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
        let url = format!("http://{}", listener.local_addr().unwrap());
        let service = open_service(&dir);
        let shutdown = CancellationToken::new();
        tokio::spawn(mnemo_server::http::serve_ready(
            config,
            listener,
            service,
            shutdown.clone(),
        ));
        Self {
            url,
            dir,
            http: reqwest::Client::new(),
            shutdown,
        }
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

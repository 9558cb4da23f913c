//! Fixtures shared by the server's integration tests: the real embedding model,
//! loaded once per test binary, services over fresh temporary databases, and
//! in-process HTTP servers on port 0.

#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use mnemo_server::Config;
use mnemo_server::embed::{Embedder, FastEmbedModel};
use mnemo_server::http::{AppState, auth_for};
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
    open_service_with(dir, StoreOptions::default())
}

/// Opens the service in `dir` with the given store settings.
pub fn open_service_with(dir: &TempDir, options: StoreOptions) -> MemoryService {
    let embedder = embedder();
    let store = Store::open(&dir.path().join("memories.db"), embedder.spec(), options).unwrap();
    MemoryService::new(store, embedder, DEFAULT_MAX_CONTENT_BYTES)
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
    task: Option<tokio::task::JoinHandle<Result<(), mnemo_server::http::ServeError>>>,
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
        let service = open_service_with(&dir, config.store_options());
        let shutdown = CancellationToken::new();
        let state = Arc::new(AppState::new(auth_for(&config).unwrap()));
        state.publish(service, &config, shutdown.clone());
        let task = tokio::spawn(mnemo_server::http::serve_ready(
            config,
            listener,
            Arc::clone(&state),
            shutdown.clone(),
        ));
        Self {
            url,
            dir,
            http: reqwest::Client::new(),
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

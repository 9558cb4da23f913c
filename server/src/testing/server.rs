//! [`TestServer`]: the whole HTTP server in the test's own process, over a fresh
//! database, on `127.0.0.1:0`. The listener is bound before the server task starts,
//! so a request never races its startup and no test waits on a timer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder};
use serde_json::Value;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::postgres::{PgCluster, PgDatabase};
use super::service::{embedder, open_service_in};
use super::sse::{SseStream, sse_stream};
use crate::Config;
use crate::http::AppState;
use crate::service::MemoryService;
use crate::startup::{ServeError, Server};
use crate::storage::postgres::PostgresStore;

/// The all-scopes key every [`TestServer`] is configured with.
pub const MASTER_KEY: &str = "test-master-key-0123456789";

/// An HTTPS client that trusts exactly the certificate with fingerprint `pin`.
pub fn pinned_client(pin: mnemo_certs::Fingerprint) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(mnemo_certs::pinned_client_config(pin))
        .build()
        .unwrap()
}

/// An in-process server over a fresh database, stopped on drop.
pub struct TestServer {
    url: String,
    /// The data folder (database, generated certificate); deleted on drop.
    pub dir: TempDir,
    /// The PostgreSQL database serving instead of SQLite, when
    /// [`Backend::from_env`] says so; dropped after the server.
    pub database: Option<PgDatabase<'static>>,
    /// A client for this server; over HTTPS it pins the server's own certificate.
    pub http: reqwest::Client,
    /// The server's state, for tests that watch its internals (the change feed, the
    /// certificate's fingerprint).
    pub state: Arc<AppState>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

impl TestServer {
    /// A server with the test settings: [`Config::for_data_dir`] plus
    /// [`MASTER_KEY`] and a rate limit no test reaches.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns with the test settings, then `tweak`. The service is ready before the
    /// first request.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::launch(tweak, false).await
    }

    /// Like [`TestServer::spawn_with`], but the service opens on a blocking thread
    /// after the server answers, as at a real startup: early requests may be told
    /// `503 loading`.
    pub async fn spawn_loading_with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::launch(tweak, true).await
    }

    async fn launch(tweak: impl FnOnce(&mut Config), in_background: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_data_dir(dir.path());
        config.api_key = Some(MASTER_KEY.parse().unwrap());
        config.auth_failures_per_minute = 10_000;
        tweak(&mut config);
        // Loopback whatever `config.host` says: a test of LAN behaviour changes what
        // the router believes, not where the machine listens.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if config.https_enabled {
            "https"
        } else {
            "http"
        };
        let url = format!("{scheme}://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let server = Server::prepare(config.clone(), listener).unwrap();
        let state = Arc::clone(server.state());
        let http = match &state.tls_fingerprint {
            Some(fp) => pinned_client(fp.parse().unwrap()),
            None => reqwest::Client::new(),
        };
        // A test that names a database (two servers on one) keeps it; otherwise the
        // backend under test decides.
        let database = match config.database_url {
            Some(_) => None,
            None => Backend::from_env().database(),
        };
        if let Some(database) = &database {
            config.database_url = Some(database.url.parse().unwrap());
        }
        if config.database_url.is_some() {
            let (state, config, shutdown) = (Arc::clone(&state), config.clone(), shutdown.clone());
            let publish = async move {
                let store = PostgresStore::open(
                    config.database_url.as_ref().unwrap().expose(),
                    embedder().spec(),
                    config.postgres_options(),
                )
                .await
                .unwrap_or_else(|e| panic!("{e}"));
                let service =
                    MemoryService::new(Arc::new(store), embedder()).with_limits(config.limits());
                state.publish(service, &config, shutdown);
            };
            if in_background {
                tokio::spawn(publish);
            } else {
                publish.await;
            }
        } else {
            let publish = {
                let (state, config, shutdown) =
                    (Arc::clone(&state), config.clone(), shutdown.clone());
                let folder = dir.path().to_owned();
                move || {
                    let service = open_service_in(&folder, config.store_options())
                        .with_limits(config.limits());
                    state.publish(service, &config, shutdown);
                }
            };
            if in_background {
                tokio::task::spawn_blocking(publish);
            } else {
                publish();
            }
        }
        let task = tokio::spawn(server.serve_published(shutdown.clone()));
        Self {
            url,
            dir,
            database,
            http,
            state,
            shutdown,
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:PORT`, or `https://…` when serving HTTPS.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Cancels the server and waits until it has stopped; returns how long that took.
    pub async fn stop(mut self) -> Duration {
        let started = Instant::now();
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        started.elapsed()
    }

    /// Opens `GET /api/events` (with `Last-Event-ID` if given) as a stream of SSE
    /// events.
    pub async fn events(&self, last_event_id: Option<i64>) -> SseStream {
        let mut request = self.request(Method::GET, "/api/events");
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        sse_stream(response)
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

    /// `POST /api/memories` with `body` and the master key, which must succeed;
    /// returns the new memory's hash.
    pub async fn store(&self, body: Value) -> String {
        let (status, body) = self.send(Method::POST, "/api/memories", Some(body)).await;
        assert_eq!(status, 200, "{body}");
        body["content_hash"].as_str().unwrap().to_owned()
    }
}

/// Which database [`TestServer`]s use: `MNEMO_TEST_BACKEND=postgres` runs the same
/// tests on a fresh PostgreSQL database each (on the process's [`PgCluster`]); SQLite
/// otherwise. `make test` runs the REST and change-feed suites both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend `MNEMO_TEST_BACKEND` names; an unknown name is a mistake, not SQLite.
    pub fn from_env() -> Self {
        match std::env::var("MNEMO_TEST_BACKEND").as_deref() {
            Err(_) | Ok("" | "sqlite") => Self::Sqlite,
            Ok("postgres") => Self::Postgres,
            Ok(other) => panic!("MNEMO_TEST_BACKEND={other:?}: use sqlite or postgres"),
        }
    }

    /// A fresh database for this backend, if it is a server database.
    pub fn database(self) -> Option<PgDatabase<'static>> {
        (self == Self::Postgres).then(|| PgCluster::shared().database())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

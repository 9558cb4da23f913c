//! What only a shared PostgreSQL database gives, over real HTTP with the real model:
//! two servers on one database (a write through one is found, heard and replayed on
//! the other, and a burst through both numbers its events without gaps), and a
//! database that goes away and comes back (503, never a hang, then recovery without a
//! restart). The suites every backend passes run on PostgreSQL through
//! `MNEMO_TEST_BACKEND=postgres` (see the Makefile).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mnemo_server::testing::{
    PgCluster, ServerProcess, SseStream, TestServer, next_change, next_event,
};
use reqwest::Method;
use serde_json::{Value, json};

/// Two servers on one fresh database of the shared cluster, and that database.
async fn two_servers() -> (
    TestServer,
    TestServer,
    mnemo_server::testing::PgDatabase<'static>,
) {
    let database = PgCluster::shared().database();
    let url = database.url.clone();
    let a = TestServer::spawn_with(|c| c.database_url = Some(url.parse().unwrap())).await;
    let url = database.url.clone();
    let b = TestServer::spawn_with(|c| c.database_url = Some(url.parse().unwrap())).await;
    (a, b, database)
}

/// Reads up to the greeting and returns the head sequence number it reports.
async fn connected(stream: &mut SseStream) -> i64 {
    let event = next_event(stream).await;
    assert_eq!(event.event, "connection_established");
    serde_json::from_str::<Value>(&event.data).unwrap()["head_seq"]
        .as_i64()
        .unwrap()
}

/// A memory stored through A is found by a search on B and arrives on B's stream
/// with the id A's stream gives it; B replays it from `Last-Event-ID`.
#[tokio::test]
async fn a_store_through_one_server_is_found_and_heard_on_the_other() {
    let (a, b, _database) = two_servers().await;
    let mut on_a = a.events(None).await;
    let mut on_b = b.events(None).await;
    assert_eq!(connected(&mut on_a).await, 0);
    assert_eq!(connected(&mut on_b).await, 0);

    let hash = a
        .store(json!({"content": "The staging database moved to the new rack", "tags": ["ops"]}))
        .await;
    let heard_on_a = next_change(&mut on_a).await;
    let heard_on_b = next_change(&mut on_b).await;
    assert_eq!(heard_on_b.event, "memory_stored");
    assert_eq!(heard_on_b.id, heard_on_a.id);
    assert_eq!(heard_on_b.data, heard_on_a.data);
    let data: Value = serde_json::from_str(&heard_on_b.data).unwrap();
    assert_eq!(data["content_hash"], hash.as_str());

    let (status, body) = b
        .send(
            Method::POST,
            "/api/search",
            Some(json!({"query": "where is the staging database", "n_results": 1})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["results"][0]["memory"]["content_hash"],
        hash.as_str(),
        "{body}"
    );

    let mut replay = b.events(Some(0)).await;
    connected(&mut replay).await;
    let replayed = next_change(&mut replay).await;
    assert_eq!(replayed.id, heard_on_a.id);
    assert_eq!(replayed.data, heard_on_a.data);
}

/// 16 clients on each of two servers store at once: every acknowledged memory is
/// there, and the events are numbered 1..=n without gaps or repeats, on both streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_through_two_servers_loses_nothing_and_numbers_without_gaps() {
    const CLIENTS: usize = 16;
    const EACH: usize = 4;
    let (a, b, _database) = two_servers().await;
    let servers = [Arc::new(a), Arc::new(b)];
    let mut streams = Vec::new();
    for server in &servers {
        let mut stream = server.events(None).await;
        connected(&mut stream).await;
        streams.push(stream);
    }
    let tasks: Vec<_> = (0..2 * CLIENTS)
        .map(|client| {
            let server = Arc::clone(&servers[client % 2]);
            tokio::spawn(async move {
                let mut hashes = Vec::new();
                for i in 0..EACH {
                    hashes.push(
                        server
                            .store(
                                json!({"content": format!("burst note {i} from client {client}")}),
                            )
                            .await,
                    );
                }
                hashes
            })
        })
        .collect();
    let mut stored = HashSet::new();
    for task in tasks {
        stored.extend(task.await.unwrap());
    }
    let total = 2 * CLIENTS * EACH;
    assert_eq!(stored.len(), total);
    for server in &servers {
        let (status, body) = server.send(Method::GET, "/api/health/detailed", None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["memories"], total, "{body}");
    }
    for stream in &mut streams {
        let mut ids = Vec::new();
        let mut heard = HashSet::new();
        for _ in 0..total {
            let event = next_change(stream).await;
            ids.push(event.id.parse::<i64>().unwrap());
            let data: Value = serde_json::from_str(&event.data).unwrap();
            heard.insert(data["content_hash"].as_str().unwrap().to_owned());
        }
        assert_eq!(ids, (1..=total as i64).collect::<Vec<_>>());
        assert_eq!(heard, stored);
    }
}

/// With PostgreSQL stopped, requests that need it get a 503 with the JSON error body
/// within seconds; once it is back, the same server serves again, stores included, and
/// a subscriber that reconnects with its last id misses nothing.
#[tokio::test]
async fn a_database_that_goes_away_is_a_503_then_the_server_recovers() {
    let cluster = PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let database = cluster.database();
    let url = database.url.clone();
    let server = TestServer::spawn_with(|c| {
        c.database_url = Some(url.parse().unwrap());
        c.read_timeout = 1.0;
    })
    .await;
    let mut stream = server.events(None).await;
    connected(&mut stream).await;
    server
        .store(json!({"content": "written before the outage"}))
        .await;
    let last_id = next_change(&mut stream).await.id;

    cluster.stop().unwrap();
    let started = Instant::now();
    for (method, path, body) in [
        (Method::GET, "/api/memories", None),
        (
            Method::POST,
            "/api/memories",
            Some(json!({"content": "written during the outage"})),
        ),
    ] {
        let (status, body) = server.send(method, path, body).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"], "database_unavailable", "{body}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the 503s took {:?}",
        started.elapsed()
    );

    cluster.restart().unwrap();
    let hash = server
        .store(json!({"content": "written after the outage"}))
        .await;
    let (status, body) = server.send(Method::GET, "/api/memories", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 2, "{body}");

    let mut resumed = server.events(Some(last_id.parse().unwrap())).await;
    connected(&mut resumed).await;
    let event = next_change(&mut resumed).await;
    let data: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(data["content_hash"], hash.as_str());
}

/// The real binary with `MNEMO_DATABASE_URL` stores in PostgreSQL, not in a SQLite
/// file, and logs where without the URL's password.
#[tokio::test]
async fn the_binary_uses_the_database_url() {
    const KEY: &str = "postgres-binary-key";
    let database = PgCluster::shared().database();
    // The cluster trusts local connections, so any password will do.
    let url = database.url.replace("postgres@", "postgres:hunter2@");
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::spawn(
        dir.path(),
        &[("MCP_API_KEY", KEY), ("MNEMO_DATABASE_URL", url.as_str())],
    );
    let healthy = server.wait_for_log("healthy");
    let location = database.url.replace("postgres://", "database=postgres://");
    assert!(healthy.contains(&location), "{healthy}");
    let response = reqwest::Client::new()
        .post(format!("{}/api/memories", server.url()))
        .bearer_auth(KEY)
        .json(&json!({"content": "stored through the binary"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(!dir.path().join("memories.db").exists());
    let health: Value = reqwest::Client::new()
        .get(format!("{}/api/health/detailed", server.url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // No location at all (GHSA-73hc-m4hx-79pj), and never the URL's password.
    assert_eq!(health["storage"]["backend"], "postgresql", "{health}");
    assert!(!health.to_string().contains("hunter2"), "{health}");
    assert_eq!(health["memories"], 1, "{health}");
    assert!(
        !server.log().iter().any(|line| line.contains("hunter2")),
        "the password reached the log"
    );
    server.terminate().unwrap();
}

/// PostgreSQL restarted in the middle of a write load from two servers: clients get
/// answers (200, or 503 while it is down), never a hang; every store that was
/// acknowledged is there afterwards; both servers serve again without a restart, and
/// the event ids stay gap-free.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_a_database_restart_under_load() {
    const CLIENTS: usize = 8;
    let cluster = Arc::new(PgCluster::start().unwrap_or_else(|e| panic!("{e}")));
    let database = cluster.database();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let url = database.url.clone();
        servers.push(Arc::new(
            TestServer::spawn_with(|c| {
                c.database_url = Some(url.parse().unwrap());
                c.read_timeout = 2.0;
            })
            .await,
        ));
    }
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let server = Arc::clone(&servers[client % 2]);
            let running = Arc::clone(&running);
            tokio::spawn(async move {
                let (mut acknowledged, mut unavailable) = (Vec::new(), 0);
                let mut i = 0;
                while running.load(std::sync::atomic::Ordering::Relaxed) {
                    let content = format!("load note {i} from client {client}");
                    i += 1;
                    let request = server.send(
                        Method::POST,
                        "/api/memories",
                        Some(json!({ "content": content })),
                    );
                    let (status, body) = tokio::time::timeout(Duration::from_secs(30), request)
                        .await
                        .expect("an answer within 30 s, even while the database is down");
                    match status {
                        200 => acknowledged.push(body["content_hash"].as_str().unwrap().to_owned()),
                        503 => unavailable += 1,
                        other => panic!("{other}: {body}"),
                    }
                }
                (acknowledged, unavailable)
            })
        })
        .collect();

    // Some writes before the restart, then the restart, then some writes after it.
    let count = |server: Arc<TestServer>| async move {
        let (_, body) = server
            .send(Method::GET, "/api/memories?page_size=1", None)
            .await;
        body["total"].as_u64().unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(Arc::clone(&servers[0])).await < 20 {
        assert!(Instant::now() < deadline, "no writes within 60 s");
    }
    let restarter = Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || {
        restarter.stop().unwrap();
        restarter.restart().unwrap();
    })
    .await
    .unwrap();
    let before = count(Arc::clone(&servers[1])).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(Arc::clone(&servers[1])).await < before + 20 {
        assert!(
            Instant::now() < deadline,
            "no writes within 60 s of the restart"
        );
    }
    running.store(false, std::sync::atomic::Ordering::Relaxed);

    let mut acknowledged = Vec::new();
    for client in clients {
        acknowledged.extend(client.await.unwrap().0);
    }
    for hash in &acknowledged {
        let (status, body) = servers[0]
            .send(Method::GET, &format!("/api/memories/{hash}"), None)
            .await;
        assert_eq!(status, 200, "acknowledged {hash} is missing: {body}");
    }
    let total = count(Arc::clone(&servers[1])).await;
    assert!(total as usize >= acknowledged.len());
    let mut replay = servers[1].events(Some(0)).await;
    connected(&mut replay).await;
    for expected in 1..=total as i64 {
        assert_eq!(next_change(&mut replay).await.id, expected.to_string());
    }
}

/// Runs `mnemo-server keys ARGS` against `url` and returns what it printed.
fn keys_command(url: &str, data: &std::path::Path, args: &[&str]) -> String {
    let output = run_keys(url, data, args);
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "keys {args:?}: {printed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    printed
}

/// Runs `mnemo-server keys ARGS` against `url`, whatever its outcome.
fn run_keys(url: &str, data: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(mnemo_server::testing::workspace_binary("mnemo-server"))
        .arg("keys")
        .args(args)
        .env("MNEMO_DATABASE_URL", url)
        .env("MNEMO_DATA_DIR", data)
        .output()
        .unwrap()
}

/// With PostgreSQL the managed keys are the database's: a key made by `mnemo-server
/// keys add` on any machine works at once on both servers (real binaries) with its
/// scope, nothing is written to `keys.json`, and a revoked key stops working on a
/// server that had already accepted it, once that server hears of the change.
#[tokio::test(flavor = "multi_thread")]
async fn keys_live_in_the_database_and_hold_on_every_server() {
    const MASTER: &str = "postgres-keys-master";
    let database = PgCluster::shared().database();
    let url = database.url.as_str();
    let env = [("MCP_API_KEY", MASTER), ("MNEMO_DATABASE_URL", url)];
    let (dir_a, dir_b, dir_cli) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let a = ServerProcess::start(dir_a.path(), &env);
    let mut b = ServerProcess::start(dir_b.path(), &env);

    let added = keys_command(
        url,
        dir_cli.path(),
        &["add", "--name", "laptop", "--scope", "read"],
    );
    let reader = added.lines().last().unwrap().trim().to_owned();
    let writer = keys_command(
        url,
        dir_cli.path(),
        &["add", "--name", "agent", "--scope", "write"],
    );
    let writer = writer.lines().last().unwrap().trim().to_owned();
    let listed = keys_command(url, dir_cli.path(), &["list"]);
    assert!(
        listed.contains("laptop") && listed.contains("agent"),
        "{listed}"
    );
    for dir in [&dir_a, &dir_b, &dir_cli] {
        assert!(!dir.path().join("keys.json").exists());
    }

    let http = reqwest::Client::new();
    let store = |server: &ServerProcess, key: &str, content: &str| {
        http.post(format!("{}/api/memories", server.url()))
            .bearer_auth(key)
            .json(&json!({ "content": content }))
            .send()
    };
    let list = |server: &ServerProcess, key: &str| {
        http.get(format!("{}/api/memories", server.url()))
            .bearer_auth(key)
            .send()
    };
    // Neither server has heard of the keys by announcement yet, or has and reloaded:
    // either way they are accepted at once.
    assert_eq!(
        store(&a, &writer, "written with a database key")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(list(&b, &reader).await.unwrap().status(), 200);
    let refused = store(&b, &reader, "a read key cannot write").await.unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("read scope"),
        "{body}"
    );

    // B has the reader in memory now, and has reloaded both keys on hearing of them
    // (its log says so; an earlier line may say one). Revoking the reader reaches B by
    // NOTIFY, which B logs as a reload with one key left.
    tokio::task::block_in_place(|| b.wait_for_log("keys=2"));
    let revoked = keys_command(url, dir_cli.path(), &["revoke", "laptop"]);
    assert!(revoked.contains("laptop"), "{revoked}");
    tokio::task::block_in_place(|| b.wait_for_log("keys=1"));
    let gone = list(&b, &reader).await.unwrap();
    assert_eq!(gone.status(), 401);
    assert_eq!(list(&a, &reader).await.unwrap().status(), 401);
    assert_eq!(list(&b, &writer).await.unwrap().status(), 200);

    // Revoking what is not there names the database, never the password.
    let output = run_keys(url, dir_cli.path(), &["revoke", "laptop"]);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("no key has the id or name \"laptop\""),
        "{error}"
    );
    assert!(error.contains(&database.url), "{error}");
    a.terminate().unwrap();
    b.terminate().unwrap();
}

/// A server started while its database is down waits for it (health says loading,
/// other routes 503) and comes up by itself once PostgreSQL starts.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_started_before_its_database_waits_for_it() {
    const KEY: &str = "postgres-wait-key";
    let cluster = PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let database = cluster.database();
    let url = database.url.clone();
    cluster.stop().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::spawn(
        dir.path(),
        &[("MCP_API_KEY", KEY), ("MNEMO_DATABASE_URL", url.as_str())],
    );
    tokio::task::block_in_place(|| server.wait_for_log("PostgreSQL cannot be reached yet"));
    let http = reqwest::Client::new();
    let health = http
        .get(format!("{}/api/health", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 503);
    let early = http
        .get(format!("{}/api/memories", server.url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), 503);
    let body: Value = early.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");

    cluster.restart().unwrap();
    tokio::task::block_in_place(|| server.wait_for_log("healthy"));
    let stored = http
        .post(format!("{}/api/memories", server.url()))
        .bearer_auth(KEY)
        .json(&json!({"content": "stored once the database came up"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 200);
    server.terminate().unwrap();
}

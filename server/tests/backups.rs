//! Backups and restores over the REST API with the real model and real SQLite files:
//! a backup under a write load, a restore while a change stream is open, restores
//! that must fail without touching anything, backup ids that cannot leave their
//! folder, scheduled backups, and PostgreSQL's refusal.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mnemo_server::storage::Storage;
use mnemo_server::storage::sqlite::{SqliteOptions, SqliteStore};
use mnemo_server::testing::{
    PgCluster, ServerProcess, TestServer, failed, next_change, next_event, run_offline, succeeded,
};
use reqwest::Method;
use serde_json::{Value, json};

async fn backup(server: &TestServer) -> Value {
    let (status, body) = server.send(Method::POST, "/api/admin/backup", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true, "{body}");
    body
}

async fn restore(server: &TestServer, backup_id: &str) -> (u16, Value) {
    server
        .send(
            Method::POST,
            "/api/admin/restore",
            Some(json!({"backup_id": backup_id})),
        )
        .await
}

async fn exists(server: &TestServer, hash: &str) -> bool {
    let (status, _) = server
        .send(Method::GET, &format!("/api/memories/{hash}"), None)
        .await;
    status == 200
}

/// A backup taken while four clients keep storing holds every write acknowledged
/// before it began; restoring it brings back exactly those, and the file is private
/// and listed by both route families.
#[tokio::test]
async fn backup_under_load_holds_every_acknowledged_write() {
    let server = Arc::new(TestServer::spawn().await);
    // The writers publish what was acknowledged, and when; the test wakes on each write.
    let acknowledged = Arc::new(tokio::sync::watch::Sender::new(
        Vec::<(Instant, String)>::new(),
    ));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut writers = Vec::new();
    for writer in 0..4 {
        let (server, acknowledged, stop) =
            (Arc::clone(&server), Arc::clone(&acknowledged), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.is_cancelled() {
                let hash = server
                    .store(json!({"content": format!("writer {writer} note {n} about backups")}))
                    .await;
                acknowledged.send_modify(|all| all.push((Instant::now(), hash)));
                n += 1;
            }
        }));
    }
    // Let the load build up, then back up in the middle of it.
    let mut progress = acknowledged.subscribe();
    progress.wait_for(|all| all.len() >= 40).await.unwrap();
    let began = Instant::now();
    let created = backup(&server).await;
    let len_after = acknowledged.borrow().len();
    progress
        .wait_for(|all| all.len() >= len_after + 20)
        .await
        .unwrap();
    stop.cancel();
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.borrow().clone();
    let before: HashSet<&String> = acknowledged
        .iter()
        .filter(|(at, _)| *at < began)
        .map(|(_, h)| h)
        .collect();
    let after: Vec<&String> = acknowledged
        .iter()
        .filter(|(at, _)| *at > began)
        .map(|(_, h)| h)
        .collect();
    assert!(before.len() >= 40);

    let id = created["backup_id"].as_str().unwrap();
    assert_eq!(created["filename"], format!("{id}.db"));
    let file = server.dir.path().join("backups").join(format!("{id}.db"));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        created["size_bytes"].as_u64().unwrap(),
        std::fs::metadata(&file).unwrap().len()
    );
    assert!(created["memories"].as_u64().unwrap() >= before.len() as u64);
    for path in ["/api/admin/backups", "/api/backup/list"] {
        let (status, list) = server.send(Method::GET, path, None).await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["total_count"], 1, "{list}");
        assert_eq!(list["backups"][0]["backup_id"], id, "{list}");
        assert!(
            list["backups"][0]["created_at"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
        assert_eq!(list["backups"][0]["age_days"], 0);
    }

    let (status, restored) = restore(&server, id).await;
    assert_eq!(status, 200, "{restored}");
    assert_eq!(restored["memories"], created["memories"], "{restored}");
    for hash in &before {
        assert!(
            exists(&server, hash).await,
            "acknowledged before the backup, lost: {hash}"
        );
    }
    // The restore took the database back in time: the later writes are gone, but
    // kept in the backup taken just before the restore.
    let (_, listed) = server.send(Method::GET, "/api/memories", None).await;
    assert_eq!(listed["total"], created["memories"], "{listed}");
    let last = after.last().unwrap();
    assert!(!exists(&server, last).await);
    let pre = restored["pre_restore_backup_id"].as_str().unwrap();
    let (status, _) = restore(&server, pre).await;
    assert_eq!(status, 200);
    for hash in acknowledged.iter().map(|(_, h)| h) {
        assert!(
            exists(&server, hash).await,
            "lost after restoring the pre-restore backup: {hash}"
        );
    }
}

/// A restore tells an open stream `resync` with an id above everything it saw, later
/// events have higher ids still, a client reconnecting with an old id resyncs, and
/// searches find the restored memories through the rebuilt vector copy.
#[tokio::test]
async fn restore_sends_resync_and_numbers_after_it() {
    let server = TestServer::spawn().await;
    let kept = server
        .store(json!({"content": "the lighthouse keeper painted the stairs blue"}))
        .await;
    let id = backup(&server).await["backup_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let lost = server
        .store(json!({"content": "quarterly revenue grew in the northern region"}))
        .await;

    let mut stream = server.events(None).await;
    let greeting = next_event(&mut stream).await;
    let head = serde_json::from_str::<Value>(&greeting.data).unwrap()["head_seq"]
        .as_i64()
        .unwrap();
    let (status, restored) = restore(&server, &id).await;
    assert_eq!(status, 200, "{restored}");

    let resync = next_change(&mut stream).await;
    assert_eq!(resync.event, "resync", "{resync:?}");
    let resync_id: i64 = resync.id.parse().unwrap();
    assert!(resync_id > head, "{resync_id} <= {head}");
    assert_eq!(restored["event_id"], resync_id);
    let data: Value = serde_json::from_str(&resync.data).unwrap();
    assert_eq!(data["reason"], "restore", "{data}");
    assert_eq!(data["backup_id"], id.as_str(), "{data}");

    server
        .store(json!({"content": "a note written after the restore"}))
        .await;
    let stored = next_change(&mut stream).await;
    assert_eq!(stored.event, "memory_stored");
    assert!(stored.id.parse::<i64>().unwrap() > resync_id);

    // A client that last saw an event from before the restore cannot resume into the
    // restored past.
    let mut old = server.events(Some(head - 1)).await;
    next_event(&mut old).await;
    assert_eq!(next_change(&mut old).await.event, "resync");

    assert!(exists(&server, &kept).await);
    assert!(!exists(&server, &lost).await);
    let (status, found) = server
        .send(
            Method::POST,
            "/api/search",
            Some(json!({"query": "who painted the lighthouse stairs", "n_results": 1})),
        )
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(
        found["results"][0]["memory"]["content_hash"],
        kept.as_str(),
        "{found}"
    );
}

/// Ids that are not the exact backup layout are refused before any file is touched,
/// so no id reaches outside the backups folder; a well-formed id that does not exist
/// is a 404.
#[tokio::test]
async fn backup_ids_cannot_leave_the_folder() {
    let server = TestServer::spawn().await;
    server.store(json!({"content": "still here"})).await;
    // A database file the traversals would reach if they were joined to the folder.
    std::fs::write(server.dir.path().join("memory_backup_x.db"), b"not this").unwrap();
    for id in [
        "../memories",
        "../memories.db",
        "memory_backup_../../memories",
        "/etc/passwd",
        "memory_backup_20261128_154700_123/../../memories",
        "memory_backup_20261128_154700_123%2F..",
        "..",
        "",
    ] {
        let (status, body) = restore(&server, id).await;
        assert_eq!(status, 400, "{id}: {body}");
        assert_eq!(body["error"], "invalid_backup_id", "{id}: {body}");
    }
    let (status, body) = restore(&server, "memory_backup_20200101_000000_000").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "backup_not_found");
    let (status, body) = server
        .send(Method::POST, "/api/admin/restore", Some(json!({})))
        .await;
    assert_eq!(status, 422, "{body}");
    let (_, list) = server.send(Method::GET, "/api/admin/backups", None).await;
    assert_eq!(list["total_count"], 0, "{list}");
}

/// A damaged backup and one made with another model are refused (the second naming
/// both models); the live database keeps its memories and its feed, takes writes,
/// and no pre-restore backup is left behind for a restore that never started.
#[tokio::test]
async fn a_failed_restore_leaves_the_live_database() {
    let server = TestServer::spawn().await;
    let hash = server.store(json!({"content": "precious memory"})).await;
    let folder = server.dir.path().join("backups");
    let good = backup(&server).await;
    let good_file = folder.join(good["filename"].as_str().unwrap());

    let damaged = "memory_backup_20200101_000000_000";
    let mut bytes = std::fs::read(&good_file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 8192].fill(0xff);
    std::fs::write(folder.join(format!("{damaged}.db")), bytes).unwrap();
    let garbage = "memory_backup_20200101_000000_001";
    std::fs::write(folder.join(format!("{garbage}.db")), vec![7u8; 100_000]).unwrap();

    let other = "memory_backup_20200101_000000_002";
    let other_dir = tempfile::tempdir().unwrap();
    let spec = mnemo_server::memory::EmbeddingSpec {
        model_id: "intfloat/e5-small-v2".into(),
        dimension: 384,
    };
    let store = SqliteStore::open(
        &other_dir.path().join("memories.db"),
        &spec,
        SqliteOptions::default(),
    )
    .unwrap();
    Storage::backup(&store, &folder.join(format!("{other}.db")))
        .await
        .unwrap();
    drop(store);

    let (_, listed) = server.send(Method::GET, "/api/admin/backups", None).await;
    let backups_before = listed["total_count"].as_u64().unwrap();
    let mut stream = server.events(None).await;
    let head =
        serde_json::from_str::<Value>(&next_event(&mut stream).await.data).unwrap()["head_seq"]
            .as_i64()
            .unwrap();
    for (id, code) in [
        (damaged, "invalid_backup"),
        (garbage, "invalid_backup"),
        (other, "model_mismatch"),
    ] {
        let (status, body) = restore(&server, id).await;
        let expected = if code == "model_mismatch" { 409 } else { 422 };
        assert_eq!(status, expected, "{id}: {body}");
        assert_eq!(body["error"], code, "{id}: {body}");
        if code == "model_mismatch" {
            let message = body["message"].as_str().unwrap();
            assert!(message.contains("intfloat/e5-small-v2"), "{message}");
            assert!(message.contains("all-MiniLM-L6-v2"), "{message}");
        }
        assert!(exists(&server, &hash).await);
    }
    assert!(
        !server.dir.path().join("memories.db.restoring").exists(),
        "the staging file is cleaned up"
    );
    let later = server
        .store(json!({"content": "written after the refusals"}))
        .await;
    let event = next_change(&mut stream).await;
    assert_eq!(event.event, "memory_stored");
    assert_eq!(event.id.parse::<i64>().unwrap(), head + 1);
    assert!(exists(&server, &later).await);
    // The backup each restore takes of the live database first is dropped again
    // when the restore is refused: the live database is that backup.
    let (_, listed) = server.send(Method::GET, "/api/admin/backups", None).await;
    assert_eq!(
        listed["total_count"].as_u64().unwrap(),
        backups_before,
        "{listed}"
    );
}

/// `MNEMO_BACKUP_INTERVAL` takes backups on its own and `MNEMO_BACKUP_KEEP` deletes
/// the oldest; the status route says so in mcp-memory-service's shape.
#[tokio::test]
async fn scheduled_backups_keep_the_newest() {
    let server = TestServer::spawn_with(|c| {
        c.backup_interval =
            Some(mnemo_server::operations::backups::BackupInterval::parse("1s").unwrap());
        c.backup_keep = Some(2);
    })
    .await;
    server.store(json!({"content": "scheduled"})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let (code, status) = server.send(Method::GET, "/api/backup/status", None).await;
        assert_eq!(code, 200, "{status}");
        // Three backups have run once the oldest has been pruned at least once: the
        // folder never holds more than two.
        let names: Vec<String> = std::fs::read_dir(server.dir.path().join("backups"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    // A backup being written is not yet one.
                    .filter(|n| n.ends_with(".db"))
                    .collect()
            })
            .unwrap_or_default();
        assert!(names.len() <= 2, "{names:?}");
        if status["backup_count"] == 2 && status["last_backup_time"].as_f64().is_some() {
            break status;
        }
        assert!(Instant::now() < deadline, "no scheduled backups: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status["enabled"], true);
    assert_eq!(status["interval"], "1s");
    assert_eq!(status["max_count"], 2);
    assert_eq!(status["scheduler_running"], true);
    assert!(status["next_backup_at"].is_string(), "{status}");
    assert!(
        status["backup_directory"]
            .as_str()
            .unwrap()
            .ends_with("backups")
    );
}

/// On PostgreSQL every backup route answers 501 with a JSON error pointing at
/// pg_dump, and nothing is written to the data folder.
#[tokio::test]
async fn postgres_refuses_file_backups() {
    let database = PgCluster::shared().database();
    let url = database.url.clone();
    let server = TestServer::spawn_with(|c| c.database_url = Some(url.parse().unwrap())).await;
    for (method, path, body) in [
        (Method::POST, "/api/admin/backup", None),
        (Method::GET, "/api/admin/backups", None),
        (
            Method::POST,
            "/api/admin/restore",
            Some(json!({"backup_id": "memory_backup_20200101_000000_000"})),
        ),
        (Method::POST, "/api/backup/now", None),
        (Method::GET, "/api/backup/list", None),
        (Method::GET, "/api/backup/status", None),
    ] {
        let (status, body) = server.send(method, path, body).await;
        assert_eq!(status, 501, "{path}: {body}");
        assert_eq!(body["error"], "not_supported", "{path}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("pg_dump"),
            "{body}"
        );
    }
    assert!(!server.dir.path().join("backups").exists());
}

const OFFLINE_KEY: &str = "offline-restore-key-0123456789";

/// `GET path` on the server binary with [`OFFLINE_KEY`], from a new client each time:
/// a pooled connection would not survive the server being killed and relaunched.
async fn get(server: &ServerProcess, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}{path}", server.url()))
        .bearer_auth(OFFLINE_KEY)
        .send()
        .await
        .unwrap()
}

/// `mnemo-server restore` refuses while a server holds the database, then restores
/// offline once it has stopped, keeping a backup of what it replaced; the next start
/// serves the restored memories and a feed that continues after every old id.
#[tokio::test]
async fn offline_restore_waits_for_the_server_to_stop() {
    let data = tempfile::tempdir().unwrap();
    let key = [("MCP_API_KEY", OFFLINE_KEY)];
    let mut server = ServerProcess::start(data.path(), &key);
    let http = reqwest::Client::new();
    let post = async |path: &str, body: Value| -> Value {
        let response = http
            .post(format!("{}{path}", server.url()))
            .bearer_auth(OFFLINE_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{path}");
        response.json().await.unwrap()
    };
    let kept = post("/api/memories", json!({"content": "kept by the backup"})).await;
    let id = post("/api/admin/backup", json!({})).await["backup_id"]
        .as_str()
        .unwrap()
        .to_owned();
    post(
        "/api/memories",
        json!({"content": "written after the backup"}),
    )
    .await;

    let stderr = failed(run_offline(data.path(), &["restore", &id], &[]));
    assert!(stderr.contains("in use by another process"), "{stderr}");
    let listed: Value = get(&server, "/api/memories").await.json().await.unwrap();
    assert_eq!(listed["total"], 2, "the refused restore changed nothing");

    server.kill();
    let stdout = succeeded(run_offline(data.path(), &["restore", &id], &[]));
    assert!(
        stdout.contains("Restored") && stdout.contains("1 memories"),
        "{stdout}"
    );

    server.relaunch();
    let listed: Value = get(&server, "/api/memories").await.json().await.unwrap();
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["memories"][0]["content_hash"], kept["content_hash"]);
    let backups: Value = get(&server, "/api/backup/list").await.json().await.unwrap();
    assert_eq!(
        backups["total_count"], 2,
        "the replaced database was kept: {backups}"
    );
    // The feed goes on after the two stores: the restore is event 3.
    let response = reqwest::Client::new()
        .get(format!("{}/api/events", server.url()))
        .bearer_auth(OFFLINE_KEY)
        .header("Last-Event-ID", "2")
        .send()
        .await
        .unwrap();
    let mut stream = mnemo_server::testing::sse_stream(response);
    next_event(&mut stream).await;
    let resync = next_change(&mut stream).await;
    assert_eq!(resync.event, "resync");
    assert_eq!(resync.id, "3");
}

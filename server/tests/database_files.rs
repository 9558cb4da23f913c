//! The database file as the server finds it (issue 13): a damaged, empty or
//! read-only file is refused at start with an error naming it and what to do, never
//! served as "healthy"; a new one is private; a full disk answers 507 and loses
//! nothing already stored.
//!
//! The read-only and full file systems are real: a read-only bind mount and a small
//! tmpfs, each in a mount namespace of the server's own (`unshare`), so nothing
//! outside the test sees them.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mnemo_server::testing::{MASTER_KEY, ProcessError, ServerProcess};
use serde_json::{Value, json};

fn env(database: &Path) -> Vec<(&'static str, OsString)> {
    vec![
        ("MCP_API_KEY", MASTER_KEY.into()),
        ("MCP_MEMORY_SQLITE_PATH", database.into()),
    ]
}

async fn post(server: &ServerProcess, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", server.url()))
        .bearer_auth(MASTER_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn get(server: &ServerProcess, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", server.url()))
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Starts a server on `database` expecting it to refuse, and returns what it said.
fn refusal(data: &Path, database: &Path) -> String {
    let server = ServerProcess::spawn(data, &env(database));
    let (status, stderr) = server.finish();
    assert!(
        !status.success(),
        "the server started on {database:?}:\n{stderr}"
    );
    assert!(
        stderr.contains(&database.display().to_string()),
        "the error does not name the file:\n{stderr}"
    );
    stderr
}

/// Deterministic noise, so a failure reproduces byte for byte.
fn garbage(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn overwrite(path: &Path, at: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(at)).unwrap();
    file.write_all(bytes).unwrap();
}

/// The issue's three damaged files, and a file that is no database at all, each
/// refused at start with the file's name and a way out. Before the fix the first
/// three started "healthy" and answered 500 to searches and stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_databases_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.db");
    let server = ServerProcess::start(dir.path(), &env(&good));
    for batch in 0..3 {
        let memories: Vec<Value> = (0..100)
            .map(|i| json!({"content": format!("memory {batch}-{i}: {}", "some words ".repeat(i % 7 + 1)), "tags": ["t"]}))
            .collect();
        let (status, body) = post(
            &server,
            "/api/memories/batch",
            json!({"memories": memories}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    // A clean stop checkpoints the log into the file, so the file is the database.
    server.terminate().unwrap();
    let len = std::fs::metadata(&good).unwrap().len();
    assert!(
        len > 1 << 20,
        "a database of {len} bytes is too small to damage in places"
    );

    let page = 4096;
    let middle = (len / 2 / page) * page;
    let damages: [(&str, u64, Vec<u8>); 3] = [
        ("garbage-in-the-middle.db", middle, garbage(64 << 10, 1)),
        (
            "overwritten-end.db",
            len - 3 * page,
            garbage(3 * page as usize, 2),
        ),
        ("not-a-database.db", 0, garbage(len as usize, 3)),
    ];
    for (name, at, bytes) in damages {
        let damaged = dir.path().join(name);
        std::fs::copy(&good, &damaged).unwrap();
        overwrite(&damaged, at, &bytes);
        let said = refusal(dir.path(), &damaged);
        assert!(said.contains("is damaged"), "{name}:\n{said}");
        assert!(said.contains("restore it from a backup"), "{name}:\n{said}");
    }

    // The intact original still opens: the check refuses damage, not databases.
    let server = ServerProcess::start(dir.path(), &env(&good));
    let (status, body) = get(&server, "/api/memories?page_size=1").await;
    assert_eq!((status, body["total"].as_u64()), (200, Some(300)), "{body}");
}

/// An empty file where the database should be is refused (it looks like a lost
/// database); once the user deletes it, a new store starts, private like the keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_file_is_refused_and_a_new_store_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("memories.db");
    std::fs::write(&database, b"").unwrap();
    let said = refusal(dir.path(), &database);
    assert!(said.contains("is empty (0 bytes)"), "{said}");
    assert!(said.contains("delete the file"), "{said}");
    assert_eq!(
        std::fs::metadata(&database).unwrap().len(),
        0,
        "the empty file was written to"
    );

    std::fs::remove_file(&database).unwrap();
    let server = ServerProcess::start(dir.path(), &env(&database));
    let (status, body) = post(&server, "/api/memories", json!({"content": "first"})).await;
    assert_eq!(status, 200, "{body}");
    for suffix in ["", "-wal", "-shm"] {
        let mut name = database.clone().into_os_string();
        name.push(suffix);
        let mode = std::fs::metadata(&name).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name:?}");
    }
}

/// `binary` that runs `setup` (a shell command given the database's folder as `$1`)
/// in a mount namespace of its own, then becomes `mnemo-server`.
fn in_mount_namespace(dir: &Path, folder: &Path, setup: &str) -> PathBuf {
    let script = dir.join(format!("run-{}.sh", std::process::id()));
    let server = mnemo_server::testing::workspace_binary("mnemo-server");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec unshare --mount --propagation private -- sh -euc '{setup}; exec \"$2\"' sh '{}' '{}'\n",
            folder.display(),
            server.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// A database on a read-only file system is refused at start, naming the file and
/// the fix; before, it started "healthy" and failed every store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("db");
    let database = folder.join("memories.db");
    let server = ServerProcess::start(dir.path(), &env(&database));
    let (status, _) = post(&server, "/api/memories", json!({"content": "kept"})).await;
    assert_eq!(status, 200);
    server.terminate().unwrap();

    let read_only = in_mount_namespace(
        dir.path(),
        &folder,
        r#"mount --bind "$1" "$1"; mount -o remount,bind,ro "$1""#,
    );
    match ServerProcess::try_start(&read_only, dir.path(), &env(&database)) {
        Err(ProcessError::Exited { log, .. }) => {
            assert!(log.contains("cannot be written"), "{log}");
            assert!(log.contains(&database.display().to_string()), "{log}");
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("the server started healthy on a read-only database"),
    }
}

/// A full disk (a 4 MiB tmpfs) answers 507 with the storage error code, and every
/// memory stored before it stays readable and searchable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_507_and_keeps_what_was_stored() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("db");
    std::fs::create_dir(&folder).unwrap();
    let database = folder.join("memories.db");
    let small_disk = in_mount_namespace(
        dir.path(),
        &folder,
        r#"mount -t tmpfs -o size=4m,mode=0700 tmpfs "$1""#,
    );
    let server = ServerProcess::try_start(&small_disk, dir.path(), &env(&database))
        .unwrap_or_else(|e| panic!("{e}"));

    let mut stored = Vec::new();
    let refused = loop {
        assert!(
            stored.len() < 500,
            "4 MiB held {} large memories",
            stored.len()
        );
        let content = format!("memory {} {}", stored.len(), "x".repeat(60_000));
        let (status, body) = post(&server, "/api/memories", json!({"content": content})).await;
        match status {
            200 => stored.push(body["content_hash"].as_str().unwrap().to_owned()),
            _ => break (status, body),
        }
    };
    assert_eq!(refused.0, 507, "{}", refused.1);
    assert_eq!(refused.1["error"], "storage_full", "{}", refused.1);
    assert!(!stored.is_empty(), "not one memory fit");

    for hash in &stored {
        let (status, body) = get(&server, &format!("/api/memories/{hash}")).await;
        assert_eq!(status, 200, "{hash} was lost: {body}");
    }
    let (status, body) = post(
        &server,
        "/api/search",
        json!({"query": "memory", "n_results": 3}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&server, "/api/health").await;
    assert_eq!(status, 200, "{body}");
}

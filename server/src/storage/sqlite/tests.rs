//! Tests of what only the SQLite backend has (the schema version, group commit and
//! its savepoints, the in-memory vector copy against vec0) on a real file with small
//! hand-made vectors, and the conformance suite run against it twice: searching the
//! vector copy, and scanning vec0. The tests with the real embedding model live in
//! `server/tests/`.

use super::*;
use crate::memory::{TagMatch, content_hash};
use crate::storage::conformance::{DIM, Harness, record, spec, storage_conformance, unit};

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(
        &dir.path().join("memories.db"),
        &spec(),
        SqliteOptions::default(),
    )
    .unwrap()
}

/// SQLite databases in temporary folders; `MEMORY_VECTORS` picks which search path
/// the suite exercises.
struct Sqlite<const MEMORY_VECTORS: bool>;

impl<const MEMORY_VECTORS: bool> Harness for Sqlite<MEMORY_VECTORS> {
    type Place = tempfile::TempDir;

    async fn place() -> Self::Place {
        tempfile::tempdir().unwrap()
    }

    async fn open(
        place: &Self::Place,
        spec: &EmbeddingSpec,
        retention: Retention,
    ) -> Result<Arc<dyn Storage>, StorageError> {
        let options = SqliteOptions {
            retention,
            memory_vectors: MEMORY_VECTORS,
            ..SqliteOptions::default()
        };
        let store = SqliteStore::open(&place.path().join("memories.db"), spec, options)?;
        Ok(Arc::new(store))
    }
}

mod conformance_vector_copy {
    super::storage_conformance!(super::Sqlite<true>);
}

mod conformance_vec0 {
    super::storage_conformance!(super::Sqlite<false>);
}

/// A database newer than this build is refused with both versions named.
#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(&dir));
    let path = dir.path().join("memories.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = SqliteStore::open(&path, &spec(), SqliteOptions::default())
        .err()
        .unwrap();
    assert!(
        matches!(err, StorageError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
}

/// One failing command in a group rolls back only itself.
#[test]
fn group_commit_isolates_failures() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(open(&dir));
    store.insert(record("taken", &[], [1.0; DIM])).unwrap();
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || {
                let content = if i % 4 == 0 {
                    "taken".to_string()
                } else {
                    format!("new {i}")
                };
                store.insert(record(&content, &["t"], [1.0, i as f32, 0.0, 0.0]))
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let duplicates = results
        .iter()
        .filter(|r| matches!(r, Err(StorageError::Duplicate { .. })))
        .count();
    assert_eq!(duplicates, 4);
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 12);
    assert_eq!(store.count().unwrap(), 13);
    assert_eq!(store.events_after(0, 100).unwrap().len(), 13);
}

/// The in-memory vector copy and the vec0 scan agree on every search, filtered or not,
/// through inserts, a batch, deletes and a reopen (which reloads the copy from vec0).
#[test]
fn vector_copy_agrees_with_vec0() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memories.db");
    let with_copy = SqliteStore::open(&path, &spec(), SqliteOptions::default()).unwrap();
    let mut records = Vec::new();
    for i in 0..60 {
        let f = i as f32;
        let tags: &[&str] = if i % 3 == 0 { &["three"] } else { &["other"] };
        records.push(record(
            &format!("memory {i}"),
            tags,
            [f.sin(), f.cos(), (f * 0.7).sin(), 1.0 + (f * 0.3).cos()],
        ));
    }
    let (first, rest) = records.split_at(20);
    for r in first {
        with_copy.insert(r.clone()).unwrap();
    }
    assert!(
        with_copy
            .insert_many(rest.to_vec())
            .iter()
            .all(Result::is_ok)
    );
    for i in (0..60).step_by(7) {
        with_copy
            .delete(&content_hash(&format!("memory {i}")))
            .unwrap();
    }
    let filters = [
        Filter::default(),
        Filter {
            tags: vec!["three".into()],
            tag_match: TagMatch::Any,
            ..Filter::default()
        },
    ];
    let queries = [
        [1.0, 0.0, 0.0, 0.0],
        [0.2, -0.5, 0.9, 0.1],
        [-1.0, 1.0, 1.0, -1.0],
    ];
    let hashes = |hits: Vec<ScoredMemory>| -> Vec<(String, f64)> {
        hits.into_iter()
            .map(|h| (h.memory.content_hash, h.cosine_similarity))
            .collect()
    };
    let searches = |store: &SqliteStore| -> Vec<Vec<(String, f64)>> {
        let mut all = Vec::new();
        for filter in &filters {
            for q in queries {
                all.push(hashes(store.search(&unit(q), 10, filter).unwrap()));
            }
        }
        all
    };
    // Same memories in the same order; similarities equal up to float rounding.
    let same = |a: &[Vec<(String, f64)>], b: &[Vec<(String, f64)>]| {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            let names = |v: &[(String, f64)]| v.iter().map(|h| h.0.clone()).collect::<Vec<_>>();
            assert_eq!(names(x), names(y));
            for (p, q) in x.iter().zip(y) {
                assert!((p.1 - q.1).abs() < 1e-5, "{} vs {}", p.1, q.1);
            }
        }
    };
    assert!(
        with_copy.searches_vector_copy(),
        "loaded before the first write"
    );
    let copied = searches(&with_copy);
    drop(with_copy);
    let vec0 = SqliteStore::open(
        &path,
        &spec(),
        SqliteOptions {
            memory_vectors: false,
            ..SqliteOptions::default()
        },
    )
    .unwrap();
    assert!(!vec0.searches_vector_copy());
    same(&copied, &searches(&vec0));
    assert!(copied.iter().all(|hits| hits.len() == 10));
    drop(vec0);
    let reopened = open(&dir);
    // The writer loads the copy before it answers its first command.
    assert!(matches!(
        reopened.delete("no such hash"),
        Err(StorageError::NotFound { .. })
    ));
    assert!(reopened.searches_vector_copy());
    same(&copied, &searches(&reopened));
}

/// A query that never ends on its own: counts upwards forever.
const ENDLESS: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

/// A read past its deadline is interrupted, and its connection serves the next read.
#[test]
fn read_stops_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        readers: 1,
        read_timeout: Duration::from_millis(200),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&dir.path().join("memories.db"), &spec(), options).unwrap();
    let endless = store
        .reader()
        .unwrap()
        .query_row(ENDLESS, [], |r| r.get::<_, i64>(0));
    let error = StorageError::from(endless.unwrap_err());
    assert!(error.to_string().contains("MNEMO_READ_TIMEOUT"), "{error}");
    assert_eq!(store.count().unwrap(), 0);
}

/// A read whose caller went away stops long before its deadline and gives its
/// connection back (the pool here has one).
#[tokio::test]
async fn read_stops_when_its_caller_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        readers: 1,
        read_timeout: Duration::from_secs(3600),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&dir.path().join("memories.db"), &spec(), options).unwrap();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let read = store.blocking(move |store| {
        let conn = store.reader()?;
        let _ = started_tx.send(());
        Ok(conn.query_row(ENDLESS, [], |r| r.get::<_, i64>(0))?)
    });
    let read = tokio::spawn(read);
    started_rx.await.unwrap();
    read.abort();
    // The pool's own wait (5 s) bounds this: a connection still held fails it.
    let count = store.blocking(|store| store.count()).await;
    assert_eq!(count.unwrap(), 0);
}

/// `MCP_MEMORY_SQLITE_PRAGMAS` reaches both kinds of connection: the writer (opened by
/// `open_writer`) and every pooled reader, after Mnemo's own settings.
#[test]
fn pragmas_apply_to_the_writer_and_the_readers() {
    let dir = tempfile::tempdir().unwrap();
    let pragmas = Pragmas::parse(
        "busy_timeout=12345,cache_size=-777,temp_store=MEMORY,wal_autocheckpoint=321",
    )
    .unwrap();
    let options = SqliteOptions {
        pragmas: pragmas.clone(),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&dir.path().join("memories.db"), &spec(), options).unwrap();
    let read = |conn: &Connection, name: &str| -> i64 {
        conn.pragma_query_value(None, name, |r| r.get(0)).unwrap()
    };
    let reader = store.reader().unwrap();
    let writer = open_writer(&dir.path().join("memories.db"), -2000, &pragmas).unwrap();
    for conn in [&*reader, &writer] {
        assert_eq!(read(conn, "busy_timeout"), 12345);
        assert_eq!(read(conn, "cache_size"), -777);
        assert_eq!(read(conn, "temp_store"), 2);
        assert_eq!(read(conn, "wal_autocheckpoint"), 321);
    }
}

/// A backup holds what was committed when it began; restoring it brings exactly that
/// back while the store stays open, the vector copy finds the restored memories, and
/// the feed goes on after every number ever handed out with one `resync` event.
#[test]
fn backup_and_restore_while_open() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = store
        .insert(record("alpha", &[], [1.0, 0.0, 0.0, 0.0]))
        .unwrap();
    store
        .insert(record("beta", &[], [0.0, 1.0, 0.0, 0.0]))
        .unwrap();
    let backup = dir.path().join("backup.db");
    let stats = store.backup(&backup).unwrap();
    assert_eq!(stats.memories, 2);
    assert_eq!(stats.head_seq, 2);
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(!dir.path().join("backup.db.partial").exists());

    store
        .insert(record("gamma", &[], [0.0, 0.0, 1.0, 0.0]))
        .unwrap();
    store.delete(&a.content_hash).unwrap();
    let head = store.head_seq().unwrap();
    let mut live = store.subscribe();

    let restored = store.restore(&backup, "backup").unwrap();
    assert_eq!(restored.memories, 2);
    assert_eq!(restored.event.seq, head + 1);
    assert_eq!(restored.event.kind, "resync");
    assert_eq!(live.try_recv().unwrap().seq, head + 1);
    assert_eq!(store.count().unwrap(), 2);
    assert!(store.get(&a.content_hash).is_ok());
    assert!(store.get(&content_hash("gamma")).is_err());
    assert_eq!(store.head_seq().unwrap(), head + 1);
    assert_eq!(store.oldest_seq().unwrap(), Some(head + 1));
    let events = store.events_after(0, 10).unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].payload.contains("\"backup_id\":\"backup\""));
    assert!(store.searches_vector_copy());
    let hits = store
        .search(&unit([1.0, 0.0, 0.0, 0.0]), 1, &Filter::default())
        .unwrap();
    assert_eq!(hits[0].memory.content, "alpha");
    assert!(!dir.path().join("memories.db.restoring").exists());

    // Writes go on after the restore, numbered after it.
    let next = store
        .insert(record("delta", &[], [0.0, 0.0, 0.0, 1.0]))
        .unwrap();
    assert_eq!(store.get(&next.content_hash).unwrap().content, "delta");
    assert_eq!(store.head_seq().unwrap(), head + 2);
}

/// A damaged, empty or foreign file, or a backup of another model, is refused before
/// the live database is touched; the model mismatch names both models.
#[test]
fn a_failed_restore_leaves_the_live_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .insert(record("alpha", &[], [1.0, 0.0, 0.0, 0.0]))
        .unwrap();
    let head = store.head_seq().unwrap();

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 64 * 1024]).unwrap();
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other_spec = EmbeddingSpec {
        model_id: "other/model".into(),
        dimension: DIM,
    };
    let other = SqliteStore::open(
        &other_dir.path().join("memories.db"),
        &other_spec,
        SqliteOptions::default(),
    )
    .unwrap();
    let other_backup = dir.path().join("other.db");
    other.backup(&other_backup).unwrap();
    // Damage a good backup in the middle of its pages.
    let damaged = dir.path().join("damaged.db");
    store.backup(&damaged).unwrap();
    let mut bytes = std::fs::read(&damaged).unwrap();
    let len = bytes.len();
    for byte in &mut bytes[len / 2..len / 2 + 4096.min(len / 4)] {
        *byte = 0xff;
    }
    std::fs::write(&damaged, bytes).unwrap();

    for (path, expect) in [
        (&garbage, "damaged"),
        (&empty, "empty"),
        (&foreign, "not a Mnemo database"),
        (&other_backup, "other/model"),
        (&damaged, "damaged"),
    ] {
        let error = store.restore(path, "x").unwrap_err();
        assert!(
            error.to_string().contains(expect),
            "{}: {error}",
            path.display()
        );
        assert_eq!(store.count().unwrap(), 1, "{}", path.display());
        assert_eq!(store.head_seq().unwrap(), head);
        assert!(!dir.path().join("memories.db.restoring").exists());
    }
    let mismatch = store.restore(&other_backup, "x").unwrap_err();
    assert!(
        mismatch.to_string().contains(&spec().model_id),
        "{mismatch}"
    );
    store
        .insert(record("beta", &[], [0.0, 1.0, 0.0, 0.0]))
        .unwrap();
}

/// A second store on the same file is refused while the first is open.
#[test]
fn one_store_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let error = SqliteStore::open(
        &dir.path().join("memories.db"),
        &spec(),
        SqliteOptions::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(error, StorageError::InUse { .. }), "{error}");
    drop(store);
    drop(open(&dir));
}

/// A checkpoint asked for right after a burst of writes meets the checkpoint thread
/// the burst woke, and waits for its turn instead of failing "busy" (open-bench failed
/// this way on every run before the two took turns).
#[test]
fn a_checkpoint_after_a_burst_waits_for_the_checkpoint_thread() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let padding = "a few hundred bytes of text that fill the log ".repeat(10);
    for round in 0..3 {
        let records = (0..1000)
            .map(|i| {
                record(
                    &format!("{padding}{round}-{i}"),
                    &[],
                    [1.0, i as f32, 0.0, 0.0],
                )
            })
            .collect();
        for result in store.insert_many(records) {
            result.unwrap();
        }
        store.checkpoint().unwrap();
    }
}

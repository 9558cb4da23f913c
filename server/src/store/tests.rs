//! Store tests on a real SQLite file with small hand-made vectors. The tests with the
//! real embedding model live in `server/tests/`.

use serde_json::{Map, json};

use super::*;
use crate::memory::{TagMatch, content_hash};

const DIM: usize = 4;

fn spec() -> EmbeddingSpec {
    EmbeddingSpec {
        model_id: "test-model".into(),
        dimension: DIM,
    }
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(
        &dir.path().join("memories.db"),
        &spec(),
        StoreOptions::default(),
    )
    .unwrap()
}

fn unit(v: [f32; DIM]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn record(content: &str, tags: &[&str], vector: [f32; DIM]) -> NewRecord {
    NewRecord {
        content: content.into(),
        content_hash: content_hash(content),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        memory_type: Some("note".into()),
        metadata: Map::new(),
        vector: unit(vector),
        created_at: None,
    }
}

/// Insert, get, update, delete round-trip, each with its event row.
#[test]
fn crud_round_trip_with_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let stored = store
        .insert(record("alpha", &["a"], [1.0, 0.0, 0.0, 0.0]))
        .unwrap();
    assert_eq!(store.get(&stored.content_hash).unwrap(), stored);

    let patch = MemoryPatch {
        tags: Some(vec!["b".into(), "c".into()]),
        memory_type: Some(None),
        metadata: Some(json!({"k": 1}).as_object().unwrap().clone()),
    };
    let updated = store.update(&stored.content_hash, patch).unwrap();
    assert_eq!(updated.tags, vec!["b", "c"]);
    assert_eq!(updated.memory_type, None);
    assert_eq!(updated.metadata["k"], 1);
    assert_eq!(store.get(&stored.content_hash).unwrap(), updated);

    store.delete(&stored.content_hash).unwrap();
    assert!(matches!(
        store.get(&stored.content_hash),
        Err(StoreError::NotFound { .. })
    ));
    let kinds: Vec<String> = store
        .events_after(0, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["memory_stored", "memory_updated", "memory_deleted"]);
}

/// The same content twice is refused with the existing hash, and writes nothing.
#[test]
fn duplicate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .insert(record("same", &[], [1.0, 0.0, 0.0, 0.0]))
        .unwrap();
    let err = store
        .insert(record("same", &[], [0.0, 1.0, 0.0, 0.0]))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Duplicate { content_hash } if content_hash == super::super::memory::content_hash("same"))
    );
    assert_eq!(store.count().unwrap(), 1);
    assert_eq!(store.events_after(0, 10).unwrap().len(), 1);
}

/// Updating or deleting an unknown hash is NotFound and records no event.
#[test]
fn unknown_hash_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert!(matches!(
        store.delete("nope"),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.update("nope", MemoryPatch::default()),
        Err(StoreError::NotFound { .. })
    ));
    assert!(store.events_after(0, 10).unwrap().is_empty());
}

/// Search ranks by distance, and a tag filter applies before ranking, so it still
/// fills k from the tagged memories even when untagged ones are closer.
#[test]
fn filtered_search_fills_k() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for i in 0..10 {
        let tags: &[&str] = if i % 2 == 0 { &["even"] } else { &[] };
        store
            .insert(record(
                &format!("m{i}"),
                tags,
                [1.0, i as f32 * 0.1, 0.0, 0.0],
            ))
            .unwrap();
    }
    let query = unit([1.0, 0.0, 0.0, 0.0]);
    let all = store.search(&query, 3, &Filter::default()).unwrap();
    let contents: Vec<&str> = all.iter().map(|h| h.memory.content.as_str()).collect();
    assert_eq!(contents, ["m0", "m1", "m2"]);
    assert!((all[0].cosine_similarity - 1.0).abs() < 1e-6);

    let filter = Filter {
        tags: vec!["even".into()],
        ..Filter::default()
    };
    let even = store.search(&query, 4, &filter).unwrap();
    let contents: Vec<&str> = even.iter().map(|h| h.memory.content.as_str()).collect();
    assert_eq!(contents, ["m0", "m2", "m4", "m6"]);
}

/// Listing pages newest first and filters by all tags or by type.
#[test]
fn list_pages_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for i in 0..5 {
        let mut r = record(
            &format!("m{i}"),
            &["x", if i < 2 { "y" } else { "z" }],
            [1.0; DIM],
        );
        r.created_at = Some(1000.0 + i as f64);
        store.insert(r).unwrap();
    }
    let page = store.list(&Filter::default(), 1, 2).unwrap();
    assert_eq!(page.total, 5);
    let contents: Vec<&str> = page.memories.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["m4", "m3"]);
    let page3 = store.list(&Filter::default(), 3, 2).unwrap();
    assert_eq!(page3.memories.len(), 1);

    let both = Filter {
        tags: vec!["x".into(), "y".into()],
        tag_match: TagMatch::All,
        ..Filter::default()
    };
    assert_eq!(store.list(&both, 1, 10).unwrap().total, 2);
    let any = Filter {
        tags: vec!["y".into(), "z".into()],
        ..Filter::default()
    };
    assert_eq!(store.list(&any, 1, 10).unwrap().total, 5);
    let typed = Filter {
        memory_type: Some("other".into()),
        ..Filter::default()
    };
    assert_eq!(store.list(&typed, 1, 10).unwrap().total, 0);
    let window = Filter {
        after: Some(1001.0),
        before: Some(1003.0),
        ..Filter::default()
    };
    assert_eq!(store.list(&window, 1, 10).unwrap().total, 2);
}

/// A vector of the wrong width is refused before it reaches SQLite.
#[test]
fn wrong_dimension_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut r = record("short", &[], [1.0; DIM]);
    r.vector.pop();
    assert!(matches!(
        store.insert(r),
        Err(StoreError::WrongDimension {
            expected: 4,
            actual: 3
        })
    ));
    assert!(store.search(&[1.0], 1, &Filter::default()).is_err());
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
    let err = Store::open(&path, &spec(), StoreOptions::default())
        .err()
        .unwrap();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
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
        .filter(|r| matches!(r, Err(StoreError::Duplicate { .. })))
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
    let with_copy = Store::open(&path, &spec(), StoreOptions::default()).unwrap();
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
    let searches = |store: &Store| -> Vec<Vec<(String, f64)>> {
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
    let vec0 = Store::open(
        &path,
        &spec(),
        StoreOptions {
            memory_vectors: false,
            ..StoreOptions::default()
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
        Err(StoreError::NotFound { .. })
    ));
    assert!(reopened.searches_vector_copy());
    same(&copied, &searches(&reopened));
}

//! The conformance suite: the guarantees listed in [`crate::storage`], as tests written
//! only against [`Storage`], so that every backend passes the same ones.
//!
//! A backend takes part with a [`Harness`] (how to make an empty database and reopen
//! it) and one line in its test module, `storage_conformance!(MyHarness);`, which
//! expands to one `#[tokio::test]` per property below. The vectors are hand-made and
//! [`DIM`] wide, so no model is needed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{EventRow, ExportCursor, NewRecord, Retention, Storage, StorageError, payload};
use crate::memory::{
    EmbeddingSpec, Filter, InvalidInput, Memory, MemoryPatch, ScoredMemory, TagMatch, content_hash,
};

/// Width of every vector in the suite.
pub(crate) const DIM: usize = 4;

/// How the suite makes and reopens databases of one backend.
pub(crate) trait Harness {
    /// Where one test's database lives (a temporary folder, a scratch schema);
    /// dropping it removes the database.
    type Place: Send + Sync;

    /// A new place holding no database yet.
    async fn place() -> Self::Place;

    /// Opens the database at `place`, creating it on first use, for `spec`'s model.
    async fn open(
        place: &Self::Place,
        spec: &EmbeddingSpec,
        retention: Retention,
    ) -> Result<Arc<dyn Storage>, StorageError>;
}

/// Expands to one `#[tokio::test]` per conformance property, each running against the
/// given [`Harness`].
macro_rules! storage_conformance {
    ($harness:ty) => {
        $crate::storage::conformance::storage_conformance!(@each $harness;
            crud_round_trip_with_events,
            each_write_appends_one_event,
            refused_writes_append_nothing,
            duplicate_is_refused,
            duplicates_within_a_batch_are_refused,
            unknown_hash_is_not_found,
            contains_reports_each_hash,
            model_is_pinned_on_reopen,
            filtered_search_fills_k,
            search_is_exact,
            similarity_of_a_stored_memory,
            stored_vector_finds_neighbours,
            tags_keep_the_order_given,
            keyword_search_ranks_by_matching_words,
            substring_search_ignores_case_newest_first,
            list_pages_and_filters,
            counts_tags_and_types,
            counts_memories_per_day,
            update_replaces_tags_and_merges_metadata,
            metadata_merged_past_its_limit_is_refused,
            event_payloads_are_bounded,
            retention_prunes_the_oldest_events,
            subscribers_hear_commits_in_order,
            wrong_dimension_is_refused,
            health_names_location_and_size,
            text_with_nul_matches_nothing,
            export_pages_in_creation_order,
        );
    };
    (@each $harness:ty; $($property:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $property() {
                $crate::storage::conformance::$property::<$harness>().await;
            }
        )*
    };
}
pub(crate) use storage_conformance;

/// A storage under test and the place it lives in, dropped in that order.
struct Fixture<H: Harness> {
    storage: Arc<dyn Storage>,
    _place: H::Place,
}

impl<H: Harness> std::ops::Deref for Fixture<H> {
    type Target = dyn Storage;

    fn deref(&self) -> &Self::Target {
        &*self.storage
    }
}

async fn fresh<H: Harness>() -> Fixture<H> {
    fresh_with::<H>(retention()).await
}

async fn fresh_with<H: Harness>(retention: Retention) -> Fixture<H> {
    let place = H::place().await;
    let storage = H::open(&place, &spec(), retention).await.unwrap();
    Fixture {
        storage,
        _place: place,
    }
}

pub(crate) fn spec() -> EmbeddingSpec {
    EmbeddingSpec {
        model_id: "test-model".into(),
        dimension: DIM,
    }
}

fn retention() -> Retention {
    Retention {
        max_age: Duration::from_secs(7 * 24 * 3600),
        max_rows: 100_000,
    }
}

pub(crate) fn unit(v: [f32; DIM]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

pub(crate) fn record(content: &str, tags: &[&str], vector: [f32; DIM]) -> NewRecord {
    NewRecord {
        content: content.into(),
        content_hash: content_hash(content),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        memory_type: Some("note".into()),
        metadata: Map::new(),
        vector: unit(vector),
        created_at: None,
        updated_at: None,
    }
}

/// Pseudo-random unit vectors, the same on every run.
fn scattered(count: usize, seed: u64) -> Vec<[f32; DIM]> {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
    };
    (0..count)
        .map(|_| std::array::from_fn(|_| next()))
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}

async fn all_events(storage: &dyn Storage) -> Vec<EventRow> {
    storage.events_after(0, 1000).await.unwrap()
}

async fn next_event(live: &mut tokio::sync::broadcast::Receiver<Arc<EventRow>>) -> Arc<EventRow> {
    tokio::time::timeout(Duration::from_secs(10), live.recv())
        .await
        .expect("an event within 10 s")
        .expect("the subscription is open and keeping up")
}

/// Insert, get, update, delete round-trip, each with its event row.
pub(crate) async fn crud_round_trip_with_events<H: Harness>() {
    let store = fresh::<H>().await;
    let stored = store
        .insert(record("alpha", &["a"], [1.0, 0.0, 0.0, 0.0]))
        .await
        .unwrap();
    assert_eq!(store.get(&stored.content_hash).await.unwrap(), stored);

    let patch = MemoryPatch {
        tags: Some(vec!["b".into(), "c".into()]),
        memory_type: Some(None),
        metadata: Some(json!({"k": 1}).as_object().unwrap().clone()),
        ..MemoryPatch::default()
    };
    let updated = store.update(&stored.content_hash, patch).await.unwrap();
    assert_eq!(updated.tags, vec!["b", "c"]);
    assert_eq!(updated.memory_type, None);
    assert_eq!(updated.metadata["k"], 1);
    assert_eq!(store.get(&stored.content_hash).await.unwrap(), updated);

    store.delete(&stored.content_hash).await.unwrap();
    assert!(matches!(
        store.get(&stored.content_hash).await,
        Err(StorageError::NotFound { .. })
    ));
    let kinds: Vec<String> = store
        .events_after(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["memory_stored", "memory_updated", "memory_deleted"]);
}

/// Every write appends one event naming its memory, with a rising sequence number, the
/// head at the last one, and the payload fields subscribers read.
pub(crate) async fn each_write_appends_one_event<H: Harness>() {
    let store = fresh::<H>().await;
    assert_eq!(store.head_seq().await.unwrap(), 0);
    assert_eq!(store.oldest_seq().await.unwrap(), None);
    let first = store
        .insert(record("first", &["t"], [1.0, 0.0, 0.0, 0.0]))
        .await
        .unwrap();
    let second = store
        .insert_many(vec![record("second", &[], [0.0, 1.0, 0.0, 0.0])])
        .await
        .unwrap()
        .pop()
        .unwrap()
        .unwrap();
    store
        .update(&first.content_hash, MemoryPatch::default())
        .await
        .unwrap();
    store.delete(&second.content_hash).await.unwrap();

    let events = all_events(&*store).await;
    let written: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.kind.as_str(), e.content_hash.as_str()))
        .collect();
    assert_eq!(
        written,
        [
            ("memory_stored", first.content_hash.as_str()),
            ("memory_stored", second.content_hash.as_str()),
            ("memory_updated", first.content_hash.as_str()),
            ("memory_deleted", second.content_hash.as_str()),
        ]
    );
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(store.head_seq().await.unwrap(), events[3].seq);
    assert_eq!(store.oldest_seq().await.unwrap(), Some(events[0].seq));

    let payload = |event: &EventRow| -> Map<String, Value> {
        serde_json::from_str(&event.payload).expect("an event payload is a JSON object")
    };
    let stored = payload(&events[0]);
    assert_eq!(stored["content_hash"], json!(first.content_hash));
    assert_eq!(stored["content_preview"], json!("first"));
    assert_eq!(stored["tags"], json!(["t"]));
    assert_eq!(stored["memory_type"], json!("note"));
    assert!(stored["timestamp"].is_string());
    let updated = payload(&events[2]);
    assert_eq!(updated["content_hash"], json!(first.content_hash));
    assert!(updated["timestamp"].is_string());
}

/// An update whose merge would take metadata past `max_metadata_bytes` is refused
/// with the sizes, changes nothing and appends nothing; one that shrinks it passes.
pub(crate) async fn metadata_merged_past_its_limit_is_refused<H: Harness>() {
    let store = fresh::<H>().await;
    let mut r = record("growing", &[], [1.0; DIM]);
    r.metadata = json!({"a": "x".repeat(600)}).as_object().unwrap().clone();
    let stored = store.insert(r).await.unwrap();
    let head = store.head_seq().await.unwrap();
    let patch = |metadata: Value| MemoryPatch {
        metadata: Some(metadata.as_object().unwrap().clone()),
        max_metadata_bytes: Some(1000),
        ..MemoryPatch::default()
    };

    let error = store
        .update(&stored.content_hash, patch(json!({"b": "y".repeat(600)})))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StorageError::Invalid(InvalidInput::MetadataTooLarge { limit: 1000, actual }) if actual > 1000
        ),
        "{error}"
    );
    assert_eq!(store.get(&stored.content_hash).await.unwrap(), stored);
    assert_eq!(store.head_seq().await.unwrap(), head);

    let replaced = store
        .update(
            &stored.content_hash,
            patch(json!({"a": null, "b": "y".repeat(600)})),
        )
        .await
        .unwrap();
    assert_eq!(
        Value::Object(replaced.metadata),
        json!({"b": "y".repeat(600)})
    );
}

/// No event payload passes `payload::MAX_EVENT_BYTES`, however large the memory's
/// tags and metadata; what was left out is flagged.
pub(crate) async fn event_payloads_are_bounded<H: Harness>() {
    let store = fresh::<H>().await;
    let tags: Vec<String> = (0..64).map(|i| format!("{i:0>100}")).collect();
    let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let mut r = record(&"long content ".repeat(1000), &tag_refs, [1.0; DIM]);
    r.metadata = json!({"blob": "m".repeat(60_000)})
        .as_object()
        .unwrap()
        .clone();
    let stored = store.insert(r).await.unwrap();
    let metadata = json!({"more": "n".repeat(30_000)})
        .as_object()
        .unwrap()
        .clone();
    let patch = MemoryPatch {
        metadata: Some(metadata),
        ..MemoryPatch::default()
    };
    store.update(&stored.content_hash, patch).await.unwrap();
    store.delete(&stored.content_hash).await.unwrap();

    let events = all_events(&*store).await;
    assert_eq!(events.len(), 3);
    for event in &events {
        assert!(
            event.payload.len() <= payload::MAX_EVENT_BYTES,
            "{} is {} bytes",
            event.kind,
            event.payload.len()
        );
        let fields: Map<String, Value> = serde_json::from_str(&event.payload).unwrap();
        assert_eq!(
            fields["content_hash"],
            json!(stored.content_hash),
            "{}",
            event.kind
        );
    }
    let updated: Map<String, Value> = serde_json::from_str(&events[1].payload).unwrap();
    assert_eq!(updated["metadata_truncated"], true);
}

/// A refused write (duplicate, unknown hash, wrong width) appends no event.
pub(crate) async fn refused_writes_append_nothing<H: Harness>() {
    let store = fresh::<H>().await;
    store.insert(record("kept", &[], [1.0; DIM])).await.unwrap();
    let head = store.head_seq().await.unwrap();
    assert!(store.insert(record("kept", &[], [1.0; DIM])).await.is_err());
    assert!(
        store
            .update("unknown", MemoryPatch::default())
            .await
            .is_err()
    );
    assert!(store.delete("unknown").await.is_err());
    let mut narrow = record("narrow", &[], [1.0; DIM]);
    narrow.vector.pop();
    assert!(store.insert(narrow).await.is_err());
    assert_eq!(store.head_seq().await.unwrap(), head);
    assert_eq!(all_events(&*store).await.len(), 1);
    assert_eq!(store.count().await.unwrap(), 1);
}

/// The same content twice is refused with the existing hash, and writes nothing.
pub(crate) async fn duplicate_is_refused<H: Harness>() {
    let store = fresh::<H>().await;
    store
        .insert(record("same", &[], [1.0, 0.0, 0.0, 0.0]))
        .await
        .unwrap();
    let err = store
        .insert(record("same", &[], [0.0, 1.0, 0.0, 0.0]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::Duplicate { content_hash } if content_hash == crate::memory::content_hash("same"))
    );
    assert_eq!(store.count().await.unwrap(), 1);
    assert_eq!(store.events_after(0, 10).await.unwrap().len(), 1);
}

/// In one batch, a repeat of an earlier item fails alone; the others are stored.
pub(crate) async fn duplicates_within_a_batch_are_refused<H: Harness>() {
    let store = fresh::<H>().await;
    let results = store
        .insert_many(vec![
            record("one", &[], [1.0, 0.0, 0.0, 0.0]),
            record("two", &[], [0.0, 1.0, 0.0, 0.0]),
            record("one", &[], [0.0, 0.0, 1.0, 0.0]),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].as_ref().unwrap().content, "one");
    assert_eq!(results[1].as_ref().unwrap().content, "two");
    assert!(
        matches!(&results[2], Err(StorageError::Duplicate { content_hash }) if *content_hash == crate::memory::content_hash("one"))
    );
    assert_eq!(store.count().await.unwrap(), 2);
    assert_eq!(all_events(&*store).await.len(), 2);
}

/// Updating or deleting an unknown hash is NotFound and records no event.
pub(crate) async fn unknown_hash_is_not_found<H: Harness>() {
    let store = fresh::<H>().await;
    assert!(matches!(
        store.delete("nope").await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        store.update("nope", MemoryPatch::default()).await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(store.events_after(0, 10).await.unwrap().is_empty());
    assert!(matches!(
        store.get("nope").await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .similarities(&unit([1.0; DIM]), &["nope".into()])
            .await,
        Err(StorageError::NotFound { .. })
    ));
}

/// `contains` answers for each hash, in order.
pub(crate) async fn contains_reports_each_hash<H: Harness>() {
    let store = fresh::<H>().await;
    store.insert(record("here", &[], [1.0; DIM])).await.unwrap();
    let asked = [content_hash("gone"), content_hash("here"), "x".into()];
    assert_eq!(store.contains(&asked).await.unwrap(), [false, true, false]);
    assert!(store.contains(&[]).await.unwrap().is_empty());
}

/// A database opened by one model refuses another, naming both, and the refused open
/// changes nothing.
pub(crate) async fn model_is_pinned_on_reopen<H: Harness>() {
    let place = H::place().await;
    let storage = H::open(&place, &spec(), retention()).await.unwrap();
    let stored = storage
        .insert(record("pinned", &["p"], [1.0, 2.0, 3.0, 4.0]))
        .await
        .unwrap();
    drop(storage);

    let other = EmbeddingSpec {
        model_id: "other-model".into(),
        dimension: DIM + 1,
    };
    let err = H::open(&place, &other, retention()).await.err().unwrap();
    let message = err.to_string();
    assert!(matches!(err, StorageError::ModelMismatch { .. }), "{err}");
    for needle in ["test-model", "4", "other-model", "5"] {
        assert!(message.contains(needle), "{needle} missing from: {message}");
    }

    let storage = H::open(&place, &spec(), retention()).await.unwrap();
    assert_eq!(storage.get(&stored.content_hash).await.unwrap(), stored);
    let hits = storage
        .search(&unit([1.0, 2.0, 3.0, 4.0]), 1, &Filter::default())
        .await
        .unwrap();
    assert_eq!(hits[0].memory, stored);
}

/// Search ranks by distance, and a tag filter applies before ranking, so it still
/// fills k from the tagged memories even when untagged ones are closer.
pub(crate) async fn filtered_search_fills_k<H: Harness>() {
    let store = fresh::<H>().await;
    for i in 0..10 {
        let tags: &[&str] = if i % 2 == 0 { &["even"] } else { &[] };
        store
            .insert(record(
                &format!("m{i}"),
                tags,
                [1.0, i as f32 * 0.1, 0.0, 0.0],
            ))
            .await
            .unwrap();
    }
    let query = unit([1.0, 0.0, 0.0, 0.0]);
    let all = store.search(&query, 3, &Filter::default()).await.unwrap();
    let contents: Vec<&str> = all.iter().map(|h| h.memory.content.as_str()).collect();
    assert_eq!(contents, ["m0", "m1", "m2"]);
    assert!((all[0].cosine_similarity - 1.0).abs() < 1e-6);

    let filter = Filter {
        tags: vec!["even".into()],
        ..Filter::default()
    };
    let even = store.search(&query, 4, &filter).await.unwrap();
    let contents: Vec<&str> = even.iter().map(|h| h.memory.content.as_str()).collect();
    assert_eq!(contents, ["m0", "m2", "m4", "m6"]);
}

/// Search returns exactly the k nearest by cosine similarity, filtered or not: the
/// same memories as a brute-force scan, with the same scores, best first.
pub(crate) async fn search_is_exact<H: Harness>() {
    let store = fresh::<H>().await;
    let vectors: Vec<Vec<f32>> = scattered(300, 7).into_iter().map(unit).collect();
    let records: Vec<NewRecord> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let tags: &[&str] = if i % 3 == 0 { &["third"] } else { &[] };
            NewRecord {
                vector: v.clone(),
                ..record(&format!("point {i}"), tags, [1.0; DIM])
            }
        })
        .collect();
    assert!(
        store
            .insert_many(records)
            .await
            .unwrap()
            .iter()
            .all(Result::is_ok)
    );
    let third = Filter {
        tags: vec!["third".into()],
        ..Filter::default()
    };
    for query in scattered(8, 11).into_iter().map(unit) {
        for (filter, step) in [(Filter::default(), 1), (third.clone(), 3)] {
            let k = 10;
            let mut truth: Vec<(f64, String)> = vectors
                .iter()
                .enumerate()
                .step_by(step)
                .map(|(i, v)| (dot(&query, v), content_hash(&format!("point {i}"))))
                .collect();
            truth.sort_by(|a, b| b.0.total_cmp(&a.0));
            truth.truncate(k);
            let hits: Vec<ScoredMemory> = store.search(&query, k, &filter).await.unwrap();
            assert_eq!(hits.len(), k);
            let found: HashSet<&str> = hits
                .iter()
                .map(|h| h.memory.content_hash.as_str())
                .collect();
            let expected: HashSet<&str> = truth.iter().map(|t| t.1.as_str()).collect();
            assert_eq!(found, expected, "recall below 1.0");
            for (hit, (score, _)) in hits.iter().zip(&truth) {
                assert!(
                    (hit.cosine_similarity - score).abs() < 1e-5,
                    "{} vs {score}",
                    hit.cosine_similarity
                );
            }
        }
    }
}

/// `similarity` is the cosine between a vector and one stored memory's vector.
pub(crate) async fn similarity_of_a_stored_memory<H: Harness>() {
    let store = fresh::<H>().await;
    let stored = store
        .insert(record("target", &[], [1.0, 1.0, 0.0, 0.0]))
        .await
        .unwrap();
    let query = unit([1.0, 0.0, 0.0, 0.0]);
    let similarity = store
        .similarities(&query, &[stored.content_hash])
        .await
        .unwrap()[0];
    let expected = dot(&query, &unit([1.0, 1.0, 0.0, 0.0]));
    assert!((similarity - expected).abs() < 1e-5, "{similarity}");
}

/// A memory's stored vector is the one it was stored with, searching by it finds the
/// memory first and then its nearest neighbour, and an unknown hash is not found.
pub(crate) async fn stored_vector_finds_neighbours<H: Harness>() {
    let store = fresh::<H>().await;
    let mut hashes = Vec::new();
    for (content, v) in [
        ("target", [1.0, 1.0, 0.0, 0.0]),
        ("near", [1.0, 0.9, 0.1, 0.0]),
        ("far", [0.0, 0.0, 0.0, 1.0]),
    ] {
        let stored = store.insert(record(content, &[], v)).await.unwrap();
        hashes.push(stored.content_hash);
    }
    let vector = store.stored_vector(&hashes[0]).await.unwrap();
    let expected = unit([1.0, 1.0, 0.0, 0.0]);
    assert_eq!(vector.len(), DIM);
    assert!(
        vector
            .iter()
            .zip(&expected)
            .all(|(a, b)| (a - b).abs() < 1e-6)
    );
    let found: Vec<String> = store
        .search(&vector, 2, &Filter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|hit| hit.memory.content_hash)
        .collect();
    assert_eq!(found, hashes[..2]);
    for unknown in ["0".repeat(64), "nul\0hash".to_owned()] {
        assert!(matches!(
            store.stored_vector(&unknown).await,
            Err(StorageError::NotFound { .. })
        ));
    }
}

/// Tags come back in the order they were stored (or last replaced) in, on every read.
pub(crate) async fn tags_keep_the_order_given<H: Harness>() {
    let store = fresh::<H>().await;
    let stored = store
        .insert(record("ordered", &["zeta", "alpha", "mid"], [1.0; DIM]))
        .await
        .unwrap();
    assert_eq!(stored.tags, ["zeta", "alpha", "mid"]);
    assert_eq!(
        store.get(&stored.content_hash).await.unwrap().tags,
        stored.tags
    );
    let listed = store.list(&Filter::default(), 1, 10).await.unwrap();
    assert_eq!(listed.memories[0].tags, stored.tags);
    let patch = MemoryPatch {
        tags: Some(vec!["b".into(), "a".into(), "b".into()]),
        ..MemoryPatch::default()
    };
    let updated = store.update(&stored.content_hash, patch).await.unwrap();
    assert_eq!(updated.tags, ["b", "a"]);
    assert_eq!(
        store.get(&stored.content_hash).await.unwrap().tags,
        ["b", "a"]
    );
}

/// Full-text search ranks a memory matching more of the words first, leaves out
/// memories matching none, applies the filter, and reads no query syntax.
pub(crate) async fn keyword_search_ranks_by_matching_words<H: Harness>() {
    let store = fresh::<H>().await;
    for (content, tags) in [
        ("apple banana cherry pie", &["fruit"][..]),
        ("apple tart recipe", &["fruit"]),
        ("banana bread", &["baking"]),
        ("nothing relevant here", &["fruit"]),
        ("error E1234-XK in the parser", &[]),
    ] {
        store
            .insert(record(content, tags, [1.0; DIM]))
            .await
            .unwrap();
    }
    let contents = |memories: Vec<crate::memory::Memory>| -> Vec<String> {
        memories.into_iter().map(|m| m.content).collect()
    };
    let hits = contents(
        store
            .keyword_search("apple banana cherry", 10, &Filter::default())
            .await
            .unwrap(),
    );
    assert_eq!(hits.len(), 3, "{hits:?}");
    assert_eq!(hits[0], "apple banana cherry pie");
    let rest: HashSet<&str> = hits[1..].iter().map(String::as_str).collect();
    assert_eq!(rest, HashSet::from(["apple tart recipe", "banana bread"]));

    let fruit = Filter {
        tags: vec!["fruit".into()],
        ..Filter::default()
    };
    let hits = contents(
        store
            .keyword_search("apple banana cherry", 10, &fruit)
            .await
            .unwrap(),
    );
    assert_eq!(hits, ["apple banana cherry pie", "apple tart recipe"]);
    let hits = contents(
        store
            .keyword_search("apple banana cherry", 1, &Filter::default())
            .await
            .unwrap(),
    );
    assert_eq!(hits, ["apple banana cherry pie"]);

    let hits = contents(
        store
            .keyword_search("E1234-XK", 10, &Filter::default())
            .await
            .unwrap(),
    );
    assert_eq!(hits, ["error E1234-XK in the parser"]);
    for syntax in ["\"", "(* NEAR", "apple\" OR \"", ""] {
        assert!(
            store
                .keyword_search(syntax, 10, &Filter::default())
                .await
                .is_ok(),
            "{syntax:?}"
        );
    }
}

/// Substring search ignores ASCII case, returns the newest first and honours k and
/// the filter.
pub(crate) async fn substring_search_ignores_case_newest_first<H: Harness>() {
    let store = fresh::<H>().await;
    for (i, content) in ["a NEEDLE here", "needle there", "haystack", "Needles"]
        .into_iter()
        .enumerate()
    {
        let mut r = record(content, &[], [1.0; DIM]);
        r.created_at = Some(1000.0 + i as f64);
        if i == 3 {
            r.memory_type = Some("other".into());
        }
        store.insert(r).await.unwrap();
    }
    let contents = |memories: Vec<crate::memory::Memory>| -> Vec<String> {
        memories.into_iter().map(|m| m.content).collect()
    };
    let all = store
        .substring_search("needle", 10, &Filter::default())
        .await
        .unwrap();
    assert_eq!(contents(all), ["Needles", "needle there", "a NEEDLE here"]);
    let newest = store
        .substring_search("NEEDLE", 1, &Filter::default())
        .await
        .unwrap();
    assert_eq!(contents(newest), ["Needles"]);
    let notes = Filter {
        memory_type: Some("note".into()),
        ..Filter::default()
    };
    let typed = store.substring_search("needle", 10, &notes).await.unwrap();
    assert_eq!(contents(typed), ["needle there", "a NEEDLE here"]);
}

/// Listing pages newest first and filters by all tags or by type.
pub(crate) async fn list_pages_and_filters<H: Harness>() {
    let store = fresh::<H>().await;
    for i in 0..5 {
        let mut r = record(
            &format!("m{i}"),
            &["x", if i < 2 { "y" } else { "z" }],
            [1.0; DIM],
        );
        r.created_at = Some(1000.0 + i as f64);
        store.insert(r).await.unwrap();
    }
    let page = store.list(&Filter::default(), 1, 2).await.unwrap();
    assert_eq!(page.total, 5);
    let contents: Vec<&str> = page.memories.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["m4", "m3"]);
    let page3 = store.list(&Filter::default(), 3, 2).await.unwrap();
    assert_eq!(page3.memories.len(), 1);

    let both = Filter {
        tags: vec!["x".into(), "y".into()],
        tag_match: TagMatch::All,
        ..Filter::default()
    };
    assert_eq!(store.list(&both, 1, 10).await.unwrap().total, 2);
    let any = Filter {
        tags: vec!["y".into(), "z".into()],
        ..Filter::default()
    };
    assert_eq!(store.list(&any, 1, 10).await.unwrap().total, 5);
    let typed = Filter {
        memory_type: Some("other".into()),
        ..Filter::default()
    };
    assert_eq!(store.list(&typed, 1, 10).await.unwrap().total, 0);
    let window = Filter {
        after: Some(1001.0),
        before: Some(1003.0),
        ..Filter::default()
    };
    assert_eq!(store.list(&window, 1, 10).await.unwrap().total, 2);
}

/// Count, tag counts and type counts, most used first and cut at the limit; a memory
/// without a type is not counted as one.
pub(crate) async fn counts_tags_and_types<H: Harness>() {
    let store = fresh::<H>().await;
    for (i, (tags, memory_type)) in [
        (&["x", "y"][..], Some("note")),
        (&["x"], Some("note")),
        (&["x", "z"], Some("todo")),
        (&["y"], None),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = record(&format!("c{i}"), tags, [1.0; DIM]);
        r.memory_type = memory_type.map(str::to_owned);
        store.insert(r).await.unwrap();
    }
    assert_eq!(store.count().await.unwrap(), 4);
    let counted = |pairs: &[(&str, u64)]| -> Vec<(String, u64)> {
        pairs.iter().map(|(s, n)| (s.to_string(), *n)).collect()
    };
    assert_eq!(
        store.tag_counts(10).await.unwrap(),
        counted(&[("x", 3), ("y", 2), ("z", 1)])
    );
    assert_eq!(
        store.tag_counts(2).await.unwrap(),
        counted(&[("x", 3), ("y", 2)])
    );
    assert_eq!(
        store.type_counts(10).await.unwrap(),
        counted(&[("note", 2), ("todo", 1)])
    );
    assert_eq!(store.type_counts(1).await.unwrap(), counted(&[("note", 2)]));
}

/// Memories per day: only those created since the start, grouped by the day their
/// time falls on once shifted by the offset, oldest first, days without any absent.
pub(crate) async fn counts_memories_per_day<H: Harness>() {
    let store = fresh::<H>().await;
    let day = 86_400.0;
    // Day 100 at 23:30 UTC is day 101 at UTC+1; 200 s after it is one second too early.
    for (i, at) in [
        50.0 * day,
        100.0 * day + 10.0,
        100.0 * day + 23.5 * 3600.0,
        102.0 * day + 5.0,
        102.0 * day + 6.0,
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = record(&format!("d{i}"), &[], [1.0; DIM]);
        r.created_at = Some(at);
        store.insert(r).await.unwrap();
    }
    let since = 100.0 * day;
    assert_eq!(
        store.daily_counts(since, 0).await.unwrap(),
        [(100, 2), (102, 2)]
    );
    assert_eq!(
        store.daily_counts(since, 3600).await.unwrap(),
        [(100, 1), (101, 1), (102, 2)]
    );
    assert_eq!(
        store.daily_counts(103.0 * day, 0).await.unwrap(),
        Vec::<(i64, u64)>::new()
    );
}

/// An update replaces the tags, merges metadata (null removes a key), sets or clears
/// the type only when asked, and is what later reads return.
pub(crate) async fn update_replaces_tags_and_merges_metadata<H: Harness>() {
    let store = fresh::<H>().await;
    let mut r = record("patched", &["a", "b"], [1.0; DIM]);
    r.metadata = json!({"keep": 1, "drop": 2}).as_object().unwrap().clone();
    let stored = store.insert(r).await.unwrap();

    let updated = store
        .update(
            &stored.content_hash,
            MemoryPatch {
                tags: Some(vec!["c".into()]),
                memory_type: None,
                metadata: Some(
                    json!({"drop": null, "new": true})
                        .as_object()
                        .unwrap()
                        .clone(),
                ),
                ..MemoryPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.tags, ["c"]);
    assert_eq!(updated.memory_type.as_deref(), Some("note"));
    assert_eq!(
        Value::Object(updated.metadata.clone()),
        json!({"keep": 1, "new": true})
    );
    assert_eq!(updated.content, stored.content);
    assert_eq!(updated.created_at, stored.created_at);
    assert!(updated.updated_at >= stored.updated_at);
    assert_eq!(store.get(&stored.content_hash).await.unwrap(), updated);
    let tagged = Filter {
        tags: vec!["a".into()],
        ..Filter::default()
    };
    assert_eq!(store.list(&tagged, 1, 10).await.unwrap().total, 0);

    let cleared = store
        .update(
            &stored.content_hash,
            MemoryPatch {
                memory_type: Some(None),
                ..MemoryPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.memory_type, None);
    assert_eq!(cleared.tags, ["c"]);
    assert_eq!(cleared.metadata, updated.metadata);

    let deleted = store.delete(&stored.content_hash).await.unwrap();
    assert_eq!(deleted, cleared);
    assert_eq!(store.count().await.unwrap(), 0);
    assert!(
        store
            .search(&unit([1.0; DIM]), 5, &Filter::default())
            .await
            .unwrap()
            .is_empty()
    );
}

/// With room for three events, five writes leave the newest three: the oldest moves
/// up, the head still counts all five, and reads after a sequence number page in order.
pub(crate) async fn retention_prunes_the_oldest_events<H: Harness>() {
    let store = fresh_with::<H>(Retention {
        max_rows: 3,
        ..retention()
    })
    .await;
    let mut hashes = Vec::new();
    for i in 0..5 {
        let stored = store
            .insert(record(&format!("r{i}"), &[], [1.0; DIM]))
            .await
            .unwrap();
        hashes.push(stored.content_hash);
    }
    let kept = all_events(&*store).await;
    let kept_hashes: Vec<&str> = kept.iter().map(|e| e.content_hash.as_str()).collect();
    assert_eq!(
        kept_hashes,
        hashes[2..].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(store.oldest_seq().await.unwrap(), Some(kept[0].seq));
    assert_eq!(store.head_seq().await.unwrap(), kept[2].seq);
    assert_eq!(
        store.events_after(kept[0].seq, 1).await.unwrap(),
        [kept[1].clone()]
    );
    assert!(
        store
            .events_after(kept[2].seq, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Numbers are never reused after pruning.
    store.delete(&hashes[4]).await.unwrap();
    assert!(store.head_seq().await.unwrap() > kept[2].seq);
}

/// A subscriber hears every committed write from the moment it subscribed, in order,
/// as the rows the table holds, and nothing for a refused write.
pub(crate) async fn subscribers_hear_commits_in_order<H: Harness>() {
    let store = fresh::<H>().await;
    store
        .insert(record("before", &[], [1.0; DIM]))
        .await
        .unwrap();
    let mut live = store.subscribe();
    let stored = store
        .insert(record("during", &["s"], [0.0, 1.0, 0.0, 0.0]))
        .await
        .unwrap();
    assert!(
        store
            .insert(record("during", &[], [1.0; DIM]))
            .await
            .is_err()
    );
    store
        .update(&stored.content_hash, MemoryPatch::default())
        .await
        .unwrap();
    store.delete(&stored.content_hash).await.unwrap();

    let table = all_events(&*store).await;
    assert_eq!(table.len(), 4);
    for expected in &table[1..] {
        assert_eq!(*next_event(&mut live).await, *expected);
    }
    assert!(live.is_empty());
}

/// A vector of the wrong width is refused before it reaches the database.
pub(crate) async fn wrong_dimension_is_refused<H: Harness>() {
    let store = fresh::<H>().await;
    let mut r = record("short", &[], [1.0; DIM]);
    r.vector.pop();
    assert!(matches!(
        store.insert(r).await,
        Err(StorageError::WrongDimension {
            expected: 4,
            actual: 3
        })
    ));
    assert!(store.search(&[1.0], 1, &Filter::default()).await.is_err());
}

/// Detailed health can say where the data lives and how much disk it takes.
pub(crate) async fn health_names_location_and_size<H: Harness>() {
    let store = fresh::<H>().await;
    store
        .insert(record("weighed", &[], [1.0; DIM]))
        .await
        .unwrap();
    assert!(!store.location().is_empty());
    assert!(store.size_on_disk().await.unwrap() > 0);
}

/// Lookups and filters holding U+0000 (which no stored text holds, and PostgreSQL
/// refuses as a parameter) find nothing rather than fail.
pub(crate) async fn text_with_nul_matches_nothing<H: Harness>() {
    let store = fresh::<H>().await;
    store
        .insert(record("plain", &["t"], [1.0; DIM]))
        .await
        .unwrap();
    let nul = "a\0b".to_owned();
    assert!(matches!(
        store.get(&nul).await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        store.delete(&nul).await,
        Err(StorageError::NotFound { .. })
    ));
    assert_eq!(
        store.contains(std::slice::from_ref(&nul)).await.unwrap(),
        [false]
    );
    let tagged = Filter {
        tags: vec![nul.clone()],
        ..Filter::default()
    };
    assert_eq!(store.list(&tagged, 1, 10).await.unwrap().total, 0);
    let typed = Filter {
        memory_type: Some(nul.clone()),
        ..Filter::default()
    };
    assert_eq!(store.list(&typed, 1, 10).await.unwrap().total, 0);
    assert!(
        store
            .keyword_search(&nul, 10, &Filter::default())
            .await
            .is_ok()
    );
    assert_eq!(store.count().await.unwrap(), 1);
}

/// Export pages run by creation time, then content hash, each after the last one's
/// cursor: every memory once, none repeated, the given times kept.
pub(crate) async fn export_pages_in_creation_order<H: Harness>() {
    let store = fresh::<H>().await;
    let times = [30.0, 10.0, 20.0, 10.0, 40.0];
    let records: Vec<NewRecord> = times
        .iter()
        .enumerate()
        .map(|(i, &t)| NewRecord {
            created_at: Some(t),
            updated_at: Some(t + 1.5),
            ..record(&format!("exported {i}"), &[], [1.0, i as f32, 0.0, 0.0])
        })
        .collect();
    for result in store.insert_many(records).await.unwrap() {
        result.unwrap();
    }
    let mut seen: Vec<Memory> = Vec::new();
    let mut cursor: Option<ExportCursor> = None;
    loop {
        let page = store.export_page(cursor.as_ref(), 2).await.unwrap();
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 2);
        cursor = Some(ExportCursor::from(last));
        seen.extend(page);
    }
    assert_eq!(seen.len(), 5);
    let keys: Vec<(f64, String)> = seen
        .iter()
        .map(|m| (m.created_at, m.content_hash.clone()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(keys, sorted);
    assert!(seen.iter().all(|m| m.updated_at == m.created_at + 1.5));
}

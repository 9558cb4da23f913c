//! The memory service end to end through the real model and a real SQLite file.

use mnemo_server::embed::{EmbedError, EmbedModel, Embedder};
use mnemo_server::memory::{EmbeddingSpec, Filter, MemoryPatch, NewMemory, content_hash};
use mnemo_server::service::ServiceError;
use mnemo_server::storage::StorageError;
use mnemo_server::storage::sqlite::{SqliteOptions, SqliteStore};
use mnemo_server::testing::{TestService, embedder, open_service};
use serde_json::json;

fn memory(content: &str, tags: &[&str]) -> NewMemory {
    NewMemory {
        content: content.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..NewMemory::default()
    }
}

const DOG: &str = "My dog loves to play fetch in the park";
const TAX: &str = "Quarterly tax filing is due in April";
const COFFEE: &str = "The espresso machine needs descaling";

/// "puppy playing outside" finds the dog memory first: the vectors carry meaning.
#[tokio::test]
async fn semantic_search_ranks_by_meaning() {
    let t = TestService::new();
    for text in [TAX, DOG, COFFEE] {
        t.service.store(memory(text, &[])).await.unwrap();
    }
    let hits = t
        .service
        .search("puppy playing outside", 3, Filter::default())
        .await
        .unwrap();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0].memory.content, DOG);
    assert!(hits[0].cosine_similarity > hits[1].cosine_similarity + 0.1);
    assert!(hits[0].similarity_score() > 0.5 && hits[0].similarity_score() <= 1.0);
}

/// A tag filter returns only tagged memories and still fills k, even though untagged
/// memories are closer to the query.
#[tokio::test]
async fn tag_filtered_search_fills_k() {
    let t = TestService::new();
    for i in 0..6 {
        t.service
            .store(memory(&format!("{DOG}, day {i}"), &[]))
            .await
            .unwrap();
    }
    for text in [TAX, COFFEE, "Bake bread on Sunday", "Renew the passport"] {
        t.service.store(memory(text, &["chores"])).await.unwrap();
    }
    let filter = Filter {
        tags: vec!["Chores".into()],
        ..Filter::default()
    };
    let hits = t
        .service
        .search("puppy playing outside", 4, filter)
        .await
        .unwrap();
    assert_eq!(hits.len(), 4);
    assert!(hits.iter().all(|h| h.memory.tags == ["chores"]));
}

/// A time filter returns only memories from the window and still fills k.
#[tokio::test]
async fn time_filtered_search_fills_k() {
    let t = TestService::new();
    for i in 0..5 {
        t.service
            .store(memory(&format!("{DOG}, old {i}"), &[]))
            .await
            .unwrap();
    }
    let cutoff = mnemo_server::memory::now_epoch();
    for text in [TAX, COFFEE, "Bake bread on Sunday"] {
        t.service.store(memory(text, &[])).await.unwrap();
    }
    let filter = Filter {
        after: Some(cutoff),
        ..Filter::default()
    };
    let hits = t
        .service
        .search("puppy playing outside", 3, filter)
        .await
        .unwrap();
    assert_eq!(hits.len(), 3);
    assert!(hits.iter().all(|h| h.memory.created_at >= cutoff));
    assert!(hits.iter().all(|h| !h.memory.content.contains("dog")));
}

/// Everything survives closing and reopening the database, vectors included.
#[tokio::test]
async fn memories_and_vectors_persist() {
    let dir = tempfile::tempdir().unwrap();
    let service = open_service(&dir);
    let mut new = memory(DOG, &["pets"]);
    new.metadata = json!({"source": "test"}).as_object().unwrap().clone();
    let stored = service.store(new).await.unwrap();
    service.store(memory(TAX, &[])).await.unwrap();
    drop(service);

    let service = open_service(&dir);
    assert_eq!(service.get(&stored.content_hash).await.unwrap(), stored);
    assert_eq!(
        service.list(Filter::default(), 1, 10).await.unwrap().total,
        2
    );
    let hits = service
        .search("puppy playing outside", 1, Filter::default())
        .await
        .unwrap();
    assert_eq!(hits[0].memory, stored);
}

/// Storing the same content twice (modulo surrounding whitespace) is a duplicate that
/// names the existing memory; case makes a different memory.
#[tokio::test]
async fn duplicates_are_reported_with_their_hash() {
    let t = TestService::new();
    t.service.store(memory(DOG, &[])).await.unwrap();
    let err = t
        .service
        .store(memory(&format!("  {DOG}\n"), &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ServiceError::Storage(StorageError::Duplicate { content_hash: h }) if *h == content_hash(DOG)),
        "{err}"
    );
    t.service
        .store(memory(&DOG.to_uppercase(), &[]))
        .await
        .unwrap();
}

/// Bad input is refused with a reason and stores nothing.
#[tokio::test]
async fn invalid_input_is_refused() {
    let t = TestService::new();
    assert!(matches!(
        t.service.store(memory("   ", &[])).await,
        Err(ServiceError::Invalid(_))
    ));
    let huge = "x".repeat(mnemo_server::service::DEFAULT_MAX_CONTENT_BYTES + 1);
    assert!(matches!(
        t.service.store(memory(&huge, &[])).await,
        Err(ServiceError::Invalid(_))
    ));
    let long_tag = "t".repeat(200);
    assert!(matches!(
        t.service.store(memory(DOG, &[&long_tag])).await,
        Err(ServiceError::Invalid(_))
    ));
    assert_eq!(
        t.service
            .list(Filter::default(), 1, 10)
            .await
            .unwrap()
            .total,
        0
    );
}

/// Update replaces tags, merges metadata and is visible to reads; delete removes it
/// from search too.
#[tokio::test]
async fn update_and_delete_through_the_service() {
    let t = TestService::new();
    let mut new = memory(DOG, &["a"]);
    new.metadata = json!({"keep": 1, "drop": 2}).as_object().unwrap().clone();
    let stored = t.service.store(new).await.unwrap();
    let patch = MemoryPatch {
        tags: Some(vec![" B ".into(), "b".into()]),
        metadata: Some(
            json!({"drop": null, "new": true})
                .as_object()
                .unwrap()
                .clone(),
        ),
        ..MemoryPatch::default()
    };
    let updated = t.service.update(&stored.content_hash, patch).await.unwrap();
    assert_eq!(updated.tags, ["b"]);
    assert_eq!(
        serde_json::Value::Object(updated.metadata.clone()),
        json!({"keep": 1, "new": true})
    );
    assert!(updated.updated_at >= stored.updated_at);

    t.service.delete(&stored.content_hash).await.unwrap();
    let hits = t.service.search(DOG, 5, Filter::default()).await.unwrap();
    assert!(hits.is_empty());
}

/// 8 threads × 200 mixed writes and reads on one store: no errors, and in particular
/// no "database is locked".
#[test]
fn concurrent_writes_and_reads_never_fail() {
    const THREADS: usize = 8;
    const OPS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let embedder = embedder();
    let store = std::sync::Arc::new(
        SqliteStore::open(
            &dir.path().join("memories.db"),
            embedder.spec(),
            SqliteOptions::default(),
        )
        .unwrap(),
    );
    // Half the operations are writes; embed their texts up front so the threads race
    // on the database, not on the model.
    let texts: Vec<String> = (0..THREADS * OPS / 2)
        .map(|i| {
            format!(
                "Note {i}: the build on machine {} took {} minutes",
                i % 7,
                i % 13
            )
        })
        .collect();
    let vectors = embedder.embed_blocking(texts.clone()).unwrap();
    let query = vectors[0].clone();
    let work: Vec<_> = texts.into_iter().zip(vectors).collect();
    let chunks: Vec<Vec<_>> = work.chunks(OPS / 2).map(|c| c.to_vec()).collect();

    let threads: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let store = store.clone();
            let query = query.clone();
            std::thread::spawn(move || -> Result<(), StorageError> {
                for (text, vector) in chunk {
                    let record = mnemo_server::storage::NewRecord {
                        content_hash: content_hash(&text),
                        content: text,
                        tags: vec!["load".into()],
                        memory_type: None,
                        metadata: Default::default(),
                        vector,
                        created_at: None,
                        updated_at: None,
                    };
                    let stored = store.insert(record)?;
                    store.get(&stored.content_hash)?;
                    store.search(&query, 5, &Filter::default())?;
                    store.list(&Filter::default(), 1, 20)?;
                }
                Ok(())
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap().unwrap();
    }
    assert_eq!(store.count().unwrap(), (THREADS * OPS / 2) as u64);
    assert_eq!(
        store.events_after(0, 10_000).unwrap().len(),
        THREADS * OPS / 2
    );
}

/// A 512-dimension stand-in model: only its spec matters to the store.
struct Fake512 {
    spec: EmbeddingSpec,
}

impl EmbedModel for Fake512 {
    fn spec(&self) -> &EmbeddingSpec {
        &self.spec
    }

    fn embed(&mut self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|_| vec![0.0; 512]).collect())
    }
}

/// A database made with the 384-dimension model refuses a 512-dimension embedder, and
/// the error names both.
#[test]
fn another_model_cannot_open_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memories.db");
    let real = embedder().spec().clone();
    assert_eq!(real.dimension, 384);
    drop(SqliteStore::open(&path, &real, SqliteOptions::default()).unwrap());

    let fake = Embedder::start(
        Box::new(Fake512 {
            spec: EmbeddingSpec {
                model_id: "fake-512".into(),
                dimension: 512,
            },
        }),
        1,
    );
    let err = SqliteStore::open(&path, fake.spec(), SqliteOptions::default())
        .err()
        .unwrap();
    let message = err.to_string();
    assert!(matches!(err, StorageError::ModelMismatch { .. }));
    for needle in ["all-MiniLM-L6-v2", "384", "fake-512", "512"] {
        assert!(message.contains(needle), "{needle} missing from: {message}");
    }
    // The refused open changed nothing: the real model still opens it.
    drop(SqliteStore::open(&path, &real, SqliteOptions::default()).unwrap());
}

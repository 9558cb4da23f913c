//! Synthetic memories for the benchmarks that measure the store, not search quality
//! (`open-bench`, `backup-bench`): a sentence's length of text and a random unit
//! vector, cheap enough to make 100k without the model.

use std::ops::Range;

use mnemo_server::storage::sqlite::SqliteStore;
use mnemo_server::storage::{NewRecord, StorageError};

/// The width of all-MiniLM-L6-v2's vectors, which the synthetic ones share.
pub const DIMENSION: usize = 384;

/// Memory number `i`, its vector drawn from the xorshift generator `state`.
pub fn record(i: usize, state: &mut u64) -> NewRecord {
    let mut vector: Vec<f32> = (0..DIMENSION)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            (*state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    vector.iter_mut().for_each(|x| *x /= norm);
    let content = format!("memory number {i}: a sentence of about the length people store");
    NewRecord {
        content_hash: mnemo_server::memory::content_hash(&content),
        content,
        tags: vec![format!("tag{}", i % 50)],
        memory_type: Some("note".into()),
        metadata: Default::default(),
        vector,
        created_at: None,
        updated_at: None,
    }
}

/// Stores memories number `range` into `store`, a thousand per group commit, then
/// folds the log into the file. The same seed each time, so a benchmark's database is
/// the same from run to run.
pub fn fill(store: &SqliteStore, range: Range<usize>) -> Result<(), StorageError> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for start in range.clone().step_by(1000) {
        let records = (start..(start + 1000).min(range.end))
            .map(|i| record(i, &mut state))
            .collect();
        for result in store.insert_many(records) {
            result?;
        }
    }
    store.checkpoint()
}

//! Synthetic memories for the benchmarks that measure the store, not search quality
//! (`open-bench`, `backup-bench`): a sentence's length of text and a random unit
//! vector, cheap enough to make 100k without the model.

use mnemo_server::storage::NewRecord;

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

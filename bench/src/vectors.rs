//! The harness's own embeddings of the corpus, for the exact top-10 that recall is
//! measured against, cached in `$MNEMO_CACHE_DIR/bench/` so that 100k memories are
//! embedded once per machine, not once per run.
//!
//! The cache file is a sequence of records: 8 bytes of FNV-1a of the text, then the
//! vector as little-endian f32. A record counts only if its hash matches the text at its
//! position, so a changed corpus or model invalidates exactly what changed.

use std::io::Write;
use std::path::{Path, PathBuf};

use mnemo_server::embed::Embedder;

use crate::realtext::fnv1a;

/// Texts per model call while filling the cache.
const BATCH: usize = 64;

/// Unit vectors of a list of texts, row-major.
pub struct Vectors {
    pub dimension: usize,
    data: Vec<f32>,
}

impl Vectors {
    pub fn len(&self) -> usize {
        self.data.len() / self.dimension
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dimension..(i + 1) * self.dimension]
    }

    /// Embeds `texts`, reusing and extending the cache file `name` in `cache_dir`.
    pub fn embed_cached(
        embedder: &Embedder,
        cache_dir: &Path,
        name: &str,
        texts: &[String],
    ) -> anyhow::Result<Self> {
        let dimension = embedder.spec().dimension;
        let path: PathBuf = cache_dir.join(format!(
            "{name}-{}-{dimension}.f32",
            embedder.spec().model_id.replace('/', "_")
        ));
        let record = 8 + dimension * 4;
        let bytes = std::fs::read(&path).unwrap_or_default();
        let mut data = Vec::with_capacity(texts.len() * dimension);
        let mut valid = 0;
        for (text, chunk) in texts.iter().zip(bytes.chunks_exact(record)) {
            if chunk[..8] != fnv1a(text.as_bytes()).to_le_bytes() {
                break;
            }
            data.extend(
                chunk[8..]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
            valid += 1;
        }
        if valid < texts.len() {
            std::fs::create_dir_all(cache_dir)?;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .open(&path)?;
            file.set_len((valid * record) as u64)?;
            let mut file =
                std::io::BufWriter::new(std::fs::OpenOptions::new().append(true).open(&path)?);
            let started = std::time::Instant::now();
            for batch in texts[valid..].chunks(BATCH) {
                let vectors = embedder.embed_blocking(batch.to_vec())?;
                for (text, vector) in batch.iter().zip(vectors) {
                    file.write_all(&fnv1a(text.as_bytes()).to_le_bytes())?;
                    for x in &vector {
                        file.write_all(&x.to_le_bytes())?;
                    }
                    data.extend(vector);
                }
                valid += batch.len();
                if valid % 10_000 < BATCH {
                    eprintln!(
                        "embedded {valid}/{} {name} texts ({:.0}/s)",
                        texts.len(),
                        (valid as f64) / started.elapsed().as_secs_f64().max(1e-9)
                    );
                }
            }
            file.flush()?;
        }
        Ok(Self { dimension, data })
    }

    /// The `k` rows of the first `n` closest to `query` (highest dot product, which
    /// on unit vectors is the L2 order), as (row, dot), best first.
    pub fn top_k(&self, query: &[f32], n: usize, k: usize) -> Vec<(usize, f32)> {
        let mut scored: Vec<(usize, f32)> = (0..n.min(self.len()))
            .map(|i| (i, dot(self.row(i), query)))
            .collect();
        let k = k.min(scored.len());
        if k == 0 {
            return Vec::new();
        }
        scored.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
        scored.truncate(k);
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored
    }
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Fraction of `returned` rows that belong in the exact top `k` of the first `n`
/// rows. A returned row counts when it is at least as close as the exact k-th, less a
/// tolerance: the server embeds in batches of another shape than the harness, which
/// moves similarities by about 1e-6, and ties at the boundary are equally correct.
pub fn recall(vectors: &Vectors, query: &[f32], n: usize, k: usize, returned: &[usize]) -> f64 {
    let exact = vectors.top_k(query, n, k);
    let Some(&(_, kth)) = exact.last() else {
        return 1.0;
    };
    let hits = returned
        .iter()
        .take(k)
        .filter(|&&row| dot(vectors.row(row), query) >= kth - 1e-4)
        .count();
    hits as f64 / exact.len() as f64
}

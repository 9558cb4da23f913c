//! An in-memory copy of every vector, in one contiguous array, for exact search.
//!
//! sqlite-vec's vec0 table stays the source of truth: it is written in the same
//! transaction as the memory, and this copy is loaded from it at open and changed by
//! the writer thread only after a group has committed. A scan of the copy is a
//! straight pass over memory that the compiler vectorises; vec0's is a walk over
//! SQLite pages and chunk metadata, about three times slower at 100k vectors.
//!
//! Loading 100k vectors takes about 1.5 s here, longer than the model, so it happens on
//! the writer thread after the server is already healthy: the writer loads the copy
//! before it takes its first command (so no change can be missed), and searches scan
//! vec0 until the copy is ready.
//!
//! The copy is exact: every search computes every candidate's dot product (on unit
//! vectors, the L2 order), so recall is 1.0 by construction.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use mnemo_schema::migrations::VECTOR_TABLE;
use rusqlite::Connection;

use super::StoreError;

/// A committed change to the set of vectors.
#[derive(Debug, Clone)]
pub(super) enum Change {
    Insert { id: i64, vector: Vec<f32> },
    Delete { id: i64 },
}

pub(super) struct VectorCopy {
    dimension: usize,
    /// Set once the copy holds every committed vector.
    ready: AtomicBool,
    /// Readers scan under the read lock; the writer takes the write lock once per
    /// committed group.
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Memory id of each row of `data`.
    ids: Vec<i64>,
    /// `ids.len() * dimension` floats, row after row.
    data: Vec<f32>,
    /// Row of each memory id, for deletes and filtered scans.
    rows: HashMap<i64, usize>,
}

impl VectorCopy {
    /// An empty copy, not ready until [`VectorCopy::load`] has run.
    pub fn new(dimension: usize) -> Self {
        Self {
            dimension,
            ready: AtomicBool::new(false),
            inner: RwLock::default(),
        }
    }

    /// Reads every vector of the vec0 table and marks the copy ready. Only the writer
    /// thread calls this, before its first command, so nothing commits meanwhile.
    pub fn load(&self, conn: &Connection) -> Result<usize, StoreError> {
        let dimension = self.dimension;
        let mut inner = Inner::default();
        let mut statement =
            conn.prepare(&format!("SELECT rowid, embedding FROM {VECTOR_TABLE}"))?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let bytes: Vec<u8> = row.get(1)?;
            if bytes.len() != dimension * 4 {
                return Err(StoreError::WrongDimension {
                    expected: dimension,
                    actual: bytes.len() / 4,
                });
            }
            inner.rows.insert(id, inner.ids.len());
            inner.ids.push(id);
            inner.data.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
        }
        let count = inner.ids.len();
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = inner;
        self.ready.store(true, Ordering::Release);
        Ok(count)
    }

    /// Whether searches may use the copy.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Applies the changes of one committed group.
    pub fn apply(&self, changes: Vec<Change>) {
        if changes.is_empty() || !self.is_ready() {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        for change in changes {
            match change {
                Change::Insert { id, vector } => {
                    if vector.len() != self.dimension || inner.rows.contains_key(&id) {
                        continue;
                    }
                    let row = inner.ids.len();
                    inner.rows.insert(id, row);
                    inner.ids.push(id);
                    inner.data.extend(vector);
                }
                Change::Delete { id } => inner.remove(id, self.dimension),
            }
        }
    }

    /// The `k` closest vectors to `query` as (memory id, cosine similarity), best
    /// first; only among `candidates` when given.
    pub fn nearest(&self, query: &[f32], k: usize, candidates: Option<&[i64]>) -> Vec<(i64, f64)> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut best = TopK::new(k);
        let d = self.dimension;
        match candidates {
            None => {
                for (row, vector) in inner.data.chunks_exact(d).enumerate() {
                    best.offer(dot(vector, query), row);
                }
            }
            Some(ids) => {
                for id in ids {
                    // A memory committed after this scan's snapshot of the copy.
                    if let Some(&row) = inner.rows.get(id) {
                        best.offer(dot(&inner.data[row * d..(row + 1) * d], query), row);
                    }
                }
            }
        }
        best.into_sorted()
            .into_iter()
            .map(|(score, row)| (inner.ids[row], f64::from(score)))
            .collect()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .ids
            .len()
    }
}

impl Inner {
    /// Removes a row by moving the last row into its place.
    fn remove(&mut self, id: i64, dimension: usize) {
        let Some(row) = self.rows.remove(&id) else {
            return;
        };
        let last = self.ids.len() - 1;
        if row != last {
            let moved = self.ids[last];
            self.ids[row] = moved;
            self.rows.insert(moved, row);
            self.data
                .copy_within(last * dimension..(last + 1) * dimension, row * dimension);
        }
        self.ids.truncate(last);
        self.data.truncate(last * dimension);
    }
}

/// Dot product in eight independent lanes, so the compiler keeps them in SIMD
/// registers instead of one serial chain of additions.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for ((lane, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The best `k` (score, row) pairs seen, kept sorted best first. `k` is small (at
/// most a few hundred), so insertion into a sorted vector beats a heap.
struct TopK {
    k: usize,
    best: Vec<(f32, usize)>,
}

impl TopK {
    fn new(k: usize) -> Self {
        Self {
            k,
            best: Vec::with_capacity(k + 1),
        }
    }

    fn offer(&mut self, score: f32, row: usize) {
        if self.k == 0 {
            return;
        }
        if self.best.len() == self.k && score <= self.best[self.k - 1].0 {
            return;
        }
        let at = self.best.partition_point(|&(s, _)| s >= score);
        self.best.insert(at, (score, row));
        self.best.truncate(self.k);
    }

    fn into_sorted(self) -> Vec<(f32, usize)> {
        self.best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: u64, d: usize) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut v: Vec<f32> = (0..d)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 2000) as f32 / 1000.0 - 1.0
            })
            .collect();
        let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        v.iter_mut().for_each(|a| *a /= norm);
        v
    }

    fn copy_of(n: i64, d: usize) -> VectorCopy {
        let copy = VectorCopy::new(d);
        copy.ready.store(true, Ordering::Release);
        copy.apply(
            (1..=n)
                .map(|id| Change::Insert {
                    id,
                    vector: unit(id as u64, d),
                })
                .collect(),
        );
        copy
    }

    /// The scan returns exactly the brute-force top k, best first.
    #[test]
    fn nearest_matches_brute_force() {
        let copy = copy_of(500, 20);
        let query = unit(9999, 20);
        let mut expected: Vec<(i64, f32)> = (1..=500)
            .map(|id| {
                (
                    id,
                    unit(id as u64, 20)
                        .iter()
                        .zip(&query)
                        .map(|(a, b)| a * b)
                        .sum(),
                )
            })
            .collect();
        expected.sort_by(|a, b| b.1.total_cmp(&a.1));
        let got: Vec<i64> = copy.nearest(&query, 7, None).iter().map(|h| h.0).collect();
        let want: Vec<i64> = expected[..7].iter().map(|h| h.0).collect();
        assert_eq!(got, want);
    }

    /// A deleted vector is never returned, the row moved into its place still is,
    /// and candidates restrict the scan.
    #[test]
    fn deletes_and_candidates() {
        let copy = copy_of(50, 8);
        let target = unit(3, 8);
        assert_eq!(copy.nearest(&target, 1, None)[0].0, 3);
        copy.apply(vec![Change::Delete { id: 3 }]);
        assert_eq!(copy.len(), 49);
        assert!(copy.nearest(&target, 49, None).iter().all(|h| h.0 != 3));
        let last = unit(50, 8);
        assert_eq!(copy.nearest(&last, 1, None)[0].0, 50);
        let only = copy.nearest(&target, 10, Some(&[7, 9, 3, 1000]));
        let mut ids: Vec<i64> = only.iter().map(|h| h.0).collect();
        ids.sort();
        assert_eq!(ids, [7, 9]);
        assert!(copy.nearest(&target, 0, None).is_empty());
    }
}

//! An in-memory, quantised copy of every vector, for exact search with a quarter of the
//! memory traffic (and a quarter of the RSS) of a float copy.
//!
//! sqlite-vec's vec0 table stays the source of truth: it is written in the same
//! transaction as the memory, and this copy is loaded from it at open and changed by
//! the writer thread only after a group has committed.
//!
//! Loading 100k vectors takes about 1.5 s here, longer than the model, so it happens on
//! the writer thread after the server is already healthy: the writer loads the copy
//! before it takes its first command (so no change can be missed), and searches scan
//! vec0 until the copy is ready.
//!
//! A search is exact, in two passes. The first reads every vector's 8-bit codes (an
//! integer dot product that SIMD does 32 or 64 lanes at a time) and brackets each true
//! score between two bounds (see [`Quantised`]). Every vector whose upper bound reaches
//! the k-th best lower bound could be in the top k; only those (about 20 of 100k here)
//! go on the [`Shortlist`], whose exact floats are read back from vec0 and ranked.
//! Nothing that belongs in the top k is ever left off the shortlist, so recall is 1.0
//! by construction.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::Connection;

use super::migrations::VECTOR_TABLE;
use super::vec::floats;
use crate::storage::StorageError;

/// Below this many rows a scan is too short to be worth a second thread.
const ROWS_PER_THREAD: usize = 16_384;

/// A committed change to the set of vectors.
#[derive(Debug, Clone)]
pub(super) enum Change {
    Insert { id: i64, vector: Vec<f32> },
    Delete { id: i64 },
}

pub(super) struct VectorCopy {
    dimension: usize,
    /// Threads a long scan is split across.
    threads: usize,
    /// The fewest rows worth a thread of their own.
    rows_per_thread: usize,
    /// Set once the copy holds every committed vector.
    ready: AtomicBool,
    /// Readers scan under the read lock; the writer takes the write lock once per
    /// committed group.
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Memory id of each row.
    ids: Vec<i64>,
    /// How each row was quantised.
    quantised: Vec<Quantised>,
    /// `ids.len() * dimension` codes, row after row (see [`Quantised`]).
    codes: Vec<i8>,
    /// Row of each memory id, for deletes and filtered scans.
    rows: HashMap<i64, usize>,
}

impl VectorCopy {
    /// An empty copy, not ready until [`VectorCopy::load`] has run.
    pub fn new(dimension: usize) -> Self {
        Self {
            dimension,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            rows_per_thread: ROWS_PER_THREAD,
            ready: AtomicBool::new(false),
            inner: RwLock::default(),
        }
    }

    /// Reads every vector of the vec0 table and marks the copy ready. Only the writer
    /// thread calls this, before its first command, so nothing commits meanwhile.
    pub fn load(&self, conn: &Connection) -> Result<usize, StorageError> {
        let dimension = self.dimension;
        let mut inner = Inner::default();
        let mut statement =
            conn.prepare(&format!("SELECT rowid, embedding FROM {VECTOR_TABLE}"))?;
        let mut rows = statement.query([])?;
        let mut vector = Vec::with_capacity(dimension);
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let bytes = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            if bytes.len() != dimension * 4 {
                return Err(StorageError::WrongDimension {
                    expected: dimension,
                    actual: bytes.len() / 4,
                });
            }
            vector.clear();
            vector.extend(floats(bytes));
            inner.push(id, &vector);
        }
        let count = inner.ids.len();
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = inner;
        self.ready.store(true, Ordering::Release);
        Ok(count)
    }

    /// Stops searches from using the copy until the next [`VectorCopy::load`]: the
    /// writer calls it before replacing the whole database.
    pub fn invalidate(&self) {
        self.ready.store(false, Ordering::Release);
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
                    inner.push(id, &vector);
                }
                Change::Delete { id } => inner.remove(id, self.dimension),
            }
        }
    }

    /// The first pass of a search for the `k` closest vectors to `query` (only among
    /// `candidates` when given): every memory that could be among them.
    pub fn shortlist(&self, query: &[f32], k: usize, candidates: Option<&[i64]>) -> Shortlist {
        let d = self.dimension;
        if k == 0 || query.len() != d {
            return Shortlist::default();
        }
        let mut query_codes = vec![0i8; d];
        let query_quantised = Quantised::new(query, &mut query_codes);
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let bracket = |rows: &mut dyn Iterator<Item = usize>| {
            let mut bounds = Bounds::new(k);
            for row in rows {
                let (low, high) = query_quantised.bounds(
                    &query_codes,
                    &inner.quantised[row],
                    &inner.codes[row * d..(row + 1) * d],
                );
                bounds.offer(low, high, row);
            }
            bounds
        };
        let bounds = match candidates {
            Some(ids) => bracket(
                &mut ids
                    .iter()
                    // A memory committed after this scan's snapshot of the copy.
                    .filter_map(|id| inner.rows.get(id).copied()),
            ),
            None => {
                let n = inner.ids.len();
                let threads = self.threads.min(n / self.rows_per_thread).max(1);
                let per_thread = n.div_ceil(threads);
                std::thread::scope(|scope| {
                    let bracket = &bracket;
                    let others: Vec<_> = (1..threads)
                        .map(|t| {
                            scope.spawn(move || {
                                bracket(&mut (t * per_thread..n.min((t + 1) * per_thread)))
                            })
                        })
                        .collect();
                    let mut bounds = bracket(&mut (0..per_thread.min(n)));
                    for other in others {
                        // A scan cannot panic short of a bug; the first pass is then
                        // simply incomplete, as if those rows did not exist yet.
                        if let Ok(other) = other.join() {
                            bounds.merge(other);
                        }
                    }
                    bounds
                })
            }
        };
        Shortlist {
            k,
            rows: bounds.shortlist(&inner.ids),
        }
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

/// The memories a first pass could not rule out, each with its upper bound, highest
/// first, and the second pass that ranks them exactly.
#[derive(Debug, Default)]
pub(super) struct Shortlist {
    k: usize,
    rows: Vec<(f32, i64)>,
}

impl Shortlist {
    /// The top k as (memory id, cosine similarity), best first. `exact` reads one
    /// memory's float vector (`None` once it has been deleted). Candidates are scored
    /// in order of their upper bound, so the pass stops at the first one whose bound
    /// cannot beat the k-th exact score already found.
    pub fn rank<E>(
        self,
        query: &[f32],
        mut exact: impl FnMut(i64) -> Result<Option<Vec<f32>>, E>,
    ) -> Result<Vec<(i64, f64)>, E> {
        let mut best = TopK::new(self.k);
        let mut ids = Vec::with_capacity(self.rows.len());
        for (high, id) in self.rows {
            if high < best.threshold() {
                break;
            }
            // A memory deleted since the first pass is simply not returned.
            if let Some(vector) = exact(id)? {
                best.offer(dot(&vector, query), ids.len());
                ids.push(id);
            }
        }
        Ok(best
            .into_sorted()
            .into_iter()
            .map(|(score, at)| (ids[at], f64::from(score)))
            .collect())
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.rows.len()
    }
}

impl Inner {
    fn push(&mut self, id: i64, vector: &[f32]) {
        let start = self.codes.len();
        self.codes.resize(start + vector.len(), 0);
        self.quantised
            .push(Quantised::new(vector, &mut self.codes[start..]));
        self.rows.insert(id, self.ids.len());
        self.ids.push(id);
    }

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
            self.codes
                .copy_within(last * dimension..(last + 1) * dimension, row * dimension);
            self.quantised[row] = self.quantised[last];
        }
        self.ids.truncate(last);
        self.codes.truncate(last * dimension);
        self.quantised.truncate(last);
    }
}

/// The bounds of one (part of a) first pass: the k best lower bounds, whose last entry
/// only rises, and every row whose upper bound reached it when it was offered.
struct Bounds {
    floor: TopK,
    kept: Vec<(f32, usize)>,
}

impl Bounds {
    fn new(k: usize) -> Self {
        Self {
            floor: TopK::new(k),
            kept: Vec::new(),
        }
    }

    fn offer(&mut self, low: f32, high: f32, row: usize) {
        self.floor.offer(low, row);
        if high >= self.floor.threshold() {
            self.kept.push((high, row));
        }
    }

    fn merge(&mut self, other: Bounds) {
        for (low, row) in other.floor.into_sorted() {
            self.floor.offer(low, row);
        }
        self.kept.extend(other.kept);
    }

    /// The kept rows that still reach the final floor, as memory ids, highest first.
    fn shortlist(self, ids: &[i64]) -> Vec<(f32, i64)> {
        let floor = self.floor.threshold();
        let mut rows: Vec<(f32, i64)> = self
            .kept
            .into_iter()
            .filter(|&(high, _)| high >= floor)
            .map(|(high, row)| (high, ids[row]))
            .collect();
        rows.sort_by(|a, b| b.0.total_cmp(&a.0));
        rows
    }
}

/// How a vector `v` was quantised: `v ≈ scale · codes`, each code in -127..=127.
///
/// The bounds are Cauchy-Schwarz, so they hold for any vectors, not only for typical
/// ones. With `q = q̂ + δq` and `v = v̂ + δv` (hats the dequantised codes, deltas the
/// rounding),
///
/// `q·v − q̂·v̂ = q̂·δv + δq·v`, so `|q·v − q̂·v̂| ≤ ‖q̂‖·‖δv‖ + ‖δq‖·‖v‖`.
///
/// `q̂·v̂` itself is exact: an integer dot product of codes (at most 127² · 384, well
/// inside an f32's exact integers) times the two scales.
#[derive(Debug, Clone, Copy)]
struct Quantised {
    scale: f32,
    /// `‖v‖`, rounded up.
    norm: f32,
    /// `‖v̂‖`, rounded up.
    quantised_norm: f32,
    /// `‖v − v̂‖`, rounded up.
    error: f32,
}

/// Room for the rounding of the f32 arithmetic around the bounds (each step is off by
/// at most a few parts in 10⁷ of numbers near 1) and of the exact scores themselves.
const SLACK: f32 = 1e-4;

impl Quantised {
    /// Quantises `v` into `codes` (same length) with one scale for the whole vector.
    fn new(v: &[f32], codes: &mut [i8]) -> Self {
        let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        let (mut norm, mut quantised_norm, mut error) = (0.0f64, 0.0f64, 0.0f64);
        for (code, &x) in codes.iter_mut().zip(v) {
            let c = (x / scale).round().clamp(-127.0, 127.0);
            *code = c as i8;
            let dequantised = f64::from(c) * f64::from(scale);
            norm += f64::from(x) * f64::from(x);
            quantised_norm += dequantised * dequantised;
            error += (f64::from(x) - dequantised).powi(2);
        }
        let up = |sum: f64| (sum.sqrt() * (1.0 + 1e-6)) as f32;
        Self {
            scale,
            norm: up(norm),
            quantised_norm: up(quantised_norm),
            error: up(error),
        }
    }

    /// Lower and upper bound of `q·v`, where `self` and `codes` describe the query `q`
    /// and `row`, `row_codes` the vector `v`.
    fn bounds(&self, codes: &[i8], row: &Quantised, row_codes: &[i8]) -> (f32, f32) {
        let approximate = dot_codes(codes, row_codes) * self.scale * row.scale;
        let reach = self.quantised_norm * row.error + self.error * row.norm + SLACK;
        (approximate - reach, approximate + reach)
    }
}

/// `a·b` of two float vectors of equal length.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    <f32 as simsimd::SpatialSimilarity>::dot(a, b).unwrap_or(f64::NAN) as f32
}

/// `a·b` of two code vectors of equal length, exactly (an integer).
fn dot_codes(a: &[i8], b: &[i8]) -> f32 {
    <i8 as simsimd::SpatialSimilarity>::dot(a, b).unwrap_or(f64::NAN) as f32
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

    /// The k-th best score so far, or -∞ while fewer than k were offered.
    fn threshold(&self) -> f32 {
        if self.best.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.best[self.k - 1].0
        }
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

    /// A copy and the exact vectors it stands for (what vec0 holds in the store).
    struct Fixture {
        copy: VectorCopy,
        exact: HashMap<i64, Vec<f32>>,
    }

    impl Fixture {
        fn new(d: usize, vectors: impl IntoIterator<Item = (i64, Vec<f32>)>) -> Self {
            let copy = VectorCopy::new(d);
            copy.ready.store(true, Ordering::Release);
            let exact: HashMap<i64, Vec<f32>> = vectors.into_iter().collect();
            copy.apply(
                exact
                    .iter()
                    .map(|(&id, v)| Change::Insert {
                        id,
                        vector: v.clone(),
                    })
                    .collect(),
            );
            Self { copy, exact }
        }

        fn random(n: i64, d: usize) -> Self {
            Self::new(d, (1..=n).map(|id| (id, unit(id as u64, d))))
        }

        fn delete(&mut self, id: i64) {
            self.copy.apply(vec![Change::Delete { id }]);
            self.exact.remove(&id);
        }

        fn nearest(&self, query: &[f32], k: usize, candidates: Option<&[i64]>) -> Vec<(i64, f64)> {
            self.copy
                .shortlist(query, k, candidates)
                .rank(query, |id| Ok::<_, ()>(self.exact.get(&id).cloned()))
                .unwrap()
        }

        /// The exact top k by brute force, as (id, score) best first.
        fn brute_force(&self, query: &[f32], k: usize) -> Vec<(i64, f32)> {
            let mut all: Vec<(i64, f32)> = self
                .exact
                .iter()
                .map(|(&id, v)| (id, dot(v, query)))
                .collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            all.truncate(k);
            all
        }
    }

    /// The search returns exactly the brute-force top k, best first, with the split
    /// scan as with the single one.
    #[test]
    fn nearest_matches_brute_force() {
        for rows_per_thread in [ROWS_PER_THREAD, 100] {
            let mut fixture = Fixture::random(2000, 48);
            fixture.copy.threads = 3;
            fixture.copy.rows_per_thread = rows_per_thread;
            for seed in 9000..9020 {
                let query = unit(seed, 48);
                let got: Vec<i64> = fixture
                    .nearest(&query, 7, None)
                    .iter()
                    .map(|h| h.0)
                    .collect();
                let want: Vec<i64> = fixture.brute_force(&query, 7).iter().map(|h| h.0).collect();
                assert_eq!(got, want);
            }
        }
    }

    /// A deleted vector is never returned, the row moved into its place still is,
    /// and candidates restrict the scan.
    #[test]
    fn deletes_and_candidates() {
        let mut fixture = Fixture::random(50, 8);
        let target = unit(3, 8);
        assert_eq!(fixture.nearest(&target, 1, None)[0].0, 3);
        fixture.delete(3);
        assert_eq!(fixture.copy.len(), 49);
        assert!(fixture.nearest(&target, 49, None).iter().all(|h| h.0 != 3));
        let last = unit(50, 8);
        assert_eq!(fixture.nearest(&last, 1, None)[0].0, 50);
        let only = fixture.nearest(&target, 10, Some(&[7, 9, 3, 1000]));
        let mut ids: Vec<i64> = only.iter().map(|h| h.0).collect();
        ids.sort();
        assert_eq!(ids, [7, 9]);
        assert!(fixture.nearest(&target, 0, None).is_empty());
    }

    /// A memory deleted between the two passes (gone from vec0, not yet from the copy)
    /// is left out, not an error. Its lower bound may have ruled out the (k+1)-th, so
    /// such a search can return one fewer, as a memory deleted before hydration can.
    #[test]
    fn deleted_between_passes() {
        let mut fixture = Fixture::random(20, 8);
        let query = unit(4, 8);
        fixture.exact.remove(&4);
        let hits = fixture.nearest(&query, 3, None);
        assert!(hits.len() >= 2, "{hits:?}");
        assert!(hits.iter().all(|h| h.0 != 4));
        let want: Vec<i64> = fixture.brute_force(&query, 2).iter().map(|h| h.0).collect();
        assert_eq!(hits[..2].iter().map(|h| h.0).collect::<Vec<_>>(), want);
    }

    /// On 384 dimensions the first pass rules out nearly everything, so the second
    /// pass reads a handful of vectors, not the table.
    #[test]
    fn the_shortlist_is_short() {
        let fixture = Fixture::random(5000, 384);
        let query = unit(77_777, 384);
        let shortlist = fixture.copy.shortlist(&query, 10, None);
        assert!(shortlist.len() >= 10);
        assert!(
            shortlist.len() < 500,
            "{} of 5000 shortlisted",
            shortlist.len()
        );
    }

    /// The bounds hold for every pair, unit or not, spiky or flat: they are the proof
    /// that the shortlist never misses a member of the top k.
    #[test]
    fn bounds_bracket_the_exact_dot_product() {
        let d = 384;
        let mut vectors: Vec<Vec<f32>> = (0..200).map(|i| unit(i, d)).collect();
        let mut spiky = vec![0.001f32; d];
        spiky[7] = 5.0;
        vectors.push(spiky);
        vectors.push(vec![0.0; d]);
        vectors.push(unit(5, d).iter().map(|x| x * 3.5).collect());
        let quantised: Vec<(Quantised, Vec<i8>)> = vectors
            .iter()
            .map(|v| {
                let mut codes = vec![0i8; d];
                (Quantised::new(v, &mut codes), codes)
            })
            .collect();
        for (q, (qq, qcodes)) in vectors.iter().zip(&quantised) {
            for (v, (vq, vcodes)) in vectors.iter().zip(&quantised) {
                let exact: f64 = q
                    .iter()
                    .zip(v)
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum();
                let (low, high) = qq.bounds(qcodes, vq, vcodes);
                assert!(
                    f64::from(low) <= exact && exact <= f64::from(high),
                    "{low} <= {exact} <= {high}"
                );
            }
        }
    }

    /// Near-ties (vectors a hair apart, closer than the quantisation step) are still
    /// ranked by their exact scores.
    #[test]
    fn near_ties_are_ranked_exactly() {
        let d = 64;
        let base = unit(1, d);
        let fixture = Fixture::new(
            d,
            (0..300).map(|i| {
                let mut v = base.clone();
                v[i % d] += 1e-4 * (i as f32);
                let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
                (i as i64, v.iter().map(|a| a / norm).collect())
            }),
        );
        let query = unit(2, d);
        let got: Vec<f32> = fixture
            .nearest(&query, 10, None)
            .iter()
            .map(|h| h.1 as f32)
            .collect();
        let want: Vec<f32> = fixture
            .brute_force(&query, 10)
            .iter()
            .map(|h| h.1)
            .collect();
        assert_eq!(got, want);
    }
}

//! What a backup costs a database under write load: fills a SQLite store with N
//! memories (random unit vectors, no model), then runs a steady write load (writer
//! threads storing one memory at a time, each waiting for its group commit) first
//! alone, then while `SqliteStore::backup` copies the database, and reports the
//! backup's time and the write latencies of both phases. Last, it times a restore of
//! that backup (writes wait for the swap: a restore is meant to stop the world).
//!
//! ```text
//! cargo run --release -p mnemo-bench --bin backup-bench -- --memories 100000
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use mnemo_bench::synthetic::{self, DIMENSION, record};
use mnemo_server::memory::EmbeddingSpec;
use mnemo_server::storage::sqlite::{SqliteOptions, SqliteStore};

#[derive(Parser)]
struct Args {
    /// Memories in the database before the load starts.
    #[arg(long, default_value_t = 100_000)]
    memories: usize,
    /// Threads storing one memory at a time.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Seconds of write load without a backup, as the baseline.
    #[arg(long, default_value_t = 5.0)]
    baseline: f64,
    /// Keeps the filled database in this folder and reuses it on the next run.
    #[arg(long)]
    keep: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let folder = args
        .keep
        .clone()
        .unwrap_or_else(|| dir.path().to_path_buf());
    let path = folder.join("memories.db");
    let filled = path.exists();
    let spec = EmbeddingSpec {
        model_id: "backup-bench".into(),
        dimension: DIMENSION,
    };
    let started = Instant::now();
    let store = SqliteStore::open(&path, &spec, SqliteOptions::default())?;
    let from = if filled { args.memories } else { 0 };
    synthetic::fill(&store, from..args.memories)?;
    println!(
        "filled {} memories ({:.0} MB) in {:.1} s",
        args.memories,
        std::fs::metadata(&path)?.len() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    // Numbers no earlier run on a kept database used.
    let first = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_micros() as usize;
    let next = Arc::new(AtomicUsize::new(first));
    let baseline = load(&store, &next, args.writers, |_| {
        std::thread::park_timeout(Duration::from_secs_f64(args.baseline));
        Ok(())
    })?;
    report("without a backup", &baseline.latencies, baseline.elapsed);

    let dest = dir.path().join("backup.db");
    let mut backup_time = Duration::ZERO;
    let mut backup_bytes = 0;
    let during = load(&store, &next, args.writers, |store| {
        let t = Instant::now();
        let stats = store.backup(&dest)?;
        backup_time = t.elapsed();
        backup_bytes = stats.bytes;
        Ok(())
    })?;
    println!(
        "backup: {:.2} s for {:.0} MB (integrity_check included), {} memories",
        backup_time.as_secs_f64(),
        backup_bytes as f64 / 1e6,
        args.memories
    );
    report("during the backup", &during.latencies, during.elapsed);

    let t = Instant::now();
    let restored = store.restore(&dest, "backup-bench")?;
    println!(
        "restore of that backup while open: {:.2} s ({} memories; writes wait for it)",
        t.elapsed().as_secs_f64(),
        restored.memories
    );
    Ok(())
}

struct Load {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

/// Runs `writers` threads storing memories until `during` returns.
fn load(
    store: &SqliteStore,
    next: &Arc<AtomicUsize>,
    writers: usize,
    during: impl FnOnce(&SqliteStore) -> anyhow::Result<()>,
) -> anyhow::Result<Load> {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let (store, next, stop) = (store.clone(), Arc::clone(next), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut state = 0x2545_f491_4f6c_dd1d_u64 ^ (w as u64 + 1);
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let record = record(next.fetch_add(1, Ordering::Relaxed), &mut state);
                    let t = Instant::now();
                    store.insert(record).expect("a write of the load");
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let result = during(store);
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let mut latencies = Vec::new();
    for thread in threads {
        latencies.extend(thread.join().expect("a writer thread"));
    }
    result?;
    latencies.sort();
    Ok(Load { latencies, elapsed })
}

fn report(phase: &str, latencies: &[Duration], elapsed: Duration) {
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    println!(
        "writes {phase}: {} in {:.1} s ({:.0}/s); latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        at(0.5),
        at(0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
}

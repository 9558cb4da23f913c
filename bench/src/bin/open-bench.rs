//! What opening a database costs at start, the integrity check included: fills a
//! SQLite store with N memories (random unit vectors, no model needed), closes it,
//! then times `SqliteStore::open` on it several times.
//!
//! ```text
//! cargo run --release -p mnemo-bench --bin open-bench -- --memories 100000
//! ```
//!
//! The first open after filling runs with the file in the OS page cache, as every
//! later one does; a cold cache (after a reboot) costs the disk's read time on top.

use std::time::{Duration, Instant};

use clap::Parser;
use mnemo_bench::synthetic::{self, DIMENSION};
use mnemo_server::memory::EmbeddingSpec;
use mnemo_server::storage::sqlite::{SqliteOptions, SqliteStore};

#[derive(Parser)]
struct Args {
    /// Memories in the database.
    #[arg(long, default_value_t = 100_000)]
    memories: usize,
    /// Opens timed.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Keeps the database in this folder (it must not hold one) instead of a
    /// temporary folder, to inspect it afterwards.
    #[arg(long)]
    keep: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let folder = args.keep.as_deref().unwrap_or(dir.path());
    let path = folder.join("memories.db");
    let spec = EmbeddingSpec {
        model_id: "open-bench".into(),
        dimension: DIMENSION,
    };

    let started = Instant::now();
    let store = SqliteStore::open(&path, &spec, SqliteOptions::default())?;
    synthetic::fill(&store, 0..args.memories)?;
    drop(store);
    let bytes = std::fs::metadata(&path)?.len();
    println!(
        "filled {} memories ({:.0} MB) in {:.1} s",
        args.memories,
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    let mut opens: Vec<Duration> = (0..args.runs)
        .map(|_| {
            let t = Instant::now();
            let store = SqliteStore::open(&path, &spec, SqliteOptions::default())?;
            let elapsed = t.elapsed();
            drop(store);
            Ok(elapsed)
        })
        .collect::<anyhow::Result<_>>()?;
    opens.sort();
    println!(
        "open (integrity check included): median {:.0} ms, min {:.0} ms, max {:.0} ms over {} runs",
        opens[opens.len() / 2].as_secs_f64() * 1e3,
        opens[0].as_secs_f64() * 1e3,
        opens[opens.len() - 1].as_secs_f64() * 1e3,
        opens.len()
    );
    Ok(())
}

//! Embedding speed on this machine: model load time, single-text latency and batch
//! throughput, through the same [`Embedder`] the server uses.
//!
//! ```text
//! cargo run --release -p mnemo-bench --bin embed-bench [-- SINGLE_RUNS BATCH_RUNS]
//! ```
//!
//! Uses the provisioned model (or MNEMO_MODEL_DIR / ORT_DYLIB_PATH), like the server.

use std::time::{Duration, Instant};

use clap::Parser;
use mnemo_bench::corpus::sentence;
use mnemo_server::Config;
use mnemo_server::embed::{Embedder, FastEmbedModel};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let single_runs: usize = args.next().map_or(Ok(500), |a| a.parse())?;
    let batch_runs: usize = args.next().map_or(Ok(40), |a| a.parse())?;

    // The settings the server would start with here, the shell's included (the
    // callgrind recipe in BENCHMARKS.md sets `MNEMO_EMBED_THREADS`).
    let config = Config::parse_from(["mnemo-server"]);
    let threads = config.embed_threads();
    let started = Instant::now();
    let model = FastEmbedModel::load(&config.model_files(), &config.model_id, threads)?;
    let load = started.elapsed();
    let embedder = Embedder::start(Box::new(model), 32);

    for i in 0..20 {
        embedder.embed_blocking(vec![sentence(i)])?;
    }
    let mut latencies: Vec<Duration> = (0..single_runs)
        .map(|i| {
            let t = Instant::now();
            embedder
                .embed_blocking(vec![sentence(1000 + i)])
                .map(|_| t.elapsed())
        })
        .collect::<Result<_, _>>()?;
    latencies.sort();

    let batch_started = Instant::now();
    for run in 0..batch_runs {
        let texts = (0..32).map(|j| sentence(10_000 + run * 32 + j)).collect();
        embedder.embed_blocking(texts)?;
    }
    let batch_elapsed = batch_started.elapsed();

    println!("cores: {}, ONNX Runtime threads: {threads}", num_cores());
    println!("model load:              {:>8.1} ms", ms(load));
    println!(
        "single embedding ({single_runs} runs): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, {:.0}/s",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.9)),
        ms(percentile(&latencies, 0.99)),
        single_runs as f64 / latencies.iter().sum::<Duration>().as_secs_f64()
    );
    println!(
        "batch of 32 ({batch_runs} runs): {:.1} ms per batch, {:.0} texts/s",
        ms(batch_elapsed) / batch_runs as f64,
        (batch_runs * 32) as f64 / batch_elapsed.as_secs_f64()
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn num_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

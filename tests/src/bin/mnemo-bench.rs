//! `mnemo-bench`: REST latency and throughput of a running server with Mnemo's REST
//! contract (so also the Python anchor).
//!
//! ```text
//! cargo run --release -p mnemo-tests --bin mnemo-bench -- --url http://127.0.0.1:8000 --api-key KEY --seed 10000
//! ```
//!
//! It seeds the server up to `--seed` memories of generated sentences, then measures
//! single-client store and search latency and the search throughput of `--clients`
//! concurrent clients. A first version: the full harness (corpus from real text,
//! SSE fan-out, recall, JSON output) is the performance issue's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use mnemo_tests::corpus::{question, sentence};
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// API key with write scope.
    #[arg(long, env = "MCP_API_KEY")]
    api_key: String,
    /// Memories the server should hold before measuring.
    #[arg(long, default_value_t = 10_000)]
    seed: usize,
    /// Timed requests per latency scenario.
    #[arg(long, default_value_t = 300)]
    samples: usize,
    /// Concurrent clients for the throughput scenario.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Searches per client in the throughput scenario.
    #[arg(long, default_value_t = 100)]
    per_client: usize,
    /// SSE subscribers for the fan-out scenario (0 skips it).
    #[arg(long, default_value_t = 0)]
    sse_subscribers: usize,
    /// Writes whose delivery the fan-out scenario times.
    #[arg(long, default_value_t = 50)]
    sse_writes: usize,
    /// SHA-256 fingerprint to pin when the URL is https (as the server logs it).
    #[arg(long)]
    fingerprint: Option<String>,
    /// Also time searches that each open a new connection (TCP, and TLS for https).
    #[arg(long)]
    fresh_connections: bool,
    /// The server's process id, to report its RSS after the fan-out scenario.
    #[arg(long)]
    server_pid: Option<u32>,
}

struct Client {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl Client {
    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Duration)> {
        let started = Instant::now();
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        response.bytes().await?;
        Ok((status, started.elapsed()))
    }

    async fn count(&self) -> anyhow::Result<usize> {
        let body: Value = self
            .http
            .get(format!("{}/api/memories?page_size=1", self.url))
            .bearer_auth(&self.key)
            .send()
            .await?
            .json()
            .await?;
        body["total"]
            .as_u64()
            .map(|n| n as usize)
            .context("no total in list answer")
    }
}

/// `n` sequential searches: their latencies and how many failed.
async fn timed_searches(client: &Client, n: usize) -> anyhow::Result<(Vec<Duration>, usize)> {
    let mut latencies = Vec::with_capacity(n);
    let mut failed = 0;
    for i in 0..n {
        let body = json!({"query": question(i), "n_results": 10});
        let (status, took) = client.post("/api/search", &body).await?;
        failed += usize::from(status != 200);
        latencies.push(took);
    }
    Ok((latencies, failed))
}

/// Opens `subscribers` SSE streams, makes `sse_writes` writes one at a time, and
/// times each event from its commit timestamp to its arrival at every subscriber.
async fn fan_out(client: &Arc<Client>, args: &Args) -> anyhow::Result<usize> {
    use futures::StreamExt;
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(args.sse_subscribers);
    let mut readers = Vec::new();
    for _ in 0..args.sse_subscribers {
        let response = client
            .http
            .get(format!("{}/api/events", client.url))
            .bearer_auth(&client.key)
            .send()
            .await?;
        let mut events = eventsource_stream::EventStream::new(response.bytes_stream());
        let ready = ready_tx.clone();
        let writes = args.sse_writes;
        readers.push(tokio::spawn(async move {
            let mut delays = Vec::with_capacity(writes);
            while let Some(event) = events.next().await {
                let event = event?;
                match event.event.as_str() {
                    "connection_established" => {
                        let _ = ready.send(()).await;
                    }
                    "memory_stored" => {
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)?
                            .as_secs_f64();
                        let data: Value = serde_json::from_str(&event.data)?;
                        let committed = data["timestamp"]
                            .as_f64()
                            .context("event without timestamp")?;
                        delays.push(Duration::from_secs_f64((now - committed).max(0.0)));
                        if delays.len() == writes {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            anyhow::Ok(delays)
        }));
    }
    for _ in 0..args.sse_subscribers {
        ready_rx
            .recv()
            .await
            .context("a subscriber failed to connect")?;
    }
    let mut errors = 0;
    for i in 0..args.sse_writes {
        let body =
            json!({"content": format!("fan-out {i} at {:?}: {}", Instant::now(), sentence(i))});
        let (status, _) = client.post("/api/memories", &body).await?;
        errors += usize::from(status != 200);
    }
    let mut all = Vec::new();
    for reader in readers {
        all.extend(reader.await??);
    }
    summary(
        &format!("SSE fan-out, {} subscribers", args.sse_subscribers),
        all,
    );
    if let Some(pid) = args.server_pid {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        if let Some(rss) = status.lines().find(|l| l.starts_with("VmRSS:")) {
            println!("server {rss}");
        }
    }
    Ok(errors)
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pick =
        |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0;
    println!(
        "{name:<28} n={:<5} p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms",
        samples.len(),
        pick(0.5),
        pick(0.9),
        pick(0.99)
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let http = match &args.fingerprint {
        Some(fp) => {
            let pin = fp
                .trim()
                .parse()
                .context("--fingerprint is not a SHA-256 fingerprint")?;
            reqwest::Client::builder()
                .use_preconfigured_tls(mnemo_certs::pinned_client_config(pin))
                .build()?
        }
        None => reqwest::Client::new(),
    };
    let client = Arc::new(Client {
        http: http.clone(),
        url: args.url.trim_end_matches('/').to_owned(),
        key: args.api_key.clone(),
    });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("server {} · bench machine cores {cores}", client.url);

    let mut have = client.count().await?;
    let started = Instant::now();
    let mut next = have;
    while have < args.seed {
        let seeders: Vec<_> = (0..8)
            .map(|w| {
                let client = client.clone();
                let i = next + w;
                tokio::spawn(async move {
                    client
                        .post("/api/memories", &json!({"content": sentence(i)}))
                        .await
                })
            })
            .collect();
        for seeder in seeders {
            let (status, _) = seeder.await??;
            if status == 200 {
                have += 1;
            }
        }
        next += 8;
    }
    if started.elapsed() > Duration::from_secs(1) {
        println!(
            "seeded to {have} memories in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }

    let mut errors = 0;
    let mut stores = Vec::with_capacity(args.samples);
    for i in 0..args.samples {
        let body =
            json!({"content": format!("Bench store {i} at {:?}: {}", Instant::now(), sentence(i))});
        let (status, took) = client.post("/api/memories", &body).await?;
        errors += usize::from(status != 200);
        stores.push(took);
    }
    summary("POST /api/memories", stores);

    let (searches, failed) = timed_searches(&client, args.samples).await?;
    errors += failed;
    summary("POST /api/search", searches);

    if args.fresh_connections {
        // No idle connections are kept, so every request pays the full handshake.
        let mut builder = reqwest::Client::builder().pool_max_idle_per_host(0);
        if let Some(fp) = &args.fingerprint {
            builder = builder
                .use_preconfigured_tls(mnemo_certs::pinned_client_config(fp.trim().parse()?));
        }
        let fresh = Client {
            http: builder.build()?,
            url: client.url.clone(),
            key: client.key.clone(),
        };
        let (samples, failed) = timed_searches(&fresh, args.samples).await?;
        errors += failed;
        summary("search, new connection each", samples);
    }

    let started = Instant::now();
    let workers: Vec<_> = (0..args.clients)
        .map(|w| {
            let client = client.clone();
            let n = args.per_client;
            tokio::spawn(async move {
                let mut failed = 0;
                for i in 0..n {
                    let body = json!({"query": sentence(w * 1000 + i), "n_results": 10});
                    let (status, _) = client.post("/api/search", &body).await?;
                    failed += usize::from(status != 200);
                }
                anyhow::Ok(failed)
            })
        })
        .collect();
    for worker in workers {
        errors += worker.await??;
    }
    let total = args.clients * args.per_client;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "search, {} clients            {total} requests in {elapsed:.2} s = {:.0} req/s",
        args.clients,
        total as f64 / elapsed
    );
    if args.sse_subscribers > 0 {
        errors += fan_out(&client, &args).await?;
    }
    println!("errors: {errors}");
    if errors > 0 {
        bail!("{errors} requests failed");
    }
    Ok(())
}

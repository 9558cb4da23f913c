//! `mnemo-bench`: the REST benchmark harness. It measures a server with
//! Mnemo's REST contract, either one it starts itself (a temporary data folder, port
//! 0, mDNS off) or any running one given with `--url` and `--api-key`.
//!
//! ```text
//! cargo run --release -p mnemo-bench --bin mnemo-bench -- --json bench.json
//! cargo run --release -p mnemo-bench --bin mnemo-bench -- --quick          # CI smoke, seconds
//! cargo run --release -p mnemo-bench --bin mnemo-bench -- --url http://127.0.0.1:8000 --api-key KEY
//! cargo run --release -p mnemo-bench --bin mnemo-bench -- --compare before.json after.json
//! ```
//!
//! Scenarios: cold start to healthy; single store latency; search latency and
//! recall@10 at each `--levels` size; bulk ingest; a mixed load (90% search, 10%
//! store) of 16 and 64 clients; SSE fan-out; RSS. The corpus is real text (see
//! `mnemo_bench::realtext`); recall is measured against an exact top-10 the
//! harness computes from its own embeddings of the same text. Seeded databases and
//! embeddings are cached in `$MNEMO_CACHE_DIR/bench/`, so a level is seeded once per
//! machine. Errors must be 0; the harness exits non-zero otherwise.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use mnemo_bench::realtext::Corpus;
use mnemo_bench::report::{self, Row};
use mnemo_bench::spawned::{self, Spawned};
use mnemo_bench::vectors::{self, Vectors};
use mnemo_server::Config;
use mnemo_server::embed::{Embedder, FastEmbedModel};
use mnemo_server::memory::{EmbeddingSpec, content_hash};
use mnemo_server::storage::postgres::{PostgresOptions, PostgresStore};
use mnemo_server::storage::sqlite::{SqliteOptions, SqliteStore};
use mnemo_server::storage::{NewRecord, Storage};
use serde_json::{Value, json};

#[derive(Parser, Clone)]
struct Args {
    /// Measure the server at this URL instead of starting one.
    #[arg(long)]
    url: Option<String>,
    /// API key (write scope) of the server at `--url`.
    #[arg(long, env = "MCP_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The `mnemo-server` binary to start (default: the one beside this binary).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Extra environment for a started server, `KEY=VALUE`; repeatable.
    #[arg(long = "server-env")]
    server_env: Vec<String>,
    /// PID of the server at `--url`, for its RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// SHA-256 fingerprint to pin when `--url` is https.
    #[arg(long)]
    fingerprint: Option<String>,
    /// Memory counts at which search latency and recall are measured, in order.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    levels: Vec<usize>,
    /// Timed requests per latency scenario.
    #[arg(long, default_value_t = 300)]
    samples: usize,
    /// Searches per level whose recall@10 is checked.
    #[arg(long, default_value_t = 100)]
    recall_queries: usize,
    /// Starts of a server on an empty folder for the cold-start figure.
    #[arg(long, default_value_t = 5)]
    cold_starts: usize,
    /// Memories in the bulk ingest scenario.
    #[arg(long, default_value_t = 3000)]
    bulk: usize,
    /// Client counts of the mixed-load scenario.
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    mixed_clients: Vec<usize>,
    /// Seconds each mixed load runs.
    #[arg(long, default_value_t = 20.0)]
    mixed_seconds: f64,
    /// SSE subscribers of the fan-out scenario (0 skips it).
    #[arg(long, default_value_t = 1000)]
    sse_subscribers: usize,
    /// Writes whose delivery the fan-out scenario times.
    #[arg(long, default_value_t = 50)]
    sse_writes: usize,
    /// Scenarios to leave out: any of bound (the in-process embedding bound), cold,
    /// store, bulk, mixed, sse (search and RSS always run).
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// Also time searches that each open a new connection (TCP, and TLS for https).
    #[arg(long)]
    fresh_connections: bool,
    /// Smoke mode for CI: 1k memories, short runs, a few seconds. Asserts nothing
    /// about time; errors still fail the run.
    #[arg(long)]
    quick: bool,
    /// Neither use nor save cached seeded databases (embeddings stay cached).
    #[arg(long)]
    fresh: bool,
    /// Seed a started server through the REST API, as for an external one, instead of
    /// writing its database with Mnemo's own store code and the harness's cached
    /// embeddings (which embeds each text once instead of twice).
    #[arg(long)]
    seed_over_rest: bool,
    /// Servers the mixed-load scenario spreads its clients over: more than one needs a
    /// started server on PostgreSQL, and starts the others on the same database.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    servers: u32,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// A name for this run in the JSON (for example the commit).
    #[arg(long, default_value = "")]
    label: String,
    /// Print the ratios B/A of two JSON reports and exit.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    compare: Option<Vec<PathBuf>>,
}

impl Args {
    fn skips(&self, scenario: &str) -> bool {
        self.skip.iter().any(|s| s == scenario)
    }

    fn apply_quick(&mut self) {
        if self.quick {
            self.levels = vec![1000];
            self.samples = 50;
            self.recall_queries = 50;
            self.cold_starts = 1;
            self.bulk = 300;
            self.mixed_seconds = 2.0;
            self.sse_subscribers = 50;
            self.sse_writes = 5;
            self.fresh = true;
            self.seed_over_rest = true;
        }
    }

    /// A started server on PostgreSQL (`--server-env MNEMO_DATABASE_URL=…`, an empty
    /// database) keeps its data there: never seed from or into the SQLite snapshots
    /// (the store writes the harness's vectors into PostgreSQL instead), and wait for
    /// no in-memory vector copy (that backend has none).
    fn apply_server_database(&mut self) {
        if self.database_url().is_some() {
            self.fresh = true;
            self.server_env.push("MNEMO_MEMORY_VECTORS=false".into());
        }
    }

    /// The PostgreSQL URL a started server is given, if any.
    fn database_url(&self) -> Option<&str> {
        self.server_env
            .iter()
            .find_map(|kv| kv.strip_prefix("MNEMO_DATABASE_URL="))
    }
}

/// A REST client for one server.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl Api {
    /// Stores the next fresh text, as a client would.
    async fn store_fresh(&self, fresh: &Fresh) -> anyhow::Result<(u16, Value, Duration)> {
        self.post("/api/memories", &json!({"content": fresh.take()}))
            .await
    }

    /// POSTs `body`; returns the status, the answer's JSON (Null if none) and the time
    /// until the whole answer arrived.
    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value, Duration)> {
        let started = Instant::now();
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        let took = started.elapsed();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            took,
        ))
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
            .context("no total in the list answer")
    }
}

/// Texts the write scenarios store, past everything seeded: distinct from each other
/// and from the seeded memories.
struct Fresh {
    corpus: Arc<Corpus>,
    next: AtomicUsize,
}

impl Fresh {
    fn take(&self) -> String {
        self.corpus
            .memory(self.next.fetch_add(1, Ordering::Relaxed))
    }
}

/// Stores `texts` through `POST /api/memories/batch` (100 per request, two requests
/// in flight so embedding one overlaps committing the other), or single stores with 8
/// clients when the server has no batch endpoint. Returns the errors.
async fn ingest(api: &Api, texts: &[String]) -> anyhow::Result<usize> {
    let batches: Vec<Vec<String>> = texts.chunks(100).map(<[String]>::to_vec).collect();
    let Some(first) = batches.first() else {
        return Ok(0);
    };
    let (status, body, _) = api.post("/api/memories/batch", &batch_body(first)).await?;
    if status == 404 || status == 405 {
        return ingest_single(api, texts, 8).await;
    }
    let mut errors = batch_errors(status, &body, first.len());
    let results = futures::stream::iter(batches.into_iter().skip(1))
        .map(|batch| {
            let api = api.clone();
            async move {
                let (status, body, _) =
                    api.post("/api/memories/batch", &batch_body(&batch)).await?;
                anyhow::Ok(batch_errors(status, &body, batch.len()))
            }
        })
        .buffered(2)
        .collect::<Vec<_>>()
        .await;
    for result in results {
        errors += result?;
    }
    Ok(errors)
}

fn batch_body(texts: &[String]) -> Value {
    json!({"memories": texts.iter().map(|t| json!({"content": t})).collect::<Vec<_>>()})
}

/// Items of a batch answer that were not stored (a duplicate counts as stored: the
/// text is there).
fn batch_errors(status: u16, body: &Value, len: usize) -> usize {
    if status != 200 {
        return len;
    }
    let results = body["results"].as_array().map_or(&[][..], Vec::as_slice);
    let ok = results
        .iter()
        .filter(|r| {
            r["success"] == true
                || r["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("already exists"))
        })
        .count();
    len - ok
}

async fn ingest_single(api: &Api, texts: &[String], clients: usize) -> anyhow::Result<usize> {
    let results = futures::stream::iter(texts.iter().cloned())
        .map(|text| {
            let api = api.clone();
            async move {
                let (status, _, _) = api.post("/api/memories", &json!({"content": text})).await?;
                anyhow::Ok(usize::from(status != 200 && status != 409))
            }
        })
        .buffer_unordered(clients)
        .collect::<Vec<_>>()
        .await;
    results.into_iter().sum()
}

/// What the recall check needs: the harness's vectors of the seeded memories and of
/// the queries, and which row each stored text is.
struct Truth {
    spec: EmbeddingSpec,
    memories: Vectors,
    queries: Vectors,
    row_of: HashMap<String, usize>,
}

/// Search latency and recall@10 at `level` memories.
async fn search_level(
    api: &Api,
    args: &Args,
    corpus: &Corpus,
    truth: Option<&Truth>,
    level: usize,
) -> anyhow::Result<Row> {
    let mut latencies = Vec::with_capacity(args.samples);
    let mut errors = 0;
    let mut recalls = Vec::new();
    for i in 0..args.samples {
        let query = corpus.query(i);
        let (status, body, took) = api
            .post("/api/search", &json!({"query": query, "n_results": 10}))
            .await?;
        latencies.push(took);
        if status != 200 {
            errors += 1;
            continue;
        }
        let Some(truth) = truth.filter(|t| i < args.recall_queries.min(t.queries.len())) else {
            continue;
        };
        let returned: Vec<usize> = body["results"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(|r| r["memory"]["content"].as_str())
            .filter_map(|content| truth.row_of.get(content).copied())
            .collect();
        recalls.push(vectors::recall(
            &truth.memories,
            truth.queries.row(i),
            level,
            10,
            &returned,
        ));
    }
    let mut row = Row::new(format!("search, {level} memories"))
        .latencies(&latencies)
        .errors(errors);
    if !recalls.is_empty() {
        row.recall_at_10 = Some(recalls.iter().sum::<f64>() / recalls.len() as f64);
    }
    Ok(row)
}

/// `samples` single stores, one at a time.
async fn store_latency(api: &Api, args: &Args, fresh: &Fresh) -> anyhow::Result<Row> {
    let mut latencies = Vec::with_capacity(args.samples);
    let mut errors = 0;
    for _ in 0..args.samples {
        let (status, _, took) = api.store_fresh(fresh).await?;
        errors += usize::from(status != 200);
        latencies.push(took);
    }
    Ok(Row::new("store, one at a time")
        .latencies(&latencies)
        .errors(errors))
}

/// Bulk ingest through the batch endpoint, then through single stores, for contrast.
async fn bulk(api: &Api, args: &Args, fresh: &Fresh) -> anyhow::Result<Vec<Row>> {
    let texts: Vec<String> = (0..args.bulk).map(|_| fresh.take()).collect();
    let started = Instant::now();
    let errors = ingest(api, &texts).await?;
    let batched = Row::new("bulk ingest, batches of 100")
        .rate(texts.len(), started.elapsed())
        .errors(errors);
    let texts: Vec<String> = (0..args.bulk / 3).map(|_| fresh.take()).collect();
    let started = Instant::now();
    let errors = ingest_single(api, &texts, 16).await?;
    let single = Row::new("bulk ingest, single stores, 16 clients")
        .rate(texts.len(), started.elapsed())
        .errors(errors);
    Ok(vec![batched, single])
}

/// `clients` clients for `mixed_seconds`: every tenth request of each client is a
/// store, the rest are searches.
async fn mixed(
    apis: &[Api],
    args: &Args,
    corpus: &Arc<Corpus>,
    fresh: &Arc<Fresh>,
    clients: usize,
    embed_bound: Option<f64>,
) -> anyhow::Result<Vec<Row>> {
    let deadline = Instant::now() + Duration::from_secs_f64(args.mixed_seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|w| {
            // Clients are spread over the servers in turn.
            let api = apis[w % apis.len()].clone();
            let corpus = Arc::clone(corpus);
            let fresh = Arc::clone(fresh);
            tokio::spawn(async move {
                let (mut searches, mut stores, mut errors) = (Vec::new(), Vec::new(), 0);
                let mut j = 0;
                while Instant::now() < deadline {
                    let store = (j + w) % 10 == 0;
                    let result = if store {
                        api.store_fresh(&fresh).await
                    } else {
                        let query = corpus.query(w * 7919 + j);
                        api.post("/api/search", &json!({"query": query, "n_results": 10}))
                            .await
                    };
                    match result {
                        Ok((200, _, took)) if store => stores.push(took),
                        Ok((200, _, took)) => searches.push(took),
                        _ => errors += 1,
                    }
                    j += 1;
                }
                (searches, stores, errors)
            })
        })
        .collect();
    let (mut searches, mut stores, mut errors) = (Vec::new(), Vec::new(), 0);
    for worker in workers {
        let (s, t, e) = worker.await?;
        searches.extend(s);
        stores.extend(t);
        errors += e;
    }
    let elapsed = started.elapsed();
    let mut all = searches.clone();
    all.extend(&stores);
    let servers = match apis.len() {
        1 => String::new(),
        n => format!(" over {n} servers"),
    };
    let mut total = Row::new(format!("mixed load, {clients} clients{servers}"))
        .latencies(&all)
        .rate(all.len() + errors, elapsed)
        .errors(errors);
    if let (Some(bound), Some(rate)) = (embed_bound, total.per_s) {
        total = total.value(100.0 * rate / bound, "% of embed bound");
    }
    Ok(vec![
        total,
        Row::new(format!("mixed load, {clients} clients{servers}: searches")).latencies(&searches),
        Row::new(format!("mixed load, {clients} clients{servers}: stores")).latencies(&stores),
    ])
}

/// Opens `sse_subscribers` streams, makes `sse_writes` writes one at a time and
/// times each event from its commit timestamp to its arrival at every subscriber.
async fn fan_out(api: &Api, args: &Args, fresh: &Fresh) -> anyhow::Result<Row> {
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(args.sse_subscribers.max(1));
    let mut readers = Vec::new();
    for _ in 0..args.sse_subscribers {
        let response = api
            .http
            .get(format!("{}/api/events", api.url))
            .bearer_auth(&api.key)
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
                        // ISO 8601 (mcp-memory-service and Mnemo); a bare number
                        // from servers that send epoch seconds.
                        let committed = match &data["timestamp"] {
                            Value::String(text) => {
                                text.parse::<jiff::Timestamp>()?.as_microsecond() as f64 / 1e6
                            }
                            other => other.as_f64().context("event without timestamp")?,
                        };
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
    for _ in 0..args.sse_writes {
        let (status, _, _) = api.store_fresh(fresh).await?;
        errors += usize::from(status != 200);
    }
    let mut all = Vec::new();
    for reader in readers {
        match reader.await? {
            Ok(delays) if delays.len() == args.sse_writes => all.extend(delays),
            _ => errors += 1,
        }
    }
    Ok(
        Row::new(format!("SSE fan-out, {} subscribers", args.sse_subscribers))
            .latencies(&all)
            .errors(errors),
    )
}

/// `VmRSS` (or `VmHWM` for the peak), and for the current figure a second row with
/// its anonymous part.
fn rss_rows(name: &str, pid: Option<u32>, peak: bool) -> Vec<Row> {
    let Some((rss, hwm, anon)) = pid.and_then(spawned::rss_mib) else {
        return Vec::new();
    };
    if peak {
        vec![Row::new(name).value(hwm, "MiB")]
    } else {
        vec![
            Row::new(name).value(rss, "MiB"),
            Row::new(format!("{name}, anonymous")).value(anon, "MiB"),
        ]
    }
}

/// Loads the model in this process: for the embedding bound and the recall truth.
fn load_embedder() -> anyhow::Result<Embedder> {
    // As the server would load it on this machine, `MNEMO_EMBED_THREADS` included.
    let config = Config::parse_from(["mnemo-server"]);
    let model = FastEmbedModel::load(
        &config.model_files(),
        &config.model_id,
        config.embed_threads(),
    )?;
    Ok(Embedder::start(Box::new(model), 64))
}

/// Embedding throughput in this process, while no server runs, in batches of 32 and
/// one text at a time on the same texts: the bound the issue sets ingest and
/// mixed-load targets against is the better of the two. (On real sentences of mixed
/// lengths one at a time can win: a batch pads every text to its longest.)
fn embed_bound(embedder: &Embedder, corpus: &Corpus, runs: usize) -> anyhow::Result<Vec<Row>> {
    let texts = |run: usize| -> Vec<String> {
        (0..32)
            .map(|i| corpus.memory(1000 + run * 32 + i))
            .collect()
    };
    embedder.embed_blocking((0..32).map(|i| corpus.memory(i)).collect())?;
    let started = Instant::now();
    for run in 0..runs {
        embedder.embed_blocking(texts(run))?;
    }
    let batched =
        Row::new("embedding bound, batches of 32, in-process").rate(runs * 32, started.elapsed());
    let started = Instant::now();
    for run in 0..runs {
        for text in texts(run) {
            embedder.embed_blocking(vec![text])?;
        }
    }
    let single =
        Row::new("embedding bound, one at a time, in-process").rate(runs * 32, started.elapsed());
    Ok(vec![batched, single])
}

/// In this process, before any server starts: the embedding bound, then the
/// harness's own vectors of the seeded memories and the queries (from the cache when
/// it has them). The model is dropped afterwards so it does not compete with the
/// server for memory.
fn truth(
    corpus: &Corpus,
    cache: &Path,
    args: &Args,
    seeded: Vec<String>,
) -> anyhow::Result<(Vec<Row>, Truth)> {
    let embedder = load_embedder()?;
    let bound = if args.skips("bound") {
        Vec::new()
    } else {
        embed_bound(&embedder, corpus, if args.quick { 3 } else { 30 })?
    };
    let query_texts: Vec<String> = (0..args.recall_queries.min(corpus.query_count()))
        .map(|i| corpus.query(i).to_owned())
        .collect();
    let name = format!("corpus-{}", corpus.fingerprint);
    let truth = Truth {
        spec: embedder.spec().clone(),
        memories: Vectors::embed_cached(&embedder, cache, &name, &seeded)?,
        queries: Vectors::embed_cached(&embedder, cache, &format!("{name}-queries"), &query_texts)?,
        row_of: seeded
            .into_iter()
            .enumerate()
            .map(|(i, t)| (t, i))
            .collect(),
    };
    Ok((bound, truth))
}

/// The server under test: one the harness starts (and restarts between levels), or
/// an external one.
enum Target {
    Spawned {
        binary: PathBuf,
        env: Vec<(String, String)>,
        data_dir: tempfile::TempDir,
        server: Option<Spawned>,
    },
    External {
        pid: Option<u32>,
    },
}

impl Target {
    fn pid(&self) -> Option<u32> {
        match self {
            Target::Spawned { server, .. } => server.as_ref().map(Spawned::pid),
            Target::External { pid } => *pid,
        }
    }
}

fn run_date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if let Some(paths) = &args.compare {
        let read = |p: &PathBuf| -> anyhow::Result<Value> {
            Ok(serde_json::from_slice(
                &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
            )?)
        };
        print!("{}", report::compare(&read(&paths[0])?, &read(&paths[1])?));
        return Ok(());
    }
    args.apply_quick();
    args.apply_server_database();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cache = Config::parse_from(["mnemo-server"])
        .cache_dir()
        .join("bench");
    let mut rows = Vec::new();

    let corpus = Arc::new(Corpus::load(&cache)?);
    let max_level = args.levels.iter().copied().max().unwrap_or(0);
    eprintln!(
        "corpus {} ({} sentences, {} queries); cores {cores}",
        corpus.fingerprint,
        corpus.sentences(),
        corpus.query_count()
    );

    let seeded = corpus.memories(max_level);
    let (bound, truth) = {
        let (corpus, cache, args) = (Arc::clone(&corpus), cache.clone(), args.clone());
        let seeded = seeded.clone();
        tokio::task::spawn_blocking(move || truth(&corpus, &cache, &args, seeded)).await??
    };
    let embed_rate = bound.iter().filter_map(|row| row.per_s).reduce(f64::max);
    rows.extend(bound);
    let fresh = Arc::new(Fresh {
        corpus: Arc::clone(&corpus),
        // Far past the seeded texts (which skip a few duplicate pairs).
        next: AtomicUsize::new(max_level + 10_000),
    });

    let http = match &args.fingerprint {
        Some(fp) => reqwest::Client::builder()
            .use_preconfigured_tls(mnemo_certs::pinned_client_config(
                fp.trim()
                    .parse()
                    .context("--fingerprint is not a SHA-256 fingerprint")?,
            ))
            .build()?,
        None => reqwest::Client::new(),
    };

    let mut target = match &args.url {
        Some(_) => Target::External {
            pid: args.server_pid,
        },
        None => {
            let binary = args
                .server_bin
                .clone()
                .unwrap_or_else(spawned::default_binary);
            if !binary.exists() {
                bail!(
                    "no server binary at {}; build it (cargo build --release -p mnemo-server) or pass --server-bin",
                    binary.display()
                );
            }
            let env = args
                .server_env
                .iter()
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .with_context(|| format!("--server-env {kv:?} is not KEY=VALUE"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut starts = Vec::new();
            let cold_starts = if args.skips("cold") {
                0
            } else {
                args.cold_starts
            };
            for _ in 0..cold_starts {
                let dir = tempfile::tempdir()?;
                let server = Spawned::start(&binary, dir.path(), &env, &http).await?;
                starts.push(server.start_to_healthy);
                server.stop()?;
            }
            if !starts.is_empty() {
                rows.push(Row::new("cold start to healthy, empty database").latencies(&starts));
            }
            Target::Spawned {
                binary,
                env,
                data_dir: tempfile::tempdir()?,
                server: None,
            }
        }
    };
    let mut api = Api {
        http: http.clone(),
        url: args
            .url
            .clone()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned(),
        key: args
            .api_key
            .clone()
            .unwrap_or_else(|| spawned::KEY.to_owned()),
    };

    // Recall is only meaningful if the server holds exactly the harness's texts.
    let mut truth = Some(truth);
    let mut have = 0;
    if let Target::External { .. } = target {
        have = api.count().await?;
        if have > 0 {
            eprintln!("the server already holds {have} memories: recall is not measured");
            truth = None;
        }
    }
    for &level in &args.levels {
        if let Target::Spawned {
            binary,
            env,
            data_dir,
            server,
        } = &mut target
        {
            let snapshot = cache
                .join("snapshots")
                .join(format!("{}-{level}", corpus.fingerprint));
            if !args.fresh && have < level && snapshot.join("memories.db").exists() {
                if let Some(running) = server.take() {
                    running.stop()?;
                }
                *data_dir = tempfile::tempdir()?;
                spawned::copy_database(&snapshot, data_dir.path())?;
                have = level;
                let started = Spawned::start(binary, data_dir.path(), env, &http).await?;
                rows.push(
                    Row::new(format!("cold start to healthy, {level} memories"))
                        .latencies(&[started.start_to_healthy]),
                );
                *server = Some(started);
            } else if server.is_none() {
                *server = Some(Spawned::start(binary, data_dir.path(), env, &http).await?);
            }
            api.url = server
                .as_ref()
                .map(|s| s.url().to_owned())
                .unwrap_or_default();
        }
        if have < level {
            let started = Instant::now();
            let direct = match (&mut target, &truth) {
                (Target::Spawned { .. }, Some(truth))
                    if !args.seed_over_rest
                        && let Some(url) = args.database_url() =>
                {
                    Some(seed_postgres(url, truth, &seeded, have..level).await?)
                }
                (
                    Target::Spawned {
                        data_dir, server, ..
                    },
                    Some(truth),
                ) if !args.seed_over_rest => {
                    if let Some(running) = server.take() {
                        running.stop()?;
                    }
                    Some(seed_directly(data_dir.path(), truth, &seeded, have..level).await?)
                }
                _ => None,
            };
            let (how, errors) = match direct {
                Some(errors) => ("written by the store", errors),
                None => ("batches of 100", ingest(&api, &seeded[have..level]).await?),
            };
            rows.push(
                Row::new(format!("seed {have} to {level} memories, {how}"))
                    .rate(level - have, started.elapsed())
                    .errors(errors),
            );
            have = level;
            if let Target::Spawned {
                binary,
                env,
                data_dir,
                server,
            } = &mut target
            {
                // Restart from disk, as a cached snapshot would: every level is then
                // measured on a server that just opened its database.
                if let Some(running) = server.take() {
                    running.stop()?;
                }
                if !args.fresh {
                    let snapshot = cache
                        .join("snapshots")
                        .join(format!("{}-{level}", corpus.fingerprint));
                    save_snapshot(data_dir.path(), &snapshot)?;
                }
                let started = Spawned::start(binary, data_dir.path(), env, &http).await?;
                rows.push(
                    Row::new(format!("cold start to healthy, {level} memories"))
                        .latencies(&[started.start_to_healthy]),
                );
                api.url = started.url().to_owned();
                *server = Some(started);
            }
        }
        if let Target::Spawned {
            env,
            server: Some(server),
            ..
        } = &mut target
        {
            // Steady state: searches only after the copy has loaded, unless disabled.
            let disabled = env
                .iter()
                .any(|(k, v)| k == "MNEMO_MEMORY_VECTORS" && v == "false");
            if !disabled
                && let Some(loaded) = tokio::task::block_in_place(|| server.wait_vector_copy())?
            {
                rows.push(
                    Row::new(format!("vector copy loaded after start, {level} memories"))
                        .latencies(&[loaded]),
                );
            }
        }
        rows.push(search_level(&api, &args, &corpus, truth.as_ref(), level).await?);
        rows.extend(rss_rows(
            &format!("RSS after searches, {level} memories"),
            target.pid(),
            false,
        ));
    }
    if api.url.is_empty() {
        bail!("no level to measure: pass --levels");
    }

    if args.fresh_connections {
        // No idle connection is kept, so every request pays the whole handshake.
        let mut builder = reqwest::Client::builder().pool_max_idle_per_host(0);
        if let Some(fp) = &args.fingerprint {
            builder = builder.use_preconfigured_tls(mnemo_certs::pinned_client_config(
                fp.trim()
                    .parse()
                    .context("--fingerprint is not a SHA-256 fingerprint")?,
            ));
        }
        let fresh_api = Api {
            http: builder.build()?,
            ..api.clone()
        };
        let mut row = search_level(&fresh_api, &args, &corpus, None, have).await?;
        row.name = format!("search, new connection each, {have} memories");
        rows.push(row);
    }
    if !args.skips("store") {
        rows.push(store_latency(&api, &args, &fresh).await?);
    }
    if !args.skips("bulk") {
        rows.extend(bulk(&api, &args, &fresh).await?);
    }
    let mut apis = vec![api.clone()];
    let mut others = Vec::new();
    if args.servers > 1 && !args.skips("mixed") {
        let Target::Spawned { binary, env, .. } = &target else {
            bail!("--servers needs a started server (no --url)");
        };
        if args.database_url().is_none() {
            bail!("--servers needs --server-env MNEMO_DATABASE_URL=…: only PostgreSQL is shared");
        }
        for _ in 1..args.servers {
            let dir = tempfile::tempdir()?;
            let server = Spawned::start(binary, dir.path(), env, &http).await?;
            apis.push(Api {
                url: server.url().to_owned(),
                ..api.clone()
            });
            others.push((server, dir));
        }
    }
    for &clients in args.mixed_clients.iter().filter(|_| !args.skips("mixed")) {
        rows.extend(mixed(&apis, &args, &corpus, &fresh, clients, embed_rate).await?);
    }
    for (server, _dir) in others {
        server.stop()?;
    }
    if args.sse_subscribers > 0 && !args.skips("sse") {
        rows.push(fan_out(&api, &args, &fresh).await?);
    }
    rows.extend(rss_rows("RSS at the end", target.pid(), false));
    rows.extend(rss_rows("RSS peak", target.pid(), true));

    println!(
        "mnemo-bench {} · {} · cores {cores} · corpus {} ({} sentences)\n",
        if args.url.is_some() {
            "external server"
        } else {
            "spawned server"
        },
        run_date(),
        corpus.fingerprint,
        corpus.sentences()
    );
    print!("{}", report::table(&rows));
    let errors: usize = rows.iter().map(|r| r.errors).sum();
    if let Some(path) = &args.json {
        let report = json!({
            "label": args.label,
            "date": run_date(),
            "cores": cores,
            "corpus": corpus.fingerprint,
            "quick": args.quick,
            "errors": errors,
            "rows": rows.iter().map(Row::to_json).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    if errors > 0 {
        bail!("{errors} requests failed");
    }
    Ok(())
}

/// Writes memories `range` into a stopped server's database with Mnemo's own store
/// (the same statements, group commit and vec0 table the server uses) and the
/// harness's embeddings. Returns the number of failed inserts.
async fn seed_directly(
    data_dir: &Path,
    truth: &Truth,
    texts: &[String],
    range: std::ops::Range<usize>,
) -> anyhow::Result<usize> {
    let options = SqliteOptions {
        memory_vectors: false,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&data_dir.join("memories.db"), &truth.spec, options)?;
    seed_store(&store, truth, texts, range).await
}

/// Writes memories `range` into the PostgreSQL database at `url` with Mnemo's own
/// store and the harness's embeddings, while the server runs (it hears of them as
/// of any other server's writes). Returns the number of failed inserts.
async fn seed_postgres(
    url: &str,
    truth: &Truth,
    texts: &[String],
    range: std::ops::Range<usize>,
) -> anyhow::Result<usize> {
    let store = PostgresStore::open(url, &truth.spec, PostgresOptions::default()).await?;
    seed_store(&store, truth, texts, range).await
}

/// Inserts memories `range` into `store` in batches of 500; returns the failures.
async fn seed_store(
    store: &dyn Storage,
    truth: &Truth,
    texts: &[String],
    range: std::ops::Range<usize>,
) -> anyhow::Result<usize> {
    let mut errors = 0;
    let rows: Vec<usize> = range.collect();
    for chunk in rows.chunks(500) {
        let records = chunk
            .iter()
            .map(|&i| seed_record(truth, texts, i))
            .collect();
        errors += store
            .insert_many(records)
            .await?
            .iter()
            .filter(|r| r.is_err())
            .count();
    }
    Ok(errors)
}

/// The `i`th seeded memory as the store takes it, with the harness's vector.
fn seed_record(truth: &Truth, texts: &[String], i: usize) -> NewRecord {
    NewRecord {
        content: texts[i].clone(),
        content_hash: content_hash(&texts[i]),
        tags: Vec::new(),
        memory_type: None,
        metadata: serde_json::Map::new(),
        vector: truth.memories.row(i).to_vec(),
        created_at: None,
        updated_at: None,
    }
}

/// Saves a stopped server's database as the cached snapshot of a level.
fn save_snapshot(data_dir: &Path, snapshot: &Path) -> anyhow::Result<()> {
    let partial = snapshot.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial)?;
    spawned::copy_database(data_dir, &partial)?;
    let _ = std::fs::remove_dir_all(snapshot);
    std::fs::rename(&partial, snapshot)?;
    Ok(())
}

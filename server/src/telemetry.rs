//! Metrics: the Prometheus recorder every layer records into, and the catalog of what
//! is recorded (each name, its kind, labels and help text).
//!
//! The layers record through the `metrics` facade's macros (`counter!`, `gauge!`,
//! `histogram!`) under a name from this catalog, and know nothing of Prometheus or of
//! HTTP; `GET /metrics` (`http/metrics.rs`) renders. Like the facade's, the recorder is
//! one per process: servers started in one test process share it.
//!
//! Every label takes a bounded set of values (a route's template, never its path; a
//! status code; a search mode; a backend), so no client can grow the series without
//! bound. Latencies are histograms in seconds with [`SECONDS_BUCKETS`]; sizes are
//! histograms with [`SIZE_BUCKETS`].

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// HTTP requests answered, by `method`, `route` and `status` (counter).
pub const HTTP_REQUESTS: &str = "mnemo_http_requests_total";
/// From a request's arrival at the router to its response head, by `method`, `route`
/// and `status` (histogram).
pub const HTTP_DURATION: &str = "mnemo_http_request_duration_seconds";
/// The `route` of a request that matched no route: one label value, whatever the path.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// One call of the embedding model (histogram).
pub const EMBED_DURATION: &str = "mnemo_embed_duration_seconds";
/// Texts in one call of the embedding model (histogram).
pub const EMBED_BATCH: &str = "mnemo_embed_batch_texts";
/// Embedding requests waiting for the model thread (gauge).
pub const EMBED_QUEUE: &str = "mnemo_embed_queue_depth";
/// Model calls that failed (counter).
pub const EMBED_FAILURES: &str = "mnemo_embed_failures_total";

/// Writes in one committed transaction, by `backend` (histogram).
pub const WRITE_GROUP: &str = "mnemo_storage_write_group_size";
/// One write transaction, from its start to its commit, by `backend` (histogram).
pub const COMMIT_DURATION: &str = "mnemo_storage_commit_duration_seconds";
/// Write transactions that did not commit, by `backend` (counter).
pub const COMMIT_FAILURES: &str = "mnemo_storage_commit_failures_total";
/// Memories stored, by `backend`; set at each scrape (gauge).
pub const MEMORIES: &str = "mnemo_memories";
/// The database's size, by `backend`; set at each scrape (gauge).
pub const DATABASE_BYTES: &str = "mnemo_database_size_bytes";

/// Successful searches, by `mode` (histogram).
pub const SEARCH_DURATION: &str = "mnemo_search_duration_seconds";

/// Change-feed subscribers connected; set at each scrape (gauge).
pub const SSE_SUBSCRIBERS: &str = "mnemo_sse_subscribers";
/// Events the furthest-behind subscriber has not been sent yet; set at each scrape
/// (gauge).
pub const SSE_MAX_LAG: &str = "mnemo_sse_max_lag_events";
/// Subscribers that have not been sent the newest event yet; set at each scrape
/// (gauge).
pub const SSE_LAGGING: &str = "mnemo_sse_lagging_subscribers";
/// Times a subscriber fell off the in-memory ring and read from the events table
/// (counter).
pub const SSE_RING_OVERRUNS: &str = "mnemo_sse_ring_overruns_total";
/// Subscribers disconnected for making no progress while behind (counter).
pub const SSE_STALLED: &str = "mnemo_sse_stalled_disconnects_total";

/// Requests refused for their credential, by `reason` (counter).
pub const AUTH_FAILURES: &str = "mnemo_auth_failures_total";
/// Requests refused because their address failed too often (counter).
pub const AUTH_RATE_LIMITED: &str = "mnemo_auth_rate_limited_total";

/// Always 1, with the server's `version` (gauge).
pub const BUILD_INFO: &str = "mnemo_build_info";

/// Latency buckets, in seconds: from a fast read (half a millisecond) to a request
/// that waited on the read timeout.
const SECONDS_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Size buckets (texts per model call, writes per commit): powers of two up to the
/// largest group commit allowed.
const SIZE_BUCKETS: [f64; 13] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes, so
/// an unscraped server's memory stays bounded.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use. Until then every macro records
/// into nothing, so `startup` installs it before serving.
pub fn recorder() -> &'static PrometheusHandle {
    RECORDER.get_or_init(|| {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        match metrics::set_global_recorder(recorder) {
            Ok(()) => {
                describe();
                process_collector().describe();
                metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            }
            // Only a program embedding this server could have set one.
            Err(e) => {
                tracing::warn!(error = %e, "another metrics recorder is installed; /metrics will be empty");
            }
        }
        handle
    })
}

/// The exposition text of every metric, with the process's figures read now.
pub fn render() -> String {
    let recorder = recorder();
    process_collector().collect();
    recorder.render()
}

/// Folds histogram samples into buckets every few seconds until `shutdown`.
pub async fn upkeep(shutdown: CancellationToken) {
    let recorder = recorder();
    let mut ticks = tokio::time::interval(UPKEEP_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => recorder.run_upkeep(),
        }
    }
}

fn builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(EMBED_BATCH.into()), &SIZE_BUCKETS))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(WRITE_GROUP.into()), &SIZE_BUCKETS))
        .expect("the bucket lists are not empty")
}

/// RSS, CPU seconds, open and maximum descriptors, threads, start time, from `/proc`,
/// under the names every Prometheus client library uses (`process_*`). CPU time is
/// counted in whole seconds: the facade's counters are integers.
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// The help text and unit of every metric in the catalog.
fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route template and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time from a request reaching the router to its response head (a stream's head, not its end), by method, route template and status"
    );
    describe_histogram!(
        EMBED_DURATION,
        Unit::Seconds,
        "Time of one call of the embedding model"
    );
    describe_histogram!(
        EMBED_BATCH,
        Unit::Count,
        "Texts embedded in one call of the model"
    );
    describe_gauge!(
        EMBED_QUEUE,
        Unit::Count,
        "Embedding requests waiting for the model thread, as of its last take"
    );
    describe_counter!(EMBED_FAILURES, "Calls of the embedding model that failed");
    describe_histogram!(
        WRITE_GROUP,
        Unit::Count,
        "Writes in one committed transaction (group commit: each write in its own savepoint), by backend"
    );
    describe_histogram!(
        COMMIT_DURATION,
        Unit::Seconds,
        "Time of one write transaction, from its start to its commit, by backend"
    );
    describe_counter!(
        COMMIT_FAILURES,
        "Write transactions that failed to commit, by backend"
    );
    describe_gauge!(MEMORIES, Unit::Count, "Memories stored, by backend");
    describe_gauge!(
        DATABASE_BYTES,
        Unit::Bytes,
        "Size of the database (SQLite: the file and its write-ahead log), by backend"
    );
    describe_histogram!(
        SEARCH_DURATION,
        Unit::Seconds,
        "Time of a successful search, by mode (semantic, hybrid, exact, tag, time, similar)"
    );
    describe_gauge!(
        SSE_SUBSCRIBERS,
        Unit::Count,
        "Change-feed (SSE) subscribers connected"
    );
    describe_gauge!(
        SSE_MAX_LAG,
        Unit::Count,
        "Events the furthest-behind change-feed subscriber has not been sent yet"
    );
    describe_gauge!(
        SSE_LAGGING,
        Unit::Count,
        "Change-feed subscribers that have not been sent the newest event yet"
    );
    describe_counter!(
        SSE_RING_OVERRUNS,
        "Times a change-feed subscriber fell off the in-memory ring and caught up from the events table"
    );
    describe_counter!(
        SSE_STALLED,
        "Change-feed subscribers disconnected for receiving nothing while behind"
    );
    describe_counter!(
        AUTH_FAILURES,
        "Requests refused for their credential, by reason (missing, invalid, insufficient_scope, ticket, key_in_url)"
    );
    describe_counter!(
        AUTH_RATE_LIMITED,
        "Requests refused because their client address failed authentication too often"
    );
    describe_gauge!(BUILD_INFO, "Always 1, labelled with the server's version");
}

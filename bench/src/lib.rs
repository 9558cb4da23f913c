//! Mnemo's benchmark harness. The programs are in `src/bin/`; this library holds the
//! pieces they share. Results and how to run each are in BENCHMARKS.md.
//!
//! * `src/bin/mnemo-bench.rs`: the REST benchmark: cold start, store and search
//!   latency with recall@10, bulk ingest, mixed load, SSE fan-out and RSS, against a
//!   server it starts itself or one given by URL.
//! * `src/bin/bridge-bench.rs`: what an MCP client waits for through `mnemo-bridge`
//!   (spawn to `initialize`, tool-call round trips over HTTP and pinned HTTPS).
//! * `src/bin/embed-bench.rs`: embedding latency and batch throughput in-process.
//! * `src/bin/open-bench.rs`: what opening a database of N memories costs, its
//!   integrity check included.
//! * `src/bin/backup-bench.rs`: backup time and the longest write stall under a
//!   write load.
//! * `tests/bench_quick.rs`: `mnemo-bench --quick` as CI runs it: every scenario,
//!   zero errors, exact recall; no timing asserted.
//! * [`corpus`]: deterministic synthetic sentences for bridge-bench and embed-bench.
//! * [`realtext`]: mnemo-bench's corpus, real sentences from the toolchains'
//!   documentation.
//! * [`vectors`]: the harness's own embeddings of it (cached) and the exact top-10
//!   that recall is measured against.
//! * [`spawned`]: a server process the harness starts itself on port 0
//!   (`mnemo_server::testing::ServerProcess` with the harness's key and readiness).
//! * [`report`]: rows, the table, the JSON and `--compare`.
//! * [`synthetic`]: memories with random vectors, for open-bench and backup-bench.

pub mod corpus;
pub mod realtext;
pub mod report;
pub mod spawned;
pub mod synthetic;
pub mod vectors;

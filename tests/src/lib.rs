//! End-to-end tests that cross process boundaries, and the benchmark tools.
//!
//! * `tests/`: the provisioning script end to end; the server with the bridge, real MCP
//!   clients and a browser as those arrive.
//! * `src/bin/mnemo-bench.rs` and [`bench`]: the REST benchmark harness (corpus,
//!   scenarios, recall, report).
//! * `src/bin/embed-bench.rs`: embedding latency and batch throughput in-process.
//! * [`corpus`]: the deterministic sentences both benches use.
//! * [`process`]: the server and the bridge as child processes, for the end-to-end
//!   tests and the bridge benchmark.

pub mod bench;
pub mod corpus;
pub mod process;

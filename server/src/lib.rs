//! Mnemo server: shared semantic memory for AI assistants.
//!
//! # Layout
//!
//! In the order a request meets them (ARCHITECTURE.md has the whole map):
//!
//! * [`cli`]: the command line: serving, or the `keys` commands that manage API keys.
//! * [`config`]: every setting, as one clap struct whose flags all have an
//!   environment variable (mcp-memory-service's names where the meaning matches).
//! * [`offline`]: the commands that open the database directly, with no server running
//!   on it: `export`, `import`, `import-from mcp-memory-service`, `reembed`, `restore`.
//! * [`startup`]: [`Server`]: keys, TLS and the listener first, then the model and
//!   database in the background while health checks already answer; mDNS once
//!   healthy; a cancellation token stops it.
//! * [`tls`]: which certificate the server presents (the user's, or one made with
//!   `mnemo-certs`, its fingerprint published), the acceptor and the handshake.
//! * [`mdns`]: the mDNS advertisement (`_mcp-memory._tcp`), only on the addresses the
//!   server listens on, withdrawn with a goodbye on shutdown; its stable instance id.
//! * [`http`]: the shared state and the route table (REST, SSE, and `/mcp`, where
//!   `mnemo-mcp`'s tool registry runs over the operations), each route registered with
//!   the access it needs; the handlers; the accept loop.
//! * [`auth`]: API keys and their scopes, and whether a key may do what a request
//!   needs; nothing in it knows HTTP.
//! * [`operations`]: one function per thing a client can ask, taking the wire request
//!   and the caller; the REST handlers and the tools at `/mcp` both call them.
//! * [`timeexpr`]: time phrases ("last week", "yesterday morning") as time ranges.
//! * [`service`]: the memory service: it validates, embeds, then stores or searches
//!   through `Arc<dyn Storage>`.
//! * [`feed`]: the change feed behind `GET /api/events`: a bounded in-memory ring for
//!   subscribers that keep up, the events table for those that do not.
//! * [`storage`]: the [`storage::Storage`] trait, what the service needs from a
//!   database (writes that append their change-feed event in the same transaction,
//!   filtered exact KNN, full-text ranking, the events table), and its SQLite backend
//!   in [`storage::sqlite`]: one writer thread with group commit, a pool of read-only
//!   connections, sqlite-vec vectors and FTS5; or [`storage::postgres`], PostgreSQL with
//!   pgvector, which several servers can share.
//! * [`embed`]: turning text into vectors. Finds the model files and ONNX Runtime,
//!   loads the model with fastembed, and batches concurrent requests on one thread.
//! * [`memory`]: the domain types every layer shares (a memory, a search filter, the
//!   embedding model's spec) and their rules: content identity, tag normalisation,
//!   metadata merging.
//! * [`telemetry`]: the Prometheus recorder and the catalog of every metric (name,
//!   labels, help); every layer records through the `metrics` facade, `GET /metrics`
//!   renders.
//! * `testing` (feature `test-util`): the fixtures every test shares: the real model,
//!   in-process test servers, the server binary as a child process.

// Libraries never print: stdout belongs to the programs (for the bridge it is the MCP channel).
#![deny(clippy::print_stdout)]

pub mod auth;
pub mod cli;
pub mod config;
pub mod embed;
pub mod feed;
pub mod http;
pub mod mdns;
pub mod memory;
pub mod offline;
pub mod operations;
pub mod service;
pub mod startup;
pub mod storage;
pub mod telemetry;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod timeexpr;
pub mod tls;

pub use config::Config;
pub use startup::{Server, serve};

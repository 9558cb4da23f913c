//! Mnemo server: shared semantic memory for AI assistants.
//!
//! # Layout
//!
//! * [`config`]: every setting, as one clap struct whose flags all have an
//!   environment variable (the Python anchor's names where the meaning matches).
//! * [`memory`]: the domain types every layer shares (a memory, a search filter, the
//!   embedding model's spec) and their rules: content identity, tag normalisation,
//!   metadata merging.
//! * [`storage`]: the [`storage::Storage`] trait, what the service needs from a
//!   database (writes that append their change-feed event in the same transaction,
//!   filtered exact KNN, full-text ranking, the events table), and its SQLite backend
//!   in [`storage::sqlite`]: one writer thread with group commit, a pool of read-only
//!   connections, sqlite-vec vectors and FTS5.
//! * [`embed`]: turning text into vectors. Finds the model files and ONNX Runtime,
//!   loads the model with fastembed, and batches concurrent requests on one thread.
//! * [`feed`]: the change feed behind `GET /api/events`: a bounded in-memory ring for
//!   subscribers that keep up, the events table for those that do not.
//! * [`service`]: the memory service: it validates, embeds, then stores or searches
//!   through `Arc<dyn Storage>`.
//! * [`operations`]: one function per thing a client can ask, taking the wire request
//!   and the caller; the REST handlers and the tools at `/mcp` both call them.
//! * [`auth`]: API keys and their scopes, and whether a key may do what a request
//!   needs; nothing in it knows HTTP.
//! * [`timeexpr`]: time phrases ("last week", "yesterday morning") as time ranges.
//! * [`lan`]: what the server shows the network: its TLS certificate (made with
//!   `mnemo-certs`, fingerprint published) and its mDNS advertisement.
//! * [`mdns`]: the mDNS advertisement (`_mcp-memory._tcp`), only on the addresses the
//!   server listens on, withdrawn with a goodbye on shutdown.
//! * [`http`]: the shared state and the route table (REST, SSE, and `/mcp`, where
//!   `mnemo-mcp`'s tool registry runs over the operations), each route registered with
//!   the access it needs; the handlers; the accept loop.
//! * [`startup`]: [`Server`]: keys, TLS and the listener first, then the model and
//!   database in the background while health checks already answer; mDNS once
//!   healthy; a cancellation token stops it.

pub mod auth;
pub mod config;
pub mod embed;
pub mod feed;
pub mod http;
pub mod lan;
pub mod mdns;
pub mod memory;
pub mod operations;
pub mod service;
pub mod startup;
pub mod storage;
pub mod timeexpr;

pub use config::Config;
pub use startup::{Server, serve};

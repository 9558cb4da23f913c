//! Mnemo server: shared semantic memory for AI assistants.
//!
//! # Layout
//!
//! * [`config`]: every setting, as one clap struct whose flags all have an
//!   environment variable (the Python anchor's names where the meaning matches).
//! * [`memory`]: the memory type and its rules: content identity, tag normalisation,
//!   metadata merging, search filters.
//! * [`store`]: the SQLite database. One writer thread with group commit, a pool of
//!   read-only connections, sqlite-vec vectors, FTS5 and the change-feed table.
//! * [`embed`]: turning text into vectors. Finds the model files and ONNX Runtime,
//!   loads the model with fastembed, and batches concurrent requests on one thread.
//! * [`feed`]: the change feed behind `GET /api/events`: a bounded in-memory ring for
//!   subscribers that keep up, the events table for those that do not.
//! * [`service`]: the async memory operations the HTTP layer calls; it embeds, then
//!   stores or searches, on blocking threads.
//! * [`lan`]: what the server shows the network: its TLS certificate (made with
//!   `mnemo-certs`, fingerprint published) and its mDNS advertisement.
//! * [`mdns`]: the mDNS advertisement (`_mcp-memory._tcp`), only on the addresses the
//!   server listens on, withdrawn with a goodbye on shutdown.
//! * [`http`]: the router (REST, SSE, and `/mcp`, where `mnemo-mcp`'s tool
//!   registry runs over the REST handlers) and [`serve`], which answers health checks
//!   while the model loads and stops on a cancellation token.
//! * `testing` (feature `test-util`): the fixtures every test shares: the real model,
//!   in-process test servers, the server binary as a child process.

pub mod auth;
pub mod config;
pub mod embed;
pub mod feed;
pub mod http;
pub mod lan;
pub mod mdns;
pub mod memory;
pub mod service;
pub mod store;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod timeexpr;

pub use config::Config;
pub use http::serve;

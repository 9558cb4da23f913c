//! Mnemo server: shared semantic memory for AI assistants.
//!
//! # Layout
//!
//! * [`cli`]: the command line: serving, or the `keys` commands that manage API keys.
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
//! * [`tls`]: which certificate the server presents (the user's or one made with
//!   `mnemo-certs`, its fingerprint published), the acceptor and the handshake.
//! * [`mdns`]: the mDNS advertisement (`_mcp-memory._tcp`), only on the addresses the
//!   server listens on, withdrawn with a goodbye on shutdown; its stable instance id.
//! * [`lan`]: the bridge configuration line that `--lan` prints.
//! * [`http`]: the router (REST, SSE, and `/mcp`, where `mnemo-mcp`'s tool
//!   registry runs over the REST handlers) and [`serve`], which answers health checks
//!   while the model loads and stops on a cancellation token.

pub mod auth;
pub mod cli;
pub mod config;
pub mod embed;
pub mod feed;
pub mod http;
pub mod lan;
pub mod mdns;
pub mod memory;
pub mod service;
pub mod store;
pub mod timeexpr;
pub mod tls;

pub use config::Config;
pub use http::serve;

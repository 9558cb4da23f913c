//! Mnemo's wire contract: what the server, the bridge and web clients must agree on.
//!
//! Anything that crosses a process boundary, other than the MCP tools (those are in
//! `mnemo-mcp`), lives here, so a change to it is a change to one file that every
//! side compiles against:
//!
//! * [`rest`]: the REST request and response bodies, wire-compatible with the Python
//!   `mcp-memory-service`.
//! * [`admin`]: backups and restores.
//! * [`error`]: the JSON error body of every failed request.
//! * [`events`]: the names of change-feed events, shared by the events table and the
//!   SSE stream that web clients follow.
//! * [`health`]: the body of `GET /api/health`, which the bridge and the test harness
//!   poll before they send anything else.
//! * [`mdns`]: the mDNS service type and TXT keys, which the server advertises and
//!   the bridge reads.
//! * [`secret`]: the API key as both programs hold it, redacted in every `Debug`.
//! * [`transfer`]: export and import as JSON Lines, and the import's report.

// Libraries never print: stdout belongs to the programs (for the bridge it is the MCP channel).
#![deny(clippy::print_stdout)]

pub mod admin;
pub mod error;
pub mod events;
pub mod health;
pub mod mdns;
pub mod rest;
pub mod secret;
pub mod transfer;

pub use secret::Secret;

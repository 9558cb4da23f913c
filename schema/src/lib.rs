//! What two Mnemo programs must agree on.
//!
//! Anything that crosses a process boundary lives here, so that a change to it is a
//! change to one file that every side compiles against:
//!
//! * [`api`]: the REST request and response bodies, wire-compatible with the Python
//!   `mcp-memory-service`.
//! * [`error`]: the JSON error body of every failed request.
//! * [`mdns`]: the mDNS service type and TXT keys, which the server advertises and
//!   the bridge reads.
//! * [`migrations`]: the SQL schema of the memory database, as numbered migrations.
//!   The server applies them; tools that read a backup rely on the same shape.
//! * [`events`]: the names of change-feed events, shared by the events table and the
//!   SSE stream that web clients follow.
//! * [`health`]: the body of `GET /api/health`, which the bridge and the test harness
//!   poll before they send anything else.
//! * [`ops`]: the memory operations as one trait, which the server implements over
//!   its REST handlers and the bridge as a REST client.
//! * [`secret`]: the API key as both programs hold it, redacted in every `Debug`.
//! * [`tools`]: the MCP tool registry over those operations, served at `/mcp` and
//!   by `mnemo-bridge`, so both offer the same tools, schemas and outputs.

pub mod api;
pub mod error;
pub mod events;
pub mod health;
pub mod mdns;
pub mod migrations;
pub mod ops;
pub mod secret;
pub mod tools;

pub use secret::Secret;

//! `mnemo-bridge`: a stdio MCP server for desktop clients (Claude Desktop and the
//! like) that serves Mnemo's memory tools by forwarding them to a Mnemo server's
//! REST API (ARCHITECTURE.md, "MCP").
//!
//! The tools themselves are `mnemo-mcp`'s registry, the same one the server
//! serves at `/mcp`; the bridge only supplies the operations behind them.
//!
//! # Layout
//!
//! * [`config`]: flags and the environment variables of mcp-memory-service's bridge.
//! * [`discovery`]: finding servers on the LAN over mDNS (`_mcp-memory._tcp.local.`),
//!   as a list of candidates after a browse window or as a stream of sightings.
//! * [`trust`]: the trusted servers (pin and instance id, never a name), and
//!   `mnemo-bridge trust list|remove`.
//! * [`endpoint`]: choosing the server (explicit URL, or discovered: trusted ones by
//!   last use, HTTPS, health and latency; others only once they prove they hold the API
//!   key) and a client that trusts only its pin.
//! * [`rest`]: the memory operations as REST calls, resolved lazily, retried once
//!   and bounded by one deadline per call.
//! * [`check`]: `--check`, the report of what the bridge would connect to and why.

// Libraries never print: stdout belongs to the programs (for the bridge it is the MCP channel).
#![deny(clippy::print_stdout)]

pub mod check;
pub mod config;
pub mod discovery;
pub mod endpoint;
pub mod rest;
pub mod trust;

use std::sync::Arc;

use mnemo_mcp::tools::Registry;

pub use config::Config;

/// The tool registry over a REST client configured by `config`. Nothing is
/// contacted until the first tool call.
pub fn registry(config: &Config) -> Registry<rest::RestOps> {
    let ops = rest::RestOps::new(
        endpoint::Resolver::new(config),
        config.api_key.clone(),
        config.call_timeout(),
    )
    .misconfigured(&config.misconfigured);
    Registry::new(Arc::new(ops), env!("CARGO_PKG_VERSION"))
}

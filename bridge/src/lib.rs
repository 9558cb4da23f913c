//! `mnemo-bridge`: a stdio MCP server for desktop clients that forwards tool calls to a
//! Mnemo server's REST API.
//!
//! Only the skeleton exists so far. Endpoint choice, certificate pinning and the REST
//! client arrive with the MCP issue.
//!
//! # Layout
//!
//! * [`discovery`]: finding servers on the LAN over mDNS (`_mcp-memory._tcp.local.`),
//!   as a list of candidates after a fixed browse window or as a stream of sightings.

pub mod discovery;

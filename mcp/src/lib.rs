//! Mnemo's MCP tools, written once and served twice: by `mnemo-server` at `/mcp` and
//! by `mnemo-bridge` over stdio.
//!
//! * [`ops`]: the memory operations as one trait. The server implements it over its
//!   operations layer, the bridge as a REST client, so the tools cannot tell them
//!   apart.
//! * [`tools`]: the tool registry over those operations: names, argument schemas,
//!   structured outputs, the legacy names of `mcp-memory-service`, and the advice a
//!   failed call gives the model.
//! * [`resources`]: the read-only resources (statistics, tags, recent memories, one
//!   memory), over the same operations.

// Libraries never print: stdout belongs to the programs (for the bridge it is the MCP channel).
#![deny(clippy::print_stdout)]

pub mod ops;
pub mod resources;
pub mod tools;

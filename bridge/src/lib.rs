//! `mnemo-bridge`: a stdio MCP server for desktop clients that forwards tool calls to a
//! Mnemo server's REST API.
//!
//! Only the skeleton exists so far. Discovery (mDNS), endpoint choice, certificate
//! pinning and the REST client arrive with the MCP issue.

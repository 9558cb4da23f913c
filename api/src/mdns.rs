//! The mDNS advertisement both the server (advertiser) and the bridge (browser) read.

/// The service type Mnemo advertises, as the Python mcp-memory-service does.
pub const SERVICE_TYPE: &str = "_mcp-memory._tcp.local.";

/// TXT record keys (ARCHITECTURE.md, "TLS and discovery"). Boolean values are written `True`/`False`, as
/// mcp-memory-service writes them.
pub mod txt {
    pub const API_VERSION: &str = "api_version";
    pub const HTTPS: &str = "https";
    pub const AUTH_REQUIRED: &str = "auth_required";
    pub const API_PATH: &str = "api_path";
    pub const SSE_PATH: &str = "sse_path";
    pub const DOCS_PATH: &str = "docs_path";
    pub const MCP_PATH: &str = "mcp_path";
    /// The server's instance id, stable across restarts.
    pub const ID: &str = "id";
    /// The server's pin, only with TLS: SHA-256 of the served certificate's
    /// SubjectPublicKeyInfo, as colon-separated hex.
    pub const FINGERPRINT: &str = "fp";
}

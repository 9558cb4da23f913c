//! The bridge's settings: flags with the environment variables mcp-memory-service's
//! bridge reads, so an existing Claude Desktop configuration keeps working.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use clap::builder::BoolishValueParser;
use mnemo_api::Secret;
use mnemo_certs::Fingerprint;

#[derive(Parser, Clone, Debug)]
#[command(
    name = "mnemo-bridge",
    version,
    about = "stdio MCP server that forwards memory tools to a Mnemo server on the LAN"
)]
pub struct Config {
    /// The server's base URL, e.g. https://nas.local:8443. Overrides discovery.
    #[arg(long, env = "MCP_MEMORY_HTTP_ENDPOINT")]
    pub server_url: Option<String>,

    /// API key sent to the server.
    #[arg(long, env = "MCP_API_KEY", hide_env_values = true)]
    pub api_key: Option<Secret>,

    /// Find the server by mDNS when no URL is given.
    #[arg(long, env = "MCP_MEMORY_AUTO_DISCOVER", default_value_t = true, action = clap::ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub auto_discover: bool,

    /// Longest mDNS browse, in seconds.
    #[arg(long, env = "MCP_MDNS_DISCOVERY_TIMEOUT", default_value_t = 5.0)]
    pub discovery_timeout: f64,

    /// Among discovered servers, prefer those serving HTTPS.
    #[arg(long, env = "MCP_MEMORY_PREFER_HTTPS", default_value_t = true, action = clap::ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub prefer_https: bool,

    /// SHA-256 fingerprint of the server's certificate (as the server logs it).
    /// Without it, the bridge trusts the first certificate it sees and pins it.
    #[arg(long, env = "MCP_MEMORY_CERT_FINGERPRINT")]
    pub cert_fingerprint: Option<Fingerprint>,

    /// Where first-use pins are kept [default: <config dir>/mnemo/bridge-pins.json].
    #[arg(long, env = "MNEMO_BRIDGE_PIN_FILE")]
    pub pin_file: Option<PathBuf>,

    /// Longest a tool call may take, discovery and one retry included, in seconds.
    #[arg(long, env = "MNEMO_BRIDGE_TIMEOUT", default_value_t = 15.0)]
    pub timeout: f64,

    /// Print which server the bridge would use and why, then exit 0 (usable) or 1.
    #[arg(long)]
    pub check: bool,
}

impl Config {
    pub fn discovery_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.discovery_timeout.clamp(0.1, 60.0))
    }

    pub fn call_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout.clamp(0.1, 600.0))
    }

    pub fn pin_file(&self) -> PathBuf {
        self.pin_file.clone().unwrap_or_else(|| {
            dirs::config_dir()
                .unwrap_or_else(|| PathBuf::from("."))
                .join("mnemo")
                .join("bridge-pins.json")
        })
    }
}

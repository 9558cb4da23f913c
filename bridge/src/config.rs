//! The bridge's settings: flags with the environment variables mcp-memory-service's
//! bridge reads, so an existing Claude Desktop configuration keeps working.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Parser, Subcommand};
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

    /// The server's pin (`pin=` in its log, `tls_pin` in detailed health; a certificate's
    /// SHA-256 fingerprint is accepted too). Without it, the bridge trusts servers in its
    /// trust store, or one that proves it holds the API key.
    #[arg(long, env = "MCP_MEMORY_CERT_FINGERPRINT")]
    pub cert_fingerprint: Option<Fingerprint>,

    /// The list of trusted servers [default: <config dir>/mnemo/bridge-trust.json].
    #[arg(long, env = "MNEMO_BRIDGE_TRUST_FILE")]
    pub trust_file: Option<PathBuf>,

    /// Longest a tool call may take, discovery and one retry included, in seconds.
    #[arg(long, env = "MNEMO_BRIDGE_TIMEOUT", default_value_t = 15.0)]
    pub timeout: f64,

    /// Print which server the bridge would use and why, then exit 0 (usable) or 1.
    #[arg(long)]
    pub check: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands; without one, the bridge serves MCP on stdio.
#[derive(Subcommand, Clone, Debug)]
pub enum Command {
    /// The servers this bridge trusts.
    #[command(subcommand)]
    Trust(TrustCommand),
}

#[derive(Subcommand, Clone, Debug)]
pub enum TrustCommand {
    /// List the trusted servers: id, pin, last name and address, first and last use.
    List,
    /// Stop trusting a server, named by its id, pin or name as `trust list` shows them.
    Remove { server: String },
}

impl Config {
    pub fn discovery_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.discovery_timeout.clamp(0.1, 60.0))
    }

    pub fn call_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout.clamp(0.1, 600.0))
    }

    pub fn trust_file(&self) -> PathBuf {
        self.trust_file.clone().unwrap_or_else(|| {
            dirs::config_dir()
                .unwrap_or_else(|| PathBuf::from("."))
                .join("mnemo")
                .join("bridge-trust.json")
        })
    }
}

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
    /// The server's base URL, e.g. https://nas.local:8443 (a trailing `/api`, as
    /// mcp-memory-service's configurations write it, is accepted). Overrides discovery.
    #[arg(long, env = "MCP_MEMORY_HTTP_ENDPOINT")]
    pub server_url: Option<String>,

    /// API key sent to the server (also read from `MCP_MEMORY_API_KEY`, the name
    /// mcp-memory-service's bridge configurations use).
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
    /// The settings as mcp-memory-service's Claude Desktop configurations write them:
    /// the key under `MCP_MEMORY_API_KEY` (when `MCP_API_KEY` is not set), and an
    /// endpoint ending in `/api`, its REST prefix, which Mnemo's paths already carry.
    /// `env` reads a variable (the process environment, or a test's).
    pub fn with_legacy_settings(mut self, env: impl Fn(&str) -> Option<String>) -> Self {
        if self.api_key.is_none() {
            self.api_key = env("MCP_MEMORY_API_KEY")
                .filter(|key| !key.trim().is_empty())
                .and_then(|key| key.parse().ok());
        }
        if let Some(url) = &mut self.server_url {
            let base = url.trim_end_matches('/');
            let base = base.strip_suffix("/api").unwrap_or(base);
            *url = base.to_owned();
        }
        self
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str], env: &[(&str, &str)]) -> Config {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::parse_from(std::iter::once("mnemo-bridge").chain(args.iter().copied()))
            .with_legacy_settings(|name| {
                env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
            })
    }

    /// mcp-memory-service's env block: the key under its name, the endpoint with `/api`.
    #[test]
    fn mcp_memory_service_settings_are_understood() {
        for endpoint in [
            "http://nas:8000/api",
            "http://nas:8000/api/",
            "http://nas:8000/",
            "http://nas:8000",
        ] {
            let config = parsed(&["--server-url", endpoint], &[("MCP_MEMORY_API_KEY", "k1")]);
            assert_eq!(
                config.server_url.as_deref(),
                Some("http://nas:8000"),
                "{endpoint}"
            );
            assert_eq!(config.api_key.as_ref().map(Secret::expose), Some("k1"));
        }
        // MCP_API_KEY (here the flag) wins; a path that merely contains "api" stays.
        let config = parsed(
            &["--api-key", "k2", "--server-url", "http://nas:8000/apis"],
            &[("MCP_MEMORY_API_KEY", "k1")],
        );
        assert_eq!(config.api_key.as_ref().map(Secret::expose), Some("k2"));
        assert_eq!(config.server_url.as_deref(), Some("http://nas:8000/apis"));
        assert!(
            parsed(&[], &[("MCP_MEMORY_API_KEY", " ")])
                .api_key
                .is_none()
        );
    }
}

//! The bridge's settings: flags with the environment variables mcp-memory-service's
//! bridge reads, so an existing Claude Desktop configuration keeps working.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, CommandFactory, FromArgMatches, Parser, Subcommand};
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

    /// Settings given with a value the bridge cannot read, each as a message naming
    /// the setting and the fix. They are left at their defaults, and every tool call
    /// answers with these messages (see [`Config::parse_lenient`]).
    #[arg(skip)]
    pub misconfigured: Vec<String>,
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

/// Most unreadable settings reported before parsing gives up (each is one re-parse).
const MAX_MISCONFIGURED: usize = 16;

impl Config {
    /// Parses like `Config::parse`, except that a setting whose value cannot be read
    /// (a placeholder pin, a timeout that is not a number) does not stop the bridge.
    /// A client such as Claude Desktop shows an exited bridge only as "disconnected",
    /// with no reason; a bridge that answers `initialize` can tell the user, through
    /// every tool call, which setting to fix. Such a setting is dropped (its default
    /// applies) and described in [`Config::misconfigured`]. Anything else wrong with the
    /// command line (an unknown flag, `--help`) is returned as clap's error.
    pub fn parse_lenient<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let mut command = Self::command();
        let mut misconfigured = Vec::new();
        loop {
            let error = match command.clone().try_get_matches_from(&args) {
                Ok(matches) => {
                    let mut config = Self::from_arg_matches(&matches)?;
                    config.misconfigured = misconfigured;
                    return Ok(config);
                }
                Err(error) => error,
            };
            let unreadable = matches!(
                error.kind(),
                ErrorKind::InvalidValue | ErrorKind::ValueValidation
            );
            let failed = failed_arg(&command, &error);
            let (Some(arg), true) = (
                failed,
                unreadable && misconfigured.len() < MAX_MISCONFIGURED,
            ) else {
                return Err(error);
            };
            misconfigured.push(advice(&arg, &error));
            if let Some(long) = arg.get_long() {
                args = without_flag(args, &format!("--{long}"));
            }
            command = command.mut_arg(arg.get_id().clone(), |a| a.env(None));
        }
    }

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

/// The argument a clap error is about, from its `--flag <VALUE>` context.
fn failed_arg(command: &clap::Command, error: &clap::Error) -> Option<Arg> {
    let Some(ContextValue::String(described)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = described.split([' ', '=']).next()?;
    command
        .get_arguments()
        .find(|arg| {
            arg.get_long()
                .is_some_and(|long| flag == format!("--{long}"))
        })
        .cloned()
}

/// What to tell the user about an unreadable setting: its names, why, and where to
/// fix it. The reason of a setting whose value is hidden (the API key) is left out,
/// since a parser's reason may quote the value.
fn advice(arg: &Arg, error: &clap::Error) -> String {
    let long = arg.get_long().unwrap_or_default();
    let name = match arg.get_env() {
        Some(env) => format!("{} (--{long})", env.to_string_lossy()),
        None => format!("--{long}"),
    };
    let reason = std::error::Error::source(error)
        .filter(|_| !arg.is_hide_env_values_set())
        .map(|source| format!(" ({source})"))
        .unwrap_or_default();
    let hint = match arg.get_id().as_str() {
        "cert_fingerprint" => {
            " It must be the server's pin, as its log prints it after `pin=` (also `tls_pin` \
             in /api/health/detailed): 32 pairs of hex digits separated by colons. \
             `AB:CD:…` in examples is a placeholder, not a pin; remove the setting to trust \
             a server that proves it holds the API key instead."
        }
        "timeout" | "discovery_timeout" => " It must be a number of seconds, such as 15.",
        "auto_discover" | "prefer_https" => " It must be true or false.",
        _ => "",
    };
    format!(
        "mnemo-bridge cannot use its setting {name}: the value is not valid{reason}.{hint} \
         Correct or remove it in the `env` block (or `args`) of mnemo-bridge in the MCP \
         client's configuration (for Claude Desktop, claude_desktop_config.json), then \
         restart the client."
    )
}

/// `args` without `flag` and its value, in either the `--flag value` or the
/// `--flag=value` form.
fn without_flag(args: Vec<OsString>, flag: &str) -> Vec<OsString> {
    let joined = format!("{flag}=");
    let mut out = Vec::with_capacity(args.len());
    let mut skip_value = false;
    for arg in args {
        if skip_value {
            skip_value = false;
            continue;
        }
        let text = arg.to_string_lossy();
        if text == flag {
            skip_value = true;
        } else if !text.starts_with(&joined) {
            out.push(arg);
        }
    }
    out
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

    /// Unreadable values do not stop the bridge: each is dropped to its default and
    /// described by its names and the fix; other command-line errors still stop it.
    #[test]
    fn unreadable_settings_are_reported_not_fatal() {
        let config = Config::parse_lenient([
            "mnemo-bridge",
            "--cert-fingerprint",
            "AB:CD:EF:…",
            "--timeout=soon",
            "--prefer-https",
            "maybe",
            "--server-url",
            "http://nas:8000",
        ])
        .unwrap();
        assert_eq!(config.cert_fingerprint, None);
        assert_eq!(config.timeout, 15.0);
        assert!(config.prefer_https);
        assert_eq!(config.server_url.as_deref(), Some("http://nas:8000"));
        let text = config.misconfigured.join("\n");
        assert_eq!(config.misconfigured.len(), 3, "{text}");
        for needle in [
            "MCP_MEMORY_CERT_FINGERPRINT (--cert-fingerprint)",
            "placeholder",
            "MNEMO_BRIDGE_TIMEOUT (--timeout)",
            "number of seconds",
            "MCP_MEMORY_PREFER_HTTPS",
            "claude_desktop_config.json",
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
        assert!(!text.to_lowercase().contains("argument"), "{text}");
        assert!(Config::parse_lenient(["mnemo-bridge", "--no-such-flag"]).is_err());
        assert!(
            Config::parse_lenient(["mnemo-bridge"])
                .unwrap()
                .misconfigured
                .is_empty()
        );
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

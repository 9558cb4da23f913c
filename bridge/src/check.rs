//! `mnemo-bridge --check`: what the bridge would connect to and why, for the person
//! setting it up; and `mnemo-bridge trust list|remove`. Both print to stdout, since
//! they do not speak MCP.

use std::fmt::Write as _;

use mnemo_mcp::ops::MemoryOps;

use crate::config::{Config, TrustCommand};
use crate::endpoint::{Proof, Report, Resolver, Trust};
use crate::rest::RestOps;
use crate::trust::{TrustError, TrustStore};

/// Runs the check; returns the text to print and whether the bridge is usable.
pub async fn run(config: &Config) -> (String, bool) {
    let resolver = Resolver::new(config);
    let report = resolver.report(true).await;
    let mut out = String::new();
    let _ = writeln!(out, "mnemo-bridge {}", env!("CARGO_PKG_VERSION"));
    if !config.misconfigured.is_empty() {
        for problem in &config.misconfigured {
            let _ = writeln!(out, "setting: {problem}");
        }
        let _ = writeln!(
            out,
            "result: NOT USABLE: {} setting(s) above cannot be read; every tool call \
             answers with the same message until they are fixed",
            config.misconfigured.len()
        );
        return (out, false);
    }
    describe(&mut out, &report, config);
    let endpoint = match report.choice {
        Ok(endpoint) => endpoint,
        Err(e) => {
            let _ = writeln!(out, "choice: none\nresult: NOT USABLE: {e}");
            return (out, false);
        }
    };
    let _ = writeln!(out, "choice: {}", endpoint.url);
    // One authenticated call shows that the key is accepted, not only that the
    // server is up.
    let ops =
        RestOps::new(resolver, config.api_key.clone(), config.call_timeout()).starting_at(endpoint);
    match ops.health(&()).await {
        Ok(health) => {
            let _ = writeln!(
                out,
                "result: OK: Mnemo {} holds {} memories (model {}), and the API key is accepted",
                health.version, health.memories, health.model
            );
            (out, true)
        }
        Err(e) => {
            let _ = writeln!(out, "result: NOT USABLE: {e}");
            (out, false)
        }
    }
}

fn describe(out: &mut String, report: &Report, config: &Config) {
    let _ = writeln!(out, "endpoint: {}", report.method);
    let key = match &config.api_key {
        Some(_) => "set (MCP_API_KEY)",
        None => {
            "not set (MCP_API_KEY); the server will refuse requests unless it allows anonymous access"
        }
    };
    let _ = writeln!(out, "api key: {key}");
    let pin = match &config.cert_fingerprint {
        Some(fp) => format!("only the pin MCP_MEMORY_CERT_FINGERPRINT {fp}"),
        None => format!(
            "servers in {}, or one that proves it holds the API key",
            config.trust_file().display()
        ),
    };
    let _ = writeln!(out, "trust: {pin}");
    if report.candidates.is_empty() {
        let _ = writeln!(out, "candidates: none");
    } else {
        let _ = writeln!(out, "candidates:");
    }
    for c in &report.candidates {
        let _ = writeln!(out, "  - {} at {}", c.instance, c.url);
        if let Some(id) = &c.id {
            let _ = writeln!(out, "      id: {id}");
        }
        let pin = c
            .pin
            .map_or_else(|| "none (plain HTTP)".to_owned(), |p| p.to_string());
        let _ = writeln!(out, "      pin: {pin}");
        let trust = match &c.trust {
            Trust::Configured => "trusted (MCP_MEMORY_CERT_FINGERPRINT)".to_owned(),
            Trust::Trusted => "trusted".to_owned(),
            Trust::NotTrusted if c.proof == Proof::Passed && c.pin.is_some() => {
                "trusted now, after its proof".to_owned()
            }
            Trust::NotTrusted => "not trusted".to_owned(),
            Trust::KeyChanged { trusted } => {
                format!("NOT TRUSTED: KEY CHANGED (its id is trusted with pin {trusted})")
            }
            Trust::Refused(reason) => format!("refused: {reason}"),
        };
        let _ = writeln!(out, "      trust: {trust}");
        let proof = match &c.proof {
            Proof::NotTried => "not asked".to_owned(),
            Proof::Passed => "passed: it holds the API key".to_owned(),
            Proof::Failed(reason) => format!("FAILED: {reason}"),
        };
        let _ = writeln!(out, "      proof: {proof}");
        if let Some(verdict) = &c.verdict {
            let _ = writeln!(out, "      health: {}", verdict.describe());
        }
        let _ = writeln!(out, "      {}", c.outcome);
    }
}

/// `mnemo-bridge trust list|remove`: the text to print.
pub fn trust_command(store: &TrustStore, command: &TrustCommand) -> Result<String, TrustError> {
    let mut out = String::new();
    match command {
        TrustCommand::List => {
            let servers = store.list()?;
            if servers.is_empty() {
                let _ = writeln!(out, "No trusted servers in {}.", store.path().display());
            }
            for s in servers {
                let id = if s.id.is_empty() { "(none)" } else { &s.id };
                let _ = writeln!(
                    out,
                    "{}\n  id: {id}\n  pin: {}\n  address: {}\n  first used: {}\n  last used: {}",
                    s.name,
                    s.pin,
                    s.address,
                    time(s.first_used),
                    time(s.last_used)
                );
            }
        }
        TrustCommand::Remove { server } => {
            for s in store.remove(server)? {
                let _ = writeln!(
                    out,
                    "No longer trusted: {} (pin {}). It is trusted again only if it proves it \
                     holds the API key while no trusted server answers.",
                    s.name, s.pin
                );
            }
        }
    }
    Ok(out)
}

/// Epoch seconds as "<n> s since the epoch": the bridge has no date library, and the file
/// itself holds the same number.
fn time(epoch: u64) -> String {
    format!("{epoch} (Unix time)")
}

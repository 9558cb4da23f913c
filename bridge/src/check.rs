//! `mnemo-bridge --check`: what the bridge would connect to and why, for the person
//! setting it up. It prints to stdout, since it does not speak MCP.

use std::fmt::Write as _;

use mnemo_mcp::ops::MemoryOps;

use crate::config::Config;
use crate::endpoint::{Report, Resolver};
use crate::pins::PinStatus;
use crate::rest::RestOps;

/// Runs the check; returns the text to print and whether the bridge is usable.
pub async fn run(config: &Config) -> (String, bool) {
    let resolver = Resolver::new(config);
    let report = resolver.report().await;
    let mut out = String::new();
    let _ = writeln!(out, "mnemo-bridge {}", env!("CARGO_PKG_VERSION"));
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
        Some(fp) => format!("MCP_MEMORY_CERT_FINGERPRINT {fp}"),
        None => format!(
            "trust on first use, pins in {}",
            config.pin_file().display()
        ),
    };
    let _ = writeln!(out, "certificate: {pin}");
    if report.candidates.is_empty() {
        let _ = writeln!(out, "candidates: none");
    } else {
        let _ = writeln!(out, "candidates:");
    }
    for c in &report.candidates {
        let pin = match &c.pin {
            Some(PinStatus::Matches) => ", pin matches",
            Some(PinStatus::New) => ", not pinned yet (pinned on first use)",
            Some(PinStatus::Mismatch { .. }) => ", PIN MISMATCH",
            None => "",
        };
        let fp = c
            .fingerprint
            .map(|fp| format!(", certificate {fp}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  - {} at {}{fp}{pin}: {}",
            c.instance,
            c.url,
            c.verdict.describe()
        );
    }
}

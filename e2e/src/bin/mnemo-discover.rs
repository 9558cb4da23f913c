//! `mnemo-discover`: browses mDNS with the bridge's discovery library and prints the
//! servers found as one JSON array on stdout. With `--wait-gone INSTANCE` it prints the
//! array as soon as INSTANCE resolves, then keeps browsing until INSTANCE says goodbye.
//!
//! Exit codes: 0 done (or goodbye seen); 1 no goodbye within `--gone-timeout-ms`;
//! 2 INSTANCE never resolved within `--timeout-ms`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use mnemo_bridge::discovery::{self, Browser, Candidate, Sighting};
use serde_json::{Value, json};
use tokio::time::{Instant, timeout_at};

/// Browse for Mnemo servers over mDNS and print them as JSON.
#[derive(Parser)]
struct Args {
    /// How long to browse (with --wait-gone: how long to wait for INSTANCE to appear).
    #[arg(long, default_value_t = 3000)]
    timeout_ms: u64,
    /// After INSTANCE resolves, wait for its goodbye and exit 0 when it arrives.
    #[arg(long, value_name = "INSTANCE")]
    wait_gone: Option<String>,
    /// How long to wait for the goodbye after INSTANCE was found.
    #[arg(long, default_value_t = 10_000, requires = "wait_gone")]
    gone_timeout_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let browse = Duration::from_millis(args.timeout_ms);
    let Some(target) = args.wait_gone else {
        let found = discovery::discover(browse, browse, |_| true)
            .await
            .context("mDNS browse")?;
        print_json(&found)?;
        return Ok(ExitCode::SUCCESS);
    };

    let mut browser = Browser::start().context("mDNS browse")?;
    let mut found = BTreeMap::new();
    let deadline = Instant::now() + browse;
    let appeared = loop {
        match timeout_at(deadline, browser.next()).await {
            Ok(Some(Sighting::Resolved(candidate))) => {
                let is_target = candidate.instance == target;
                found.insert(candidate.instance.clone(), candidate);
                if is_target {
                    break true;
                }
            }
            Ok(Some(Sighting::Removed { instance })) => {
                found.remove(&instance);
            }
            Ok(None) | Err(_) => break false,
        }
    };
    print_json(&found.into_values().collect::<Vec<_>>())?;
    if !appeared {
        eprintln!("{target:?} did not appear within {browse:?}");
        browser.close().await;
        return Ok(ExitCode::from(2));
    }

    let gone_within = Duration::from_millis(args.gone_timeout_ms);
    let deadline = Instant::now() + gone_within;
    let gone = loop {
        match timeout_at(deadline, browser.next()).await {
            Ok(Some(Sighting::Removed { instance })) if instance == target => break true,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break false,
        }
    };
    browser.close().await;
    if gone {
        eprintln!("{target:?} said goodbye");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("no goodbye from {target:?} within {gone_within:?}");
        Ok(ExitCode::from(1))
    }
}

/// Writes `candidates` as one line of JSON and flushes, so a reader sees it at once.
fn print_json(candidates: &[Candidate]) -> anyhow::Result<()> {
    let list: Vec<Value> = candidates
        .iter()
        .map(|c| {
            json!({
                "instance": c.instance,
                "host": c.host,
                "port": c.port,
                "addresses": c.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "txt": c.txt,
                "url": c.url,
            })
        })
        .collect();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", Value::Array(list))?;
    stdout.flush()?;
    Ok(())
}

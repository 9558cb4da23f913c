//! `bridge-bench`: what an MCP client waits for when it uses `mnemo-bridge`.
//!
//! ```text
//! cargo build --release -p mnemo-server -p mnemo-bridge -p mnemo-bench
//! target/release/bridge-bench
//! ```
//!
//! It starts its own servers (plain HTTP, then HTTPS with a pinned certificate; temp
//! data, loopback, mDNS off) from the same target folder, and reports:
//! the time from spawning the bridge to its `initialize` answer, and the round trip
//! of `memory_store` and `memory_search` tool calls through the bridge.

use std::process::Command;
use std::time::Duration;

use clap::Parser;
use mnemo_bench::corpus::{question, sentence};
use mnemo_e2e::BridgeProcess;
use mnemo_server::testing::{ServerProcess, workspace_binary};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Bridge processes spawned to time the handshake.
    #[arg(long, default_value_t = 20)]
    spawns: usize,
    /// Timed calls per tool and transport.
    #[arg(long, default_value_t = 200)]
    calls: usize,
    /// Memories stored before the search is timed.
    #[arg(long, default_value_t = 1000)]
    seed: usize,
}

const KEY: &str = "bridge-bench-key";

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{what:<34} p50 {:>7.2} ms   p90 {:>7.2} ms   p99 {:>7.2} ms   (n={})",
        percentile(&samples, 0.5),
        percentile(&samples, 0.9),
        percentile(&samples, 0.99),
        samples.len()
    );
}

fn bridge_for(server: &ServerProcess) -> BridgeProcess {
    let mut command = Command::new(workspace_binary("mnemo-bridge"));
    command
        .env("MCP_MEMORY_HTTP_ENDPOINT", server.url())
        .env("MCP_API_KEY", KEY)
        .env("MCP_MEMORY_AUTO_DISCOVER", "false")
        .env("RUST_LOG", "warn");
    match server.fingerprint() {
        Some(fp) => command.env("MCP_MEMORY_CERT_FINGERPRINT", fp),
        None => command.env_remove("MCP_MEMORY_CERT_FINGERPRINT"),
    };
    BridgeProcess::spawn(command)
}

fn main() {
    let args = Args::parse();
    println!(
        "bridge-bench: {} cores, bridge {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        workspace_binary("mnemo-bridge").display()
    );
    for https in [false, true] {
        let data = tempfile::tempdir().expect("temp dir");
        let tls = if https { "true" } else { "false" };
        let server = ServerProcess::start(
            data.path(),
            &[("MCP_API_KEY", KEY), ("MCP_HTTPS_ENABLED", tls)],
        );
        let label = if https { "https" } else { "http" };

        let mut handshakes = Vec::with_capacity(args.spawns);
        for _ in 0..args.spawns {
            let mut bridge = bridge_for(&server);
            bridge.initialize("2025-06-18");
            handshakes.push(bridge.spawned.elapsed());
            assert!(bridge.close().success());
        }
        report(&format!("spawn → initialize ({label})"), handshakes);

        let mut bridge = bridge_for(&server);
        bridge.initialize("2025-06-18");
        // The first call finds the endpoint and opens the connection; not timed.
        bridge.call("memory_health", json!({}));
        let mut stores = Vec::with_capacity(args.calls);
        for i in 0..args.seed.max(args.calls) {
            let (result, took) = bridge.call(
                "memory_store",
                json!({"content": format!("{} ({label} {i})", sentence(i))}),
            );
            assert_eq!(result["isError"], false, "{result}");
            if i < args.calls {
                stores.push(took);
            }
        }
        report(&format!("memory_store ({label})"), stores);
        let mut searches = Vec::with_capacity(args.calls);
        for i in 0..args.calls {
            let (result, took) =
                bridge.call("memory_search", json!({"query": question(i), "limit": 10}));
            assert_eq!(result["isError"], false, "{result}");
            searches.push(took);
        }
        report(
            &format!(
                "memory_search, {} memories ({label})",
                args.seed.max(args.calls)
            ),
            searches,
        );
    }
}

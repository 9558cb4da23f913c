//! `mnemo-bridge`: serves the memory tools over stdio. stdout carries MCP only;
//! logs go to stderr (`RUST_LOG` sets their level).

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use mnemo_bridge::Config;
use rmcp::ServiceExt;
use rmcp::service::ServerInitializeError;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let config = Config::parse_lenient(std::env::args_os())
        .unwrap_or_else(|e| e.exit())
        .with_legacy_settings(|name| std::env::var(name).ok());
    // rmcp logs every message it handles at info; only its warnings reach the log.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,rmcp=warn".into());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .init();
    // Reported on every tool call too; the log is for whoever reads the client's logs.
    for problem in &config.misconfigured {
        tracing::error!("{problem}");
    }

    if let Some(mnemo_bridge::config::Command::Trust(command)) = &config.command {
        let store = mnemo_bridge::trust::TrustStore::new(config.trust_file());
        print!("{}", mnemo_bridge::check::trust_command(&store, command)?);
        return Ok(ExitCode::SUCCESS);
    }
    if config.check {
        let (report, usable) = mnemo_bridge::check::run(&config).await;
        print!("{report}");
        return Ok(if usable {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }

    let registry = mnemo_bridge::registry(&config);
    let running = match registry.serve(rmcp::transport::stdio()).await {
        Ok(running) => running,
        // Some clients probe with a short-lived copy that closes stdin before (or
        // instead of) initializing; that is a normal end, not a failure.
        Err(ServerInitializeError::ConnectionClosed(_)) => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(e).context("MCP initialization over stdio failed"),
    };
    running.waiting().await.context("serving MCP over stdio")?;
    Ok(ExitCode::SUCCESS)
}

//! `mnemo-server`: parses the command line, then either manages API keys or binds the
//! listener and serves until Ctrl-C or SIGTERM. Everything else lives in the library.

use std::io::IsTerminal;

use anyhow::Context;
use clap::Parser;
use mnemo_server::cli::{Cli, Command, managed_keys, run_keys_command, run_tls_command};
use mnemo_server::offline;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli {
        mut config,
        command,
    } = Cli::parse();
    config.apply_presets();
    if let Some(Command::Keys(keys)) = command {
        let managed = managed_keys(&config).await?;
        run_keys_command(&managed, keys, &mut std::io::stdout()).await?;
        return Ok(());
    }
    let out = &mut std::io::stdout();
    match command {
        Some(Command::Tls(tls)) => return run_tls_command(&config, tls, out),
        Some(Command::Export(args)) => return offline::export::run(&config, args, out).await,
        Some(Command::Import(args)) => return offline::import::run(&config, args, out).await,
        Some(Command::ImportFrom(source)) => {
            return offline::mcp_memory_service::run(&config, source, out).await;
        }
        Some(Command::Reembed(args)) => return offline::reembed::run(&config, args, out),
        Some(Command::Restore { backup }) => {
            return offline::restore::run(&config, &backup, out).await;
        }
        Some(Command::Keys(_)) | None => {}
    }
    // Colour only for a person at a terminal: the journal and log files get plain text.
    let colour = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_ansi(colour)
        .init();

    let addr = (config.host, config.port);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {}:{}", addr.0, addr.1))?;

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let lan = config.lan;
    let server = mnemo_server::Server::prepare(config, listener)?;
    if lan {
        // The one line of stdout: what to paste into the bridge's configuration.
        println!("{}", server.bridge_line());
    }
    server.serve(shutdown).await?;
    Ok(())
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}

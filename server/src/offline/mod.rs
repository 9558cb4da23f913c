//! The commands that work on the database directly, without a running server:
//! `export`, `import`, `import-from mcp-memory-service`, `reembed` and `restore` (the
//! admin restore, offline).
//!
//! Each opens the model and the store as the server would, and calls the same
//! operations the HTTP API does, as an admin. A SQLite database has one writer, so
//! opening it takes its writer lock (`storage/sqlite/file.rs`): while a server runs on
//! it, each command is refused with a pointer to the API (`GET /api/export`,
//! `POST /api/import`) that does the same online. On PostgreSQL, which serialises
//! writers itself, export and import run beside servers; `reembed` is SQLite only.
//!
//! Progress goes to stderr as a bar when stderr is a terminal, and not at all
//! otherwise (a pipe, the journal); results go to stdout.

pub mod export;
pub mod import;
pub mod mcp_memory_service;
pub mod reembed;
pub mod restore;

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::auth::Scope;
use crate::config::Config;
use crate::embed::{Embedder, FastEmbedModel};
use crate::operations::Caller;
use crate::service::MemoryService;
use crate::storage::Storage;
use crate::storage::postgres::PostgresStore;
use crate::storage::sqlite::SqliteStore;

/// Loads the configured model and opens the configured database, as the server does
/// at start-up.
pub async fn open_service(config: &Config) -> anyhow::Result<MemoryService> {
    let files = config.model_files();
    let settings = config.clone();
    let embedder = tokio::task::spawn_blocking(move || {
        FastEmbedModel::load(&files, &settings.model_id, settings.embed_threads())
            .map(|model| Embedder::start(Box::new(model), settings.embed_batch as usize))
    })
    .await??;
    let storage: Arc<dyn Storage> = match &config.database_url {
        Some(url) => Arc::new(
            PostgresStore::open(url.expose(), embedder.spec(), config.postgres_options()).await?,
        ),
        None => {
            let (path, spec, options) = (
                config.database_path(),
                embedder.spec().clone(),
                config.store_options(),
            );
            Arc::new(
                tokio::task::spawn_blocking(move || SqliteStore::open(&path, &spec, options))
                    .await?
                    .context("cannot open the database")?,
            )
        }
    };
    Ok(MemoryService::new(storage, embedder).with_limits(config.limits()))
}

/// Who the offline commands act as: whoever can open the database owns it.
fn admin() -> Caller {
    Caller::new(Scope::Admin, None)
}

/// A progress bar on stderr of `total` units, hidden unless stderr is a terminal.
fn progress_bar(total: u64, unit: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit} ({{per_sec}}, {{eta}} left)");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

/// The byte-counted variant of [`progress_bar`], for reading a file.
fn bytes_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left) {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

//! `mnemo-server export [-o FILE] [--vectors]`: every memory as JSON Lines, the format
//! of `GET /api/export`, to a file (created private, 0600) or stdout.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use futures::StreamExt;

use super::{admin, open_service, progress_bar};
use crate::config::Config;
use crate::operations::export::export;

#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// Write to this file (created with mode 0600) instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Include each memory's vector and the model that made it; an import into a
    /// server with the same model then embeds nothing.
    #[arg(long)]
    pub vectors: bool,
}

/// Writes the export, then a summary line to `report`.
pub async fn run(config: &Config, args: ExportArgs, report: &mut impl Write) -> anyhow::Result<()> {
    let service = open_service(config).await?;
    let total = service.storage().count().await?;
    let bar = progress_bar(total, "memories");
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let lines = export(service.clone(), &admin(), args.vectors)?;
    let mut lines = std::pin::pin!(lines);
    let mut count = 0u64;
    while let Some(line) = lines.next().await {
        out.write_all(line?.as_bytes())?;
        count += 1;
        bar.inc(1);
    }
    out.flush()?;
    bar.finish_and_clear();
    service.storage().close().await?;
    if let Some(path) = &args.output {
        writeln!(report, "Exported {count} memories to {}.", path.display())?;
    }
    Ok(())
}

//! `mnemo-server import FILE`: JSON Lines as `mnemo-server export` and `GET
//! /api/export` write them (`-` reads stdin), with the report `POST /api/import`
//! answers, printed.

use std::io::Write;
use std::path::PathBuf;

use mnemo_api::transfer::{ImportReport, LineStatus};

use super::{admin, bytes_bar, open_service};
use crate::config::Config;
use crate::operations::import::import;

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// The JSON Lines file, or `-` for stdin.
    pub file: PathBuf,
}

/// Imports the file and prints its report; fails (exit status 1) when a line was an
/// error, after storing every good line.
pub async fn run(config: &Config, args: ImportArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let service = open_service(config).await?;
    let report = if args.file.as_os_str() == "-" {
        let stdin = tokio::io::BufReader::new(tokio::io::stdin());
        import(&service, &admin(), stdin, |_| {}).await?
    } else {
        let file = tokio::fs::File::open(&args.file)
            .await
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
        let bar = bytes_bar(file.metadata().await?.len());
        let reader = tokio::io::BufReader::with_capacity(256 << 10, file);
        let report = import(&service, &admin(), reader, |done| {
            bar.set_position(done.bytes);
        })
        .await?;
        bar.finish_and_clear();
        report
    };
    service.storage().close().await?;
    print_report(&report, "line", out)?;
    if report.errors > 0 {
        anyhow::bail!("{} lines were not imported (listed above)", report.errors);
    }
    Ok(())
}

/// The counts, then each problem as `<what> N: duplicate|error: message`.
pub fn print_report(
    report: &ImportReport,
    what: &str,
    out: &mut impl Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{} accepted, {} duplicates (already stored), {} errors.",
        report.accepted, report.duplicates, report.errors
    )?;
    for problem in &report.problems {
        let status = match problem.status {
            LineStatus::Accepted => continue,
            LineStatus::Duplicate => "duplicate",
            LineStatus::Error => "error",
        };
        writeln!(
            out,
            "{what} {}: {status}: {}",
            problem.line, problem.message
        )?;
    }
    if report.problems_truncated {
        writeln!(out, "(more problems than listed)")?;
    }
    Ok(())
}

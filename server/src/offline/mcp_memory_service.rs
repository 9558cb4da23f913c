//! `mnemo-server import-from mcp-memory-service PATH`: memories from the Python
//! mcp-memory-service's `sqlite_vec` database, with their tags, type, metadata and
//! times.
//!
//! Its `memories` table (`storage/mixins/migrations.py` in that project) keeps tags as
//! one comma-joined string, metadata as JSON text, times as epoch seconds
//! (`created_at`, `updated_at`, with `*_iso` copies) and deletions as a `deleted_at`
//! time (a soft delete): those rows are skipped and counted. Its vectors are not
//! reused: its model and pooling need not be Mnemo's, so every memory is embedded
//! again. The file is opened read-only, and may be read while that server runs.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use mnemo_api::transfer::{ImportReport, LineReport, LineStatus};
use rusqlite::{Connection, OpenFlags};
use serde_json::{Map, Value};

use super::import::print_report;
use super::{admin, open_service, progress_bar};
use crate::config::Config;
use crate::memory::NewMemory;
use crate::operations::import::{Item, import_memories};

/// Rows read per batch.
const PAGE: i64 = 256;

/// `mnemo-server import-from ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ImportSource {
    /// The Python mcp-memory-service's SQLite database (`sqlite_vec.db`).
    #[command(name = "mcp-memory-service")]
    McpMemoryService {
        /// Its database file, such as ~/.local/share/mcp-memory/sqlite_vec.db.
        path: PathBuf,
    },
}

/// What the import found, beyond the per-row report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Rows in its `memories` table.
    pub rows: u64,
    /// Rows it had deleted (soft delete), not imported.
    pub soft_deleted: u64,
}

pub async fn run(
    config: &Config,
    source: ImportSource,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let ImportSource::McpMemoryService { path } = source;
    let source = Source::open(&path)?;
    let service = open_service(config).await?;
    let bar = progress_bar(source.count()?, "rows");
    let mut report = ImportReport::default();
    let mut counts = Counts::default();
    let mut after = i64::MIN;
    loop {
        let rows = source.page(after)?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            counts.rows += 1;
            bar.inc(1);
            if row.deleted_at.is_some() {
                counts.soft_deleted += 1;
                continue;
            }
            match row.into_item() {
                Ok(item) => items.push(item),
                Err((line, message)) => report.record(LineReport {
                    line,
                    status: LineStatus::Error,
                    content_hash: String::new(),
                    message,
                }),
            }
        }
        import_memories(&service, &admin(), items, &mut report).await?;
    }
    bar.finish_and_clear();
    service.storage().close().await?;
    report.lines = counts.rows;
    writeln!(
        out,
        "Read {} rows of {}: {} soft-deleted (skipped), {} to import.",
        counts.rows,
        path.display(),
        counts.soft_deleted,
        counts.rows - counts.soft_deleted
    )?;
    print_report(&report, "row id", out)?;
    if report.errors > 0 {
        anyhow::bail!("{} rows were not imported (listed above)", report.errors);
    }
    Ok(())
}

/// The other project's database, read-only.
struct Source {
    conn: Connection,
    /// `SELECT` list for the columns this file has; older files lack some.
    columns: String,
}

/// One row of its `memories` table.
struct Row {
    id: i64,
    content: String,
    tags: Option<String>,
    memory_type: Option<String>,
    metadata: Option<String>,
    created_at: Option<f64>,
    updated_at: Option<f64>,
    created_at_iso: Option<String>,
    updated_at_iso: Option<String>,
    deleted_at: Option<f64>,
}

impl Source {
    fn open(path: &Path) -> anyhow::Result<Self> {
        if !path.is_file() {
            anyhow::bail!("{} is not a file", path.display());
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let present: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('memories')")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()
            .with_context(|| format!("{} is not an SQLite database", path.display()))?;
        for needed in ["id", "content"] {
            if !present.iter().any(|c| c == needed) {
                anyhow::bail!(
                    "{} has no memories table with an {needed} column: is it mcp-memory-service's \
                     sqlite_vec database?",
                    path.display()
                );
            }
        }
        let optional = [
            "tags",
            "memory_type",
            "metadata",
            "created_at",
            "updated_at",
            "created_at_iso",
            "updated_at_iso",
            "deleted_at",
        ];
        let columns = optional
            .iter()
            .map(|c| {
                if present.iter().any(|p| p == c) {
                    (*c).to_owned()
                } else {
                    format!("NULL AS {c}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Self { conn, columns })
    }

    fn count(&self) -> anyhow::Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM memories", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// The next rows after id `after`, in id order (their order of creation).
    fn page(&self, after: i64) -> anyhow::Result<Vec<Row>> {
        let sql = format!(
            "SELECT id, content, {} FROM memories WHERE id > ? ORDER BY id LIMIT ?",
            self.columns
        );
        let rows = self
            .conn
            .prepare_cached(&sql)?
            .query_map([after, PAGE], |r| {
                Ok(Row {
                    id: r.get(0)?,
                    content: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    tags: r.get(2)?,
                    memory_type: r.get(3)?,
                    metadata: r.get(4)?,
                    created_at: number(r, 5)?,
                    updated_at: number(r, 6)?,
                    created_at_iso: r.get(7)?,
                    updated_at_iso: r.get(8)?,
                    deleted_at: number(r, 9)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }
}

/// A REAL column that an older writer may have filled with text or an integer.
fn number(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Option<f64>> {
    use rusqlite::types::ValueRef;
    Ok(match row.get_ref(index)? {
        ValueRef::Real(x) => Some(x),
        ValueRef::Integer(n) => Some(n as f64),
        ValueRef::Text(t) => std::str::from_utf8(t).ok().and_then(|t| t.parse().ok()),
        _ => None,
    })
}

impl Row {
    /// The memory to store, or the row id and why it cannot be.
    fn into_item(self) -> Result<Item, (u64, String)> {
        let line = self.id.max(0) as u64;
        let metadata = match self.metadata.as_deref().map(str::trim) {
            None | Some("") | Some("null") => Map::new(),
            Some(text) => match serde_json::from_str(text) {
                Ok(Value::Object(map)) => map,
                Ok(_) => return Err((line, "its metadata is JSON but not an object".into())),
                Err(e) => return Err((line, format!("its metadata is not JSON: {e}"))),
            },
        };
        let tags = self
            .tags
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        let created_at = self.created_at.or_else(|| iso(self.created_at_iso));
        let updated_at = self
            .updated_at
            .or_else(|| iso(self.updated_at_iso))
            .or(created_at);
        Ok(Item {
            line,
            memory: NewMemory {
                content: self.content,
                tags,
                memory_type: self.memory_type.filter(|t| !t.trim().is_empty()),
                metadata,
                created_at,
                updated_at,
            },
            vector: None,
        })
    }
}

/// An RFC 3339 time (the `*_iso` columns) as epoch seconds.
fn iso(text: Option<String>) -> Option<f64> {
    let timestamp: jiff::Timestamp = text?.parse().ok()?;
    Some(timestamp.as_microsecond() as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tags split at commas and trimmed, metadata parsed, an ISO time when the number
    /// is missing, the update time defaulting to the creation time; bad metadata is
    /// the row's error.
    #[test]
    fn rows_become_memories() {
        let row = |metadata: &str| Row {
            id: 7,
            content: "text".into(),
            tags: Some("Alpha, beta,,gamma".into()),
            memory_type: Some("note".into()),
            metadata: Some(metadata.into()),
            created_at: None,
            updated_at: None,
            created_at_iso: Some("2025-01-02T03:04:05.5Z".into()),
            updated_at_iso: None,
            deleted_at: None,
        };
        let item = row(r#"{"source": "x"}"#).into_item().ok().unwrap();
        assert_eq!(item.memory.tags, ["Alpha", "beta", "gamma"]);
        assert_eq!(item.memory.metadata["source"], "x");
        assert_eq!(item.memory.created_at, Some(1_735_787_045.5));
        assert_eq!(item.memory.updated_at, item.memory.created_at);
        let error = row("[1]").into_item().err().unwrap();
        assert_eq!(error.0, 7);
        assert!(error.1.contains("not an object"));
        assert!(row("{").into_item().err().unwrap().1.contains("not JSON"));
    }

    /// The source is opened read-only: a file that is not its database is refused
    /// with what was expected.
    #[test]
    fn another_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
            .unwrap();
        let error = Source::open(&path).err().unwrap().to_string();
        assert!(error.contains("mcp-memory-service"), "{error}");
    }
}

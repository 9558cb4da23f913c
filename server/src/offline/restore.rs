//! `mnemo-server restore BACKUP`: the admin restore route, offline.
//!
//! It opens the database the way the server does, so it takes the same exclusive
//! lock: while a server holds the file, the command refuses and points at the
//! server's own restore route rather than swapping the file under it. The database
//! it replaces is backed up first, as online.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::config::Config;
use crate::operations::backups::{BackupId, Backups};
use crate::storage::Storage;
use crate::storage::sqlite::{SqliteOptions, SqliteStore};

/// Restores `source` (a backup file, or a backup id in `<data dir>/backups`) into the
/// database `config` names, writing what it did to `out`.
pub async fn run(config: &Config, source: &str, out: &mut impl Write) -> anyhow::Result<()> {
    if config.database_url.is_some() {
        bail!(
            "mnemo-server restore works on the SQLite database; restore PostgreSQL with \
             pg_restore (or psql) from a pg_dump backup"
        );
    }
    let backups = Backups::new(config);
    let (path, label) = locate(&backups, source)?;
    let live = config.database_path();
    let has_live = std::fs::metadata(&live).is_ok_and(|m| m.len() > 0);
    let pinned = if has_live {
        SqliteStore::pinned_model(&live)?
    } else {
        None
    };
    let spec = match pinned {
        Some(spec) => spec,
        None => SqliteStore::pinned_model(&path)?.with_context(|| {
            format!(
                "{} is not a Mnemo database (it records no model)",
                path.display()
            )
        })?,
    };
    let options = SqliteOptions {
        // Nothing searches: the copy would only be loaded to be thrown away.
        memory_vectors: false,
        ..config.store_options()
    };
    let store = {
        let live = live.clone();
        tokio::task::spawn_blocking(move || SqliteStore::open(&live, &spec, options)).await??
    };
    let store: Arc<dyn Storage> = Arc::new(store);
    let restored = backups.restore_file(&*store, &path, &label).await?;
    store.close().await?;
    writeln!(
        out,
        "Restored {} into {} ({} memories).\nThe database as it was is kept as backup {} in {}.",
        path.display(),
        live.display(),
        restored.memories,
        restored.pre_restore_backup_id,
        backups.dir().display()
    )?;
    Ok(())
}

/// A file given by path, or a backup id of the backups folder.
fn locate(backups: &Backups, source: &str) -> anyhow::Result<(PathBuf, String)> {
    let path = Path::new(source);
    if path.is_file() {
        let label = path
            .file_stem()
            .map_or_else(|| source.to_owned(), |s| s.to_string_lossy().into_owned());
        return Ok((path.to_path_buf(), label));
    }
    let id = BackupId::parse(source)
        .with_context(|| format!("{source} is neither a file nor a backup id"))?;
    let path = backups.dir().join(id.file_name());
    if !path.is_file() {
        bail!(
            "there is no backup {} in {}",
            id.as_str(),
            backups.dir().display()
        );
    }
    Ok((path, id.as_str().to_owned()))
}

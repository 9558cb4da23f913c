//! Backups of the SQLite database into `<data dir>/backups`, and restores from them,
//! for the admin routes, the schedule (`MNEMO_BACKUP_INTERVAL`, `MNEMO_BACKUP_KEEP`)
//! and `mnemo-server restore`.
//!
//! A backup is named by the UTC time it was taken, to the millisecond, the way
//! mcp-memory-service names its own (`memory_backup_20261128_154700_123.db`); its id
//! is that name without `.db`. An id is parsed, never joined to a path as given, so
//! no id can name a file outside the folder. One backup or restore runs at a time;
//! every restore first backs up the database it replaces.
//!
//! Storage makes the copies (`Storage::backup`, `Storage::restore`); PostgreSQL
//! refuses them, pointing at `pg_dump`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use mnemo_api::admin::{BackupCreated, BackupInfo, BackupList, BackupStatus, RestoreResponse};
use mnemo_api::rest::iso8601;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::storage::{Storage, StorageError};

const PREFIX: &str = "memory_backup_";
const SUFFIX: &str = ".db";
/// The backend whose files Mnemo copies itself.
const FILE_BACKEND: &str = "sqlite-vec";

/// Why a backup or restore failed.
#[derive(Debug, Error)]
pub enum BackupError {
    #[error(
        "{0:?} is not a backup id; ids look like memory_backup_20261128_154700_123, as \
         GET /api/admin/backups lists them"
    )]
    InvalidId(String),
    #[error("there is no backup {0}; GET /api/admin/backups lists them")]
    NotFound(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl BackupError {
    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

/// A backup's name: the UTC time it was taken.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BackupId {
    at: Timestamp,
    name: String,
}

impl BackupId {
    /// The id of a backup taken at `at`.
    pub fn at(at: Timestamp) -> Self {
        let millis = at.subsec_millisecond();
        let name = format!("{PREFIX}{}_{millis:03}", at.strftime("%Y%m%d_%H%M%S"));
        Self { at, name }
    }

    /// Reads an id (or a file name: the `.db` is optional). Anything but the exact
    /// layout is refused, so an id is always a plain file name in the folder.
    pub fn parse(text: &str) -> Result<Self, BackupError> {
        let invalid = || BackupError::InvalidId(text.chars().take(80).collect());
        let stem = text.strip_suffix(SUFFIX).unwrap_or(text);
        let digits = stem.strip_prefix(PREFIX).ok_or_else(invalid)?;
        let bytes = digits.as_bytes();
        let layout_ok = bytes.len() == 19
            && bytes.iter().enumerate().all(|(i, b)| match i {
                8 | 15 => *b == b'_',
                _ => b.is_ascii_digit(),
            });
        if !layout_ok {
            return Err(invalid());
        }
        let number = |range: std::ops::Range<usize>| -> i32 { digits[range].parse().unwrap_or(-1) };
        let at = jiff::civil::DateTime::new(
            number(0..4) as i16,
            number(4..6) as i8,
            number(6..8) as i8,
            number(9..11) as i8,
            number(11..13) as i8,
            number(13..15) as i8,
            number(16..19) * 1_000_000,
        )
        .and_then(|civil| civil.to_zoned(jiff::tz::TimeZone::UTC))
        .map_err(|_| invalid())?
        .timestamp();
        Ok(Self {
            at,
            name: stem.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }

    pub fn file_name(&self) -> String {
        format!("{}{SUFFIX}", self.name)
    }
}

/// `MNEMO_BACKUP_INTERVAL`: how often scheduled backups run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInterval {
    /// As the user wrote it, for the status route.
    text: String,
    every: Duration,
}

impl BackupInterval {
    /// `hourly`, `daily`, `weekly`, or a number with `s`, `m`, `h` or `d` (seconds
    /// when bare).
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim().to_ascii_lowercase();
        let seconds = match trimmed.as_str() {
            "hourly" => 3600,
            "daily" => 86_400,
            "weekly" => 7 * 86_400,
            other => {
                let (number, unit) = match other.find(|c: char| !c.is_ascii_digit()) {
                    Some(at) => other.split_at(at),
                    None => (other, "s"),
                };
                let scale = match unit {
                    "s" => 1,
                    "m" => 60,
                    "h" => 3600,
                    "d" => 86_400,
                    _ => 0,
                };
                number
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0 && scale > 0)
                    .and_then(|n| n.checked_mul(scale))
                    .ok_or_else(|| {
                        format!(
                            "{text:?} is not a backup interval: use hourly, daily, weekly, or a \
                             number with s, m, h or d (such as 6h)"
                        )
                    })?
            }
        };
        Ok(Self {
            text: trimmed,
            every: Duration::from_secs(seconds),
        })
    }

    pub fn every(&self) -> Duration {
        self.every
    }
}

/// The backups folder and what is done with it.
pub struct Backups {
    dir: PathBuf,
    interval: Option<BackupInterval>,
    keep: Option<usize>,
    /// One backup or restore at a time; a second waits for the first.
    running: tokio::sync::Mutex<()>,
    /// When the next scheduled backup runs (epoch seconds), while the schedule runs.
    next: Mutex<Option<f64>>,
}

impl Backups {
    pub fn new(config: &Config) -> Self {
        Self {
            dir: config.data_dir().join("backups"),
            interval: config.backup_interval.clone(),
            keep: config.backup_keep.map(|k| k as usize),
            running: tokio::sync::Mutex::new(()),
            next: Mutex::new(None),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes a backup now, then deletes the oldest beyond `MNEMO_BACKUP_KEEP`.
    pub async fn create(&self, storage: &dyn Storage) -> Result<BackupCreated, BackupError> {
        supported(storage)?;
        let _running = self.running.lock().await;
        let created = self.create_locked(storage).await?;
        self.prune()?;
        Ok(created)
    }

    async fn create_locked(&self, storage: &dyn Storage) -> Result<BackupCreated, BackupError> {
        create_private_dir(&self.dir)?;
        let mut id = BackupId::at(Timestamp::now());
        // Two backups in one millisecond: the next free one.
        while self.dir.join(id.file_name()).exists() {
            id = BackupId::at(id.at + Duration::from_millis(1));
        }
        let path = self.dir.join(id.file_name());
        let stats = storage.backup(&path).await?;
        tracing::info!(
            backup = %path.display(),
            bytes = stats.bytes,
            memories = stats.memories,
            elapsed_ms = stats.elapsed.as_millis() as u64,
            "backup written and checked"
        );
        Ok(BackupCreated {
            success: true,
            backup_id: id.as_str().to_owned(),
            filename: id.file_name(),
            size_bytes: stats.bytes,
            created_at: iso8601(id.at.as_millisecond() as f64 / 1000.0),
            duration_seconds: stats.elapsed.as_secs_f64(),
            memories: stats.memories,
            head_seq: stats.head_seq,
        })
    }

    /// Every backup in the folder, newest first.
    pub fn list(&self, storage: &dyn Storage) -> Result<BackupList, BackupError> {
        supported(storage)?;
        let backups: Vec<BackupInfo> = self.found()?.into_iter().map(|(_, info)| info).collect();
        Ok(BackupList {
            total_count: backups.len(),
            total_size_bytes: backups.iter().map(|b| b.size_bytes).sum(),
            backups,
        })
    }

    /// The schedule and the folder, as mcp-memory-service's status route says them.
    pub fn status(&self, storage: &dyn Storage) -> Result<BackupStatus, BackupError> {
        supported(storage)?;
        let found = self.found()?;
        let last = found
            .first()
            .map(|(id, _)| id.at.as_millisecond() as f64 / 1000.0);
        let now = Timestamp::now().as_millisecond() as f64 / 1000.0;
        let next = *self.next.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(BackupStatus {
            enabled: self.interval.is_some(),
            interval: self
                .interval
                .as_ref()
                .map_or_else(|| "off".to_owned(), |i| i.text.clone()),
            max_count: self.keep,
            backup_count: found.len(),
            total_size_bytes: found.iter().map(|(_, b)| b.size_bytes).sum(),
            last_backup_time: last,
            time_since_last_seconds: last.map(|l| (now - l).max(0.0)),
            next_backup_at: next.map(iso8601),
            scheduler_running: next.is_some(),
            backup_directory: self.dir.display().to_string(),
        })
    }

    /// Restores the backup `backup_id` while serving, after backing up the database
    /// it replaces.
    pub async fn restore(
        &self,
        storage: &dyn Storage,
        backup_id: &str,
    ) -> Result<RestoreResponse, BackupError> {
        supported(storage)?;
        let id = BackupId::parse(backup_id)?;
        let path = self.dir.join(id.file_name());
        if !path.is_file() {
            return Err(BackupError::NotFound(id.as_str().to_owned()));
        }
        self.restore_file(storage, &path, id.as_str()).await
    }

    /// Restores the database file at `path` (`label` names it in the feed's event),
    /// after backing up the database it replaces.
    pub async fn restore_file(
        &self,
        storage: &dyn Storage,
        path: &Path,
        label: &str,
    ) -> Result<RestoreResponse, BackupError> {
        supported(storage)?;
        let _running = self.running.lock().await;
        let before = self.create_locked(storage).await?;
        let stats = match storage.restore(path, label).await {
            Ok(stats) => stats,
            Err(e) => {
                // A refused restore changed nothing, so the live database is still
                // what this backup holds.
                let _ = std::fs::remove_file(self.dir.join(&before.filename));
                return Err(e.into());
            }
        };
        tracing::info!(
            backup = label,
            memories = stats.memories,
            event_id = stats.event.seq,
            pre_restore_backup = %before.backup_id,
            "database restored from a backup"
        );
        Ok(RestoreResponse {
            success: true,
            backup_id: label.to_owned(),
            memories: stats.memories,
            pre_restore_backup_id: before.backup_id.clone(),
            event_id: stats.event.seq,
            message: format!(
                "restored {label} ({} memories); the database as it was is kept as backup {}",
                stats.memories, before.backup_id
            ),
        })
    }

    /// Takes a backup every `MNEMO_BACKUP_INTERVAL` until shutdown; a failed one is
    /// logged and the next one tried on time.
    pub async fn run_schedule(
        self: Arc<Self>,
        storage: Arc<dyn Storage>,
        shutdown: CancellationToken,
    ) {
        let Some(every) = self.interval.as_ref().map(BackupInterval::every) else {
            return;
        };
        if supported(&*storage).is_err() {
            tracing::warn!(
                "MNEMO_BACKUP_INTERVAL is ignored with PostgreSQL; back it up with pg_dump"
            );
            return;
        }
        loop {
            let due = Timestamp::now() + every;
            *self.next.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(due.as_millisecond() as f64 / 1000.0);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.create(&*storage).await {
                tracing::error!(error = %e, "the scheduled backup failed; the next one runs on time");
            }
        }
        *self.next.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The backups in the folder, newest first; other files are left alone.
    fn found(&self) -> Result<Vec<(BackupId, BackupInfo)>, BackupError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(BackupError::io(format!("reading {}", self.dir.display()))(
                    e,
                ));
            }
        };
        let now = Timestamp::now();
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str().filter(|n| n.ends_with(SUFFIX)) else {
                continue;
            };
            let (Ok(id), Ok(meta)) = (BackupId::parse(name), entry.metadata()) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let age = now.duration_since(id.at).as_secs().max(0) as u64;
            let info = BackupInfo {
                backup_id: id.as_str().to_owned(),
                filename: id.file_name(),
                size_bytes: meta.len(),
                created_at: iso8601(id.at.as_millisecond() as f64 / 1000.0),
                age_days: age / 86_400,
            };
            found.push((id, info));
        }
        found.sort_by(|a, b| b.0.cmp(&a.0));
        Ok(found)
    }

    /// Deletes the oldest backups beyond `MNEMO_BACKUP_KEEP`.
    fn prune(&self) -> Result<(), BackupError> {
        let Some(keep) = self.keep else {
            return Ok(());
        };
        for (id, _) in self.found()?.into_iter().skip(keep) {
            let path = self.dir.join(id.file_name());
            std::fs::remove_file(&path).map_err(BackupError::io(format!(
                "deleting the old backup {}",
                path.display()
            )))?;
            tracing::info!(backup = %path.display(), "deleted an old backup (MNEMO_BACKUP_KEEP)");
        }
        Ok(())
    }
}

/// Refuses a backend whose backups are not Mnemo's to make.
fn supported(storage: &dyn Storage) -> Result<(), BackupError> {
    if storage.backend() == FILE_BACKEND {
        Ok(())
    } else {
        Err(StorageError::unsupported(storage.backend()).into())
    }
}

/// The backups folder, private to the server's user like the database.
fn create_private_dir(dir: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(BackupError::io(format!("creating {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids round-trip through their names; nothing but the exact layout is an id, so
    /// no id reaches outside the folder.
    #[test]
    fn backup_ids() {
        let id = BackupId::at("2026-11-28T15:47:00.123Z".parse().unwrap());
        assert_eq!(id.as_str(), "memory_backup_20261128_154700_123");
        assert_eq!(BackupId::parse(id.as_str()).unwrap(), id);
        assert_eq!(BackupId::parse(&id.file_name()).unwrap(), id);
        for bad in [
            "",
            "../memories",
            "memory_backup_20261128_154700_123/../../x",
            "memory_backup_../../../etc/passwd",
            "/etc/passwd",
            "memory_backup_20261328_154700_123",
            "memory_backup_20261128_154700_12",
            "memory_backup_20261128-154700_123",
            "memory_backup_2026112a_154700_123",
            "memory_backup_20261128_154700_123.db.db",
            "memory_backup_20261128_154700_123\0",
        ] {
            assert!(
                matches!(BackupId::parse(bad), Err(BackupError::InvalidId(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn intervals() {
        for (text, seconds) in [
            ("hourly", 3600),
            ("Daily", 86_400),
            ("weekly", 604_800),
            ("90", 90),
            ("30m", 1800),
            ("6h", 21_600),
            ("2d", 172_800),
        ] {
            assert_eq!(
                BackupInterval::parse(text).unwrap().every(),
                Duration::from_secs(seconds),
                "{text}"
            );
        }
        for bad in ["", "0", "-1", "6x", "h", "monthly", "99999999999999999999d"] {
            assert!(BackupInterval::parse(bad).is_err(), "{bad:?}");
        }
    }
}

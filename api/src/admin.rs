//! Backups and restores: the bodies of `POST /api/admin/backup`, `GET
//! /api/admin/backups`, `POST /api/admin/restore`, and mcp-memory-service's
//! `POST /api/backup/now`, `GET /api/backup/list` and `GET /api/backup/status`.
//!
//! The fields mcp-memory-service's dashboard reads keep its names and meaning
//! (`filename`, `size_bytes`, `created_at`, `age_days`, `total_count`, …); Mnemo's
//! additions (`backup_id`, `memories`, `head_seq`) come on top, so both sets of
//! routes answer the same bodies.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One backup file in `<data dir>/backups`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BackupInfo {
    /// What `POST /api/admin/restore` takes: the file name without `.db`.
    pub backup_id: String,
    pub filename: String,
    pub size_bytes: u64,
    /// When it was taken (UTC, ISO 8601), from its name.
    pub created_at: String,
    /// Whole days since then.
    pub age_days: u64,
}

/// `POST /api/admin/backup` and `POST /api/backup/now`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BackupCreated {
    pub success: bool,
    pub backup_id: String,
    pub filename: String,
    pub size_bytes: u64,
    pub created_at: String,
    pub duration_seconds: f64,
    /// Memories in the backup.
    pub memories: u64,
    /// The last change-feed sequence number it holds.
    pub head_seq: i64,
}

/// `GET /api/admin/backups` and `GET /api/backup/list`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BackupList {
    pub backups: Vec<BackupInfo>,
    pub total_count: usize,
    pub total_size_bytes: u64,
}

/// `GET /api/backup/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BackupStatus {
    /// Whether scheduled backups are on (`MNEMO_BACKUP_INTERVAL`).
    pub enabled: bool,
    /// The schedule as configured (`daily`, `6h`, …), or `off`.
    pub interval: String,
    /// Backups kept (`MNEMO_BACKUP_KEEP`); `None` keeps every one.
    pub max_count: Option<usize>,
    pub backup_count: usize,
    pub total_size_bytes: u64,
    /// Epoch seconds of the newest backup.
    pub last_backup_time: Option<f64>,
    pub time_since_last_seconds: Option<f64>,
    /// When the next scheduled backup runs (UTC, ISO 8601).
    pub next_backup_at: Option<String>,
    pub scheduler_running: bool,
    pub backup_directory: String,
}

/// `POST /api/admin/restore`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RestoreRequest {
    /// A `backup_id` from the list.
    pub backup_id: String,
}

/// The answer to a restore.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RestoreResponse {
    pub success: bool,
    pub backup_id: String,
    /// Memories in the restored database.
    pub memories: u64,
    /// The backup of the database as it was just before the restore.
    pub pre_restore_backup_id: String,
    /// The change-feed sequence number of the restore's own `resync` event.
    pub event_id: i64,
    pub message: String,
}

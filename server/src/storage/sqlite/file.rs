//! The database file before the store trusts it.
//!
//! A store that opens must be one that can serve: a damaged or read-only file would
//! otherwise start "healthy" and answer 500 to every search and store. So `open`
//! refuses such a file with an error naming it and what to do, before anything is
//! served from it:
//!
//! - a missing file is a new store, created private (0600), and SQLite gives its
//!   `-wal` and `-shm` files the same mode;
//! - an empty file is refused: it is what a lost or truncated database looks like,
//!   and quietly starting afresh over it would hide the loss;
//! - an existing file (and its `-wal` and `-shm`) is made private if it was not;
//! - the open connection must be writable and pass `PRAGMA quick_check`.
//!
//! `quick_check` reads every page once, so its cost grows with the database: about
//! 0.3 s of the 0.42 s an open takes at 100k memories (231 MB; BENCHMARKS.md,
//! "Opening a database").

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode};

use crate::storage::StorageError;

/// Owner read and write, nobody else: memories are as private as the keys.
const PRIVATE: u32 = 0o600;

/// Problems `quick_check` reports at most: the first one is enough to refuse.
const CHECK_ROWS: u32 = 8;

/// Creates the file if it is missing (private), refuses an empty one, and makes an
/// existing one and its companions private.
pub(super) fn prepare(path: &Path) -> Result<(), StorageError> {
    let location = path.display().to_string();
    match std::fs::metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            create_private(path).map_err(|e| read_only_or_backend(&location, "creating", e))?;
            tracing::info!(database = %location, "created a new, empty database");
            return Ok(());
        }
        Err(e) => return Err(read_only_or_backend(&location, "reading", e)),
        Ok(meta) if meta.len() == 0 && !has_journal(path) => {
            return Err(StorageError::EmptyFile { location });
        }
        Ok(_) => {}
    }
    for file in [
        path.to_path_buf(),
        companion(path, "-wal"),
        companion(path, "-shm"),
    ] {
        make_private(&file).map_err(|e| read_only_or_backend(&location, "securing", e))?;
    }
    Ok(())
}

/// Takes the database's writer lock: an exclusive `flock` on the file, held for as
/// long as the returned handle lives, so a second server or an offline command on the
/// same file is refused ([`StorageError::InUse`]) instead of becoming a second writer.
/// SQLite's own locks are POSIX record locks, which `flock` does not touch.
pub(super) fn lock(path: &Path) -> Result<File, StorageError> {
    let location = path.display().to_string();
    let file = File::open(path).map_err(|e| read_only_or_backend(&location, "opening", e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StorageError::InUse { location }),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(StorageError::backend(format!("locking {location}"), e))
        }
    }
}

/// Refuses a connection that cannot write or a database that fails `quick_check`.
pub(super) fn verify(conn: &Connection, path: &Path) -> Result<(), StorageError> {
    let location = path.display().to_string();
    if conn.is_readonly("main").unwrap_or(false) {
        return Err(StorageError::ReadOnly {
            location,
            detail: "SQLite opened it read-only".into(),
        });
    }
    check(conn, path, "quick_check")
}

/// Refuses a database that fails `PRAGMA <pragma>` (`quick_check` or the slower,
/// thorough `integrity_check`), naming its first problems.
pub(super) fn check(conn: &Connection, path: &Path, pragma: &str) -> Result<(), StorageError> {
    let problems: Vec<String> = conn
        .prepare(&format!("PRAGMA {pragma}({CHECK_ROWS})"))
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get::<_, String>(0))?
                .collect()
        })
        .map_err(|e| opening_error(path, e))?;
    match problems.as_slice() {
        [ok] if ok == "ok" => Ok(()),
        _ => Err(StorageError::Corrupt {
            location: path.display().to_string(),
            detail: problems.join("; "),
        }),
    }
}

/// What a failure while opening or first reading the file means to the user: a
/// damaged file, a read-only one, or something else.
pub(super) fn opening_error(path: &Path, error: rusqlite::Error) -> StorageError {
    let location = path.display().to_string();
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StorageError::Corrupt {
            location,
            detail: error.to_string(),
        },
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            StorageError::ReadOnly {
                location,
                detail: error.to_string(),
            }
        }
        _ => error.into(),
    }
}

pub(super) fn create_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE)
        .open(path)
}

fn make_private(path: &Path) -> std::io::Result<()> {
    let mode = match std::fs::metadata(path) {
        Ok(meta) => meta.permissions().mode() & 0o777,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if mode & !PRIVATE != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(PRIVATE))?;
        tracing::info!(file = %path.display(), was = format!("{mode:o}"), "made the database file private (0600)");
    }
    Ok(())
}

/// An empty main file with a non-empty write-ahead log is a database whose pages all
/// still sit in the log: SQLite reads it, so it is not "empty".
fn has_journal(path: &Path) -> bool {
    std::fs::metadata(companion(path, "-wal")).is_ok_and(|m| m.len() > 0)
}

pub(super) fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn read_only_or_backend(location: &str, doing: &str, error: std::io::Error) -> StorageError {
    match error.kind() {
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => StorageError::ReadOnly {
            location: location.to_owned(),
            detail: format!("{doing} it: {error}"),
        },
        _ => StorageError::backend(format!("{doing} the database file {location}"), error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_missing_file_is_created_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memories.db");
        prepare(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn an_empty_file_is_refused_unless_its_log_holds_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memories.db");
        std::fs::write(&path, b"").unwrap();
        let error = prepare(&path).unwrap_err();
        assert!(matches!(error, StorageError::EmptyFile { .. }), "{error}");
        assert!(error.to_string().contains(&path.display().to_string()));
        assert!(error.to_string().contains("delete the file"), "{error}");

        std::fs::write(companion(&path, "-wal"), b"pages").unwrap();
        prepare(&path).unwrap();
    }

    #[test]
    fn existing_files_are_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memories.db");
        for file in [
            path.clone(),
            companion(&path, "-wal"),
            companion(&path, "-shm"),
        ] {
            std::fs::write(&file, b"x").unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        prepare(&path).unwrap();
        for file in [
            path.clone(),
            companion(&path, "-wal"),
            companion(&path, "-shm"),
        ] {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
    }
}

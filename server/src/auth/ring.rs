//! [`KeyRing`]: what the server checks every presented key against, the master key and
//! the managed keys.
//!
//! The `keys` commands run in a separate process from the server. Rather than signal the
//! server, the ring notices that `keys.json` changed on disk (a stat per request) and
//! re-reads it, so an added or revoked key takes effect on the next request.
//!
//! With PostgreSQL the managed keys are the database's, shared by every server of it.
//! The ring keeps them in memory, reloads them whenever any server announces a change
//! (`LISTEN`), and asks the database about a key it does not know before refusing it,
//! so a key added through another server works at once, even before the announcement
//! arrives.

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::{PoisonError, RwLock};
use std::time::SystemTime;

use subtle::ConstantTimeEq;
use tracing::{info, warn};

use tokio_util::sync::DropGuard;

use super::key_file::{Digest, KeyFile, sha256};
use super::managed::{ManagedKeys, entry_of};
use super::scope::Scope;
use crate::storage::postgres::PostgresKeys;

/// Everything the server checks a presented key against. Cheap enough to call on every
/// request, and shared between request handlers behind an `Arc`.
pub struct KeyRing {
    /// SHA-256 of the master key. Comparing digests rather than the keys means both
    /// sides always have 32 bytes, so the comparison's time does not reveal the key's
    /// length either.
    master: Option<Digest>,

    /// Where the managed keys live.
    source: ManagedKeys,

    /// Keeps the database's key listener running, with PostgreSQL.
    _listening: Option<DropGuard>,

    /// The managed keys as last read, with the version of `keys.json` they came from.
    /// Requests take the read lock to look a key up; the write lock is taken only to
    /// install a new set, after the file has been read without holding any lock. The
    /// lock is never held across an `.await` (there is none in this module).
    managed: RwLock<Managed>,
}

struct Managed {
    /// The version of the file last looked at; `None` before the first look.
    seen: Option<FileVersion>,
    keys: Vec<(Digest, Scope)>,
}

/// What a stat of `keys.json` says, enough to tell that the file changed. Writes by
/// [`KeyFile`] replace the file, which gives it a new inode as well as a new
/// modification time; the size catches edits made within the clock's resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileVersion {
    Missing,
    Unreadable,
    Present {
        modified: Option<SystemTime>,
        len: u64,
        inode: u64,
    },
}

impl FileVersion {
    fn of(path: &Path) -> Self {
        match fs::metadata(path) {
            Ok(metadata) => FileVersion::Present {
                modified: metadata.modified().ok(),
                len: metadata.len(),
                inode: inode(&metadata),
            },
            Err(error) if error.kind() == io::ErrorKind::NotFound => FileVersion::Missing,
            Err(_) => FileVersion::Unreadable,
        }
    }
}

#[cfg(unix)]
fn inode(metadata: &fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(metadata)
}

#[cfg(not(unix))]
fn inode(_: &fs::Metadata) -> u64 {
    0
}

impl KeyRing {
    /// `master` is the all-scopes key (`MCP_API_KEY`, or the default key); an empty
    /// string counts as none. `file` holds the managed keys, which are read now, so
    /// that a broken `keys.json` is reported at start-up.
    pub fn new(master: Option<String>, file: KeyFile) -> Self {
        let ring = Self::empty(master, ManagedKeys::File(file), None);
        ring.refresh();
        ring
    }

    /// A ring whose managed keys are the database's. They are loaded by
    /// [`KeyRing::follow_changes`], which the caller runs; until then only the master
    /// key and keys asked about one by one ([`KeyRing::authenticate_fresh`]) work.
    /// Must be called within a Tokio runtime: it starts the key listener.
    pub fn with_database(master: Option<String>, table: PostgresKeys) -> Self {
        let listening = table.listen();
        Self::empty(master, ManagedKeys::Database(table), Some(listening))
    }

    fn empty(master: Option<String>, source: ManagedKeys, listening: Option<DropGuard>) -> Self {
        Self {
            master: master.filter(|key| !key.is_empty()).map(|key| sha256(&key)),
            source,
            _listening: listening,
            managed: RwLock::new(Managed {
                seen: None,
                keys: Vec::new(),
            }),
        }
    }

    /// Where the managed keys live, for the `keys` commands and admin routes.
    pub fn managed_keys(&self) -> &ManagedKeys {
        &self.source
    }

    /// The scope of a presented key, or `None` if it is not valid.
    ///
    /// Keys are compared as SHA-256 digests in constant time. Every managed key is
    /// compared, without stopping at a match. If `keys.json` changed since the last
    /// call it is read again first; if it no longer parses, the last good set stays in
    /// force and a warning is logged once for that version of the file.
    pub fn authenticate(&self, presented: &str) -> Option<Scope> {
        if presented.is_empty() {
            return None;
        }
        let digest = sha256(presented);
        if let Some(master) = &self.master
            && bool::from(master.as_slice().ct_eq(digest.as_slice()))
        {
            return Some(Scope::Admin);
        }
        self.refresh();
        let managed = self.managed.read().unwrap_or_else(PoisonError::into_inner);
        let mut found = None;
        for (key, scope) in &managed.keys {
            if bool::from(key.as_slice().ct_eq(digest.as_slice())) {
                found = Some(*scope);
            }
        }
        found
    }

    /// The SHA-256 of every key, the master key first, at most `limit` of them: what a
    /// proof of a key is made from (`POST /api/auth/proof`).
    pub fn digests(&self, limit: usize) -> Vec<Digest> {
        self.refresh();
        let managed = self.managed.read().unwrap_or_else(PoisonError::into_inner);
        self.master
            .iter()
            .copied()
            .chain(managed.keys.iter().map(|(digest, _)| *digest))
            .take(limit)
            .collect()
    }

    /// A key the ring does not know, looked up where the managed keys live: with
    /// PostgreSQL, one indexed query (the caller bounds how often a client may cause
    /// one). A key found is remembered until the next reload.
    pub async fn authenticate_fresh(&self, presented: &str) -> Option<Scope> {
        let ManagedKeys::Database(table) = &self.source else {
            return None;
        };
        if presented.is_empty() {
            return None;
        }
        let digest = sha256(presented);
        let row = match table.find(&digest).await {
            Ok(row) => row?,
            Err(error) => {
                warn!(%error, "cannot look a key up in the database");
                return None;
            }
        };
        let entry = entry_of(&row).ok()?;
        let mut managed = self.managed.write().unwrap_or_else(PoisonError::into_inner);
        managed.keys.push((digest, entry.scope));
        Some(entry.scope)
    }

    /// Reloads the database's keys now and after every change any server announces;
    /// never returns. Nothing to do for `keys.json`, which is checked per request.
    pub async fn follow_changes(&self) {
        let ManagedKeys::Database(table) = &self.source else {
            return std::future::pending().await;
        };
        loop {
            match self.source.digests().await {
                Ok(keys) => {
                    info!(
                        database = table.location(),
                        keys = keys.len(),
                        "loaded managed API keys"
                    );
                    self.managed
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .keys = keys;
                }
                Err(error) => warn!(%error, "keeping the keys loaded before"),
            }
            table.changed().await;
        }
    }

    /// Re-reads `keys.json` if its version differs from the one last seen.
    fn refresh(&self) {
        let ManagedKeys::File(file) = &self.source else {
            return;
        };
        let version = FileVersion::of(file.path());
        let seen = self
            .managed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .seen;
        if seen == Some(version) {
            return;
        }
        let path = file.path().display();
        let keys = match version {
            FileVersion::Missing => Some(Vec::new()),
            FileVersion::Unreadable => {
                warn!(path = %path, "cannot read the keys file; keeping the keys loaded before");
                None
            }
            FileVersion::Present { .. } => match file.list() {
                Ok(entries) => {
                    info!(path = %path, keys = entries.len(), "loaded managed API keys");
                    Some(
                        entries
                            .iter()
                            .filter_map(|entry| Some((entry.digest()?, entry.scope)))
                            .collect(),
                    )
                }
                Err(error) => {
                    warn!(%error, "keeping the keys loaded before");
                    None
                }
            },
        };
        let mut managed = self.managed.write().unwrap_or_else(PoisonError::into_inner);
        managed.seen = Some(version);
        if let Some(keys) = keys {
            managed.keys = keys;
        }
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("master", &self.master.map(|_| "<redacted>"))
            .field("managed", &self.source.place())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::Write;

    use super::*;
    use crate::auth::key_file::{KeyEntry, Stored};
    use crate::auth::{KEYS_FILE, KeyError};

    fn ring(dir: &Path, master: Option<&str>) -> KeyRing {
        KeyRing::new(master.map(String::from), KeyFile::new(dir))
    }

    /// A key added to the file authenticates with the scope it was given.
    #[test]
    fn added_key_authenticates_with_its_scope() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyFile::new(dir.path());
        let ring = ring(dir.path(), None);
        let (_, reader) = file.add("laptop", Scope::Read).unwrap();
        let (_, writer) = file.add("ci", Scope::Write).unwrap();

        assert_eq!(ring.authenticate(&reader), Some(Scope::Read));
        assert_eq!(ring.authenticate(&writer), Some(Scope::Write));
    }

    /// A key revoked through another KeyFile (the CLI in another process) stops
    /// working in a KeyRing that was running all along, by id or by name.
    #[test]
    fn revoked_key_is_rejected_without_restart() {
        let dir = tempfile::tempdir().unwrap();
        let ring = ring(dir.path(), None);
        let (first, first_key) = KeyFile::new(dir.path()).add("one", Scope::Write).unwrap();
        let (_, second_key) = KeyFile::new(dir.path()).add("two", Scope::Read).unwrap();
        assert_eq!(ring.authenticate(&first_key), Some(Scope::Write));
        assert_eq!(ring.authenticate(&second_key), Some(Scope::Read));

        let cli = KeyFile::new(dir.path());
        assert_eq!(cli.revoke(&first.id).unwrap(), first);
        assert_eq!(ring.authenticate(&first_key), None);
        assert_eq!(ring.authenticate(&second_key), Some(Scope::Read));

        cli.revoke("two").unwrap();
        assert_eq!(ring.authenticate(&second_key), None);
        assert!(matches!(
            cli.revoke("two"),
            Err(KeyError::UnknownKey { .. })
        ));
    }

    /// A rewrite of `keys.json` in place with the same size is picked up through its
    /// modification time.
    #[test]
    fn same_size_edit_is_detected_by_modification_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEYS_FILE);
        let (a, b) = ("mnemo_a", "mnemo_b");
        let json = |key: &str| {
            let entry = KeyEntry {
                id: "key_00000000".into(),
                name: "hand".into(),
                sha256: hex::encode(sha256(key)),
                scope: Scope::Write,
                created_at: 0.0,
            };
            serde_json::to_string(&Stored { keys: vec![entry] }).unwrap()
        };
        let write = |key: &str, modified: SystemTime| {
            let mut file = File::create(&path).unwrap();
            file.write_all(json(key).as_bytes()).unwrap();
            file.set_modified(modified).unwrap();
        };
        let start = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        write(a, start);
        let ring = ring(dir.path(), None);
        assert_eq!(ring.authenticate(a), Some(Scope::Write));

        write(b, start + std::time::Duration::from_secs(1));
        assert_eq!(ring.authenticate(a), None);
        assert_eq!(ring.authenticate(b), Some(Scope::Write));
    }

    /// Wrong keys, empty keys and a key that merely starts like a valid one are
    /// rejected, with or without a master key.
    #[test]
    fn wrong_and_empty_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let (_, key) = KeyFile::new(dir.path())
            .add("laptop", Scope::Admin)
            .unwrap();
        for master in [None, Some("master-key")] {
            let ring = ring(dir.path(), master);
            assert_eq!(ring.authenticate(""), None);
            assert_eq!(ring.authenticate("wrong"), None);
            assert_eq!(ring.authenticate(&key[..key.len() - 1]), None);
            assert_eq!(ring.authenticate(&format!("{key}x")), None);
        }
        let no_master = ring(dir.path(), Some(""));
        assert_eq!(no_master.authenticate(""), None);
    }

    /// The master key is accepted with every scope.
    #[test]
    fn master_key_is_admin() {
        let dir = tempfile::tempdir().unwrap();
        let ring = ring(dir.path(), Some("master-key"));
        assert_eq!(ring.authenticate("master-key"), Some(Scope::Admin));
        assert!(!format!("{ring:?}").contains("master-key"));
    }

    /// A corrupt `keys.json` makes list() fail with an error naming the file and the
    /// fix, while a running KeyRing keeps the last good keys until the file is fixed.
    #[test]
    fn corrupt_keys_file_is_reported_and_last_good_set_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyFile::new(dir.path());
        let (_, key) = file.add("laptop", Scope::Write).unwrap();
        let ring = ring(dir.path(), None);
        assert_eq!(ring.authenticate(&key), Some(Scope::Write));

        fs::write(file.path(), "{ not json").unwrap();
        let error = file.list().unwrap_err();
        assert!(matches!(error, KeyError::Corrupt { .. }));
        let message = error.to_string();
        assert!(
            message.contains(&file.path().display().to_string()),
            "{message}"
        );
        assert!(message.contains("mnemo-server keys add"), "{message}");
        assert!(matches!(
            file.add("other", Scope::Read),
            Err(KeyError::Corrupt { .. })
        ));
        assert_eq!(ring.authenticate(&key), Some(Scope::Write));

        fs::remove_file(file.path()).unwrap();
        assert_eq!(ring.authenticate(&key), None);
    }
}

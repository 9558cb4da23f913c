//! The managed keys, `<data_dir>/keys.json`: how a key is made, the form it is stored in,
//! and [`KeyFile`], which lists, adds and revokes them.
//!
//! No managed key is ever stored in the clear, only its SHA-256, so a copy of `keys.json`
//! (in a backup, say) grants nothing. A plain hash is enough here, unlike for passwords: a
//! key holds 256 random bits, so there is nothing to guess.
//!
//! The file is edited by `mnemo-server keys` commands, each a process of its own, while
//! servers read it. Writers take an advisory lock on `keys.json.lock` and re-read the file
//! under it, so two commands run at once both land; every write replaces the file whole
//! (through [`mnemo_certs::private_file`]), so a reader needs no lock.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use mnemo_certs::private_file::{self, PrivateFileError};
use rand::TryRngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

use super::scope::Scope;
use crate::memory::now_epoch;
use crate::storage::StorageError;

/// Every generated key starts with this, so a leaked key is recognisable (secret
/// scanners, logs) and cannot be mistaken for another service's token.
pub const KEY_PREFIX: &str = "mnemo_";

/// The file in the data directory that holds the managed keys.
pub const KEYS_FILE: &str = "keys.json";

/// A SHA-256 digest, the form in which keys are stored and compared.
pub(super) type Digest = [u8; 32];

/// One managed key as stored in `<data_dir>/keys.json`. The key itself is never
/// stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyEntry {
    pub id: String,
    pub name: String,
    /// Lowercase hex SHA-256 of the key.
    pub sha256: String,
    pub scope: Scope,
    /// Epoch seconds, to the millisecond.
    pub created_at: f64,
}

impl KeyEntry {
    /// A new key named `name` (already checked by [`valid_name`]) and its entry, with
    /// a random id. The key is returned once and stored nowhere.
    pub(super) fn generate(name: &str, scope: Scope) -> (KeyEntry, String) {
        let key = generate_key();
        let entry = KeyEntry {
            id: format!("key_{}", hex::encode(random_bytes::<4>())),
            name: name.into(),
            sha256: hex::encode(sha256(&key)),
            scope,
            // Whole milliseconds survive the trip through JSON exactly, so the entry
            // returned here equals the one read back later.
            created_at: (now_epoch() * 1000.0).round() / 1000.0,
        };
        (entry, key)
    }

    pub(super) fn digest(&self) -> Option<Digest> {
        let mut digest = [0; 32];
        hex::decode_to_slice(&self.sha256, &mut digest).ok()?;
        Some(digest)
    }
}

/// The layout of `keys.json`. An object rather than a bare list, so that fields can be
/// added later without breaking older files.
#[derive(Serialize, Deserialize)]
pub(super) struct Stored {
    pub(super) keys: Vec<KeyEntry>,
}

/// What can go wrong with keys, in the key file, the default key file or the `keys`
/// commands. Every variant that concerns a file names it.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("cannot {action} {path}: {error}")]
    Io {
        action: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    #[error(
        "{path} is not a valid keys file ({message}); fix it by hand, restore it from a backup, \
         or delete it (which revokes every managed key) and add keys again with `mnemo-server keys add`"
    )]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "{path} is empty; write a key into it, or delete it so that the server generates a new one"
    )]
    EmptyDefaultKey { path: PathBuf },
    /// `place` is the keys file or the database that was searched.
    #[error(
        "no key has the id or name {id_or_name:?} in {place}; `mnemo-server keys list` shows them"
    )]
    UnknownKey { id_or_name: String, place: String },
    #[error(
        "a key with the id or name {name:?} already exists in {place}; choose another name, or revoke that key first"
    )]
    DuplicateName { name: String, place: String },
    #[error("invalid key name {name:?}: a name must not be blank or hold control characters")]
    InvalidName { name: String },
    #[error("cannot write output: {error}")]
    Output { error: io::Error },
    #[error("the keys in the database: {0}")]
    Database(#[from] StorageError),
}

impl From<PrivateFileError> for KeyError {
    fn from(error: PrivateFileError) -> Self {
        KeyError::Io {
            action: error.action,
            path: error.path,
            error: error.cause,
        }
    }
}

/// A new random key: [`KEY_PREFIX`] followed by 64 hex characters of 32 bytes from the
/// operating system's random number generator.
pub fn generate_key() -> String {
    format!("{KEY_PREFIX}{}", hex::encode(random_bytes::<32>()))
}

/// The managed keys file, `<data_dir>/keys.json`.
///
/// Every change happens under an exclusive lock on `keys.json.lock`, re-reads the file
/// under it, and replaces the file whole, so concurrent `keys` commands never lose each
/// other's changes and a server reading concurrently sees either the old set or the new
/// one. The lock file is never deleted: removing it while another process waits on it
/// would let a third process lock a new file of the same name at the same time.
#[derive(Debug, Clone)]
pub struct KeyFile {
    path: PathBuf,
}

impl KeyFile {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(KEYS_FILE),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The managed keys. A missing file holds none.
    pub fn list(&self) -> Result<Vec<KeyEntry>, KeyError> {
        let contents = match fs::read(&self.path) {
            Ok(contents) => contents,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(io_error("read", &self.path, error)),
        };
        let corrupt = |message: String| KeyError::Corrupt {
            path: self.path.clone(),
            message,
        };
        let stored: Stored =
            serde_json::from_slice(&contents).map_err(|error| corrupt(error.to_string()))?;
        if let Some(entry) = stored.keys.iter().find(|entry| entry.digest().is_none()) {
            return Err(corrupt(format!(
                "the sha256 of key {:?} is not 64 hex characters",
                entry.id
            )));
        }
        Ok(stored.keys)
    }

    /// Creates a key named `name` and returns its entry and the key itself, which is
    /// not stored anywhere and so cannot be shown again.
    ///
    /// Ids and names share one namespace, so that [`KeyFile::revoke`] is never
    /// ambiguous.
    pub fn add(&self, name: &str, scope: Scope) -> Result<(KeyEntry, String), KeyError> {
        let name = valid_name(name)?;
        self.change(|keys| {
            let taken = |candidate: &str| {
                keys.iter()
                    .any(|entry| entry.id == candidate || entry.name == candidate)
            };
            if taken(name) {
                return Err(KeyError::DuplicateName {
                    name: name.into(),
                    place: self.path.display().to_string(),
                });
            }
            let (entry, key) = loop {
                let (entry, key) = KeyEntry::generate(name, scope);
                if !taken(&entry.id) && entry.id != name {
                    break (entry, key);
                }
            };
            keys.push(entry.clone());
            Ok((entry, key))
        })
    }

    /// Removes the key with this id or name and returns its entry.
    pub fn revoke(&self, id_or_name: &str) -> Result<KeyEntry, KeyError> {
        self.change(|keys| {
            let Some(index) = keys
                .iter()
                .position(|entry| entry.id == id_or_name || entry.name == id_or_name)
            else {
                return Err(KeyError::UnknownKey {
                    id_or_name: id_or_name.into(),
                    place: self.path.display().to_string(),
                });
            };
            Ok(keys.remove(index))
        })
    }

    /// Applies `edit` to the keys as they are on disk now and writes the result, with
    /// every other writer held off from before the read until after the write. Nothing
    /// is written if `edit` fails.
    fn change<T>(
        &self,
        edit: impl FnOnce(&mut Vec<KeyEntry>) -> Result<T, KeyError>,
    ) -> Result<T, KeyError> {
        let _lock = self.lock()?;
        let mut keys = self.list()?;
        let outcome = edit(&mut keys)?;
        let mut json = serde_json::to_vec_pretty(&Stored { keys })
            .expect("key entries always serialise to JSON");
        json.push(b'\n');
        private_file::write(&self.path, &json)?;
        Ok(outcome)
    }

    /// Takes the writers' lock, waiting for another writer to finish. It is released when
    /// the returned file is closed, also if the process dies.
    fn lock(&self) -> Result<File, KeyError> {
        let mut path = self.path.clone().into_os_string();
        path.push(".lock");
        let path = PathBuf::from(path);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)
                .map_err(|error| io_error("create the directory", dir, error))?;
        }
        let mut options = OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, private_file::PRIVATE);
        let file = options
            .open(&path)
            .map_err(|error| io_error("open", &path, error))?;
        file.lock()
            .map_err(|error| io_error("lock", &path, error))?;
        Ok(file)
    }
}

/// `name` trimmed, if it can name a key: not blank, no control characters.
pub(super) fn valid_name(name: &str) -> Result<&str, KeyError> {
    let name = name.trim();
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(KeyError::InvalidName { name: name.into() });
    }
    Ok(name)
}

pub(super) fn sha256(key: &str) -> Digest {
    Sha256::digest(key.as_bytes()).into()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random number generator failed");
    bytes
}

pub(super) fn io_error(action: &'static str, path: &Path, error: io::Error) -> KeyError {
    KeyError::Io {
        action,
        path: path.into(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Generated keys carry the prefix, 256 bits in hex, and differ each time.
    #[test]
    fn generated_keys_are_prefixed_and_random() {
        let key = generate_key();
        let hex_part = key.strip_prefix(KEY_PREFIX).unwrap();
        assert_eq!(hex_part.len(), 64);
        assert!(hex_part.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(key, generate_key());
    }

    /// `keys.json` has mode 0600 and holds the key's hash, never the key.
    #[test]
    fn keys_file_is_private_and_holds_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyFile::new(dir.path());
        let (entry, key) = file.add("laptop", Scope::Write).unwrap();

        let contents = fs::read_to_string(file.path()).unwrap();
        assert!(!contents.contains(&key));
        assert!(!contents.contains(key.strip_prefix(KEY_PREFIX).unwrap()));
        assert!(contents.contains(&entry.sha256));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(file.path()).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(file.list().unwrap(), vec![entry]);
    }

    /// Adding a second key with a name (or id) already in use is an error, and blank
    /// names are refused.
    #[test]
    fn duplicate_and_blank_names_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyFile::new(dir.path());
        let (entry, _) = file.add("laptop", Scope::Read).unwrap();

        for name in ["laptop", " laptop ", entry.id.as_str()] {
            let error = file.add(name, Scope::Admin).unwrap_err();
            assert!(matches!(error, KeyError::DuplicateName { .. }), "{error}");
        }
        assert!(matches!(
            file.add("  ", Scope::Read),
            Err(KeyError::InvalidName { .. })
        ));
        assert_eq!(file.list().unwrap().len(), 1);
    }

    /// Threads adding keys at once through separate `KeyFile`s all land: the lock
    /// serialises them, and each re-reads what the one before it wrote.
    #[test]
    fn concurrent_adds_keep_every_key() {
        let dir = tempfile::tempdir().unwrap();
        std::thread::scope(|scope| {
            for i in 0..16 {
                let dir = dir.path();
                scope.spawn(move || {
                    KeyFile::new(dir)
                        .add(&format!("key-{i}"), Scope::Read)
                        .unwrap()
                });
            }
        });
        let mut names: Vec<String> = KeyFile::new(dir.path())
            .list()
            .unwrap()
            .into_iter()
            .map(|entry| entry.name)
            .collect();
        names.sort();
        let mut expected: Vec<String> = (0..16).map(|i| format!("key-{i}")).collect();
        expected.sort();
        assert_eq!(names, expected);
    }
}

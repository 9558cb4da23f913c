//! API keys: the all-scopes master key, the managed keys in `<data_dir>/keys.json`,
//! and the `mnemo-server keys` commands that edit them.
//!
//! No key is ever stored in the clear except the master key in `<data_dir>/api_key`,
//! which the operator needs to read back. Managed keys are kept as their SHA-256, so a
//! copy of `keys.json` (in a backup, say) grants nothing. A plain hash is enough here,
//! unlike for passwords: a key holds 256 random bits, so there is nothing to guess.
//!
//! The keys commands run in a separate process from the server. Rather than signal the
//! server, [`KeyRing`] notices that `keys.json` changed on disk (a stat per request)
//! and re-reads it, so an added or revoked key takes effect on the next request.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};
use std::time::SystemTime;

use rand::TryRngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;
use tracing::{info, warn};

use crate::memory::now_epoch;

/// Every generated key starts with this, so a leaked key is recognisable (secret
/// scanners, logs) and cannot be mistaken for another service's token.
pub const KEY_PREFIX: &str = "mnemo_";

/// The file in the data directory that holds the master key.
pub const DEFAULT_KEY_FILE: &str = "api_key";

/// The file in the data directory that holds the managed keys.
pub const KEYS_FILE: &str = "keys.json";

/// A SHA-256 digest, the form in which keys are stored and compared.
type Digest = [u8; 32];

/// What a key may do. Ordered: Admin allows everything Write allows, Write everything
/// Read allows.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Search, list and read memories.
    Read,
    /// Also store, update and delete memories.
    Write,
    /// Also backups and key management.
    Admin,
}

impl Scope {
    /// Whether a key of this scope may do what needs `required`.
    pub fn allows(self, required: Scope) -> bool {
        self >= required
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    fn digest(&self) -> Option<Digest> {
        let mut digest = [0; 32];
        hex::decode_to_slice(&self.sha256, &mut digest).ok()?;
        Some(digest)
    }
}

/// The layout of `keys.json`. An object rather than a bare list, so that fields can be
/// added later without breaking older files.
#[derive(Serialize, Deserialize)]
struct Stored {
    keys: Vec<KeyEntry>,
}

/// What can go wrong with keys. Every variant that concerns a file names it.
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
    #[error(
        "no key has the id or name {id_or_name:?} in {path}; `mnemo-server keys list` shows them"
    )]
    UnknownKey { id_or_name: String, path: PathBuf },
    #[error(
        "a key with the id or name {name:?} already exists in {path}; choose another name, or revoke that key first"
    )]
    DuplicateName { name: String, path: PathBuf },
    #[error("invalid key name {name:?}: a name must not be blank or hold control characters")]
    InvalidName { name: String },
    #[error("cannot write output: {error}")]
    Output { error: io::Error },
}

/// A new random key: [`KEY_PREFIX`] followed by 64 hex characters of 32 bytes from the
/// operating system's random number generator.
pub fn generate_key() -> String {
    format!("{KEY_PREFIX}{}", hex::encode(random_bytes::<32>()))
}

/// The all-scopes key when `MCP_API_KEY` is not set: read from `<data_dir>/api_key`, or
/// generated and written there on first start. Returns the key and whether it was
/// created now.
///
/// The file is written in full under a temporary name with mode 0600, then linked into
/// place, which fails if the file already exists. Two servers starting at once on an
/// empty data directory therefore agree on one key, and no reader ever sees a partly
/// written file. Surrounding whitespace in the file is ignored, so a key written there
/// by hand with a trailing newline still works.
///
/// The key is never logged; logging the path is the caller's job.
pub fn load_or_create_default_key(data_dir: &Path) -> Result<(String, bool), KeyError> {
    let path = data_dir.join(DEFAULT_KEY_FILE);
    if let Some(key) = read_default_key(&path)? {
        return Ok((key, false));
    }
    create_dir(data_dir)?;
    let key = generate_key();
    let temp = write_temp(&path, format!("{key}\n").as_bytes())?;
    let linked = fs::hard_link(&temp, &path);
    let _ = fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok((key, true)),
        // Another process created it first: use its key.
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            match read_default_key(&path)? {
                Some(key) => Ok((key, false)),
                None => Err(KeyError::EmptyDefaultKey { path }),
            }
        }
        Err(error) => Err(io_error("create", &path, error)),
    }
}

/// The key in `path`, or `None` if there is no such file.
fn read_default_key(path: &Path) -> Result<Option<String>, KeyError> {
    let contents = match fs::read_to_string(path) {
        Ok(contents) => contents,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error("read", path, error)),
    };
    let key = contents.trim();
    if key.is_empty() {
        return Err(KeyError::EmptyDefaultKey { path: path.into() });
    }
    warn_if_shared(path);
    Ok(Some(key.to_owned()))
}

/// Warns when a key file can be read by other users, which the server would not have
/// done but an operator copying files around might.
fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = fs::metadata(path)
            && metadata.permissions().mode() & 0o077 != 0
        {
            warn!(
                path = %path.display(),
                "key file is accessible to other users; run `chmod 600` on it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// The managed keys file, `<data_dir>/keys.json`.
///
/// Every change rewrites the whole file under a temporary name with mode 0600 and
/// renames it into place, so a server reading it concurrently sees either the old set
/// or the new one. Two `keys` commands run at the same moment may still lose one
/// change (last writer wins); they are run by hand, one at a time.
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
        let name = name.trim();
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(KeyError::InvalidName { name: name.into() });
        }
        let mut keys = self.list()?;
        let taken = |candidate: &str| {
            keys.iter()
                .any(|entry| entry.id == candidate || entry.name == candidate)
        };
        if taken(name) {
            return Err(KeyError::DuplicateName {
                name: name.into(),
                path: self.path.clone(),
            });
        }
        let id = loop {
            let id = format!("key_{}", hex::encode(random_bytes::<4>()));
            if !taken(&id) && id != name {
                break id;
            }
        };
        let key = generate_key();
        let entry = KeyEntry {
            id,
            name: name.into(),
            sha256: hex::encode(sha256(&key)),
            scope,
            // Whole milliseconds survive the trip through JSON exactly, so the entry
            // returned here equals the one read back later.
            created_at: (now_epoch() * 1000.0).round() / 1000.0,
        };
        keys.push(entry.clone());
        self.write(keys)?;
        Ok((entry, key))
    }

    /// Removes the key with this id or name and returns its entry.
    pub fn revoke(&self, id_or_name: &str) -> Result<KeyEntry, KeyError> {
        let mut keys = self.list()?;
        let Some(index) = keys
            .iter()
            .position(|entry| entry.id == id_or_name || entry.name == id_or_name)
        else {
            return Err(KeyError::UnknownKey {
                id_or_name: id_or_name.into(),
                path: self.path.clone(),
            });
        };
        let entry = keys.remove(index);
        self.write(keys)?;
        Ok(entry)
    }

    fn write(&self, keys: Vec<KeyEntry>) -> Result<(), KeyError> {
        if let Some(dir) = self.path.parent() {
            create_dir(dir)?;
        }
        let mut json = serde_json::to_vec_pretty(&Stored { keys })
            .expect("key entries always serialise to JSON");
        json.push(b'\n');
        let temp = write_temp(&self.path, &json)?;
        fs::rename(&temp, &self.path).map_err(|error| {
            let _ = fs::remove_file(&temp);
            io_error("replace", &self.path, error)
        })
    }
}

/// Everything the server checks a presented key against. Cheap enough to call on every
/// request, and shared between request handlers behind an `Arc`.
pub struct KeyRing {
    /// SHA-256 of the master key. Comparing digests rather than the keys means both
    /// sides always have 32 bytes, so the comparison's time does not reveal the key's
    /// length either.
    master: Option<Digest>,

    /// Where the managed keys live.
    file: KeyFile,

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
        let ring = Self {
            master: master.filter(|key| !key.is_empty()).map(|key| sha256(&key)),
            file,
            managed: RwLock::new(Managed {
                seen: None,
                keys: Vec::new(),
            }),
        };
        ring.refresh();
        ring
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

    /// Re-reads `keys.json` if its version differs from the one last seen.
    fn refresh(&self) {
        let version = FileVersion::of(self.file.path());
        let seen = self
            .managed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .seen;
        if seen == Some(version) {
            return;
        }
        let path = self.file.path().display();
        let keys = match version {
            FileVersion::Missing => Some(Vec::new()),
            FileVersion::Unreadable => {
                warn!(path = %path, "cannot read the keys file; keeping the keys loaded before");
                None
            }
            FileVersion::Present { .. } => match self.file.list() {
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
            .field("file", &self.file.path())
            .finish_non_exhaustive()
    }
}

/// `mnemo-server keys ...`: manage the keys in `<data_dir>/keys.json`. A running
/// server picks changes up on its next request.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it once.
    Add {
        /// A unique name for the key, such as the machine or person it is for.
        #[arg(long)]
        name: String,
        /// What the key may do.
        #[arg(long, value_enum, default_value = "read")]
        scope: Scope,
    },
    /// List keys (id, name, scope, created), never the keys themselves.
    List,
    /// Revoke a key by id or name.
    Revoke {
        /// The key's id or name, as `keys list` shows them.
        id_or_name: String,
    },
}

/// Runs a subcommand against the keys file in `data_dir`, writing human-readable
/// output to `out`.
pub fn run_keys_command(
    data_dir: &Path,
    command: KeysCommand,
    out: &mut impl Write,
) -> Result<(), KeyError> {
    let file = KeyFile::new(data_dir);
    let output = |error| KeyError::Output { error };
    match command {
        KeysCommand::Add { name, scope } => {
            let (entry, key) = file.add(&name, scope)?;
            writeln!(
                out,
                "Created key {} {:?} with scope {}. Copy it now; it cannot be shown again:\n\n{key}",
                entry.id, entry.name, entry.scope
            )
            .map_err(output)
        }
        KeysCommand::List => {
            let entries = file.list()?;
            if entries.is_empty() {
                return writeln!(out, "No managed keys in {}.", file.path().display())
                    .map_err(output);
            }
            let id_width = entries.iter().map(|e| e.id.len()).max().unwrap_or(0).max(2);
            let name_width = entries
                .iter()
                .map(|e| e.name.len())
                .max()
                .unwrap_or(0)
                .max(4);
            writeln!(
                out,
                "{:id_width$}  {:name_width$}  SCOPE  CREATED",
                "ID", "NAME"
            )
            .map_err(output)?;
            for entry in &entries {
                writeln!(
                    out,
                    "{:id_width$}  {:name_width$}  {:5}  {}",
                    entry.id,
                    entry.name,
                    entry.scope.as_str(),
                    format_time(entry.created_at)
                )
                .map_err(output)?;
            }
            Ok(())
        }
        KeysCommand::Revoke { id_or_name } => {
            let entry = file.revoke(&id_or_name)?;
            writeln!(
                out,
                "Revoked key {} {:?} ({}). Running servers reject it from their next request on.",
                entry.id, entry.name, entry.scope
            )
            .map_err(output)
        }
    }
}

/// Epoch seconds as an RFC 3339 time in UTC, to the second.
fn format_time(epoch: f64) -> String {
    match jiff::Timestamp::from_second(epoch as i64) {
        Ok(time) => time.to_string(),
        Err(_) => epoch.to_string(),
    }
}

fn sha256(key: &str) -> Digest {
    Sha256::digest(key.as_bytes()).into()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random number generator failed");
    bytes
}

fn create_dir(dir: &Path) -> Result<(), KeyError> {
    fs::create_dir_all(dir).map_err(|error| io_error("create the directory", dir, error))
}

/// Writes `contents` to a new file next to `path`, readable by its owner only, and
/// returns the new file's path. The caller moves it into place.
fn write_temp(path: &Path, contents: &[u8]) -> Result<PathBuf, KeyError> {
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = path.with_file_name(format!(
        ".{file_name}.{}.{}.tmp",
        std::process::id(),
        hex::encode(random_bytes::<4>())
    ));
    let written = create_private(&temp).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    match written {
        Ok(()) => Ok(temp),
        Err(error) => {
            let _ = fs::remove_file(&temp);
            Err(io_error("write", &temp, error))
        }
    }
}

/// Creates a file that must not exist yet, with mode 0600 from the start, so the key
/// in it is never readable by others, not even briefly.
fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn io_error(action: &'static str, path: &Path, error: io::Error) -> KeyError {
    KeyError::Io {
        action,
        path: path.into(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(dir: &Path, master: Option<&str>) -> KeyRing {
        KeyRing::new(master.map(String::from), KeyFile::new(dir))
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// Admin allows everything Write allows, Write everything Read allows, and not the
    /// other way round; scopes read and write as lowercase words.
    #[test]
    fn scopes_are_ordered() {
        assert!(Scope::Admin.allows(Scope::Admin));
        assert!(Scope::Admin.allows(Scope::Write));
        assert!(Scope::Admin.allows(Scope::Read));
        assert!(Scope::Write.allows(Scope::Read));
        assert!(!Scope::Write.allows(Scope::Admin));
        assert!(!Scope::Read.allows(Scope::Write));
        assert_eq!(Scope::Write.as_str(), "write");
        assert_eq!(serde_json::to_string(&Scope::Admin).unwrap(), "\"admin\"");
        assert_eq!(
            serde_json::from_str::<Scope>("\"read\"").unwrap(),
            Scope::Read
        );
    }

    /// Generated keys carry the prefix, 256 bits in hex, and differ each time.
    #[test]
    fn generated_keys_are_prefixed_and_random() {
        let key = generate_key();
        let hex_part = key.strip_prefix(KEY_PREFIX).unwrap();
        assert_eq!(hex_part.len(), 64);
        assert!(hex_part.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(key, generate_key());
    }

    /// The first call creates the data directory and a 0600 `api_key`; the next call
    /// returns the same key without creating one.
    #[test]
    fn default_key_is_created_private_and_reused() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("nested/data");

        let (key, created) = load_or_create_default_key(&dir).unwrap();
        assert!(created);
        assert!(key.starts_with(KEY_PREFIX));
        #[cfg(unix)]
        assert_eq!(mode(&dir.join(DEFAULT_KEY_FILE)), 0o600);

        let (again, created) = load_or_create_default_key(&dir).unwrap();
        assert!(!created);
        assert_eq!(again, key);
        let leftovers: Vec<_> = fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    /// An empty `api_key` is an error naming the file, never an empty master key.
    #[test]
    fn empty_default_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(DEFAULT_KEY_FILE), "\n").unwrap();
        let error = load_or_create_default_key(dir.path()).unwrap_err();
        assert!(matches!(error, KeyError::EmptyDefaultKey { .. }));
        assert!(error.to_string().contains(DEFAULT_KEY_FILE));
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
        assert_eq!(mode(file.path()), 0o600);
        assert_eq!(file.list().unwrap(), vec![entry]);
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

    /// `keys add` prints the new key; `keys list` shows ids, names and scopes but never
    /// a key; `keys revoke` removes it from the list.
    #[test]
    fn keys_commands_print_the_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let run = |command| {
            let mut out = Vec::new();
            run_keys_command(dir.path(), command, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };

        let added = run(KeysCommand::Add {
            name: "laptop".into(),
            scope: Scope::Write,
        });
        let key = added.lines().last().unwrap();
        assert!(key.starts_with(KEY_PREFIX), "{added}");
        let entry = KeyFile::new(dir.path()).list().unwrap().remove(0);

        let listed = run(KeysCommand::List);
        assert!(listed.contains(&entry.id), "{listed}");
        assert!(
            listed.contains("laptop") && listed.contains("write"),
            "{listed}"
        );
        assert!(!listed.contains(KEY_PREFIX), "{listed}");
        assert!(!listed.contains(&entry.sha256), "{listed}");

        let revoked = run(KeysCommand::Revoke {
            id_or_name: "laptop".into(),
        });
        assert!(revoked.contains(&entry.id), "{revoked}");
        assert!(run(KeysCommand::List).contains("No managed keys"));
    }
}

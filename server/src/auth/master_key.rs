//! The master key when `MCP_API_KEY` is not set: `<data_dir>/api_key`, generated on
//! first start. It is the one key stored in the clear, because the operator has to read
//! it back to use it.

use std::fs;
use std::io;
use std::path::Path;

use mnemo_certs::private_file::{self, Created};
use tracing::warn;

use super::key_file::{KeyError, generate_key, io_error};

/// The file in the data directory that holds the master key.
pub const DEFAULT_KEY_FILE: &str = "api_key";

/// The all-scopes key when `MCP_API_KEY` is not set: read from `<data_dir>/api_key`, or
/// generated and written there on first start. Returns the key and whether it was
/// created now.
///
/// The file is written in full under a temporary name with mode 0600, then given its
/// name by an operation that fails if the file already exists. Two servers starting at
/// once on an empty data directory therefore agree on one key, and no reader ever sees
/// a partly written file. Surrounding whitespace in the file is ignored, so a key
/// written there by hand with a trailing newline still works.
///
/// The key is never logged; logging the path is the caller's job.
pub fn load_or_create_default_key(data_dir: &Path) -> Result<(String, bool), KeyError> {
    let path = data_dir.join(DEFAULT_KEY_FILE);
    if let Some(key) = read_default_key(&path)? {
        return Ok((key, false));
    }
    let key = generate_key();
    match private_file::create_new(&path, format!("{key}\n").as_bytes())? {
        Created::Now => Ok((key, true)),
        // Another process created it first: use its key.
        Created::AlreadyExisted => match read_default_key(&path)? {
            Some(key) => Ok((key, false)),
            None => Err(KeyError::EmptyDefaultKey { path }),
        },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::KEY_PREFIX;

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
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir.join(DEFAULT_KEY_FILE)), 0o600);
        }

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
}

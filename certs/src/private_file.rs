//! Writing a small file that holds a secret (a key, a pin, an id) so that no reader ever
//! sees it half written and no other user can read it, not even for a moment.
//!
//! Every write goes to a temporary file in the same folder, created with its final mode,
//! synced, then renamed over the target: a rename within one file system is atomic, so a
//! concurrent reader (the server re-reading `keys.json`, a second bridge reading its pins)
//! gets the old contents or the new, never a mix. [`create_new`] is the variant for a file
//! that must never be replaced once it exists, such as the generated API key: two processes
//! racing to create it agree on whichever landed first.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Readable and writable by the owner only.
pub const PRIVATE: u32 = 0o600;

/// A private file could not be written. `path` is the file or folder that failed, which
/// may be the temporary file next to the target.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {cause}", path.display())]
pub struct PrivateFileError {
    /// What was being done, as a verb phrase: "write", "replace", "create the folder".
    pub action: &'static str,
    pub path: PathBuf,
    pub cause: io::Error,
}

/// Whether [`create_new`] wrote the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The file did not exist and now holds the contents given.
    Now,
    /// The file existed already and was left as it was.
    AlreadyExisted,
}

/// Replaces `path` with `contents` atomically, with mode 0600. The parent folder is created
/// if missing.
pub fn write(path: &Path, contents: &[u8]) -> Result<(), PrivateFileError> {
    write_with_mode(path, contents, PRIVATE)
}

/// [`write`] with another mode, for a file that is not secret but must still never be seen
/// half written (a certificate next to its key). Ignored where there are no Unix modes.
pub fn write_with_mode(path: &Path, contents: &[u8], mode: u32) -> Result<(), PrivateFileError> {
    let temp = write_temp(path, contents, mode)?;
    temp.persist(path).map_err(|error| PrivateFileError {
        action: "replace",
        path: path.to_owned(),
        cause: error.error,
    })?;
    sync_parent(path);
    Ok(())
}

/// Creates `path` with `contents` and mode 0600 unless it exists already, in which case it
/// is left untouched. The contents appear all at once: the file is written in full under a
/// temporary name, then given its name by an operation that fails if the name is taken.
pub fn create_new(path: &Path, contents: &[u8]) -> Result<Created, PrivateFileError> {
    let temp = write_temp(path, contents, PRIVATE)?;
    match temp.persist_noclobber(path) {
        Ok(_) => {
            sync_parent(path);
            Ok(Created::Now)
        }
        // Dropping the returned temporary file removes it.
        Err(error) if error.error.kind() == io::ErrorKind::AlreadyExists => {
            Ok(Created::AlreadyExisted)
        }
        Err(error) => Err(PrivateFileError {
            action: "create",
            path: path.to_owned(),
            cause: error.error,
        }),
    }
}

/// A synced temporary file next to `path` holding `contents`, with `mode` from the moment
/// it exists. It deletes itself if dropped before being persisted.
fn write_temp(
    path: &Path,
    contents: &[u8],
    mode: u32,
) -> Result<tempfile::NamedTempFile, PrivateFileError> {
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    fs::create_dir_all(folder).map_err(|cause| PrivateFileError {
        action: "create the folder",
        path: folder.to_owned(),
        cause,
    })?;
    // A leading dot keeps the temporary file out of plain `ls`, and the target's name in
    // it says what a leftover from a crash belonged to.
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(path.file_name().unwrap_or_default());
    prefix.push(".");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(mode));
    #[cfg(not(unix))]
    let _ = mode;
    let mut temp = builder
        .tempfile_in(folder)
        .map_err(|cause| PrivateFileError {
            action: "create a temporary file in",
            path: folder.to_owned(),
            cause,
        })?;
    temp.write_all(contents)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(|cause| PrivateFileError {
            action: "write",
            path: temp.path().to_owned(),
            cause,
        })?;
    Ok(temp)
}

/// Makes the rename durable. Failing to is not worth failing the write over: the file is
/// complete either way, and at worst a crash right now brings back the previous version.
fn sync_parent(path: &Path) {
    #[cfg(unix)]
    if let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty())
        && let Err(error) = fs::File::open(folder).and_then(|folder| folder.sync_all())
    {
        tracing::debug!(%error, folder = %folder.display(), "cannot sync the folder");
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn entries(folder: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(folder)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A written file has mode 0600, even when it replaces one that others could read,
    /// and no temporary file is left beside it.
    #[test]
    fn written_file_is_private_and_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        fs::write(&path, "old").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        }

        write(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
        assert_eq!(entries(dir.path()), ["secret"]);
    }

    /// `write_with_mode` gives the file the mode asked for.
    #[cfg(unix)]
    #[test]
    fn other_modes_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cert.pem");
        write_with_mode(&path, b"public", 0o644).unwrap();
        assert_eq!(mode(&path), 0o644);
    }

    /// Missing parent folders are created.
    #[test]
    fn parent_folders_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/c/secret");
        write(&path, b"x").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"x");
        let created = dir.path().join("a/b/other");
        assert_eq!(create_new(&created, b"y").unwrap(), Created::Now);
        assert_eq!(fs::read(&created).unwrap(), b"y");
    }

    /// A reader racing a stream of rewrites only ever sees one whole version: never an
    /// empty, short or mixed file.
    #[test]
    fn readers_never_see_a_partial_file() {
        const SIZE: usize = 256 * 1024;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        write(&path, &[b'a'; SIZE]).unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for round in 0..100 {
                    let byte = if round % 2 == 0 { b'b' } else { b'a' };
                    write(&path, &[byte; SIZE]).unwrap();
                }
                done.store(true, std::sync::atomic::Ordering::Release);
            });
            let mut reads = 0;
            while !done.load(std::sync::atomic::Ordering::Acquire) || reads == 0 {
                let seen = fs::read(&path).unwrap();
                assert_eq!(seen.len(), SIZE, "a partial file was visible");
                assert!(
                    seen.iter().all(|&byte| byte == seen[0]),
                    "two versions were mixed"
                );
                reads += 1;
            }
        });
        assert_eq!(entries(dir.path()), ["big"]);
    }

    /// `create_new` writes a missing file with mode 0600, and refuses to replace an
    /// existing one, leaving its contents and no temporary file behind.
    #[test]
    fn create_new_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api_key");

        assert_eq!(create_new(&path, b"first").unwrap(), Created::Now);
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
        assert_eq!(
            create_new(&path, b"second").unwrap(),
            Created::AlreadyExisted
        );
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(entries(dir.path()), ["api_key"]);
    }

    /// Of many threads creating the same file at once, exactly one wins, and the file
    /// holds the winner's contents.
    #[test]
    fn racing_creators_agree_on_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api_key");
        let outcomes: Vec<(usize, Created)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let path = &path;
                    scope.spawn(move || (i, create_new(path, i.to_string().as_bytes()).unwrap()))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<usize> = outcomes
            .iter()
            .filter(|(_, created)| *created == Created::Now)
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(winners.len(), 1, "{outcomes:?}");
        assert_eq!(fs::read_to_string(&path).unwrap(), winners[0].to_string());
        assert_eq!(entries(dir.path()), ["api_key"]);
    }

    /// An error names the file and what was being done.
    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, "").unwrap();
        let error = write(&blocker.join("secret"), b"x").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("create the folder"), "{message}");
        assert!(
            message.contains(&blocker.display().to_string()),
            "{message}"
        );
    }
}

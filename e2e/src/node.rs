//! What the end-to-end tests run with node: the modules `make test-node` (which
//! `make test` runs) installs from `e2e/node/package-lock.json` into the cache
//! (playwright-core, ajv), and Debian's chromium, so a fresh machine needs nothing
//! installed by hand.

use std::path::PathBuf;
use std::process::Command;

/// `<MNEMO_CACHE_DIR or ~/.cache/mnemo>/tools/node/node_modules`, which must hold
/// `module`; set it as `NODE_PATH` so a script's `require` finds it.
pub fn node_modules(module: &str) -> PathBuf {
    let modules = crate::tools_dir().join("node/node_modules");
    assert!(
        modules.join(module).join("package.json").exists(),
        "{} has no {module}: run `make test-node` (which `make test` runs) to install the tests' node modules",
        modules.display()
    );
    modules
}

/// Debian's chromium: `MNEMO_TEST_CHROMIUM` if set, else `/usr/bin/chromium`, which
/// must exist.
pub fn chromium() -> PathBuf {
    let path = std::env::var_os("MNEMO_TEST_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.exists(),
        "{} is missing: run `make test-node` (which `make test` runs; it installs Debian's chromium as root)",
        path.display()
    );
    path
}

/// `node` with `NODE_PATH` set to the installed modules holding `module`, and the
/// browser [`chromium`] names.
pub fn node(module: &str) -> Command {
    let mut command = Command::new("node");
    command
        .env("NODE_PATH", node_modules(module))
        .env("MNEMO_TEST_CHROMIUM", chromium());
    command
}

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

/// A node script that the test talks to in JSON lines: commands on its stdin, one
/// JSON object per line back on its stdout (the browser tests' playwright drivers).
/// Dropped before [`Script::finish`], it is killed.
pub struct Script {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Script {
    /// Starts `e2e/node/<name>` with [`node`] (`module` installed); its stderr is the
    /// test's, so what it logs shows in a failure.
    pub fn start(name: &str, module: &str) -> Self {
        use std::io::BufRead;
        use std::process::Stdio;

        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("node")
            .join(name);
        let mut child = node(module)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node is installed");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Script {
            child,
            stdin,
            lines,
        }
    }

    /// Writes one command line.
    pub fn send(&mut self, message: &serde_json::Value) {
        use std::io::Write;

        let stdin = self.stdin.as_mut().expect("the script is running");
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next line the script prints, as JSON; `None` if it printed nothing within
    /// `within` (the scripts poll with playwright's waits; the test never sleeps).
    pub fn next(&self, within: std::time::Duration) -> Option<serde_json::Value> {
        let line = self.lines.recv_timeout(within).ok()?;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")))
    }

    /// Ends the input, which closes the browser; the script must exit 0.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the node script failed: {status}");
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

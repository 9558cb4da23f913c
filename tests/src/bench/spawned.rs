//! A `mnemo-server` process that the harness starts itself: its own data folder,
//! loopback, port 0, mDNS off. The port is read from the `listening` log line and
//! readiness from the `healthy` one, so nothing polls on a timer.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The all-scopes key the harness gives the servers it starts.
pub const KEY: &str = "mnemo-bench-key-0123456789abcdef";

/// How long a start may take before the harness gives up.
const START_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Spawned {
    child: Child,
    /// Log lines the harness waits for, as the drain thread sees them.
    lines: mpsc::Receiver<String>,
    started: Instant,
    copy_loaded: std::cell::Cell<bool>,
    pub url: String,
    /// From spawning the process to its first `200` on `GET /api/health`.
    pub start_to_healthy: Duration,
}

impl Spawned {
    /// Starts `binary` on `data_dir` and waits until it is healthy. `extra_env` is
    /// passed through (tuning knobs such as `MNEMO_READ_POOL`).
    pub async fn start(
        binary: &Path,
        data_dir: &Path,
        extra_env: &[(String, String)],
        http: &reqwest::Client,
    ) -> anyhow::Result<Self> {
        let started = Instant::now();
        let mut command = Command::new(binary);
        command
            .env("MNEMO_DATA_DIR", data_dir)
            .env("MCP_HTTP_HOST", "127.0.0.1")
            .env("MCP_HTTP_PORT", "0")
            .env("MCP_API_KEY", KEY)
            .env("MNEMO_AUTH_FAILURES_PER_MINUTE", "100000")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("MCP_MEMORY_SQLITE_PATH")
            .envs(extra_env.iter().map(|(k, v)| (k, v)))
            // Last, so no passed-through setting can turn multicast on.
            .env("MCP_MDNS_ENABLED", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("server stdout")?;
        let (lines_tx, lines) = mpsc::channel();
        // Drains the log for the server's whole life: a full pipe would block it.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("listening")
                    || line.contains("healthy")
                    || line.contains("vector copy")
                {
                    let _ = lines_tx.send(line);
                }
            }
        });
        let mut addr = None;
        loop {
            let line = lines
                .recv_timeout(START_TIMEOUT)
                .context("the server exited or hung before it was healthy")?;
            if let Some(rest) = line.split("addr=").nth(1) {
                addr = rest.split_whitespace().next().map(str::to_owned);
            }
            if line.contains("healthy") {
                break;
            }
        }
        let url = format!("http://{}", addr.context("no listening address logged")?);
        let status = http.get(format!("{url}/api/health")).send().await?.status();
        if status != 200 {
            bail!("health answered {status} after the healthy log line");
        }
        Ok(Self {
            child,
            lines,
            started,
            copy_loaded: std::cell::Cell::new(false),
            url,
            start_to_healthy: started.elapsed(),
        })
    }

    /// Waits until Mnemo's in-memory vector copy has loaded (it loads in the
    /// background after the server is healthy); returns the time since spawning, or
    /// `None` if an earlier call already saw it.
    pub fn wait_vector_copy(&self) -> anyhow::Result<Option<Duration>> {
        if self.copy_loaded.get() {
            return Ok(None);
        }
        loop {
            let line = self
                .lines
                .recv_timeout(START_TIMEOUT)
                .context("the server never logged its vector copy")?;
            if line.contains("vector copy") {
                self.copy_loaded.set(true);
                return Ok(Some(self.started.elapsed()));
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server with SIGTERM (a clean shutdown, which checkpoints the WAL
    /// into the database file) and waits for it.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mnemo-server` next to this executable (both live in the same target folder).
pub fn default_binary() -> PathBuf {
    crate::process::sibling_binary("mnemo-server")
}

/// Resident, peak resident and anonymous resident memory of a process, in MiB, from
/// `/proc`. The anonymous part leaves out file pages mapped from the database, which
/// the kernel can drop at any time.
pub fn rss_mib(pid: u32) -> Option<(f64, f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?, field("RssAnon:")?))
}

/// Copies the database files of `from` into `to` (which must exist).
pub fn copy_database(from: &Path, to: &Path) -> anyhow::Result<()> {
    let mut copied = false;
    for name in ["memories.db", "memories.db-wal"] {
        let source = from.join(name);
        if source.exists() {
            std::fs::copy(&source, to.join(name))
                .with_context(|| format!("copying {}", source.display()))?;
            copied = true;
        }
    }
    if !copied {
        bail!("no database in {}", from.display());
    }
    Ok(())
}

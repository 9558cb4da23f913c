//! [`ServerProcess`]: this workspace's `mnemo-server` binary as a child process, the
//! way a user starts it, on loopback with mDNS off and its own data folder.
//!
//! Two rules keep these tests honest on a developer's machine:
//! * **A clean environment.** Every inherited `MCP_*` and `MNEMO_*` variable is
//!   removed before the child starts, except where the model lives
//!   ([`Config::MODEL_LOCATION_ENV`]); then the fixture's settings, then the test's
//!   own. An exported `MCP_MEMORY_SQLITE_PATH` or `MCP_API_KEY` cannot leak in.
//! * **A deadline on every wait.** Log lines arrive over a channel fed by one thread
//!   per pipe, and each wait gives up with the log so far instead of hanging the
//!   suite. Readiness is a log line (`listening`, `healthy`), never a timer.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::Config;

/// Where a binary of this workspace is, next to the running executable (a test in
/// `target/<profile>/deps`, or a tool in `target/<profile>`).
pub fn sibling_binary(name: &str) -> PathBuf {
    let Some(mut dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    else {
        return PathBuf::from(name);
    };
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}

/// [`sibling_binary`], which must exist. `cargo test --workspace --all-targets` builds
/// every binary into the folder its tests run from; a test of one package alone
/// (`cargo test -p mnemo-e2e`) may find another package's binary missing.
pub fn workspace_binary(name: &str) -> PathBuf {
    let path = sibling_binary(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (`cargo test --workspace --all-targets` does)",
        path.display()
    );
    path
}

/// Why a server process did not do what the test waited for.
#[derive(Debug, Error)]
pub enum ProcessError {
    #[error("cannot start {}: {source}", binary.display())]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("mnemo-server printed no line with {needle:?} within {within:?}; it printed:\n{log}")]
    Timeout {
        needle: String,
        within: Duration,
        log: String,
    },
    #[error("mnemo-server exited before printing {needle:?}; it printed:\n{log}")]
    Exited { needle: String, log: String },
    #[error("mnemo-server did not exit within {within:?}; it printed:\n{log}")]
    StillRunning { within: Duration, log: String },
    #[error("signalling or waiting for mnemo-server: {0}")]
    Wait(#[from] std::io::Error),
}

/// How long a server may take to print any awaited line (a debug build loading the
/// model on a loaded machine).
const LOG_WITHIN: Duration = Duration::from_secs(120);

/// Which pipe a line came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pipe {
    Stdout,
    Stderr,
}

/// A running `mnemo-server`, killed on drop.
pub struct ServerProcess {
    child: Child,
    /// Lines from both pipes as they arrive. While the process lives, the reader
    /// threads keep draining its pipes, which would block the server once full.
    lines: Receiver<(Pipe, String)>,
    /// Every line read so far, from both pipes, in arrival order.
    log: Vec<String>,
    /// The stderr lines among them: where the server reports why it could not start.
    stderr: Vec<String>,
    binary: PathBuf,
    data: PathBuf,
    env: Vec<(OsString, OsString)>,
    spawned: Instant,
    /// `http://host:port` or `https://…`, from the `listening` line once read.
    url: Option<String>,
    /// The certificate fingerprint from the `TLS certificate` line, once read.
    fingerprint: Option<String>,
    /// The pin from the `TLS certificate` line, once read.
    pin: Option<String>,
    /// From spawning the process to its `healthy` line, once read.
    start_to_healthy: Option<Duration>,
}

impl ServerProcess {
    /// Spawns this workspace's `mnemo-server` with its data in `data` and the test's
    /// `env` over the fixture's settings; returns at once, before it listens.
    pub fn spawn<K: AsRef<OsStr>, V: AsRef<OsStr>>(data: &Path, env: &[(K, V)]) -> Self {
        Self::launch(
            workspace_binary("mnemo-server"),
            data.to_path_buf(),
            owned(env),
            0,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Spawns like [`ServerProcess::spawn`] and returns once it is healthy.
    pub fn start<K: AsRef<OsStr>, V: AsRef<OsStr>>(data: &Path, env: &[(K, V)]) -> Self {
        Self::try_start(&workspace_binary("mnemo-server"), data, env)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts `binary` like [`ServerProcess::start`], reporting failures as errors
    /// (for the benchmark harness, which is not a test).
    pub fn try_start<K: AsRef<OsStr>, V: AsRef<OsStr>>(
        binary: &Path,
        data: &Path,
        env: &[(K, V)],
    ) -> Result<Self, ProcessError> {
        let mut server = Self::launch(binary.to_path_buf(), data.to_path_buf(), owned(env), 0)?;
        server.try_wait_for_log("healthy", LOG_WITHIN)?;
        Ok(server)
    }

    fn launch(
        binary: PathBuf,
        data: PathBuf,
        env: Vec<(OsString, OsString)>,
        port: u16,
    ) -> Result<Self, ProcessError> {
        let spawned = Instant::now();
        let mut command = clean_command(&binary, &data);
        command
            .env("MCP_HTTP_HOST", "127.0.0.1")
            .env("MCP_HTTP_PORT", port.to_string())
            .env("MCP_MDNS_ENABLED", "false")
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child =
            spawn_retrying_busy(&mut command).map_err(|source| ProcessError::Spawn {
                binary: binary.clone(),
                source,
            })?;
        let (tx, lines) = mpsc::channel();
        forward_lines(child.stdout.take(), Pipe::Stdout, tx.clone());
        forward_lines(child.stderr.take(), Pipe::Stderr, tx);
        Ok(Self {
            child,
            lines,
            log: Vec::new(),
            stderr: Vec::new(),
            binary,
            data,
            env,
            spawned,
            url: None,
            fingerprint: None,
            pin: None,
            start_to_healthy: None,
        })
    }

    /// Reads log lines until one contains `needle` and returns it; panics with the
    /// log if none comes within two minutes or the server exits first.
    pub fn wait_for_log(&mut self, needle: &str) -> String {
        self.try_wait_for_log(needle, LOG_WITHIN)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Reads log lines until one contains `needle`, for at most `within`.
    pub fn try_wait_for_log(
        &mut self,
        needle: &str,
        within: Duration,
    ) -> Result<String, ProcessError> {
        let deadline = Instant::now() + within;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok((pipe, line)) => {
                    self.read(pipe, &line);
                    if line.contains(needle) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(ProcessError::Timeout {
                        needle: needle.to_owned(),
                        within,
                        log: self.log.join("\n"),
                    });
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(ProcessError::Exited {
                        needle: needle.to_owned(),
                        log: self.log.join("\n"),
                    });
                }
            }
        }
    }

    /// Keeps `line` and notes what it tells about the server.
    fn read(&mut self, pipe: Pipe, line: &str) {
        if line.contains("listening") {
            if let Some(addr) = field(line, "addr") {
                let scheme = if field(line, "tls") == Some("true") {
                    "https"
                } else {
                    "http"
                };
                self.url = Some(format!("{scheme}://{addr}"));
            }
        } else if line.contains("healthy") && self.start_to_healthy.is_none() {
            self.start_to_healthy = Some(self.spawned.elapsed());
        }
        if let Some(fingerprint) = field(line, "fingerprint") {
            self.fingerprint = Some(fingerprint.to_owned());
        }
        if let Some(pin) = field(line, "pin") {
            self.pin = Some(pin.to_owned());
        }
        if pipe == Pipe::Stderr {
            self.stderr.push(line.to_owned());
        }
        self.log.push(line.to_owned());
    }

    /// Every line read so far, from stdout and stderr, in arrival order.
    pub fn log(&self) -> &[String] {
        &self.log
    }

    /// `http://host:port`, or `https://…` when serving HTTPS; panics before its
    /// `listening` line has been read.
    pub fn url(&self) -> &str {
        self.url
            .as_deref()
            .expect("the server's `listening` line has not been read yet")
    }

    /// The address it listens on, `host:port`.
    pub fn addr(&self) -> &str {
        let url = self.url();
        url.split_once("://").map_or(url, |(_, addr)| addr)
    }

    /// The served certificate's fingerprint, when serving HTTPS.
    pub fn fingerprint(&self) -> Option<&str> {
        self.fingerprint.as_deref()
    }

    /// The server's pin (the SHA-256 of its public key), when serving HTTPS.
    pub fn pin(&self) -> Option<&str> {
        self.pin.as_deref()
    }

    /// From spawning the process to its `healthy` line; panics before that line has
    /// been read.
    pub fn start_to_healthy(&self) -> Duration {
        self.start_to_healthy
            .expect("the server's `healthy` line has not been read yet")
    }

    /// Time since the process was spawned.
    pub fn since_spawn(&self) -> Duration {
        self.spawned.elapsed()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn port(&self) -> u16 {
        self.addr()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// Waits (up to two minutes) for a server that is expected to stop on its own;
    /// returns its exit status and what it printed on stderr.
    pub fn finish(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + LOG_WITHIN;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok((pipe, line)) => self.read(pipe, &line),
                // Both pipes closed: the process has exited.
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{}",
                    ProcessError::StillRunning {
                        within: LOG_WITHIN,
                        log: self.log.join("\n"),
                    }
                ),
            }
        }
        let status = self.child.wait().expect("mnemo-server's exit status");
        (status, self.stderr.join("\n"))
    }

    /// Stops the server with SIGTERM (a clean shutdown, which checkpoints the WAL
    /// into the database file) and waits for it.
    pub fn terminate(mut self) -> Result<(), ProcessError> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()?;
        if !status.success() {
            return Err(
                std::io::Error::other(format!("kill -TERM {} failed", self.child.id())).into(),
            );
        }
        self.child.wait()?;
        Ok(())
    }

    /// Kills the server and starts it again on the same port and data; returns once
    /// it is healthy.
    pub fn restart(&mut self) {
        self.kill();
        self.relaunch();
    }

    /// Starts a killed server again on its port and data and settings; returns once
    /// it is healthy.
    pub fn relaunch(&mut self) {
        let port = self.port();
        let (binary, data, env) = (
            self.binary.clone(),
            self.data.clone(),
            std::mem::take(&mut self.env),
        );
        *self = Self::launch(binary, data, env, port).unwrap_or_else(|e| panic!("{e}"));
        self.wait_for_log("healthy");
    }

    /// Kills the server and waits for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nothing listens on now, for a program that binds it itself and cannot be
/// handed a bound socket (nginx, PostgreSQL, the Python mcp-memory-service). It is
/// released on return, so use it at once.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `binary` with the clean environment every child of a test gets: the developer's
/// settings unset (the model's location kept), the data folder `data`, no colours and
/// no stdin.
fn clean_command(binary: &Path, data: &Path) -> Command {
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars_os() {
        if inherited_setting(&name) {
            command.env_remove(name);
        }
    }
    command
        .env("MNEMO_DATA_DIR", data)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    command
}

/// `mnemo-server` as a command on `data`, with the same clean environment as a
/// [`ServerProcess`]: for the commands that run and exit (`export`, `import`,
/// `reembed`, `restore`, `keys`).
pub fn server_command(data: &Path) -> Command {
    let mut command = clean_command(&workspace_binary("mnemo-server"), data);
    command.env("RUST_LOG", "warn");
    command
}

/// Whether an inherited variable is a setting the child must not see: any of the
/// server's (`MCP_*`, `MNEMO_*`), except where the model lives.
fn inherited_setting(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    (name.starts_with("MCP_") || name.starts_with("MNEMO_"))
        && !Config::MODEL_LOCATION_ENV.contains(&name)
}

fn owned<K: AsRef<OsStr>, V: AsRef<OsStr>>(env: &[(K, V)]) -> Vec<(OsString, OsString)> {
    env.iter()
        .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
        .collect()
}

/// The value of `name=` in a log line (tracing's key=value format).
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=");
    let start = line.find(&key)? + key.len();
    line[start..].split_whitespace().next()
}

/// Spawns `command`, retrying while its program is "busy". A test that has just
/// written a wrapper script (a lowered file limit, a mount namespace) can race another
/// test thread's fork: the child holds the script's write descriptor until it execs,
/// and exec of a file open for writing fails with ETXTBSY. The window is a fork's
/// length, so retrying for up to a second always gets past it.
fn spawn_retrying_busy(command: &mut Command) -> std::io::Result<Child> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match command.spawn() {
            Err(e)
                if e.kind() == std::io::ErrorKind::ExecutableFileBusy
                    && Instant::now() < deadline =>
            {
                std::thread::yield_now();
            }
            spawned => return spawned,
        }
    }
}

/// Each line of a child's pipe, in a channel that disconnects at the pipe's end:
/// for fixtures of other programs (the bridge over stdio).
pub fn lines_of(stream: Option<impl std::io::Read + Send + 'static>) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    forward(stream, tx, |line| line);
    rx
}

/// Sends each line of `stream`, tagged with its pipe, until either end closes.
fn forward_lines(
    stream: Option<impl std::io::Read + Send + 'static>,
    pipe: Pipe,
    tx: mpsc::Sender<(Pipe, String)>,
) {
    forward(stream, tx, move |line| (pipe, line));
}

/// Sends `tag(line)` for each line of `stream` from a thread of its own, until either
/// end closes.
fn forward<T: Send + 'static>(
    stream: Option<impl std::io::Read + Send + 'static>,
    tx: mpsc::Sender<T>,
    tag: impl Fn(String) -> T + Send + 'static,
) {
    if let Some(stream) = stream {
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(tag(line)).is_err() {
                    break;
                }
            }
        });
    }
}

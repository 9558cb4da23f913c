//! Mnemo's programs as child processes: a server on a loopback port that can be
//! restarted in place, and a bare MCP client for `mnemo-bridge` over its stdio.
//!
//! The stdio client writes JSON-RPC lines itself rather than using an SDK, so the
//! tests see exactly what the bridge answers and when (the official SDK's view is
//! `scripts/mcp_client.py`'s).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

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

/// [`sibling_binary`], which must exist.
pub fn workspace_binary(name: &str) -> PathBuf {
    let path = sibling_binary(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (`cargo test --workspace --all-targets` does)",
        path.display()
    );
    path
}

/// Every line a child prints on stdout and stderr, interleaved as they come.
fn read_lines(child: &mut Child) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    forward_lines(
        child.stdout.take().map(|s| Box::new(s) as Box<_>),
        tx.clone(),
    );
    forward_lines(child.stderr.take().map(|s| Box::new(s) as Box<_>), tx);
    rx
}

/// Waits up to `within` for a line containing `needle`.
fn wait_for(
    lines: &Receiver<String>,
    needle: &str,
    within: Duration,
    what: &str,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains(needle) => return Ok(line),
            Ok(line) => seen.push(line),
            Err(RecvTimeoutError::Timeout) => bail!(
                "{what}: no line with {needle:?} within {within:?}:\n{}",
                seen.join("\n")
            ),
            Err(RecvTimeoutError::Disconnected) => bail!(
                "{what} exited before printing {needle:?}:\n{}",
                seen.join("\n")
            ),
        }
    }
}

/// The value of `name=` in a log line (tracing's key=value format).
fn field<'a>(line: &'a str, name: &str) -> anyhow::Result<&'a str> {
    let start = line
        .find(&format!("{name}="))
        .with_context(|| format!("no {name}= in {line:?}"))?
        + name.len()
        + 1;
    Ok(line[start..].split_whitespace().next().unwrap_or_default())
}

/// A `mnemo-server` process on loopback with mDNS off (unless `env` turns it on),
/// killed on drop. The port is read from the `listening` log line and readiness from
/// the `healthy` one, so nothing polls on a timer.
pub struct ServerProcess {
    child: Child,
    /// The server's log lines. While it lives the reader threads keep draining the
    /// server's pipes, which would block the server once full.
    log: Receiver<String>,
    binary: PathBuf,
    data: PathBuf,
    env: Vec<(String, String)>,
    spawned: Instant,
    /// `http://127.0.0.1:PORT` or `https://…`.
    pub url: String,
    /// The certificate fingerprint, when serving HTTPS.
    pub fingerprint: Option<String>,
    /// From spawning the process to its `healthy` log line.
    pub start_to_healthy: Duration,
}

/// How long a server may take from spawn to healthy (debug build, model load, a
/// loaded machine).
const HEALTHY_WITHIN: Duration = Duration::from_secs(120);

impl ServerProcess {
    /// Starts this workspace's server with its data in `data` and extra `env`, on a
    /// free port; returns once it is healthy. Panics (it is for tests) if it is not.
    pub fn start(data: &Path, env: &[(&str, &str)]) -> Self {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::try_start(&workspace_binary("mnemo-server"), data, env)
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Starts `binary` like [`ServerProcess::start`], reporting failures as errors.
    pub fn try_start(
        binary: &Path,
        data: &Path,
        env: Vec<(String, String)>,
    ) -> anyhow::Result<Self> {
        Self::launch(binary.to_path_buf(), data.to_path_buf(), env, 0)
    }

    fn launch(
        binary: PathBuf,
        data: PathBuf,
        env: Vec<(String, String)>,
        port: u16,
    ) -> anyhow::Result<Self> {
        let spawned = Instant::now();
        let mut command = Command::new(&binary);
        command
            .env("MNEMO_DATA_DIR", &data)
            .env_remove("MCP_MEMORY_SQLITE_PATH")
            .env("MCP_HTTP_HOST", "127.0.0.1")
            .env("MCP_HTTP_PORT", port.to_string())
            .env("MCP_MDNS_ENABLED", "false")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let lines = read_lines(&mut child);
        let what = "mnemo-server";
        let mut fingerprint = None;
        let listening = loop {
            let line = wait_for(&lines, "", HEALTHY_WITHIN, what)?;
            if line.contains("fingerprint=") {
                fingerprint = Some(field(&line, "fingerprint")?.to_owned());
            }
            if line.contains("listening") {
                break line;
            }
        };
        let scheme = if field(&listening, "tls")? == "true" {
            "https"
        } else {
            "http"
        };
        let url = format!("{scheme}://{}", field(&listening, "addr")?);
        wait_for(&lines, "healthy", HEALTHY_WITHIN, what)?;
        Ok(Self {
            child,
            log: lines,
            binary,
            data,
            env,
            spawned,
            url,
            fingerprint,
            start_to_healthy: spawned.elapsed(),
        })
    }

    /// Waits for a log line containing `needle`; returns the time since spawning.
    pub fn wait_for_log(&self, needle: &str, within: Duration) -> anyhow::Result<Duration> {
        wait_for(&self.log, needle, within, "mnemo-server")?;
        Ok(self.spawned.elapsed())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server with SIGTERM (a clean shutdown, which checkpoints the WAL
    /// into the database file) and waits for it.
    pub fn terminate(mut self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.child.id());
        }
        self.child.wait()?;
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// Kills the server and starts it again on the same port and data; returns
    /// once it is healthy.
    pub fn restart(&mut self) {
        self.kill();
        self.relaunch();
    }

    /// Starts a killed server again on its port and data.
    pub fn relaunch(&mut self) {
        let port = self.port();
        let (binary, data, env) = (
            self.binary.clone(),
            self.data.clone(),
            std::mem::take(&mut self.env),
        );
        *self = Self::launch(binary, data, env, port).unwrap_or_else(|e| panic!("{e:#}"));
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

/// `mnemo-bridge` driven over stdio with hand-written JSON-RPC lines.
pub struct BridgeProcess {
    /// `None` once [`BridgeProcess::close`] has handed it to a waiting thread.
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    next_id: u64,
    /// When the process was spawned.
    pub spawned: Instant,
}

/// How long any one answer may take before a test gives up on the bridge.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

impl BridgeProcess {
    /// Spawns `command` (the bridge binary, perhaps inside a namespace) with pipes.
    pub fn spawn(mut command: Command) -> Self {
        let spawned = Instant::now();
        let mut child = command
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mnemo-bridge");
        let stdin = child.stdin.take();
        let stdout = lines_of(child.stdout.take().map(|s| Box::new(s) as Box<_>));
        let stderr = lines_of(child.stderr.take().map(|s| Box::new(s) as Box<_>));
        Self {
            child: Some(child),
            stdin,
            stdout,
            stderr,
            next_id: 1,
            spawned,
        }
    }

    fn send(&mut self, message: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{message}").expect("write to the bridge");
        stdin.flush().expect("flush to the bridge");
    }

    /// Sends a request and waits for its answer (the `result` or `error` object
    /// and the time it took).
    pub fn request(&mut self, method: &str, params: Value) -> (Value, Duration) {
        let id = self.next_id;
        self.next_id += 1;
        let sent = Instant::now();
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let line = match self.stdout.recv_timeout(ANSWER_WITHIN) {
                Ok(line) => line,
                Err(e) => panic!(
                    "no answer to {method} ({e}); bridge stderr:\n{}",
                    self.stderr_lines().join("\n")
                ),
            };
            let message: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("the bridge wrote a non-JSON line {line:?}: {e}"));
            if message["id"] == id {
                let elapsed = sent.elapsed();
                let answer = message.get("result").or_else(|| message.get("error"));
                return (answer.cloned().unwrap_or(Value::Null), elapsed);
            }
        }
    }

    /// The legacy handshake (`initialize` with `version`, then `initialized`).
    /// Returns the `initialize` result.
    pub fn initialize(&mut self, version: &str) -> Value {
        let (result, _) = self.request(
            "initialize",
            json!({"protocolVersion": version, "capabilities": {},
                   "clientInfo": {"name": "mnemo-tests", "version": "0"}}),
        );
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        result
    }

    /// `tools/call`; returns the result and the round-trip time.
    pub fn call(&mut self, tool: &str, arguments: Value) -> (Value, Duration) {
        self.request("tools/call", json!({"name": tool, "arguments": arguments}))
    }

    /// Closes stdin and waits (up to a minute) for the exit status.
    pub fn close(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        let mut child = self.child.take().expect("not closed yet");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        rx.recv_timeout(ANSWER_WITHIN)
            .expect("the bridge did not exit on EOF")
            .expect("the bridge's exit status")
    }

    /// Everything the bridge logged so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Lines of one stream, in a channel that disconnects at its end.
fn lines_of(stream: Option<Box<dyn std::io::Read + Send>>) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    forward_lines(stream, tx);
    rx
}

/// Sends each line of `stream` to `tx` from a thread of its own, until either ends.
fn forward_lines(stream: Option<Box<dyn std::io::Read + Send>>, tx: mpsc::Sender<String>) {
    if let Some(stream) = stream {
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
}

//! `mnemo-bridge` as a child process, driven over its stdio by a bare MCP client.
//!
//! The client writes JSON-RPC lines itself rather than using an SDK, so the tests see
//! exactly what the bridge answers and when (the official SDK's view is
//! `scripts/mcp_client.py`'s).

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use mnemo_server::testing::lines_of;
use serde_json::{Value, json};

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
        let stdout = lines_of(child.stdout.take());
        let stderr = lines_of(child.stderr.take());
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
                   "clientInfo": {"name": "mnemo-e2e", "version": "0"}}),
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

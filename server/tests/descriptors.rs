//! Descriptor exhaustion (issue 13): a child server under a low `ulimit -n`, held open
//! by more silent connections than it has descriptors, neither spins nor locks new
//! clients out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mnemo_server::testing::{ServerProcess, workspace_binary};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The open-file limit the child runs under: the shell sets soft and hard alike, so
/// the server cannot raise it.
const OPEN_FILES: u32 = 256;

/// More connections than the child has descriptors, and fewer than the listen backlog
/// plus those it accepts (a connect beyond that waits for a SYN retry).
const HELD: usize = 300;

/// Generous bound for a request to be answered once descriptors are free again.
const ANSWERED_WITHIN: Duration = Duration::from_secs(20);

/// `mnemo-server` started through `sh` under `ulimit -n OPEN_FILES`.
fn limited_binary(dir: &Path) -> PathBuf {
    let script = dir.join("limited-server");
    let binary = workspace_binary("mnemo-server");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nulimit -n {OPEN_FILES} || exit 1\nexec '{}' \"$@\"\n",
            binary.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// CPU seconds (user + system) the process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    // Fields 14 and 15 of stat(5), counted after the command name.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Sends `GET /api/health` on a new connection; returns the status line and body.
async fn health(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    answer
}

async fn hold(addr: &str, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    held
}

/// Past the descriptor limit, accept errors pause the loop and are logged rarely:
/// the server uses little CPU, its log stays short, and a new client is served once
/// the silent connections close.
#[tokio::test]
async fn descriptor_exhaustion_does_not_spin() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::try_start(
        &limited_binary(dir.path()),
        &dir.path().join("data"),
        &[
            // Above the descriptor limit, so that accept itself fails.
            ("MNEMO_MAX_CONNECTIONS", "100000"),
            ("MNEMO_HEADER_READ_TIMEOUT", "600"),
            ("MNEMO_IDLE_TIMEOUT", "600"),
        ],
    )
    .unwrap();
    let addr = server.addr().to_owned();
    let lines_before = server.log().len();
    let held = hold(&addr, HELD).await;

    let cpu_before = cpu_seconds(server.pid());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu = cpu_seconds(server.pid()) - cpu_before;
    // A spinning accept loop burns the whole 3 s; an idle server almost nothing.
    assert!(
        cpu < 1.0,
        "{cpu} CPU seconds in 3 s with {HELD} connections held"
    );
    let _ = server.try_wait_for_log("\u{0}no such line", Duration::from_millis(200));
    let lines = server.log().len() - lines_before;
    assert!(
        lines < 50,
        "{lines} log lines:\n{}",
        server.log().join("\n")
    );

    drop(held);
    let answer = tokio::time::timeout(ANSWERED_WITHIN, health(&addr))
        .await
        .expect("no answer after the connections closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// At MNEMO_MAX_CONNECTIONS, a new client gets a 503 with the JSON error body at once,
/// and is served once the others close.
#[tokio::test]
async fn connections_over_the_cap_are_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::try_start(
        &limited_binary(dir.path()),
        &dir.path().join("data"),
        &[
            ("MNEMO_MAX_CONNECTIONS", "20"),
            ("MNEMO_HEADER_READ_TIMEOUT", "600"),
            ("MNEMO_IDLE_TIMEOUT", "600"),
        ],
    )
    .unwrap();
    let addr = server.addr().to_owned();
    let held = hold(&addr, HELD).await;
    let answer = tokio::time::timeout(ANSWERED_WITHIN, health(&addr))
        .await
        .expect("no answer at the cap");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"error\":\"overloaded\""), "{answer}");

    drop(held);
    let answer = tokio::time::timeout(ANSWERED_WITHIN, async {
        loop {
            let answer = health(&addr).await;
            if !answer.starts_with("HTTP/1.1 503") {
                return answer;
            }
        }
    })
    .await
    .expect("still refused after the connections closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

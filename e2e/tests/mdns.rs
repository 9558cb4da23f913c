//! mDNS across a real network: each test creates two network namespaces joined by a
//! veth pair, runs the real `mnemo-server` in namespace `a`, and browses from the
//! namespaces with the bridge's discovery library (`mnemo-discover`) and with
//! python-zeroconf (`scripts/mdns_browse.py`), an independent reader of the packets;
//! and `mnemo-bridge` finds, trusts and uses (or refuses) servers across them, with a
//! stranger posing as a server (`scripts/fake_mnemo.py`) that records what reaches it.
//!
//! Multicast never reaches the machine's own interfaces: every process that speaks mDNS
//! is started with `ip netns exec` into a namespace these tests created, which holds
//! only its loopback and one end of the veth pair. Creating namespaces needs root and
//! iproute2; without them these tests fail and say so rather than pass having checked
//! nothing. The server binary is the one `cargo test --workspace --all-targets` builds.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use mnemo_e2e::BridgeProcess;
use mnemo_server::testing::workspace_binary;
use serde_json::Value;

/// The server's port inside a fresh namespace, where nothing else listens.
const PORT: u16 = 18443;

/// How long a server may take to load the model and report `healthy`.
const HEALTHY_WITHIN: Duration = Duration::from_secs(90);

/// Two network namespaces joined by a veth pair, `a` at `10.203.<subnet>.1` and `b` at
/// `.2`. Dropping it deletes both namespaces, and with them the veth pair.
struct NetPair {
    a: String,
    b: String,
    addr_a: String,
}

impl NetPair {
    fn create(tag: &str, subnet: u8) -> NetPair {
        let pid = std::process::id();
        let (a, b) = (
            format!("mnemo-{pid}-{tag}-a"),
            format!("mnemo-{pid}-{tag}-b"),
        );
        for ns in [&a, &b] {
            // A namespace left by a killed run with the same pid would make `add` fail.
            let _ = quiet(Command::new("ip").args(["netns", "del", ns])).status();
        }
        if let Err(why) = ip(&["netns", "add", &a]) {
            panic!(
                "cannot create a network namespace ({why}). The mDNS tests need root and \
                 iproute2 (`ip netns`): they run mDNS only inside namespaces they create"
            );
        }
        let net = NetPair {
            a,
            b,
            addr_a: format!("10.203.{subnet}.1"),
        };
        let (a, b) = (net.a.as_str(), net.b.as_str());
        let addr_b = format!("10.203.{subnet}.2");
        let steps: [&[&str]; 8] = [
            &["netns", "add", b],
            // Both ends are created directly inside their namespaces.
            &[
                "-n", a, "link", "add", "mnemo-a", "type", "veth", "peer", "name", "mnemo-b",
                "netns", b,
            ],
            &[
                "-n",
                a,
                "addr",
                "add",
                &format!("{}/24", net.addr_a),
                "dev",
                "mnemo-a",
            ],
            &[
                "-n",
                b,
                "addr",
                "add",
                &format!("{addr_b}/24"),
                "dev",
                "mnemo-b",
            ],
            &["-n", a, "link", "set", "lo", "up"],
            &["-n", b, "link", "set", "lo", "up"],
            &[
                "-n",
                a,
                "link",
                "set",
                "dev",
                "mnemo-a",
                "multicast",
                "on",
                "up",
            ],
            &[
                "-n",
                b,
                "link",
                "set",
                "dev",
                "mnemo-b",
                "multicast",
                "on",
                "up",
            ],
        ];
        for step in steps {
            ip(step).unwrap_or_else(|why| panic!("setting up the namespaces: {why}"));
        }
        // mdns-sd and python-zeroconf list the interfaces once at start and skip those
        // not yet operationally up, which a veth end is for up to a second.
        wait_until_up(a, "mnemo-a");
        wait_until_up(b, "mnemo-b");
        net
    }

    /// `ip netns exec <ns> <program>`.
    fn exec(&self, ns: &str, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns]).arg(program);
        command
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = quiet(Command::new("ip").args(["netns", "del", ns])).status();
        }
    }
}

fn quiet(command: &mut Command) -> &mut Command {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
}

/// Runs `ip args`; the error says what failed and why.
fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(format!("`ip {}`: {}", args.join(" "), stderr.trim()))
    }
}

/// Waits until `dev` in `ns` is operationally up, woken by `ip monitor` link events
/// (and re-checking every 100 ms, in case the change raced the monitor's start).
fn wait_until_up(ns: &str, dev: &str) {
    let mut monitor = Process::spawn(
        "ip monitor",
        Command::new("ip").args(["-n", ns, "monitor", "link"]),
    );
    let events = monitor.lines();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let output = Command::new("ip")
            .args(["-n", ns, "-o", "link", "show", "dev", dev])
            .output()
            .expect("ip runs");
        if String::from_utf8_lossy(&output.stdout).contains("state UP") {
            return;
        }
        assert!(Instant::now() < deadline, "{dev} in {ns} never came up");
        let _ = events.recv_timeout(Duration::from_millis(100));
    }
}

/// A line a process printed, and when it was read.
type Line = (Instant, String);

/// A child process, killed on drop, whose stdout and stderr can be read as lines.
struct Process {
    what: String,
    child: Child,
}

impl Process {
    fn spawn(what: &str, command: &mut Command) -> Process {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Process {
            what: what.to_owned(),
            child,
        }
    }

    /// Every line the process prints, stdout and stderr interleaved, in a channel that
    /// disconnects when the process has closed both.
    fn lines(&mut self) -> Receiver<Line> {
        let (tx, rx) = mpsc::channel();
        let out = self
            .child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        let err = self
            .child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        for stream in [out, err].into_iter().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send((Instant::now(), line)).is_err() {
                        break;
                    }
                }
            });
        }
        rx
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for a line containing `needle`; panics with everything seen on timeout or
/// when the process closes its output first.
fn wait_for_line(lines: &Receiver<Line>, needle: &str, within: Duration, what: &str) -> Line {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok((at, line)) if line.contains(needle) => return (at, line),
            Ok((_, line)) => seen.push(line),
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "{what}: no line with {needle:?} within {within:?}; it printed:\n{}",
                    seen.join("\n")
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!(
                    "{what} exited before printing {needle:?}; it printed:\n{}",
                    seen.join("\n")
                )
            }
        }
    }
}

fn server_binary() -> PathBuf {
    let server = Path::new(env!("CARGO_BIN_EXE_mnemo-discover")).with_file_name("mnemo-server");
    assert!(
        server.exists(),
        "{} is missing: run the suite with `cargo test --workspace --all-targets`, which builds mnemo-server",
        server.display()
    );
    server
}

fn browse_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/mdns_browse.py")
}

/// The host part of instance names: the host name up to its first dot. Namespaces
/// share the host name, so the server inside one sees the same.
fn host_label() -> String {
    let name = gethostname::gethostname().to_string_lossy().into_owned();
    name.split('.').next().unwrap_or_default().trim().to_owned()
}

/// A server running in a namespace, with mDNS on, and its log lines.
struct Server {
    process: Process,
    lines: Receiver<Line>,
    data: tempfile::TempDir,
}

/// `name=value` from a log line.
fn log_field(line: &str, name: &str) -> String {
    line.split_whitespace()
        .find_map(|field| field.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        .to_owned()
}

impl Server {
    fn spawn(net: &NetPair, ns: &str, host: &str, port: u16, service_name: &str) -> Server {
        Self::start(net, ns, host, port, service_name, false)
    }

    /// The same, serving HTTPS with its generated certificate.
    fn spawn_https(net: &NetPair, ns: &str, host: &str, port: u16, service_name: &str) -> Server {
        Self::start(net, ns, host, port, service_name, true)
    }

    fn start(
        net: &NetPair,
        ns: &str,
        host: &str,
        port: u16,
        service_name: &str,
        https: bool,
    ) -> Server {
        let data = tempfile::tempdir().expect("temp dir");
        Self::start_with(net, ns, (host, port), service_name, https, "k", data)
    }

    /// A server with `key` and the data folder `data` (kept across restarts).
    fn start_with(
        net: &NetPair,
        ns: &str,
        (host, port): (&str, u16),
        service_name: &str,
        https: bool,
        key: &str,
        data: tempfile::TempDir,
    ) -> Server {
        let mut command = net.exec(ns, server_binary());
        // Only what the server needs, so no MCP_* setting of the caller's changes the
        // advertisement under test.
        command.env_clear();
        for key in [
            "PATH",
            "HOME",
            "MNEMO_CACHE_DIR",
            "MNEMO_MODEL_DIR",
            "ORT_DYLIB_PATH",
        ] {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        command
            .env("MNEMO_DATA_DIR", data.path())
            .env("MCP_HTTP_HOST", host)
            .env("MCP_HTTP_PORT", port.to_string())
            .env("MCP_API_KEY", key)
            // Address changes are what the tests make; a second is plenty to notice them.
            .env("MNEMO_TLS_RECHECK", "1")
            .env("MCP_MDNS_ENABLED", "true")
            .env("MCP_MDNS_SERVICE_NAME", service_name)
            .env("MCP_HTTPS_ENABLED", if https { "true" } else { "false" })
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        let mut process = Process::spawn(
            &format!("mnemo-server on {host}:{port} in {ns}"),
            &mut command,
        );
        let lines = process.lines();
        Server {
            process,
            lines,
            data,
        }
    }

    /// Stops the server with SIGTERM (so it says goodbye over mDNS); returns its data.
    fn stop(mut self) -> tempfile::TempDir {
        run(
            "kill -TERM",
            Command::new("kill").args(["-TERM", &self.process.pid()]),
        );
        let _ = self.process.child.wait();
        self.data
    }

    /// Waits for the `TLS certificate` line, then for `healthy`; returns the pin.
    fn wait_healthy_pin(&self) -> String {
        let (_, tls) = wait_for_line(
            &self.lines,
            "TLS certificate",
            HEALTHY_WITHIN,
            &self.process.what,
        );
        self.wait_healthy();
        log_field(&tls, "pin")
    }

    fn wait_healthy(&self) {
        wait_for_line(&self.lines, "healthy", HEALTHY_WITHIN, &self.process.what);
    }
}

/// Runs a command to completion; panics with its output unless it succeeded.
fn run(what: &str, command: &mut Command) -> String {
    let Output {
        status,
        stdout,
        stderr,
    } = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    assert!(
        status.success(),
        "{what} failed ({status}):\n{stdout}\n{}",
        String::from_utf8_lossy(&stderr)
    );
    stdout
}

/// `mnemo-discover --timeout-ms <ms>` inside `ns`: the candidates it found.
fn discover(net: &NetPair, ns: &str, ms: u64) -> Vec<Value> {
    let mut command = net.exec(ns, env!("CARGO_BIN_EXE_mnemo-discover"));
    let stdout = run(
        "mnemo-discover",
        command.args(["--timeout-ms", &ms.to_string()]),
    );
    let list: Value = serde_json::from_str(&stdout).expect("mnemo-discover prints JSON");
    list.as_array().expect("a JSON array").clone()
}

fn find<'a>(list: &'a [Value], key: &str, instance: &str) -> &'a Value {
    list.iter()
        .find(|c| c[key] == instance)
        .unwrap_or_else(|| panic!("{instance:?} not among {list:#?}"))
}

/// The TXT records are exactly `mnemo_api::mdns`'s for a server with a key: plain HTTP when
/// `fingerprint` is None, else HTTPS with that pin in `fp`.
fn assert_txt(txt: &Value, who: &str, fingerprint: Option<&str>) {
    let mut txt: BTreeMap<String, String> =
        serde_json::from_value(txt.clone()).unwrap_or_else(|e| panic!("{who}: TXT {txt}: {e}"));
    let id = txt.remove("id").unwrap_or_default();
    assert!(!id.is_empty(), "{who}: no `id` TXT record");
    let mut expected: BTreeMap<String, String> = [
        ("api_version", "1"),
        (
            "https",
            if fingerprint.is_some() {
                "True"
            } else {
                "False"
            },
        ),
        ("auth_required", "True"),
        ("api_path", "/api"),
        ("sse_path", "/api/events"),
        ("docs_path", "/api/docs"),
        ("mcp_path", "/mcp"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if let Some(fp) = fingerprint {
        expected.insert("fp".to_owned(), fp.to_owned());
    }
    assert_eq!(
        txt, expected,
        "{who}: TXT records (besides id; fp only with TLS)"
    );
}

/// An HTTPS server on 0.0.0.0 is found from the peer namespace by mdns-sd and by
/// python-zeroconf with its instance name, port, veth address and every TXT record
/// (`fp` is the pin it logged), the certificate served at the advertised URL has the
/// fingerprint it logged, and the goodbye on SIGTERM reaches the peer.
#[test]
fn a_lan_server_is_discovered_from_the_peer_namespace_and_says_goodbye() {
    let net = NetPair::create("adv", 1);
    let name = format!("Mnemo Test {}", std::process::id());
    let instance = format!("{name} ({})", host_label());

    // The watcher browses before the server exists, which times the first answer, and
    // stays to see the goodbye.
    let mut watcher = Process::spawn(
        "mnemo-discover --wait-gone",
        net.exec(&net.b, env!("CARGO_BIN_EXE_mnemo-discover"))
            .args([
                "--timeout-ms",
                "120000",
                "--wait-gone",
                &instance,
                "--gone-timeout-ms",
                "10000",
            ]),
    );
    let watched = watcher.lines();
    let started = Instant::now();
    let server = Server::spawn_https(&net, &net.a, "0.0.0.0", PORT, &name);
    let (_, tls) = wait_for_line(
        &server.lines,
        "TLS certificate",
        HEALTHY_WITHIN,
        &server.process.what,
    );
    let fingerprint = log_field(&tls, "fingerprint");
    let pin = log_field(&tls, "pin");
    server.wait_healthy();
    let listed = format!("\"instance\":\"{instance}\"");
    let (seen_at, _) = wait_for_line(
        &watched,
        &listed,
        Duration::from_secs(30),
        "mnemo-discover --wait-gone (does the server advertise when MCP_MDNS_ENABLED=true?)",
    );
    let first_answer = seen_at.duration_since(started);
    eprintln!("first mDNS answer in the peer namespace {first_answer:?} after the server started");

    let expected_url = format!("https://{}:{PORT}", net.addr_a);
    let found = discover(&net, &net.b, 2000);
    let candidate = find(&found, "instance", &instance);
    assert_eq!(candidate["port"], PORT, "{candidate}");
    assert_eq!(
        candidate["addresses"],
        serde_json::json!([net.addr_a]),
        "{candidate}"
    );
    assert_eq!(candidate["url"], expected_url.as_str(), "{candidate}");
    assert_txt(&candidate["txt"], "mdns-sd", Some(&pin));

    let mut python = net.exec(&net.b, mnemo_e2e::test_python());
    let stdout = run(
        "scripts/mdns_browse.py (in the venv of `make test-python`)",
        python.arg(browse_script()).args(["--seconds", "2"]),
    );
    let browsed: Value = serde_json::from_str(&stdout).expect("mdns_browse.py prints JSON");
    let seen = find(
        browsed["instances"].as_array().expect("instances"),
        "name",
        &instance,
    );
    assert_eq!(seen["port"], PORT, "{seen}");
    assert_eq!(seen["addresses"], serde_json::json!([net.addr_a]), "{seen}");
    assert_txt(&seen["txt"], "python-zeroconf", Some(&pin));

    // What was advertised is where the server answers, with the advertised certificate,
    // seen from the peer.
    let mut fetch = net.exec(&net.b, "python3");
    let served = run(
        "fetch the served certificate from the peer",
        fetch.args([
            "-c",
            "import hashlib, ssl, sys\n\
             der = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((sys.argv[1], int(sys.argv[2]))))\n\
             print(':'.join(f'{b:02X}' for b in hashlib.sha256(der).digest()))",
            &net.addr_a.to_string(),
            &PORT.to_string(),
        ]),
    );
    assert_eq!(
        served.trim(),
        fingerprint,
        "the served certificate is not the advertised one"
    );

    run(
        "kill -TERM",
        Command::new("kill").args(["-TERM", &server.process.pid()]),
    );
    // The watcher gives up by itself 10 s after finding the instance.
    let status = watcher.child.wait().expect("wait for mnemo-discover");
    let said: Vec<String> = watched.try_iter().map(|(_, line)| line).collect();
    assert!(
        status.success(),
        "the peer saw no goodbye after SIGTERM ({status}):\n{}",
        said.join("\n")
    );
}

/// A server bound to 127.0.0.1 with mDNS on advertises nothing, seen from its own
/// namespace and from the peer, while a server on 0.0.0.0 beside it is seen from both.
#[test]
fn a_loopback_server_advertises_nothing() {
    let net = NetPair::create("lo", 2);
    let pid = std::process::id();
    let hidden = format!("Mnemo Loopback {pid}");
    let control = format!("Mnemo Control {pid} ({})", host_label());
    let loopback = Server::spawn(&net, &net.a, "127.0.0.1", PORT, &hidden);
    let lan = Server::spawn(
        &net,
        &net.a,
        "0.0.0.0",
        PORT + 1,
        &format!("Mnemo Control {pid}"),
    );
    loopback.wait_healthy();
    lan.wait_healthy();

    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| discover(&net, &net.a, 3000));
        let b = scope.spawn(|| discover(&net, &net.b, 3000));
        (
            a.join().expect("browse from a"),
            b.join().expect("browse from b"),
        )
    });
    for (ns, found) in [("its own namespace", a), ("the peer namespace", b)] {
        let names: Vec<&str> = found
            .iter()
            .filter_map(|c| c["instance"].as_str())
            .collect();
        assert!(
            names.contains(&control.as_str()),
            "from {ns}: the 0.0.0.0 server is not seen, so this browse proves nothing: {names:?}"
        );
        assert!(
            !names.iter().any(|n| n.starts_with(&hidden)),
            "from {ns}: the loopback-only server was advertised: {names:?}"
        );
    }
}

/// A stranger posing as a Mnemo server (`scripts/fake_mnemo.py`) in `ns`: its own
/// certificate, advertised under `name` with its own pin, recording every request.
struct Stranger {
    process: Process,
    log: PathBuf,
    _files: tempfile::TempDir,
}

impl Stranger {
    fn spawn(net: &NetPair, ns: &str, address: &str, port: u16, name: &str) -> Stranger {
        let files = tempfile::tempdir().expect("temp dir");
        let (cert, key, log) = (
            files.path().join("cert.pem"),
            files.path().join("key.pem"),
            files.path().join("requests.jsonl"),
        );
        run(
            "openssl req (the stranger's certificate)",
            Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-days",
                    "30",
                    "-subj",
                    "/CN=stranger",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert),
        );
        let pin = openssl_pin(&cert);
        std::fs::write(&log, "").expect("request log");
        let mut command = net.exec(ns, mnemo_e2e::test_python());
        command
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fake_mnemo.py"))
            .args([
                "--address",
                address,
                "--port",
                &port.to_string(),
                "--name",
                name,
            ])
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .args(["--fp", &pin, "--id", "someone-else"])
            .arg("--log")
            .arg(&log);
        let mut process = Process::spawn("scripts/fake_mnemo.py", &mut command);
        let lines = process.lines();
        wait_for_line(
            &lines,
            "ready",
            Duration::from_secs(30),
            "scripts/fake_mnemo.py",
        );
        Stranger {
            process,
            log,
            _files: files,
        }
    }

    /// Every request it received.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .expect("the stranger's request log")
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }

    /// Asserts that it received no key and no memory: at most proof requests, which
    /// carry a random nonce and nothing else.
    fn assert_got_nothing(&self, secrets: &[&str]) {
        let requests = self.requests();
        for request in &requests {
            let text = request.to_string().to_lowercase();
            assert!(
                !text.contains("authorization") && !text.contains("x-api-key"),
                "{request}"
            );
            for secret in secrets {
                assert!(
                    !text.contains(&secret.to_lowercase()),
                    "{secret} reached the stranger: {request}"
                );
            }
            assert_eq!(request["path"], "/api/auth/proof", "{request}");
            let body: Value = serde_json::from_str(request["body"].as_str().unwrap()).unwrap();
            assert_eq!(
                body.as_object().map(|o| o.len()),
                Some(1),
                "only a nonce: {body}"
            );
        }
        eprintln!(
            "{}: {} proof requests, nothing else",
            self.process.what,
            requests.len()
        );
    }
}

/// The SHA-256 of a PEM certificate's public key, as the server formats pins.
fn openssl_pin(cert: &Path) -> String {
    let hex = run(
        "openssl (pin)",
        Command::new("sh").args([
            "-c",
            &format!(
                "openssl x509 -noout -pubkey -in '{}' | openssl pkey -pubin -outform der \
                 | openssl dgst -sha256 -hex",
                cert.display()
            ),
        ]),
    );
    let hex = hex.trim().rsplit(' ').next().unwrap().to_uppercase();
    hex.as_bytes()
        .chunks(2)
        .map(|pair| std::str::from_utf8(pair).unwrap())
        .collect::<Vec<_>>()
        .join(":")
}

fn trusted_pins(trust: &Path) -> Vec<String> {
    let document: Value =
        serde_json::from_slice(&std::fs::read(trust).expect("a trust file")).expect("JSON");
    document["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .map(|s| s["pin"].as_str().unwrap().to_owned())
        .collect()
}

/// The trust rules across two namespaces, with the bridge in `b`:
/// 1. first use: the bridge finds the server in `a`, which proves it holds the key, and
///    trusts its pin;
/// 2. someone else's Mnemo under the same service name (its own key) is never sent the
///    key, and a stranger under the same instance name (its own certificate and pin) is
///    never used and receives neither the key nor a memory, only a proof request from
///    `--check`, which reports it "not trusted";
/// 3. with the trusted server down, tool calls fail within the timeout saying no
///    trusted server answers, and the stranger still receives nothing;
/// 4. the user's own second server (same key, other data folder) proves it holds the
///    key and is used, and joins the trust store;
/// 5. after `mnemo-server tls rotate` it is refused (its id is trusted with the old pin),
///    `--check` says how to trust it again, and after `mnemo-bridge trust remove` it is.
#[test]
fn the_bridge_trusts_servers_not_names() {
    let net = NetPair::create("tr", 3);
    let name = format!("Mnemo Trust {}", std::process::id());
    let instance = format!("{name} ({})", host_label());
    let trust_dir = tempfile::tempdir().expect("temp dir");
    let trust = trust_dir.path().join("trust.json");
    let timeout = Duration::from_secs(25);
    let bridge = |args: &[&str]| {
        let mut command = net.exec(&net.b, workspace_binary("mnemo-bridge"));
        for key in [
            "MCP_MEMORY_HTTP_ENDPOINT",
            "MCP_MEMORY_CERT_FINGERPRINT",
            "MCP_MEMORY_AUTO_DISCOVER",
        ] {
            command.env_remove(key);
        }
        command
            .args(args)
            .env("MCP_API_KEY", "k")
            .env("MNEMO_BRIDGE_TRUST_FILE", &trust)
            .env("MCP_MDNS_DISCOVERY_TIMEOUT", "10")
            .env("MNEMO_BRIDGE_TIMEOUT", timeout.as_secs().to_string())
            .env("NO_COLOR", "1");
        command
    };
    let store = |content: &str| {
        let mut bridge = BridgeProcess::spawn(bridge(&[]));
        bridge.initialize("2025-06-18");
        let (result, took) = bridge.call("memory_store", serde_json::json!({"content": content}));
        let log = bridge.stderr_lines().join("\n");
        assert!(
            !log.contains("\"k\""),
            "the key leaked into the log:\n{log}"
        );
        (result, took)
    };
    let text = |result: &Value| {
        result["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };

    // 1. First use.
    let first = Server::start_with(
        &net,
        &net.a,
        ("0.0.0.0", PORT),
        &name,
        true,
        "k",
        tempfile::tempdir().unwrap(),
    );
    let first_pin = first.wait_healthy_pin();
    let (stored, took) = store("found by mDNS");
    assert_eq!(stored["isError"], false, "{stored}");
    eprintln!("first call with discovery, proof and TLS: {took:?}");
    assert_eq!(trusted_pins(&trust), std::slice::from_ref(&first_pin));

    // 2. Someone else's Mnemo (its own key and certificate) under the same service name,
    // and a stranger under the same instance name (mDNS renames both).
    let other = Server::start_with(
        &net,
        &net.a,
        ("0.0.0.0", PORT + 2),
        &name,
        true,
        "someone else's key",
        tempfile::tempdir().unwrap(),
    );
    other.wait_healthy();
    let stranger = Stranger::spawn(&net, &net.a, &net.addr_a, PORT + 10, &instance);
    for _ in 0..3 {
        let (stored, _) = store("secret memory while the stranger listens");
        assert_eq!(stored["isError"], false, "{stored}");
    }
    // A request with the user's key would have been refused and logged.
    let said: Vec<String> = other.lines.try_iter().map(|(_, line)| line).collect();
    assert!(
        !said.iter().any(|line| line.contains("refused")),
        "someone else's server was sent a key:\n{}",
        said.join("\n")
    );
    let (ok, report) = check_in(bridge(&["--check"]));
    assert!(ok, "{report}");
    assert!(report.contains("trust: not trusted"), "{report}");
    assert!(report.contains("proof: FAILED"), "{report}");
    assert!(
        report.contains(&format!("pin: {first_pin}\n      trust: trusted\n")),
        "{report}"
    );
    stranger.assert_got_nothing(&["secret memory", "found by mDNS"]);
    assert_eq!(trusted_pins(&trust), std::slice::from_ref(&first_pin));

    // 3. The trusted server is down; the stranger still advertises.
    drop(other);
    let first_data = first.stop();
    let (refused, took) = store("secret memory with nobody trusted");
    assert_eq!(refused["isError"], true, "{refused}");
    assert!(
        text(&refused).contains("no trusted server answers"),
        "{}",
        text(&refused)
    );
    assert!(took < timeout, "{took:?}");
    stranger.assert_got_nothing(&["secret memory", "found by mDNS"]);

    // 4. The user's own second server, with the same key.
    let second = Server::start_with(
        &net,
        &net.a,
        ("0.0.0.0", PORT + 1),
        &name,
        true,
        "k",
        tempfile::tempdir().unwrap(),
    );
    let second_pin = second.wait_healthy_pin();
    let (stored, _) = store("to my second server");
    assert_eq!(stored["isError"], false, "{}", text(&stored));
    let pins = trusted_pins(&trust);
    assert!(
        pins.contains(&first_pin) && pins.contains(&second_pin),
        "{pins:?}"
    );
    stranger.assert_got_nothing(&["secret memory", "to my second server"]);

    // 5. Its key is rotated.
    let second_data = second.stop();
    let rotated = run(
        "mnemo-server tls rotate",
        Command::new(server_binary())
            .args(["tls", "rotate"])
            .env_clear()
            .env("MNEMO_DATA_DIR", second_data.path()),
    );
    let new_pin = rotated
        .lines()
        .find_map(|l| l.strip_prefix("New pin: "))
        .unwrap_or_else(|| panic!("no new pin in {rotated}"))
        .to_owned();
    assert_ne!(new_pin, second_pin);
    let second = Server::start_with(
        &net,
        &net.a,
        ("0.0.0.0", PORT + 1),
        &name,
        true,
        "k",
        second_data,
    );
    assert_eq!(
        second.wait_healthy_pin(),
        new_pin,
        "a restart keeps the rotated key"
    );
    let (refused, _) = store("after the rotation");
    assert_eq!(refused["isError"], true, "{refused}");
    let (ok, report) = check_in(bridge(&["--check"]));
    assert!(!ok, "{report}");
    assert!(report.contains("KEY CHANGED"), "{report}");
    assert!(report.contains("mnemo-bridge trust remove"), "{report}");
    let removed = run(
        "mnemo-bridge trust remove",
        &mut bridge(&["trust", "remove", &second_pin]),
    );
    assert!(removed.contains("No longer trusted"), "{removed}");
    let (stored, _) = store("after trusting the new key");
    assert_eq!(stored["isError"], false, "{}", text(&stored));
    assert!(trusted_pins(&trust).contains(&new_pin));
    stranger.assert_got_nothing(&["secret memory", "after"]);
    drop(first_data);
}

/// The server's veth address moves (a new one added, the old one removed, as a new DHCP
/// lease does): the server re-issues its certificate with the same key, mDNS follows,
/// and the bridge's next call succeeds with no user action and the same trusted pin.
#[test]
fn an_address_change_keeps_the_pin() {
    let net = NetPair::create("mv", 4);
    let name = format!("Mnemo Move {}", std::process::id());
    let trust_dir = tempfile::tempdir().expect("temp dir");
    let trust = trust_dir.path().join("trust.json");
    let store = |content: &str| {
        let mut command = net.exec(&net.b, workspace_binary("mnemo-bridge"));
        for key in [
            "MCP_MEMORY_HTTP_ENDPOINT",
            "MCP_MEMORY_CERT_FINGERPRINT",
            "MCP_MEMORY_AUTO_DISCOVER",
        ] {
            command.env_remove(key);
        }
        command
            .env("MCP_API_KEY", "k")
            .env("MNEMO_BRIDGE_TRUST_FILE", &trust)
            .env("MCP_MDNS_DISCOVERY_TIMEOUT", "10")
            .env("MNEMO_BRIDGE_TIMEOUT", "25");
        let mut bridge = BridgeProcess::spawn(command);
        bridge.initialize("2025-06-18");
        bridge
            .call("memory_store", serde_json::json!({"content": content}))
            .0
    };
    let server = Server::start_with(
        &net,
        &net.a,
        ("0.0.0.0", PORT),
        &name,
        true,
        "k",
        tempfile::tempdir().unwrap(),
    );
    let pin = server.wait_healthy_pin();
    let stored = store("before the move");
    assert_eq!(stored["isError"], false, "{stored}");
    let old_url = format!("https://{}:{PORT}", net.addr_a);
    let document: Value = serde_json::from_slice(&std::fs::read(&trust).unwrap()).unwrap();
    assert_eq!(
        document["servers"][0]["address"],
        old_url.as_str(),
        "{document}"
    );

    let new_addr = format!("{}.5", net.addr_a.rsplit_once('.').unwrap().0);
    // As a new DHCP lease does: the old address goes, then the new one comes.
    let old = format!("{}/24", net.addr_a);
    let new = format!("{new_addr}/24");
    ip(&["-n", &net.a, "addr", "del", &old, "dev", "mnemo-a"]).unwrap();
    ip(&["-n", &net.a, "addr", "add", &new, "dev", "mnemo-a"]).unwrap();
    let (_, reissued) = wait_for_line(
        &server.lines,
        "serving the re-issued TLS certificate",
        Duration::from_secs(30),
        &server.process.what,
    );
    assert_eq!(
        log_field(&reissued, "pin"),
        pin,
        "the pin survives the re-issue"
    );
    // mDNS follows the address on its own schedule: wait until the peer sees it.
    let new_url = format!("https://{new_addr}:{PORT}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !discover(&net, &net.b, 2000)
        .iter()
        .any(|c| c["url"] == new_url.as_str())
    {
        assert!(Instant::now() < deadline, "mDNS never advertised {new_url}");
    }

    let stored = store("after the move");
    assert_eq!(stored["isError"], false, "{stored}");
    let document: Value = serde_json::from_slice(&std::fs::read(&trust).unwrap()).unwrap();
    assert_eq!(
        trusted_pins(&trust),
        std::slice::from_ref(&pin),
        "{document}"
    );
    assert_eq!(
        document["servers"][0]["address"],
        new_url.as_str(),
        "{document}"
    );
}

/// Runs `mnemo-bridge --check`; returns whether it passed and what it printed.
fn check_in(mut command: Command) -> (bool, String) {
    let output = command.output().expect("run mnemo-bridge --check");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.success(), report)
}

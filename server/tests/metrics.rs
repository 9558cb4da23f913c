//! `GET /metrics` against real servers: the counters move by exactly the requests
//! made (the binary, with the real model and a real SQLite file), a real scrape passes
//! `promtool check metrics` (Debian's prometheus package, which `make test-promtool`
//! provides), and the scrape needs a key unless `MNEMO_METRICS_PUBLIC` opens it.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use mnemo_server::Config;
use mnemo_server::testing::{Backend, ServerProcess, TestServer, next_event};
use reqwest::Method;
use serde_json::{Value, json};

const KEY: &str = "metrics-test-key";

/// One sample: the metric's name and its labels, sorted, as `name{k="v",…}`.
type Series = String;

/// A scrape, parsed: every sample's value by its series.
#[derive(Debug, Default)]
struct Scrape(HashMap<Series, f64>);

impl Scrape {
    /// Parses the text exposition format: `# ` lines are comments, every other line is
    /// `name{label="value",…} number`, where a value may hold `{`, `}`, `,` and
    /// escaped quotes.
    fn parse(text: &str) -> Self {
        let mut samples = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = series_and_value(line);
            let value: f64 = value
                .parse()
                .unwrap_or_else(|e| panic!("{line:?}: value {value:?}: {e}"));
            assert!(
                samples.insert(series.clone(), value).is_none(),
                "{series} appears twice"
            );
        }
        Self(samples)
    }

    /// The value of `name` with exactly `labels`; 0 when it has not appeared yet (a
    /// counter or histogram shows up with its first observation).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0.get(&key(name, labels)).copied().unwrap_or(0.0)
    }

    /// The sum over every series of `name`, whatever their labels.
    fn sum(&self, name: &str) -> f64 {
        self.0
            .iter()
            .filter(|(series, _)| series.split('{').next() == Some(name))
            .map(|(_, value)| value)
            .sum()
    }
}

fn key(name: &str, labels: &[(&str, &str)]) -> Series {
    let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    labels.sort();
    format!("{name}{{{}}}", labels.join(","))
}

/// Splits a sample line into its series (labels sorted) and its value.
fn series_and_value(line: &str) -> (Series, &str) {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..name_end];
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(mut inner) = rest.strip_prefix('{') {
        loop {
            inner = inner.trim_start_matches(',');
            if let Some(after) = inner.strip_prefix('}') {
                rest = after;
                break;
            }
            let (label, quoted) = inner
                .split_once("=\"")
                .unwrap_or_else(|| panic!("a label without `=\"`: {line:?}"));
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next() {
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => panic!("a dangling escape: {line:?}"),
                    },
                    Some((_, c)) => value.push(c),
                    None => panic!("an unterminated label value: {line:?}"),
                }
            };
            labels.push(format!("{label}={value:?}"));
            inner = &quoted[end + 1..];
        }
    }
    labels.sort();
    let value = rest.split_whitespace().next().unwrap_or("");
    (format!("{name}{{{}}}", labels.join(",")), value)
}

/// `GET {url}/metrics` with the key, which must answer 200; parsed.
async fn scrape(client: &reqwest::Client, url: &str) -> (String, Scrape) {
    let response = client
        .get(format!("{url}/metrics"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let parsed = Scrape::parse(&text);
    (text, parsed)
}

/// After 3 stores, 2 searches and 1 request with a wrong key against the real binary,
/// the request, search, embedding, write and auth counters moved by exactly that much,
/// and the store's gauges say 3 memories.
#[tokio::test]
async fn counters_move_by_exactly_the_requests_made() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[("MCP_API_KEY", KEY)]);
    let url = server.url();
    let client = reqwest::Client::new();
    let refused = client.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(refused.status(), 401, "the scrape needs a key by default");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized", "{body}");

    let (_, before) = scrape(&client, url).await;
    for content in [
        "the cellar key is under the mat",
        "tea at four",
        "the boiler is serviced in May",
    ] {
        let stored = client
            .post(format!("{url}/api/memories"))
            .bearer_auth(KEY)
            .json(&json!({"content": content}))
            .send()
            .await
            .unwrap();
        assert_eq!(stored.status(), 200);
    }
    for query in ["where is the key", "when is tea"] {
        let found = client
            .post(format!("{url}/api/search"))
            .bearer_auth(KEY)
            .json(&json!({"query": query}))
            .send()
            .await
            .unwrap();
        assert_eq!(found.status(), 200);
    }
    let wrong = client
        .get(format!("{url}/api/memories"))
        .bearer_auth("not-the-key")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let (text, after) = scrape(&client, url).await;

    let moved =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    let total = |name: &str| after.sum(name) - before.sum(name);
    let request =
        |method, route, status| [("method", method), ("route", route), ("status", status)];
    for (labels, expected) in [
        (request("POST", "/api/memories", "200"), 3.0),
        (request("POST", "/api/search", "200"), 2.0),
        (request("GET", "/api/memories", "401"), 1.0),
        // The first scrape, counted once it was answered.
        (request("GET", "/metrics", "200"), 1.0),
    ] {
        assert_eq!(
            moved("mnemo_http_requests_total", &labels),
            expected,
            "{labels:?}\n{text}"
        );
        assert_eq!(
            moved("mnemo_http_request_duration_seconds_count", &labels),
            expected,
            "{labels:?}\n{text}"
        );
    }
    assert_eq!(total("mnemo_http_requests_total"), 7.0, "{text}");
    assert_eq!(
        moved("mnemo_auth_failures_total", &[("reason", "invalid")]),
        1.0,
        "{text}"
    );
    assert_eq!(total("mnemo_auth_failures_total"), 1.0, "{text}");
    assert_eq!(total("mnemo_auth_rate_limited_total"), 0.0, "{text}");
    assert_eq!(
        moved(
            "mnemo_search_duration_seconds_count",
            &[("mode", "semantic")]
        ),
        2.0,
        "{text}"
    );
    assert_eq!(total("mnemo_search_duration_seconds_count"), 2.0, "{text}");
    // Three contents and two queries, one text per model call (MNEMO_EMBED_BATCH=1).
    assert_eq!(total("mnemo_embed_batch_texts_sum"), 5.0, "{text}");
    assert_eq!(total("mnemo_embed_duration_seconds_count"), 5.0, "{text}");
    assert_eq!(total("mnemo_embed_failures_total"), 0.0, "{text}");
    // Each store waited for its commit before the next was sent: three groups of one.
    let sqlite = [("backend", "sqlite-vec")];
    assert_eq!(
        moved("mnemo_storage_write_group_size_sum", &sqlite),
        3.0,
        "{text}"
    );
    assert_eq!(
        moved("mnemo_storage_commit_duration_seconds_count", &sqlite),
        3.0,
        "{text}"
    );
    assert_eq!(after.get("mnemo_memories", &sqlite), 3.0, "{text}");
    assert!(
        after.get("mnemo_database_size_bytes", &sqlite) > 0.0,
        "{text}"
    );
    assert_eq!(after.get("mnemo_embed_queue_depth", &[]), 0.0, "{text}");
    for process in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_threads",
    ] {
        assert!(after.get(process, &[]) > 0.0, "{process}\n{text}");
    }
}

/// A real scrape, after traffic that touches every kind of metric (each search mode,
/// writes, a refusal, an unknown path, a change-feed subscriber), passes `promtool
/// check metrics` without a single complaint.
#[tokio::test]
async fn a_real_scrape_passes_promtool() {
    let server = TestServer::spawn().await;
    let mut feed = server.events(None).await;
    assert_eq!(next_event(&mut feed).await.event, "connection_established");
    let first = server
        .store(json!({"content": "promtool reads this", "tags": ["lint"]}))
        .await;
    server
        .store(json!({"content": "and this too", "tags": ["lint"]}))
        .await;
    let searches = [
        (
            Method::POST,
            "/api/search".to_owned(),
            Some(json!({"query": "reads", "mode": "semantic"})),
        ),
        (
            Method::POST,
            "/api/search".to_owned(),
            Some(json!({"query": "reads", "mode": "hybrid"})),
        ),
        (
            Method::POST,
            "/api/search".to_owned(),
            Some(json!({"query": "reads", "mode": "exact"})),
        ),
        (
            Method::POST,
            "/api/search/by-tag".to_owned(),
            Some(json!({"tags": ["lint"]})),
        ),
        (
            Method::POST,
            "/api/search/by-time".to_owned(),
            Some(json!({"query": "today"})),
        ),
        (Method::GET, format!("/api/search/similar/{first}"), None),
        (
            Method::PUT,
            format!("/api/memories/{first}"),
            Some(json!({"tags": ["x"]})),
        ),
    ];
    for (method, path, body) in searches {
        let (status, answer) = server.send(method, &path, body).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }
    let (status, _) = server.send(Method::GET, "/api/not-a-route", None).await;
    assert_eq!(status, 404);
    let client = reqwest::Client::new();
    let refused = client
        .get(format!("{}/api/tags", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let response = server
        .request(Method::GET, "/metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let scrape = Scrape::parse(&text);
    let backend = match Backend::from_env() {
        Backend::Sqlite => "sqlite-vec",
        Backend::Postgres => "postgresql",
    };
    assert!(
        scrape.get(
            "mnemo_storage_commit_duration_seconds_count",
            &[("backend", backend)]
        ) >= 3.0,
        "{text}"
    );
    assert!(
        scrape.get("mnemo_memories", &[("backend", backend)]) >= 2.0,
        "{text}"
    );
    assert!(scrape.get("mnemo_sse_subscribers", &[]) >= 1.0, "{text}");
    for mode in ["semantic", "hybrid", "exact", "tag", "time", "similar"] {
        assert!(
            scrape.get("mnemo_search_duration_seconds_count", &[("mode", mode)]) >= 1.0,
            "{mode}\n{text}"
        );
    }

    let complaints = promtool_check(&text);
    assert!(
        complaints.is_empty(),
        "promtool check metrics:\n{complaints}\n\n{text}"
    );
}

/// `MNEMO_METRICS_PUBLIC=true` lets a scraper in without a key; every other route
/// still needs one.
#[tokio::test]
async fn metrics_public_opens_only_the_scrape() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        dir.path(),
        &[("MCP_API_KEY", KEY), ("MNEMO_METRICS_PUBLIC", "true")],
    );
    let client = reqwest::Client::new();
    let open = client
        .get(format!("{}/metrics", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 200);
    let text = open.text().await.unwrap();
    assert!(
        Scrape::parse(&text).sum("mnemo_build_info") == 1.0,
        "{text}"
    );
    let closed = client
        .get(format!("{}/api/memories", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), 401);
}

/// What `promtool check metrics` says about `exposition` (stdout and stderr), empty
/// when it finds nothing wrong; any failure to run it is a failure of the test.
fn promtool_check(exposition: &str) -> String {
    let promtool = promtool();
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", promtool.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        said.trim().to_owned()
    } else {
        format!("exit {}: {said}", output.status)
    }
}

/// promtool from Debian's prometheus package: unpacked into the tools cache by `make
/// test-promtool`, or installed on the system. Missing, the test fails and says how to
/// get it; nothing skips.
fn promtool() -> PathBuf {
    let cached = Config::for_data_dir(std::env::temp_dir())
        .cache_dir()
        .join("tools/prometheus/usr/bin/promtool");
    if cached.is_file() {
        return cached;
    }
    let installed = PathBuf::from("/usr/bin/promtool");
    assert!(
        installed.is_file(),
        "promtool is missing (neither {} nor {}): run `make test-promtool`",
        cached.display(),
        installed.display()
    );
    installed
}

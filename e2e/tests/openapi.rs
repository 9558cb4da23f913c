//! The API against its own description, with the real `mnemo-server` binary and the
//! real model:
//!
//! * schemathesis (PyPI, pinned in `make test-python`) fuzzes every operation of
//!   `GET /api/openapi.json` with a write key, statefully along the document's links
//!   (store → get → update → delete), and must find no server error, no response
//!   that violates its schema (error bodies included), no status code the document
//!   does not list, no wrong content type or header. Its report is printed, and kept
//!   in `<target>/tmp/schemathesis/` as JUnit XML.
//! * `/api/docs` opens in Debian's chromium (playwright-core, `node/api_docs.cjs`)
//!   with every request beyond the server refused, and shows every operation. The
//!   screenshot is kept in `<target>/tmp/api-docs/`.
//!
//! Needs `make test-python` and `make test-node` (which `make test` runs).

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use mnemo_server::testing::{ServerProcess, add_key};
use serde_json::Value;

const MASTER: &str = "openapi-test-master-key";

/// The test venv's `schemathesis`, beside its interpreter.
fn schemathesis() -> PathBuf {
    let python = mnemo_e2e::test_python();
    let program = python.with_file_name("schemathesis");
    assert!(
        program.exists(),
        "{} is missing: run `make test-python` (which `make test` runs)",
        program.display()
    );
    program
}

/// Writes past the test harness's capture, so the report shows in every run, not
/// only in a failing one.
fn print_uncaptured(text: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text);
    let _ = stdout.flush();
}

/// One schemathesis run: which operations (`filters`, all when empty), which
/// phases, and how many examples each operation (or, in the stateful phase, each
/// scenario budget) gets.
struct Run<'a> {
    key: &'a str,
    filters: &'a [&'a str],
    phases: &'a str,
    max_examples: u32,
}

/// What a run's report says it did.
struct Report {
    text: String,
    selected: usize,
    tested: Option<usize>,
}

impl Report {
    /// "N covered / M selected" from the stateful phase's link summary.
    fn links(&self) -> Option<(usize, usize)> {
        self.text.lines().find_map(|line| {
            let (covered, rest) = line.split_once(" covered / ")?;
            let covered = covered.split_whitespace().last()?.parse().ok()?;
            let selected = rest.split_whitespace().next()?.parse().ok()?;
            Some((covered, selected))
        })
    }
}

/// Runs schemathesis against `document`, prints its report and fails on any failure
/// or error, or on an operation it selected but did not test.
fn run_schemathesis(document: &str, run: Run, reports: &std::path::Path) -> Report {
    let output = Command::new(schemathesis())
        .arg("run")
        .arg(document)
        .args(["--header", &format!("Authorization: Bearer {}", run.key)])
        .args(run.filters)
        .args(["--phases", run.phases])
        // Every check but two that grade the document's request schemas against
        // what the server accepts: positive_data_acceptance (the server refuses
        // what no JSON Schema can say, like an unknown time phrase or time zone)
        // and negative_data_rejection (it accepts more than the schema says, as
        // mcp-memory-service does: unknown fields are ignored, a large page size
        // is capped).
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance,negative_data_rejection",
        ])
        .args(["--max-examples", &run.max_examples.to_string()])
        // One worker: with two, CPython 3.11's `ast.parse`, which hypothesis calls
        // to describe its filters, is not thread-safe and fails now and then.
        .args(["--workers", "1", "--seed", "1"])
        .args(["--request-timeout", "10", "--no-shrink"])
        .args(["--report", "junit", "--report-dir"])
        .arg(reports)
        .env("NO_COLOR", "1")
        .current_dir(reports)
        .output()
        .expect("schemathesis runs");
    print_uncaptured(b"\n==== schemathesis report ====\n");
    print_uncaptured(&output.stdout);
    print_uncaptured(&output.stderr);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "schemathesis found failures or errors (report above, JUnit in {})",
        reports.display()
    );
    // A reference the tool cannot resolve is a part of the document it did not test.
    assert!(
        !text.contains("Unresolvable references"),
        "the document has references schemathesis cannot resolve: {text}"
    );
    let selected = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Selected: "))
        .and_then(|n| n.split('/').next())
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no operation count in {text}"));
    let tested = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse::<usize>().ok());
    Report {
        text,
        selected,
        tested,
    }
}

/// The operations the document links from a stored memory (`link_store_to_its_memory`
/// in server/src/http/openapi.rs), and the store itself.
const LINKED: [&str; 10] = [
    "--include-operation-id",
    "store_memory",
    "--include-operation-id",
    "get_memory",
    "--include-operation-id",
    "update_memory",
    "--include-operation-id",
    "delete_memory",
    "--include-operation-id",
    "similar_memories",
];

/// schemathesis over every operation, with a write key (and the admin key for the two
/// admin operations): no server errors, no responses outside their schema, no
/// undocumented status codes, and every error body an error body. Then the stateful
/// phase on its own, over the linked operations only, with a budget large enough to
/// follow every link: among all 45 operations at 5 examples it followed none.
#[test]
fn schemathesis_finds_no_response_outside_the_document() {
    let data = tempfile::tempdir().unwrap();
    let write_key = add_key(data.path(), "schemathesis", "write");
    // Schemathesis sends requests without a key and with wrong keys on purpose; the
    // limiter is not what it tests.
    let server = ServerProcess::start(
        data.path(),
        &[
            ("MCP_API_KEY", MASTER),
            ("MNEMO_AUTH_FAILURES_PER_MINUTE", "1000000"),
        ],
    );
    let reports = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("schemathesis");
    std::fs::create_dir_all(&reports).unwrap();
    let document = format!("{}/api/openapi.json", server.url());

    let every = Run {
        key: &write_key,
        filters: &[],
        phases: "examples,coverage,fuzzing",
        max_examples: 5,
    };
    let report = run_schemathesis(&document, every, &reports);
    assert!(
        report.selected >= 45,
        "every operation selected: {}",
        report.text
    );
    assert_eq!(report.tested, Some(report.selected), "{}", report.text);

    let stateful = Run {
        key: &write_key,
        filters: &LINKED,
        phases: "stateful",
        max_examples: 50,
    };
    let report = run_schemathesis(&document, stateful, &reports);
    let (covered, selected) = report
        .links()
        .unwrap_or_else(|| panic!("no link summary in {}", report.text));
    assert!(
        selected >= 4 && covered == selected,
        "the stateful phase followed every link: {}",
        report.text
    );

    // The two admin operations, which refuse a write key, with the admin key. No
    // link leads to them, so no stateful phase.
    let admin = Run {
        key: MASTER,
        filters: &[
            "--include-operation-id",
            "import_memories",
            "--include-operation-id",
            "events_stats",
        ],
        phases: "examples,coverage,fuzzing",
        max_examples: 5,
    };
    let report = run_schemathesis(&document, admin, &reports);
    assert_eq!(report.tested, Some(report.selected), "{}", report.text);
    server.terminate().unwrap();
}

/// `/api/docs` loads in a real headless browser with no network beyond the server,
/// shows every operation of the document, and is served with its CSP.
#[test]
fn the_docs_page_shows_every_operation_offline() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &[("MCP_API_KEY", MASTER)]);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("api-docs");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("api-docs.png");
    let _ = std::fs::remove_file(&shot);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node/api_docs.cjs");
    let output = mnemo_e2e::node::node("playwright-core")
        .arg(script)
        .arg(server.url())
        .arg(&shot)
        .output()
        .expect("node is installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let page: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(page["elsewhere"], serde_json::json!([]), "{page}");
    assert_eq!(page["errors"], serde_json::json!([]), "{page}");
    assert!(
        page["title"].as_str().unwrap().starts_with("Mnemo"),
        "{page}"
    );
    assert!(
        page["csp"].as_str().unwrap().contains("script-src 'self'"),
        "{page}"
    );

    // Every operation of the document is on the page.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let document: Value = runtime.block_on(async {
        reqwest::get(format!("{}/api/openapi.json", server.url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let shown: Vec<&str> = page["operations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut expected = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            expected.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    for operation in &expected {
        assert!(
            shown.contains(&operation.as_str()),
            "{operation} is not on the page: {page}"
        );
    }
    assert!(shot.exists(), "no screenshot at {}", shot.display());
    print_uncaptured(format!("api docs screenshot: {}\n", shot.display()).as_bytes());
    server.terminate().unwrap();
}

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

use mnemo_server::testing::{ServerProcess, workspace_binary};
use serde_json::Value;

const MASTER: &str = "openapi-test-master-key";

/// A managed key of `scope`, made by `mnemo-server keys add` in `data`.
fn add_key(data: &std::path::Path, scope: &str) -> String {
    let added = Command::new(workspace_binary("mnemo-server"))
        .args(["keys", "add", "--name", "schemathesis", "--scope", scope])
        .env("MNEMO_DATA_DIR", data)
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let stdout = String::from_utf8(added.stdout).unwrap();
    stdout
        .split_whitespace()
        .find(|word| word.starts_with("mnemo_"))
        .unwrap_or_else(|| panic!("no key in {stdout}"))
        .to_owned()
}

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

/// Runs schemathesis over the operations of `document` that `filters` select, with
/// `key`, prints its report and fails on any failure or error.
fn run_schemathesis(document: &str, key: &str, filters: &[&str], reports: &std::path::Path) {
    let output = Command::new(schemathesis())
        .arg("run")
        .arg(document)
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args(filters)
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
        // One worker: with two, CPython 3.11's `ast.parse`, which hypothesis calls
        // to describe its filters, is not thread-safe and fails now and then.
        .args(["--max-examples", "5", "--workers", "1", "--seed", "1"])
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
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures or errors (report above, JUnit in {})",
        reports.display()
    );
    // A reference the tool cannot resolve is a part of the document it did not test.
    assert!(
        !report.contains("Unresolvable references"),
        "the document has references schemathesis cannot resolve: {report}"
    );
    let selected = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Selected: "))
        .and_then(|n| n.split('/').next())
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no operation count in {report}"));
    let tested = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse::<usize>().ok());
    assert_eq!(
        tested,
        Some(selected),
        "every selected operation tested: {report}"
    );
    if filters.is_empty() {
        assert!(selected >= 45, "every operation selected: {report}");
        // Not asserted: with 45 operations and 5 examples each, the stateful phase
        // may follow none of the links in a run (it followed all 4 with 29); raising
        // its budget is owed (the session note says so).
    }
}

/// schemathesis over every operation, with a write key (and the admin key for the two
/// admin operations): no server errors, no
/// responses outside their schema, no undocumented status codes, and every error
/// body an error body.
#[test]
fn schemathesis_finds_no_response_outside_the_document() {
    let data = tempfile::tempdir().unwrap();
    let write_key = add_key(data.path(), "write");
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
    // Every operation with the write key the issue names; then the two admin
    // operations, which refuse that key, with the admin key.
    run_schemathesis(&document, &write_key, &[], &reports);
    run_schemathesis(
        &document,
        MASTER,
        // No link leads to these, so no stateful phase.
        &[
            "--include-operation-id",
            "import_memories",
            "--include-operation-id",
            "events_stats",
            "--phases",
            "examples,coverage,fuzzing",
        ],
        &reports,
    );
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

//! mcp-memory-service's own black-box clients against the real `mnemo-server`,
//! unchanged but for their URL and key: `tests/integration/test_api_key_fallback.py`
//! and `scripts/testing/test_memory_simple.py`, `test_search_api.py`,
//! `test_memory_api.py` and `test_sse_events.py`.
//!
//! They come from mcp-memory-service 12.4.0's source archive on PyPI
//! ([`mnemo_e2e::mcp_memory_service`]); none of their code is in this repository. Four
//! of them hard-code `BASE_URL`, rewritten here in a temporary copy; the fallback
//! test takes URL and key as arguments. They send no key, as against a default
//! mcp-memory-service, so the server allows anonymous access (a key is still checked
//! when sent, which the fallback test relies on).
//!
//! They print rather than assert, so each one's output is judged: it must finish,
//! print no failure mark, and print what shows the feature worked.

use std::path::Path;
use std::process::Command;

use mnemo_e2e::mcp_memory_service::{archive, extract};
use mnemo_server::testing::ServerProcess;

const KEY: &str = "mcp-memory-service-clients-key";

/// `script` with its `BASE_URL = "…"` line pointing at `url`.
fn rewrite_base_url(script: &Path, url: &str) {
    let text = std::fs::read_to_string(script).unwrap();
    let mut done = false;
    let rewritten: Vec<String> = text
        .lines()
        .map(|line| {
            if !done && line.starts_with("BASE_URL = ") {
                done = true;
                format!("BASE_URL = {url:?}")
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert!(done, "{} has no BASE_URL line", script.display());
    std::fs::write(script, rewritten.join("\n") + "\n").unwrap();
}

/// Runs `script` with `args` in the test venv; returns its output, which must
/// show a clean exit and none of the scripts' failure marks.
fn run(dir: &Path, script: &str, args: &[&str]) -> String {
    let output = Command::new(mnemo_e2e::test_python())
        .arg(dir.join(script))
        .args(args)
        .current_dir(dir)
        .env("PYTHONIOENCODING", "utf-8")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{script} failed:\n{text}");
    for mark in ["[FAIL]", "❌", "Traceback"] {
        assert!(!text.contains(mark), "{script} printed {mark:?}:\n{text}");
    }
    text
}

fn assert_printed(script: &str, output: &str, expected: &[&str]) {
    for line in expected {
        assert!(
            output.contains(line),
            "{script} did not print {line:?}:\n{output}"
        );
    }
}

/// The five clients pass against Mnemo, judged by what they print.
#[test]
fn mcp_memory_services_own_clients_pass() {
    let archive = archive();
    let work = tempfile::tempdir().unwrap();
    let scripts = [
        "scripts/testing/test_memory_simple.py",
        "scripts/testing/test_search_api.py",
        "scripts/testing/test_memory_api.py",
        "scripts/testing/test_sse_events.py",
        "tests/integration/test_api_key_fallback.py",
    ];
    extract(&archive, work.path(), &scripts);
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        data.path(),
        &[("MCP_API_KEY", KEY), ("MCP_ALLOW_ANONYMOUS_ACCESS", "true")],
    );
    let url = server.url();
    let testing = work.path().join("scripts/testing");
    for script in &scripts[..4] {
        rewrite_base_url(&work.path().join(script), url);
    }

    let out = run(&testing, "test_memory_simple.py", &[]);
    assert_printed(
        "test_memory_simple.py",
        &out,
        &[
            "[PASS] Server is healthy",
            "[PASS] Memory stored",
            "[PASS] Found 1 memories",
            "[PASS] Memory deleted",
        ],
    );

    let out = run(&testing, "test_search_api.py", &[]);
    assert_printed(
        "test_search_api.py",
        &out,
        &[
            "'machine learning AI' -> 3 results",
            "1. Advanced machine learning algorithms",
            "Tags ['python', 'programming'] (ALL) -> 1 results",
            "Time: 'today' -> ",
            "Cleaning up 5 test memories",
            "Search API testing completed!",
        ],
    );

    let out = run(&testing, "test_memory_api.py", &[]);
    assert_printed(
        "test_memory_api.py",
        &out,
        &[
            "[PASS] Memory stored successfully",
            "Retrieved specific memory",
            "Retrieved 1 memories with tag 'test'",
            "Memory successfully deleted (404 as expected)",
        ],
    );

    let out = run(&testing, "test_sse_events.py", &[]);
    assert_printed(
        "test_sse_events.py",
        &out,
        &[
            "Event type: memory_stored",
            "Event type: memory_deleted",
            "✅ Stored:",
            "✅ Deleted:",
            "SSE test completed!",
        ],
    );

    let integration = work.path().join("tests/integration");
    let out = run(&integration, "test_api_key_fallback.py", &[url, KEY]);
    assert_printed(
        "test_api_key_fallback.py",
        &out,
        &[
            "✅ API key authentication working",
            "✅ API key write operation working",
            "✅ Invalid API key correctly rejected",
            "API key fallback is working correctly!",
        ],
    );
}

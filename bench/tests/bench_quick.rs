//! The benchmark harness's smoke mode, as CI runs it: every scenario completes against
//! a server the harness starts itself, with zero errors and exact recall. No timing is
//! asserted; the machine is shared and noisy.

use serde_json::Value;

/// `mnemo-bench --quick` runs every scenario on 1k real memories without an error,
/// and semantic search finds the exact top-10 (recall@10 = 1.0).
#[test]
fn quick_bench_has_no_errors_and_exact_recall() {
    let harness = std::path::PathBuf::from(env!("CARGO_BIN_EXE_mnemo-bench"));
    // `cargo test --workspace` builds every binary into the same folder.
    let server = harness.with_file_name("mnemo-server");
    assert!(
        server.exists(),
        "{} is missing: run the suite with `cargo test --workspace` (or `make test`)",
        server.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("quick.json");
    let output = std::process::Command::new(&harness)
        .arg("--quick")
        .arg("--server-bin")
        .arg(&server)
        .arg("--json")
        .arg(&report)
        .env_remove("MCP_API_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "mnemo-bench --quick failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["errors"], 0, "{stdout}");
    let rows = report["rows"].as_array().unwrap();
    let has = |prefix: &str| {
        rows.iter()
            .any(|r| r["name"].as_str().unwrap().starts_with(prefix))
    };
    for scenario in [
        "cold start to healthy",
        "store, one at a time",
        "search, 1000 memories",
        "bulk ingest, batches of 100",
        "mixed load, 16 clients",
        "mixed load, 64 clients",
        "SSE fan-out",
        "RSS peak",
    ] {
        assert!(has(scenario), "no {scenario:?} row in:\n{stdout}");
    }
    for row in rows {
        assert_eq!(row["errors"], 0, "{}: errors\n{stdout}", row["name"]);
    }
    let search = rows
        .iter()
        .find(|r| r["name"] == "search, 1000 memories")
        .unwrap();
    assert_eq!(search["recall_at_10"], 1.0, "{stdout}");
}

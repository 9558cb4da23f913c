//! Export and import (`GET /api/export`, `POST /api/import`, `mnemo-server export|import`)
//! and `mnemo-server reembed`, with the real model and real SQLite files: a memory
//! leaves one server and arrives in another unchanged, a bad line costs only itself,
//! and the offline commands refuse a database a server has open.

use std::io::Write;

use mnemo_api::transfer::{ExportedMemory, ImportReport, LineStatus};
use mnemo_server::Config;
use mnemo_server::auth::{KeyFile, Scope};
use mnemo_server::testing::{
    ServerProcess, TestServer, exported_vectors, failed, run_offline, succeeded,
};
use reqwest::Method;
use serde_json::json;

/// Memories with ordered tags, types, metadata, old creation times and a later
/// update, so every field an export carries is one a default would not produce.
async fn seed(server: &TestServer) {
    let (status, body) = server
        .send(
            Method::POST,
            "/api/memories/import",
            Some(json!({"memories": [
                {"content": "The boiler was serviced in March; next service due in spring.",
                 "tags": ["house", "boiler", "Maintenance"], "memory_type": "note",
                 "metadata": {"cost": 120, "by": {"name": "Ann"}}, "created_at": 1_600_000_000.25},
                {"content": "Granny's apple cake needs sour apples and a hot oven.",
                 "tags": ["recipe", "cake"], "memory_type": "recipe", "created_at": "2021-05-01T10:00:00Z"},
            ]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for (content, tags) in [
        (
            "The car's winter tyres are in the garage loft.",
            vec!["car", "tyres"],
        ),
        (
            "Kids' football practice moved to Thursday evenings.",
            vec!["kids", "sport"],
        ),
        (
            "The wifi password is on the router's underside.",
            vec!["house", "network"],
        ),
    ] {
        server
            .store(json!({"content": content, "tags": tags, "metadata": {"source": "test"}}))
            .await;
    }
    // An update moves updated_at past created_at.
    let hash = mnemo_server::memory::content_hash("The car's winter tyres are in the garage loft.");
    let (status, body) = server
        .send(
            Method::PUT,
            &format!("/api/memories/{hash}"),
            Some(json!({"tags": ["car", "winter", "tyres"], "metadata": {"checked": true}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn export(server: &TestServer, query: &str) -> String {
    let response = server
        .request(Method::GET, &format!("/api/export{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        mnemo_api::transfer::JSONL
    );
    response.text().await.unwrap()
}

fn parsed(export: &str) -> Vec<ExportedMemory> {
    export
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// `POST /api/import` with `body` sent as a stream of small chunks, as a large file
/// would arrive.
async fn import(server: &TestServer, body: String) -> ImportReport {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body
        .into_bytes()
        .chunks(1000)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let response = server
        .request(Method::POST, "/api/import")
        .header("content-type", mnemo_api::transfer::JSONL)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn search(server: &TestServer, query: &str) -> Vec<(String, f64)> {
    let (status, body) = server
        .send(
            Method::POST,
            "/api/search",
            Some(json!({"query": query, "n_results": 5})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["memory"]["content_hash"].as_str().unwrap().to_owned(),
                r["similarity_score"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Export, then import into an empty server: the same memories (content, tags in
/// order, type, metadata, both times), the same search results; importing again
/// changes nothing; with vectors, nothing is embedded again and search agrees too.
#[tokio::test]
async fn export_then_import_gives_the_same_memories_and_search() {
    let source = TestServer::spawn().await;
    seed(&source).await;
    let exported = export(&source, "").await;
    let original = parsed(&exported);
    assert_eq!(original.len(), 5);
    assert!(original.iter().all(|m| m.embedding.is_none()));
    let boiler = original
        .iter()
        .find(|m| m.content.starts_with("The boiler"))
        .unwrap();
    assert_eq!(boiler.tags, ["house", "boiler", "maintenance"]);
    assert_eq!(boiler.created_at, Some(1_600_000_000.25));
    assert_eq!(boiler.metadata["by"]["name"], "Ann");
    let tyres = original
        .iter()
        .find(|m| m.content.contains("tyres"))
        .unwrap();
    assert!(tyres.updated_at > tyres.created_at);

    let target = TestServer::spawn().await;
    let report = import(&target, exported.clone()).await;
    assert_eq!(
        (
            report.lines,
            report.accepted,
            report.duplicates,
            report.errors
        ),
        (5, 5, 0, 0),
        "{report:?}"
    );
    assert_eq!(parsed(&export(&target, "").await), original);
    same_search(&source, &target).await;

    let again = import(&target, exported).await;
    assert_eq!((again.accepted, again.duplicates), (0, 5), "{again:?}");
    assert!(
        again
            .problems
            .iter()
            .all(|p| p.status == LineStatus::Duplicate)
    );

    let with_vectors = export(&source, "?vectors=true").await;
    let lines = parsed(&with_vectors);
    assert!(
        lines
            .iter()
            .all(|m| m.embedding.as_ref().unwrap().len() == 384
                && m.embedding_model.as_deref() == Some("sentence-transformers/all-MiniLM-L6-v2"))
    );
    let third = TestServer::spawn().await;
    assert_eq!(import(&third, with_vectors).await.accepted, 5);
    assert_eq!(parsed(&export(&third, "").await), original);
    same_search(&source, &third).await;
}

/// The same queries find the same memories in the same order, with the same scores
/// (to float rounding: a vector read back from an export is normalised again).
async fn same_search(a: &TestServer, b: &TestServer) {
    for query in ["when is the heating checked", "what to bake", "football"] {
        let (before, after) = (search(a, query).await, search(b, query).await);
        assert_eq!(before.len(), after.len());
        for ((hash_a, score_a), (hash_b, score_b)) in before.iter().zip(&after) {
            assert_eq!(hash_a, hash_b, "{query}");
            assert!((score_a - score_b).abs() < 1e-6, "{query}");
        }
    }
}

/// A bad line is reported by number and skipped; every good line around it is
/// stored. A vector of another width or model is refused with what to do, and a
/// line past the length limit is skipped without being held.
#[tokio::test]
async fn bad_lines_cost_only_themselves() {
    let server = TestServer::spawn().await;
    let long = format!(
        "{{\"content\": \"{}\"}}",
        "x".repeat(mnemo_api::transfer::MAX_LINE_BYTES)
    );
    let body = [
        r#"{"content": "first good line", "tags": ["b", "a"]}"#,
        "this is not json",
        r#"{"content": "   "}"#,
        "",
        &long,
        r#"{"content": "three dimensions", "embedding": [0.1, 0.2, 0.3]}"#,
        r#"{"content": "another model", "embedding": [0.5], "embedding_model": "other/model"}"#,
        r#"{"content": "first good line"}"#,
        r#"{"content": "too old", "created_at": -1e13}"#,
        r#"{"content": "last good line", "created_at": 1700000000, "updated_at": 1700000500}"#,
    ]
    .join("\n");
    let report = import(&server, body).await;
    assert_eq!(
        (
            report.lines,
            report.accepted,
            report.duplicates,
            report.errors
        ),
        (10, 2, 1, 6),
        "{report:?}"
    );
    let problem = |line: u64| {
        report
            .problems
            .iter()
            .find(|p| p.line == line)
            .unwrap_or_else(|| panic!("no report of line {line}: {report:?}"))
    };
    assert!(problem(2).message.contains("not a memory"));
    assert!(problem(3).message.contains("empty"));
    assert!(problem(5).message.contains("the limit is"));
    assert!(
        problem(6).message.contains("3 dimensions") && problem(6).message.contains("384"),
        "{:?}",
        problem(6)
    );
    assert!(problem(7).message.contains("other/model"));
    assert_eq!(problem(8).status, LineStatus::Duplicate);
    assert!(problem(9).message.contains("outside the years"));

    let stored = parsed(&export(&server, "").await);
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].content, "last good line");
    assert_eq!(
        (stored[0].created_at, stored[0].updated_at),
        (Some(1_700_000_000.0), Some(1_700_000_500.0))
    );
    assert_eq!(stored[1].tags, ["b", "a"]);
}

/// Export and import are admin routes: a write key is refused both.
#[tokio::test]
async fn export_and_import_need_the_admin_scope() {
    let server = TestServer::spawn().await;
    let (_, writer) = KeyFile::new(server.dir.path())
        .add("writer", Scope::Write)
        .unwrap();
    for (method, path) in [(Method::GET, "/api/export"), (Method::POST, "/api/import")] {
        let response = server
            .http
            .request(method, format!("{}{path}", server.url()))
            .bearer_auth(&writer)
            .body("{\"content\": \"x\"}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{path}");
    }
}

/// The offline commands: refused while a server has the database open (with the API
/// to use instead); with it stopped, export to a file and import into a new data
/// folder that a server then serves; reembed with the same model leaves every vector
/// as it was, and under another model id moves the pin, which the server then
/// enforces. With PostgreSQL, reembed says what to do instead.
#[tokio::test]
async fn offline_export_import_and_reembed() {
    let source = tempfile::tempdir().unwrap();
    let key = [("MCP_API_KEY", "offline-test-key-0123456789")];
    let server = ServerProcess::start(source.path(), &key);
    let client = reqwest::Client::new();
    for content in ["first offline memory", "second offline memory"] {
        let status = client
            .post(format!("{}/api/memories", server.url()))
            .bearer_auth(key[0].1)
            .json(&json!({"content": content, "tags": ["offline"]}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    let busy = failed(run_offline(source.path(), &["export"], &[]));
    assert!(
        busy.contains("in use by another process") && busy.contains("GET /api/export"),
        "{busy}"
    );
    server.terminate().unwrap();

    let file = source.path().join("export.jsonl");
    let said = succeeded(run_offline(
        source.path(),
        &["export", "-o", file.to_str().unwrap()],
        &[],
    ));
    assert!(said.contains("Exported 2 memories"), "{said}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let target = tempfile::tempdir().unwrap();
    let mut with_bad_line = std::fs::read_to_string(&file).unwrap();
    with_bad_line.push_str("{not json\n");
    let input = target.path().join("in.jsonl");
    std::fs::File::create(&input)
        .unwrap()
        .write_all(with_bad_line.as_bytes())
        .unwrap();
    let output = run_offline(target.path(), &["import", input.to_str().unwrap()], &[]);
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(!output.status.success(), "a bad line fails the command");
    assert!(report.contains("2 accepted"), "{report}");
    assert!(report.contains("line 3: error"), "{report}");
    let again = String::from_utf8(
        run_offline(target.path(), &["import", input.to_str().unwrap()], &[]).stdout,
    )
    .unwrap();
    assert!(again.contains("0 accepted, 2 duplicates"), "{again}");

    let before = exported_vectors(target.path(), &[]);
    assert_eq!(before.len(), 2);
    let model_dir = Config::for_data_dir(target.path()).model_files().model_dir;
    let model_dir = model_dir.to_str().unwrap();
    let same = succeeded(run_offline(
        target.path(),
        &[
            "reembed",
            "--model-dir",
            model_dir,
            "--model-id",
            "sentence-transformers/all-MiniLM-L6-v2",
        ],
        &[],
    ));
    assert!(same.contains("Re-embedded 2 memories"), "{same}");
    let after = exported_vectors(target.path(), &[]);
    assert_eq!(after.len(), before.len());
    for ((hash_a, a), (hash_b, b)) in before.iter().zip(&after) {
        assert_eq!(hash_a, hash_b);
        let cosine: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        assert!(cosine > 0.99999, "{cosine}");
    }

    succeeded(run_offline(
        target.path(),
        &[
            "reembed",
            "--model-dir",
            model_dir,
            "--model-id",
            "renamed/minilm",
        ],
        &[],
    ));
    let mismatch = failed(run_offline(target.path(), &["export"], &[]));
    assert!(
        mismatch.contains("renamed/minilm") && mismatch.contains("all-MiniLM-L6-v2"),
        "{mismatch}"
    );
    assert_eq!(
        exported_vectors(target.path(), &[("MNEMO_MODEL_ID", "renamed/minilm")]).len(),
        2
    );

    let postgres = failed(run_offline(
        target.path(),
        &["reembed", "--model-dir", model_dir, "--model-id", "x"],
        &[("MNEMO_DATABASE_URL", "postgres://mnemo@127.0.0.1:1/mnemo")],
    ));
    assert!(
        postgres.contains("works on a SQLite database"),
        "{postgres}"
    );
}

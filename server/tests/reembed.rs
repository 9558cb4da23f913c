//! `mnemo-server reembed` with a real second model of another width: a database
//! written with all-MiniLM-L6-v2 (384 dimensions) is re-embedded with
//! all-mpnet-base-v2 (768), by the real binary, from the files `make test` provisions
//! (`testing::mpnet_model_dir`). A run killed midway leaves the old model in force
//! and the next run finishes only what is left; then every vector is 768 wide, a
//! server of the new model finds memories by meaning and stores new ones, and a
//! server of the old model is refused with both names. The same-model case is in
//! `transfer.rs`.

use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use mnemo_server::testing::{
    MPNET_MODEL_ID, ServerProcess, exported_vectors, lines_of, mpnet_model_dir, run_offline,
    server_command, succeeded,
};
use serde_json::{Value, json};

const KEY: &str = "reembed-test-key-0123456789";

/// Memories with a query each that says the same thing in other words, so only a
/// model that reads meaning puts the memory first.
const FACTS: [(&str, &str); 4] = [
    (
        "The spare key to the front door hangs under the blue flowerpot on the porch.",
        "I locked myself out of the house, how do I get back in?",
    ),
    (
        "Dentist appointment for Tom on the 14th at nine in the morning.",
        "when does my son have to get his teeth checked",
    ),
    (
        "The car's winter tyres are stored in the garage loft.",
        "where are the snow wheels for the vehicle kept",
    ),
    (
        "Granny's apple cake needs sour apples and a hot oven.",
        "how to bake grandmother's fruit dessert",
    ),
];

/// Enough memories that the re-embed commits several batches (32 each), so a run
/// can be stopped between two of them.
const TOTAL: usize = 100;

async fn post(server: &ServerProcess, path: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", server.url()))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// The content of the best semantic match for `query`.
async fn best(server: &ServerProcess, query: &str) -> String {
    let body = post(
        server,
        "/api/search",
        json!({"query": query, "n_results": 3, "mode": "semantic"}),
    )
    .await;
    body["results"][0]["memory"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no result for {query:?}: {body}"))
        .to_owned()
}

/// The number just before `marker` in `text`.
fn number_before(text: &str, marker: &str) -> u64 {
    let head = &text[..text
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} in {text}"))];
    head.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Runs `reembed` and kills it once it has committed its first batch but before the
/// last; answers how many memories that batch held.
fn reembed_killed_midway(data: &Path, model_dir: &str) -> u64 {
    let mut child = server_command(data)
        .args([
            "reembed",
            "--model-dir",
            model_dir,
            "--model-id",
            MPNET_MODEL_ID,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stderr.take());
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut said = Vec::new();
    let staged = loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                // "reembed: 32 of 100 memories have their new vectors"
                let done = line
                    .strip_prefix("reembed: ")
                    .and_then(|rest| rest.split(' ').next())
                    .and_then(|n| n.parse::<u64>().ok());
                said.push(line);
                if let Some(done @ 1..) = done {
                    break done;
                }
            }
            Err(RecvTimeoutError::Timeout) => panic!("no batch within 2 minutes: {said:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("reembed exited first: {said:?}"),
        }
    };
    // The next batch takes the model a second or more to embed, and the swap waits
    // for the last of three more: the kill lands between two commits.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "reembed finished before it was killed");
    staged
}

/// Re-embedding with all-mpnet-base-v2 after a killed run: the old model serves until
/// the end, the rerun embeds only the rest, then every vector is 768 wide, the pin
/// names the new model, search finds memories by meaning, and the old model is
/// refused.
#[tokio::test]
async fn reembed_with_a_wider_real_model_resumes_and_moves_the_pin() {
    let model_dir = mpnet_model_dir();
    let model_dir = model_dir.to_str().unwrap();
    let new_model = [
        ("MNEMO_MODEL_DIR", model_dir),
        ("MNEMO_MODEL_ID", MPNET_MODEL_ID),
    ];
    let data = tempfile::tempdir().unwrap();

    let server = ServerProcess::start(data.path(), &[("MCP_API_KEY", KEY)]);
    for (content, _) in FACTS {
        post(&server, "/api/memories", json!({"content": content})).await;
    }
    let fillers: Vec<Value> = (FACTS.len()..TOTAL)
        .map(|i| json!({"content": format!("Minutes of weekly meeting number {i}: no changes.")}))
        .collect();
    let stored = post(&server, "/api/memories/batch", json!({"memories": fillers})).await;
    assert_eq!(stored["stored"], TOTAL - FACTS.len(), "{stored}");
    server.terminate().unwrap();
    let before = exported_vectors(data.path(), &[]);
    assert_eq!(before.len(), TOTAL);
    assert!(before.iter().all(|(_, v)| v.len() == 384));

    let started = Instant::now();
    let staged = reembed_killed_midway(data.path(), model_dir);
    // Still the old model's database, its vectors untouched.
    assert_eq!(exported_vectors(data.path(), &[]), before);

    let said = succeeded(run_offline(
        data.path(),
        &[
            "reembed",
            "--model-dir",
            model_dir,
            "--model-id",
            MPNET_MODEL_ID,
        ],
        &[],
    ));
    eprintln!(
        "re-embedding {TOTAL} memories with all-mpnet-base-v2 (killed after {staged}, then resumed): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        said.contains(&format!("Re-embedded {TOTAL} memories")),
        "{said}"
    );
    assert!(said.contains("(768 dimensions;"), "{said}");
    assert!(
        said.contains("replacing \"sentence-transformers/all-MiniLM-L6-v2\" (384"),
        "{said}"
    );
    let (now, earlier) = (
        number_before(&said, " embedded now"),
        number_before(&said, " by an earlier run"),
    );
    assert!(earlier >= staged && earlier < TOTAL as u64, "{said}");
    assert_eq!(now + earlier, TOTAL as u64, "{said}");

    let after = exported_vectors(data.path(), &new_model);
    assert_eq!(after.len(), TOTAL);
    for ((hash_a, _), (hash_b, v)) in before.iter().zip(&after) {
        assert_eq!(hash_a, hash_b);
        assert_eq!(v.len(), 768);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "{norm}");
    }

    let old = ServerProcess::spawn(data.path(), &[("MCP_API_KEY", KEY)]);
    let (status, stderr) = old.finish();
    assert!(
        !status.success(),
        "a server of the old model started:\n{stderr}"
    );
    assert!(
        stderr.contains("all-MiniLM-L6-v2") && stderr.contains("all-mpnet-base-v2"),
        "{stderr}"
    );

    let mut env = new_model.to_vec();
    env.push(("MCP_API_KEY", KEY));
    let server = ServerProcess::start(data.path(), &env);
    for (content, query) in FACTS {
        assert_eq!(best(&server, query).await, content, "{query}");
    }
    let plumber = "The plumber is Dave, on 0123 456 789; he came last for the boiler.";
    post(&server, "/api/memories", json!({"content": plumber})).await;
    assert_eq!(
        best(&server, "who should I ring about a leaking pipe").await,
        plumber
    );
    server.terminate().unwrap();
    let stored = exported_vectors(data.path(), &new_model);
    assert_eq!(stored.len(), TOTAL + 1);
    assert!(stored.iter().all(|(_, v)| v.len() == 768));
}

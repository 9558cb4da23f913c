//! Requests an attacker or a careless client sends to take the server down (issue 13):
//! each is refused or bounded, and the server keeps serving everyone else.

use std::time::Duration;

use mnemo_server::testing::TestServer;
use reqwest::Method;
use serde_json::json;

/// Generous bound for a request that the fix makes quick (a debug build on a loaded
/// two-core machine); before the fix these requests took minutes.
const QUICK: Duration = Duration::from_secs(30);

/// Hostile hybrid queries do not starve the read pool: an overlong query is a 400
/// naming the limit, one just under the limit runs on a bounded number of terms, and
/// other reads still answer while they run. The server stops within its grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_hybrid_queries_leave_the_pool_available() {
    let server = TestServer::spawn_with(|c| c.read_pool = 2).await;
    server.store(json!({"content": "word of the day"})).await;

    // The reproduction: 64,000 words, 320 KB.
    let overlong = json!({"query": "word ".repeat(64_000), "mode": "hybrid"});
    // Every word distinct, just under the length limit.
    let distinct: String = (0..1_300).map(|i| format!("w{i:04} ")).collect();
    assert!(distinct.len() < mnemo_server::service::DEFAULT_MAX_QUERY_CHARS);
    let long = json!({"query": distinct, "mode": "hybrid"});

    let hostile: Vec<_> = (0..8)
        .map(|i| {
            let body = if i % 2 == 0 { &overlong } else { &long };
            let request = server
                .request(Method::POST, "/api/search")
                .json(body)
                .send();
            tokio::spawn(async move {
                let response = request.await.unwrap();
                let status = response.status().as_u16();
                (status, response.json::<serde_json::Value>().await.unwrap())
            })
        })
        .collect();
    let (status, body) =
        tokio::time::timeout(QUICK, server.send(Method::GET, "/api/memories", None))
            .await
            .expect("a plain read waited behind hostile queries");
    assert_eq!(status, 200, "{body}");
    for (i, task) in hostile.into_iter().enumerate() {
        let (status, body) = tokio::time::timeout(QUICK, task).await.unwrap().unwrap();
        if i % 2 == 0 {
            assert_eq!(status, 400, "{body}");
            assert_eq!(body["error"], "invalid_input", "{body}");
            assert!(
                body["message"]
                    .as_str()
                    .unwrap()
                    .contains("MNEMO_MAX_QUERY_CHARS")
            );
        } else {
            assert_eq!(status, 200, "{body}");
        }
    }

    // Shutdown while hostile queries are in flight.
    for _ in 0..4 {
        let request = server
            .request(Method::POST, "/api/search")
            .json(&long)
            .send();
        tokio::spawn(request);
    }
    let stopped = server.stop().await;
    assert!(
        stopped < Duration::from_secs(5),
        "stopping took {stopped:?}"
    );
}

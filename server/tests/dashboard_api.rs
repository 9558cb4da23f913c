//! What the dashboard needs from the server, over real HTTP: the shell and its files
//! with their strict headers, `GET /api/stats/daily`, `GET /api/auth/scope`, and the
//! admin key routes shared with `mnemo-server keys`, with every way they refuse.

use mnemo_server::auth::{KeyFile, ManagedKeys, Scope};
use mnemo_server::testing::{MASTER_KEY, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

async fn call(server: &TestServer, method: Method, path: &str, key: &str) -> (u16, Value) {
    let response = server
        .http
        .request(method, format!("{}{path}", server.url()))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Adds a managed key through the admin route; returns the key.
async fn add_key(server: &TestServer, name: &str, scope: &str) -> String {
    let (status, body) = server
        .send(
            Method::POST,
            "/api/keys",
            Some(json!({"name": name, "scope": scope})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["key"].as_str().unwrap().to_owned()
}

/// The shell and its files need no key, carry a policy that allows no inline script
/// and no framing, and an unknown file is a JSON 404.
#[tokio::test]
async fn the_shell_is_public_and_strict() {
    let server = TestServer::spawn().await;
    for (path, media) in [
        ("/", "text/html"),
        ("/static/app.js", "text/javascript"),
        ("/static/app.css", "text/css"),
        ("/static/icon.svg", "image/svg+xml"),
    ] {
        let response = reqwest::get(format!("{}{path}", server.url()))
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        let header = |name: &str| headers[name].to_str().unwrap().to_owned();
        assert!(header("content-type").starts_with(media), "{path}");
        let policy = header("content-security-policy");
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(!policy.contains("unsafe"), "{policy}");
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("x-frame-options"), "DENY");
    }
    let response = reqwest::get(format!("{}/static/..%2FCargo.toml", server.url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = reqwest::get(format!("{}/static/nothing.js", server.url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
}

/// Memories per day: every day of the window, oldest first, today last, today's
/// memories counted; a window outside 1 to 366 days, a non-number or an unknown time
/// zone is a 400 that says what is allowed.
#[tokio::test]
async fn daily_counts_are_bounded() {
    let server = TestServer::spawn().await;
    server.store(json!({"content": "counted today"})).await;
    server.store(json!({"content": "also counted today"})).await;
    let (status, body) = server
        .send(Method::GET, "/api/stats/daily?days=90&tz=UTC", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let days = body["days"].as_array().unwrap();
    assert_eq!(days.len(), 90);
    assert_eq!(days[89]["count"], 2, "{body}");
    assert_eq!(days[0]["count"], 0);
    assert!(days[0]["date"].as_str().unwrap() < days[89]["date"].as_str().unwrap());
    let (status, body) = server.send(Method::GET, "/api/stats/daily", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["days"].as_array().unwrap().len(), 90, "90 by default");
    assert_eq!(body["tz"], "UTC");

    for (query, says) in [
        ("days=0", "between 1 and 366"),
        ("days=367", "between 1 and 366"),
        ("days=ninety", ""),
        ("days=-1", ""),
        ("tz=Mars/Olympus", "Mars/Olympus"),
    ] {
        let (status, body) = server
            .send(Method::GET, &format!("/api/stats/daily?{query}"), None)
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["error"].is_string(), "{query}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(says),
            "{query}: {body}"
        );
    }
}

/// A key learns its own scope, so a client shows only the controls that work.
#[tokio::test]
async fn a_key_learns_its_scope() {
    let server = TestServer::spawn().await;
    let (status, body) = call(&server, Method::GET, "/api/auth/scope", MASTER_KEY).await;
    assert_eq!((status, &body), (200, &json!({"scope": "admin"})));
    let read = add_key(&server, "reader", "read").await;
    let (_, body) = call(&server, Method::GET, "/api/auth/scope", &read).await;
    assert_eq!(body, json!({"scope": "read"}));
    let (status, _) = call(&server, Method::GET, "/api/auth/scope", "wrong").await;
    assert_eq!(status, 401);
}

/// An admin lists, adds and revokes keys; the list never shows a secret or a hash,
/// a new key works at once and a revoked one stops at once, and the `keys` command's
/// own view of the keys (the same `ManagedKeys`) agrees.
#[tokio::test]
async fn an_admin_manages_keys() {
    let server = TestServer::spawn().await;
    let key = add_key(&server, "laptop", "write").await;
    let (status, _) = call(&server, Method::GET, "/api/health/detailed", &key).await;
    assert_eq!(status, 200);
    let (status, list) = server.send(Method::GET, "/api/keys", None).await;
    assert_eq!(status, 200);
    let keys = list["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{list}");
    assert_eq!(keys[0]["name"], "laptop");
    assert_eq!(keys[0]["scope"], "write");
    let text = list.to_string();
    assert!(!text.contains("sha256") && !text.contains(&key), "{text}");

    if server.database.is_none() {
        let cli = ManagedKeys::File(KeyFile::new(server.dir.path()));
        let listed = cli.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].name.as_str(), listed[0].scope),
            ("laptop", Scope::Write)
        );
    }

    let (status, body) = server.send(Method::DELETE, "/api/keys/laptop", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "laptop");
    let (status, _) = call(&server, Method::GET, "/api/health/detailed", &key).await;
    assert_eq!(status, 401, "revoked at once");
    let (_, list) = server.send(Method::GET, "/api/keys", None).await;
    assert_eq!(list["keys"], json!([]));
}

/// Revoking a key that does not exist is a JSON 404; a second key of the same name
/// is a 409; an unknown scope or a blank name is a 400; nothing is added by them.
#[tokio::test]
async fn key_routes_refuse_clearly() {
    let server = TestServer::spawn().await;
    let (status, body) = server.send(Method::DELETE, "/api/keys/nobody", None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "unknown_key");
    assert!(body["message"].as_str().unwrap().contains("nobody"));

    add_key(&server, "phone", "read").await;
    for (request, code, error) in [
        (
            json!({"name": "phone", "scope": "read"}),
            409,
            "duplicate_key",
        ),
        (
            json!({"name": "tablet", "scope": "root"}),
            400,
            "bad_request",
        ),
        (json!({"name": "  ", "scope": "read"}), 400, "bad_request"),
        (json!({"name": "tablet"}), 422, ""),
    ] {
        let (status, body) = server
            .send(Method::POST, "/api/keys", Some(request.clone()))
            .await;
        assert_eq!(status, code, "{request}: {body}");
        assert!(body["error"].as_str().unwrap().contains(error), "{body}");
    }
    let (_, list) = server.send(Method::GET, "/api/keys", None).await;
    assert_eq!(list["keys"].as_array().unwrap().len(), 1, "{list}");
}

/// Only an admin key reaches the key routes: read and write keys get 403, no key 401.
#[tokio::test]
async fn key_routes_need_an_admin_key() {
    let server = TestServer::spawn().await;
    let read = add_key(&server, "r", "read").await;
    let write = add_key(&server, "w", "write").await;
    for (method, path) in [
        (Method::GET, "/api/keys"),
        (Method::POST, "/api/keys"),
        (Method::DELETE, "/api/keys/r"),
    ] {
        for key in [&read, &write] {
            let (status, body) = call(&server, method.clone(), path, key).await;
            assert_eq!(status, 403, "{method} {path}: {body}");
            assert_eq!(body["error"], "forbidden", "{body}");
        }
        let response = server
            .http
            .request(method.clone(), format!("{}{path}", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{method} {path}");
    }
    let (_, list) = server.send(Method::GET, "/api/keys", None).await;
    assert_eq!(list["keys"].as_array().unwrap().len(), 2, "nothing revoked");
}

//! The dashboard at `/` in a real browser: Debian's chromium, headless, driven by
//! playwright-core (`e2e/node/dashboard.cjs`), against the real `mnemo-server` binary.
//! The test says what to do and checks what the page shows; other clients (this test,
//! over REST) change the memories underneath it.
//!
//! Needs `make test-node` (which `make test` runs). Screenshots of each view are kept in
//! `<target>/tmp/dashboard/`.

use std::path::PathBuf;
use std::time::Duration;

use mnemo_e2e::node::Script;
use mnemo_server::testing::ServerProcess;
use serde_json::{Value, json};

const ADMIN_KEY: &str = "dashboard-admin-key";
/// How long one command may take (the script polls; the test never sleeps).
const STEP_WITHIN: Duration = Duration::from_secs(120);

/// The dashboard's playwright driver (`e2e/node/dashboard.cjs`).
struct Browser(Script);

impl Browser {
    fn start() -> Self {
        Browser(Script::start("dashboard.cjs", "playwright-core"))
    }

    /// Sends `actions` to the tab `page` without waiting for the answer.
    fn send(&mut self, page: &str, actions: Value) {
        let failed = shot(&format!("failed-{page}"));
        self.0
            .send(&json!({"page": page, "actions": actions, "failShot": failed["shot"]}));
    }

    /// The answer to the last [`Browser::send`]: each action's result.
    fn answer(&self) -> Reply {
        let reply = self
            .0
            .next(STEP_WITHIN)
            .expect("the browser answered in time");
        assert!(
            reply.get("error").is_none(),
            "the browser failed: {reply:#}"
        );
        Reply(reply)
    }

    fn run(&mut self, page: &str, actions: Value) -> Reply {
        self.send(page, actions);
        self.answer()
    }

    fn finish(self) {
        self.0.finish();
    }
}

struct Reply(Value);

impl Reply {
    fn result(&self, i: usize) -> &Value {
        &self.0["ok"][i]
    }
    fn last(&self) -> &Value {
        self.0["ok"].as_array().unwrap().last().unwrap()
    }
    fn dialogs(&self) -> &Value {
        &self.0["dialogs"]
    }
    fn problems(&self) -> &Value {
        &self.0["problems"]
    }
}

fn shot(name: &str) -> Value {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    json!({"shot": dir.join(format!("{name}.png"))})
}

/// A REST client of its own: "another client" to the page.
struct Rest {
    base: String,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Rest {
    fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: reqwest::Client::new(),
            runtime: tokio::runtime::Runtime::new().unwrap(),
        }
    }

    fn call(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
        self.runtime.block_on(async {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut request = self
                .http
                .request(method, format!("{}{path}", self.base))
                .bearer_auth(key);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or(Value::Null))
        })
    }

    fn store(&self, content: &str, tags: &[&str]) -> String {
        let (status, body) = self.call(
            "POST",
            "/api/memories",
            ADMIN_KEY,
            Some(json!({"content": content, "tags": tags})),
        );
        assert!(status == 200 || status == 201, "{status} {body}");
        body["content_hash"].as_str().unwrap().to_owned()
    }
}

/// The wall clock in milliseconds, as the page's `Date.now()` reads it.
fn epoch_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// JavaScript: whether the feed shows a change of the memory `hash`.
fn in_feed(hash: &str) -> String {
    format!("document.querySelector('#feed-items li[data-hash=\"{hash}\"]') !== null")
}

/// Signs in, adds a memory, finds it by meaning, edits its tags, watches another
/// client's memory arrive in the feed and the open list (keeping the scroll position),
/// resumes the feed across a server restart without missing an event, deletes by
/// filter after a dry run, reloads the open list on `resync` after a restore, refuses a wrong key, hides write controls from a read key,
/// and lets an admin add and revoke a key; a screenshot of each view.
#[test]
fn the_dashboard_finds_changes_and_watches_the_memory() {
    let mut browser = Browser::start();
    let data = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(data.path(), &[("MCP_API_KEY", ADMIN_KEY)]);
    let url = server.url().to_owned();
    let rest = Rest::new(&url);
    // Enough memories that the list scrolls and pages.
    let seeded: Vec<Value> = (0..30)
        .map(|i| json!({"content": format!("seeded note number {i} about the garden"), "tags": ["seed"], "memory_type": "note"}))
        .collect();
    let (status, body) = rest.call(
        "POST",
        "/api/memories/batch",
        ADMIN_KEY,
        Some(json!({"memories": seeded})),
    );
    assert_eq!(status, 200, "{body}");

    // A wrong key: a clear message, still on the sign-in form.
    let reply = browser.run(
        "admin",
        json!([
            {"goto": format!("{url}/")},
            {"wait": "performance.getEntriesByName('first-contentful-paint')[0]?.startTime"},
            {"fill": "#signin-key", "value": "not-a-key"},
            {"click": "#signin-form button[type=submit]"},
            {"wait": "document.getElementById('signin-error').textContent"},
            {"eval": "document.getElementById('app').hidden"},
            shot("sign-in-wrong-key"),
        ]),
    );
    let first_paint = reply.result(1).as_f64().unwrap();
    println!("first contentful paint of the sign-in screen: {first_paint:.0} ms");
    assert!(
        reply.result(4).as_str().unwrap().contains("not accepted"),
        "{:?}",
        reply.result(4)
    );
    assert_eq!(reply.result(5), &json!(true));

    // Signing in (an admin key): the list, the live feed connected.
    let reply = browser.run(
        "admin",
        json!([
            {"fill": "#signin-key", "value": ADMIN_KEY},
            {"click": "#signin-form button[type=submit]"},
            {"wait": "!document.getElementById('app').hidden && document.querySelectorAll('#results li[data-hash]').length"},
            {"wait": "document.getElementById('feed').dataset.state === 'on'"},
            {"eval": "[...document.querySelectorAll('#nav a')].filter(a => !a.hidden).map(a => a.dataset.view)"},
            {"eval": "sessionStorage.getItem('mnemo.key') !== null && localStorage.getItem('mnemo.key') === null"},
            {"eval": "[...document.querySelectorAll('input, select, textarea')].filter(e => !e.labels?.length && !e.getAttribute('aria-label')).map(e => e.id)"},
            shot("list"),
        ]),
    );
    assert_eq!(reply.result(2), &json!(20), "a page of 20");
    assert_eq!(
        reply.result(4),
        &json!(["memories", "add", "delete", "charts", "server", "keys"])
    );
    assert_eq!(reply.result(5), &json!(true), "kept for the tab only");
    assert_eq!(reply.result(6), &json!([]), "every control has a label");

    // Add a memory through the form; the page shows it.
    let content =
        "The water heater in the basement was serviced by Ortega Plumbing; next check in March.";
    let reply = browser.run(
        "admin",
        json!([
            {"click": "#nav a[data-view=add]"},
            {"fill": "#a-content", "value": content},
            {"fill": "#a-tags", "value": "house, maintenance"},
            {"fill": "#a-type", "value": "fact"},
            {"fill": "#a-metadata", "value": "{\"source\": \"dashboard test\"}"},
            {"click": "#add-form button[type=submit]"},
            {"wait": "!document.getElementById('view-memory').hidden && document.getElementById('m-hash').textContent"},
            {"wait": "document.querySelectorAll('#neighbours li').length"},
            shot("memory"),
        ]),
    );
    let hash = reply.result(6).as_str().unwrap().to_owned();
    let (status, stored) = rest.call("GET", &format!("/api/memories/{hash}"), ADMIN_KEY, None);
    assert_eq!(status, 200);
    assert_eq!(stored["content"], content);
    assert_eq!(stored["memory_type"], "fact");
    assert_eq!(stored["metadata"]["source"], "dashboard test");

    // Find it by meaning: other words than its own.
    let reply = browser.run(
        "admin",
        json!([
            {"click": "#nav a[data-view=memories]"},
            {"fill": "#q", "value": "who repaired the boiler downstairs?"},
            {"select": "#mode", "value": "semantic"},
            {"click": "#search-form button[type=submit]"},
            {"wait": "document.querySelector('#results li .score') && document.querySelector('#results li').dataset.hash"},
            {"eval": "document.querySelector('#results li .score').textContent"},
            shot("search"),
        ]),
    );
    assert_eq!(reply.result(4), &json!(hash), "the best match");
    println!("found by meaning, score {}", reply.result(5));

    // Edit its tags.
    let reply = browser.run(
        "admin",
        json!([
            {"goto": format!("{url}/#/memory/{hash}")},
            {"wait": "document.getElementById('e-tags').value"},
            {"fill": "#e-tags", "value": "house, plumbing"},
            {"click": "#edit-form button[type=submit]"},
            {"wait": "document.getElementById('m-tags').textContent.includes('plumbing') && document.getElementById('m-tags').textContent"},
        ]),
    );
    assert_eq!(reply.result(1), &json!("house, maintenance"));
    let (_, edited) = rest.call("GET", &format!("/api/memories/{hash}"), ADMIN_KEY, None);
    assert_eq!(edited["tags"], json!(["house", "plumbing"]));
    assert_eq!(edited["metadata"]["source"], "dashboard test", "kept");

    // Another client stores while the list is open and scrolled: the memory appears in
    // the feed and at the top of the list, the reader's place is kept, a marker counts.
    browser.run(
        "admin",
        json!([
            {"goto": format!("{url}/#/memories")},
            {"fill": "#q", "value": ""},
            {"click": "#search-form button[type=submit]"},
            {"wait": "document.querySelectorAll('#results li[data-hash]').length === 20 && !document.querySelector('#results .score')"},
            {"eval": "(window.scrollTo(0, 600), window.scrollY)"},
        ]),
    );
    let anchor_js = "(() => { const li = document.elementFromPoint(300, 300)?.closest('li[data-hash]'); return li ? [li.dataset.hash, Math.round(li.getBoundingClientRect().top)] : null; })()";
    let before = browser.run("admin", json!([{"eval": anchor_js}]));
    let elsewhere = "Stored by another client: the spare key is under the blue flowerpot.";
    browser.send(
        "admin",
        json!([
            {"wait": "document.querySelector('#results li.new[data-hash]')?.dataset.hash"},
            {"wait": "document.querySelector('#feed-items li[data-kind=stored]')?.dataset.hash"},
            {"eval": "document.getElementById('new-marker').textContent"},
            {"eval": anchor_js},
            {"eval": "[Number(document.querySelector('#feed-items li[data-kind=stored]').dataset.at), Number(document.querySelector('#results li.new').dataset.at)]"},
            shot("live-list"),
        ]),
    );
    let sent = epoch_ms();
    let other = rest.store(elsewhere, &["house"]);
    let answered = epoch_ms();
    let reply = browser.answer();
    let [feed_at, list_at] = [0, 1].map(|i| reply.result(4)[i].as_f64().unwrap());
    println!(
        "a memory stored over REST took {:.0} ms to store; it showed in the feed {:.0} ms and in \
         the open list {:.0} ms after the store answered",
        answered - sent,
        feed_at - answered,
        list_at - answered
    );
    assert!(
        list_at - sent < 5000.0,
        "it reached the open list {:.0} ms after it was sent",
        list_at - sent
    );
    assert_eq!(reply.result(0), &json!(other));
    assert_eq!(reply.result(1), &json!(other));
    assert_eq!(reply.result(2), &json!("1 new ↑"));
    let (was, now) = (before.result(0), reply.result(3));
    assert_eq!(was[0], now[0], "the same memory under the reader's eyes");
    let moved = (was[1].as_i64().unwrap() - now[1].as_i64().unwrap()).abs();
    assert!(moved <= 2, "it moved {moved} px: {was} then {now}");

    // The server restarts: the feed reconnects with the last id it saw and replays
    // what was stored while it was away, nothing missed, nothing twice.
    let before_restart = rest.store("Stored just before the restart.", &["restart"]);
    browser.run("admin", json!([{"wait": in_feed(&before_restart)}]));
    server.kill();
    browser.run(
        "admin",
        json!([{"wait": "document.getElementById('feed').dataset.state === 'off'"}]),
    );
    server.relaunch();
    let after = [
        rest.store("Stored right after the restart, one.", &["restart"]),
        rest.store("Stored right after the restart, two.", &["restart"]),
    ];
    let reply = browser.run(
        "admin",
        json!([
            {"wait": in_feed(&after[1])},
            {"wait": "document.getElementById('feed').dataset.state === 'on'"},
            {"eval": "[...document.querySelectorAll('#feed-items li[data-seq]')].map(li => Number(li.dataset.seq)).reverse()"},
            {"eval": "document.getElementById('feed').dataset.resumedAt"},
            shot("feed-after-restart"),
        ]),
    );
    let seqs: Vec<i64> = serde_json::from_value(reply.result(2).clone()).unwrap();
    let expected: Vec<i64> = (seqs[0]..seqs[0] + seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "every change once, in order, no gap");
    println!(
        "after the restart the feed resumed from event {} (the stream's head then: {})",
        reply.result(3),
        seqs.last().unwrap()
    );
    for hash in &after {
        assert!(
            browser
                .run("admin", json!([{"eval": in_feed(hash)}]))
                .result(0)
                .as_bool()
                .unwrap()
        );
    }

    // Delete by filter: the dry run's count first, then the deletion.
    for i in 0..3 {
        rest.store(&format!("Temporary note {i} to be purged."), &["purge-me"]);
    }
    let reply = browser.run(
        "admin",
        json!([
            {"click": "#nav a[data-view=delete]"},
            {"fill": "#b-tags", "value": "purge-me"},
            {"click": "#bulk-preview"},
            {"wait": "!document.getElementById('bulk-delete').disabled && document.getElementById('bulk-result').textContent"},
            shot("delete-dry-run"),
            {"click": "#bulk-delete"},
            {"wait": "document.getElementById('bulk-result').textContent.startsWith('Deleted') && document.getElementById('bulk-result').textContent"},
        ]),
    );
    assert_eq!(
        reply.result(3),
        &json!("3 memories match. Nothing has been deleted yet.")
    );
    assert_eq!(reply.last(), &json!("Deleted 3 memories."));
    assert_eq!(
        reply.dialogs(),
        &json!(["Delete 3 memories? This cannot be undone."])
    );
    let (_, left) = rest.call("GET", "/api/memories?tag=purge-me", ADMIN_KEY, None);
    assert_eq!(left["total"], 0, "{left}");

    // A restore swaps the database under the open list: the feed says `resync` and the
    // view reloads, without the memory stored after the backup.
    let (status, backup) = rest.call("POST", "/api/admin/backup", ADMIN_KEY, Some(json!({})));
    assert_eq!(status, 200, "{backup}");
    let undone = rest.store(
        "Stored after the backup, undone by the restore.",
        &["restore"],
    );
    let listed = |hash: &str| {
        format!("document.querySelector('#results li[data-hash=\"{hash}\"]') !== null")
    };
    browser.run(
        "admin",
        json!([
            {"click": "#nav a[data-view=memories]"},
            {"fill": "#q", "value": ""},
            {"click": "#search-form button[type=submit]"},
            {"wait": listed(&undone)},
        ]),
    );
    browser.send(
        "admin",
        json!([
            {"wait": "document.querySelector('#feed-items li[data-kind=resync]')?.textContent"},
            // The old list held the undone memory; the reloaded one is full and does not.
            {"wait": format!("document.querySelectorAll('#results li[data-hash]').length > 0 && !({})", listed(&undone))},
            shot("after-restore"),
        ]),
    );
    let (status, restored) = rest.call(
        "POST",
        "/api/admin/restore",
        ADMIN_KEY,
        Some(json!({"backup_id": backup["backup_id"]})),
    );
    assert_eq!(status, 200, "{restored}");
    let reply = browser.answer();
    let said = reply.result(0).as_str().unwrap();
    assert!(
        said.contains(&format!(
            "restored from backup {}; the view was reloaded",
            backup["backup_id"].as_str().unwrap()
        )),
        "{said}"
    );
    let (status, _) = rest.call("GET", &format!("/api/memories/{undone}"), ADMIN_KEY, None);
    assert_eq!(status, 404, "the restore undid it on the server too");

    // Charts and the server panel.
    let reply = browser.run(
        "admin",
        json!([
            {"click": "#nav a[data-view=charts]"},
            {"wait": "document.querySelectorAll('#chart-daily rect').length"},
            {"wait": "document.querySelectorAll('#chart-tags rect').length"},
            shot("charts"),
            {"click": "#nav a[data-view=server]"},
            {"wait": "document.getElementById('server-facts').textContent.includes('Live subscribers') && document.getElementById('server-facts').innerText"},
            shot("server"),
        ]),
    );
    assert_eq!(reply.result(1), &json!(90), "a bar per day");
    let facts = reply.result(5).as_str().unwrap();
    assert!(facts.contains(env!("CARGO_PKG_VERSION")), "{facts}");
    assert!(facts.contains("all-MiniLM-L6-v2"), "{facts}");

    // An admin adds a read key, shown once; it works at once.
    let reply = browser.run(
        "admin",
        json!([
            {"click": "#nav a[data-view=keys]"},
            {"fill": "#k-name", "value": "kitchen tablet"},
            {"select": "#k-scope", "value": "read"},
            {"click": "#key-form button[type=submit]"},
            {"wait": "document.getElementById('new-key-value').value"},
            {"wait": "document.querySelector('#key-rows tr[data-name=\"kitchen tablet\"]')?.innerText"},
            shot("keys"),
        ]),
    );
    let read_key = reply.result(4).as_str().unwrap().to_owned();
    assert!(reply.result(5).as_str().unwrap().contains("read"));
    let (status, _) = rest.call("GET", "/api/health/detailed", &read_key, None);
    assert_eq!(status, 200);

    // A read key, signed in with the keyboard alone, sees everything but the write
    // controls, and is remembered as asked.
    let reply = browser.run(
        "reader",
        json!([
            {"goto": format!("{url}/")},
            {"wait": "document.activeElement.id === 'signin-key'"},
            {"fill": "#signin-key", "value": read_key},
            {"press": "Tab"},
            {"press": "Space"},
            {"press": "Tab"},
            {"press": "Enter"},
            {"wait": "document.querySelectorAll('#results li[data-hash]').length"},
            {"eval": "[...document.querySelectorAll('#nav a')].filter(a => !a.hidden).map(a => a.dataset.view)"},
            {"goto": format!("{url}/#/memory/{hash}")},
            {"wait": "document.getElementById('m-content').textContent"},
            {"eval": "[document.getElementById('edit-form').hidden, document.getElementById('scope-badge').textContent, localStorage.getItem('mnemo.key') !== null]"},
            {"viewport": [390, 844]},
            {"goto": format!("{url}/#/memories")},
            {"wait": "document.querySelectorAll('#results li[data-hash]').length"},
            {"eval": "document.documentElement.scrollWidth <= window.innerWidth"},
            shot("phone-read-key"),
        ]),
    );
    assert_eq!(reply.result(8), &json!(["memories", "charts", "server"]));
    assert_eq!(reply.result(10), &json!(content));
    assert_eq!(
        reply.result(11),
        &json!([true, "read key", true]),
        "remembered: ticked with the keyboard"
    );
    assert_eq!(reply.result(15), &json!(true), "no sideways scrolling");

    // The admin revokes it; it stops working at once.
    let reply = browser.run(
        "admin",
        json!([
            {"click": "#key-rows tr[data-name=\"kitchen tablet\"] button"},
            {"wait": "!document.querySelector('#key-rows tr[data-name=\"kitchen tablet\"]')"},
        ]),
    );
    assert_eq!(
        reply.dialogs(),
        &json!(["Revoke the key \"kitchen tablet\"? Clients using it stop working at once."])
    );
    let (status, _) = rest.call("GET", "/api/health/detailed", &read_key, None);
    assert_eq!(status, 401);
    assert_eq!(reply.problems(), &json!([]), "no script errors");
    browser.finish();
}

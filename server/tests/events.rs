//! The SSE change stream over real HTTP, parsed by a real SSE client library
//! (`eventsource-stream`), with the real model and a real SQLite file.

use std::time::{Duration, Instant};

use futures::StreamExt;
use mnemo_server::testing::{MASTER_KEY, SseStream, TestServer, next_change, next_event};
use reqwest::Method;
use serde_json::{Value, json};

/// Reads up to the greeting and returns the head sequence number it reports.
async fn connected(stream: &mut SseStream) -> i64 {
    let event = next_event(stream).await;
    assert_eq!(event.event, "connection_established");
    let data: Value = serde_json::from_str(&event.data).unwrap();
    // mcp-memory-service's greeting, plus Mnemo's head_seq.
    assert!(data["connection_id"].is_string(), "{data}");
    assert!(data["message"].is_string(), "{data}");
    assert!(data["heartbeat_interval"].is_u64(), "{data}");
    assert_iso_timestamp(&data);
    data["head_seq"].as_i64().unwrap()
}

/// `timestamp` is ISO 8601 in UTC, as mcp-memory-service sends it (its own SSE test
/// client splits it at `T`).
fn assert_iso_timestamp(data: &Value) {
    let text = data["timestamp"]
        .as_str()
        .unwrap_or_else(|| panic!("no ISO timestamp: {data}"));
    let at: jiff::Timestamp = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
    assert!(at.as_second() > 1_700_000_000, "{text}");
}

/// Store, update and delete reach a subscriber as three events with mcp-memory-service's
/// payload fields and increasing ids.
#[tokio::test]
async fn writes_arrive_as_named_events() {
    let server = TestServer::spawn().await;
    let mut stream = server.events(None).await;
    connected(&mut stream).await;

    let content = format!("{} and more", "x".repeat(120));
    let hash = server
        .store(json!({"content": &content, "tags": ["t"]}))
        .await;
    let (status, _) = server
        .send(
            Method::PUT,
            &format!("/api/memories/{hash}"),
            Some(json!({"tags": ["u"]})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = server
        .send(Method::DELETE, &format!("/api/memories/{hash}"), None)
        .await;
    assert_eq!(status, 200);

    let mut ids = Vec::new();
    for name in ["memory_stored", "memory_updated", "memory_deleted"] {
        let event = next_change(&mut stream).await;
        assert_eq!(event.event, name);
        ids.push(event.id.parse::<i64>().unwrap());
        let data: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(data["content_hash"], hash.as_str());
        assert_iso_timestamp(&data);
        assert!(data["message"].is_string(), "{data}");
        match name {
            "memory_stored" => {
                let preview = data["content_preview"].as_str().unwrap();
                assert_eq!(preview, format!("{}...", &content[..100]));
                assert_eq!(data["tags"], json!(["t"]));
                assert!(data.get("memory_type").is_some());
            }
            "memory_updated" => assert_eq!(data["tags"], json!(["u"])),
            _ => {
                assert_eq!(data["tags"], json!(["u"]));
                assert_eq!(data["success"], true);
            }
        }
    }
    assert!(ids.windows(2).all(|w| w[1] > w[0]), "{ids:?}");
}

/// A client that reconnects with its last id gets the 50 writes it missed, in order
/// and without duplicates, then live events.
#[tokio::test]
async fn reconnect_replays_what_was_missed() {
    let server = TestServer::spawn().await;
    let mut stream = server.events(None).await;
    connected(&mut stream).await;
    server
        .store(json!({"content": "before the disconnect", "tags": ["t"]}))
        .await;
    let last: i64 = next_change(&mut stream).await.id.parse().unwrap();
    drop(stream);

    for i in 0..50 {
        server
            .store(json!({"content": format!("missed write {i}"), "tags": ["t"]}))
            .await;
    }
    let mut stream = server.events(Some(last)).await;
    connected(&mut stream).await;
    let mut seen = Vec::new();
    for _ in 0..50 {
        let event = next_change(&mut stream).await;
        assert_eq!(event.event, "memory_stored");
        seen.push(event.id.parse::<i64>().unwrap());
    }
    let expected: Vec<i64> = (last + 1..=last + 50).collect();
    assert_eq!(seen, expected);

    server
        .store(json!({"content": "after the replay", "tags": ["t"]}))
        .await;
    let live = next_change(&mut stream).await;
    assert_eq!(live.id.parse::<i64>().unwrap(), last + 51);
    let data: Value = serde_json::from_str(&live.data).unwrap();
    assert_eq!(data["content_preview"], "after the replay");
}

/// `?last_event_id=` works like the header (EventSource cannot set headers).
#[tokio::test]
async fn last_event_id_in_the_query() {
    let server = TestServer::spawn().await;
    server.store(json!({"content": "one", "tags": ["t"]})).await;
    server.store(json!({"content": "two", "tags": ["t"]})).await;
    let response = server
        .request(Method::GET, "/api/events?last_event_id=1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream: SseStream = Box::pin(eventsource_stream::EventStream::new(
        response.bytes_stream(),
    ));
    connected(&mut stream).await;
    assert_eq!(next_change(&mut stream).await.id, "2");

    let (status, body) = server
        .send(Method::GET, "/api/events?last_event_id=abc", None)
        .await;
    assert_eq!(status, 400, "{body}");
}

/// 200 concurrent subscribers each receive every event of a 500-write burst.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_gets_every_event() {
    const SUBSCRIBERS: usize = 200;
    const WRITES: usize = 500;
    let server = std::sync::Arc::new(TestServer::spawn().await);
    let mut readers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut stream = server.events(None).await;
        let head = connected(&mut stream).await;
        readers.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(WRITES);
            while ids.len() < WRITES {
                let event = next_change(&mut stream).await;
                ids.push(event.id.parse::<i64>().unwrap());
            }
            (head, ids)
        }));
    }
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let server = server.clone();
            tokio::spawn(async move {
                for i in (w..WRITES).step_by(8) {
                    server
                        .store(json!({"content": format!("burst write {i}"), "tags": ["t"]}))
                        .await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    for reader in readers {
        let (head, ids) = reader.await.unwrap();
        let expected: Vec<i64> = (head + 1..=head + WRITES as i64).collect();
        assert_eq!(ids, expected);
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Stores `count` memories from 8 concurrent writers. Each carries 60 long tags, so
/// each event is about 6 KiB and a burst outgrows the kernel's socket buffers.
async fn burst(server: &std::sync::Arc<TestServer>, label: &str, count: usize) {
    // Events near the 4 KiB an event may take, so that a burst outgrows the socket
    // buffers of a subscriber that does not read.
    let tags: Vec<String> = (0..38)
        .map(|t| format!("{t:02}-{}", "tag".repeat(29)))
        .collect();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let server = server.clone();
            let label = label.to_owned();
            let tags = tags.clone();
            tokio::spawn(async move {
                for i in (w..count).step_by(8) {
                    let body =
                        json!({"content": format!("{label} write number {i}"), "tags": tags});
                    let (status, body) =
                        server.send(Method::POST, "/api/memories", Some(body)).await;
                    assert_eq!(status, 200, "{body}");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
}

/// Opens `GET /api/events?last_event_id=0` on a raw socket with a 4 KiB receive
/// buffer and never reads it: once the kernel buffers fill, the server cannot send.
async fn stalled_subscriber(server: &TestServer) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let address: std::net::SocketAddr = server.url().trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(address).await.unwrap();
    let request = format!(
        "GET /api/events?last_event_id=0 HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {MASTER_KEY}\r\n\r\n",
    );
    stalled.write_all(request.as_bytes()).await.unwrap();
    stalled
}

/// A subscriber that never reads does not make the server buffer without bound, and a
/// reading subscriber still gets every event. Memory is measured after a warm-up
/// burst, so that the embedding runtime's own arena growth is not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_costs_bounded_memory() {
    const WRITES: usize = 1200;
    let server = std::sync::Arc::new(TestServer::spawn().await);
    burst(&server, "warm-up", 200).await;
    let stalled = stalled_subscriber(&server).await;

    let mut stream = server.events(None).await;
    connected(&mut stream).await;
    let reader = tokio::spawn(async move {
        let mut count = 0;
        while count < WRITES {
            next_change(&mut stream).await;
            count += 1;
        }
        count
    });
    let before = rss_kib();
    burst(&server, "burst", WRITES).await;
    assert_eq!(reader.await.unwrap(), WRITES);
    let after = rss_kib();
    let growth_mib = after.saturating_sub(before) / 1024;
    eprintln!(
        "RSS {} MiB -> {} MiB during the burst",
        before / 1024,
        after / 1024
    );
    // The ring holds at most 1024 events whoever lags; the bound leaves room for the
    // allocator, SQLite's caches and the new rows.
    assert!(
        growth_mib < 48,
        "RSS grew by {growth_mib} MiB during the burst"
    );

    let (_, stats) = server.send(Method::GET, "/api/events/stats", None).await;
    let lags: Vec<i64> = stats["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["lag"].as_i64().unwrap())
        .collect();
    // The stalled client stopped somewhere in the burst and was sent nothing since.
    assert!(
        lags.iter().any(|&lag| lag > 200),
        "the stalled client should lag: {lags:?}"
    );
    drop(stalled);
}

/// A subscriber that makes no progress for the stall timeout is disconnected; it
/// reconnects with the last id it received and loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_is_disconnected_and_resumes() {
    use tokio::io::AsyncReadExt;
    let server = std::sync::Arc::new(TestServer::spawn_with(|c| c.sse_stall_timeout = 1.0).await);
    let mut disconnects = server.state.feed().unwrap().stalled_disconnects();
    let mut stalled = stalled_subscriber(&server).await;
    burst(&server, "stall", 800).await;

    tokio::time::timeout(Duration::from_secs(20), disconnects.changed())
        .await
        .expect("the stalled subscriber was not disconnected")
        .unwrap();
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stalled.read_to_end(&mut received))
        .await
        .expect("the server did not close the stalled connection")
        .unwrap();
    let last: i64 = String::from_utf8_lossy(&received)
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("id: "))
        .and_then(|id| id.trim().parse().ok())
        .unwrap_or(0);
    assert!(last < 800, "it had received everything: {last}");

    let mut resumed = server.events(Some(last)).await;
    connected(&mut resumed).await;
    for expected in last + 1..=800 {
        assert_eq!(
            next_change(&mut resumed).await.id.parse::<i64>().unwrap(),
            expected
        );
    }
}

/// A client whose position was pruned by retention gets `resync`, then live events.
#[tokio::test]
async fn pruned_position_gets_resync() {
    let server = TestServer::spawn_with(|c| c.event_retention_rows = 10).await;
    for i in 0..30 {
        server
            .store(json!({"content": format!("retained or not {i}"), "tags": ["t"]}))
            .await;
    }
    let mut stream = server.events(Some(2)).await;
    connected(&mut stream).await;
    let resync = next_change(&mut stream).await;
    assert_eq!(resync.event, "resync");
    assert_eq!(resync.id, "30");
    server
        .store(json!({"content": "live after resync", "tags": ["t"]}))
        .await;
    let live = next_change(&mut stream).await;
    assert_eq!(
        (live.event.as_str(), live.id.as_str()),
        ("memory_stored", "31")
    );

    // A position that is still retained replays normally.
    let mut stream = server.events(Some(25)).await;
    connected(&mut stream).await;
    assert_eq!(next_change(&mut stream).await.id, "26");
}

/// Shutdown with 50 open streams finishes well within 2 s and ends every stream.
#[tokio::test]
async fn shutdown_ends_open_streams() {
    let server = TestServer::spawn().await;
    let mut streams = Vec::new();
    for _ in 0..50 {
        let mut stream = server.events(None).await;
        connected(&mut stream).await;
        streams.push(stream);
    }
    let took = server.stop().await;
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    for mut stream in streams {
        let end = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = stream.next().await {}
        })
        .await;
        assert!(end.is_ok(), "a stream stayed open after shutdown");
    }
}

/// Heartbeats arrive at the configured interval.
#[tokio::test]
async fn heartbeat_at_the_configured_interval() {
    let server = TestServer::spawn_with(|c| c.sse_heartbeat = 1).await;
    let mut stream = server.events(None).await;
    connected(&mut stream).await;
    let first = next_event(&mut stream).await;
    let at = Instant::now();
    let second = next_event(&mut stream).await;
    let gap = at.elapsed();
    assert_eq!(
        (first.event.as_str(), second.event.as_str()),
        ("heartbeat", "heartbeat")
    );
    assert!(first.id.is_empty(), "heartbeats carry no id");
    assert!(
        gap > Duration::from_millis(800) && gap < Duration::from_secs(3),
        "{gap:?}"
    );
    let data: Value = serde_json::from_str(&second.data).unwrap();
    assert_iso_timestamp(&data);
    assert_eq!(data["active_connections"], 1, "{data}");
    assert_eq!(data["server_status"], "healthy", "{data}");
}

/// The admin stats list each subscriber with its lag; other keys get 403.
#[tokio::test]
async fn stats_show_subscribers() {
    let server = TestServer::spawn().await;
    let mut a = server.events(None).await;
    connected(&mut a).await;
    let mut b = server.events(None).await;
    connected(&mut b).await;
    server
        .store(json!({"content": "counted", "tags": ["t"]}))
        .await;
    next_change(&mut a).await;
    let (status, stats) = server.send(Method::GET, "/api/events/stats", None).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["subscribers"], 2);
    assert_eq!(stats["head_seq"], 1);
    let clients = stats["clients"].as_array().unwrap();
    assert!(
        clients
            .iter()
            .all(|c| c["connected_seconds"].is_number() && c["lag"].as_i64() <= Some(1))
    );

    let (_, reader) = mnemo_server::auth::KeyFile::new(server.dir.path())
        .add("reader", mnemo_server::auth::Scope::Read)
        .unwrap();
    let response = server
        .http
        .get(format!("{}/api/events/stats", server.url()))
        .bearer_auth(reader)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}

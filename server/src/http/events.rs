//! `GET /api/events`, the SSE change stream; `GET /api/events/stream`, the same feed
//! with unnamed events for a browser's `onmessage`; `POST /api/events/ticket`, a
//! single-use credential for either; and `GET /api/events/stats` (admin).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use mnemo_api::rest::{FeedClient, FeedStats, TicketResponse};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiQuery};
use super::openapi::Unavailable;
use super::state::AppState;
use super::ticket::TICKET_TTL;
use crate::auth::Scope;
use crate::feed::FeedItem;
use crate::memory::now_epoch;

/// The current time as every payload carries it: ISO 8601, as mcp-memory-service
/// sends it.
fn now() -> String {
    mnemo_api::rest::iso8601(now_epoch())
}

/// Most subscribers listed by the stats endpoint.
const MAX_LISTED: usize = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Replay every change after this sequence number (as `Last-Event-ID`).
    last_event_id: Option<String>,
}

/// `GET /api/events`. A reconnecting client sends `Last-Event-ID` (browsers do this
/// themselves) or `?last_event_id=`, and is replayed everything after it.
#[utoipa::path(get, path = "/api/events", tag = "events", operation_id = "events",
    params(EventsQuery, ("Last-Event-ID" = Option<String>, Header, description = "Replay every change after this sequence number")),
    responses(
        (status = 200, description = "Server-Sent Events, each named: `connection_established`, `memory_stored`, `memory_updated`, `memory_deleted`, `heartbeat`, `resync`. Changes carry `id: <seq>`", content_type = "text/event-stream", body = super::openapi::SseEvent),
        (status = 400, response = super::openapi::BadRequest),
        (status = 503, response = Unavailable),
    ))]
pub async fn stream(
    State(state): State<Arc<AppState>>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    open(&state, connect, &headers, query, Naming::Named)
}

/// `GET /api/events/stream`: the same feed, replay and bounds, but no event has an
/// `event:` line and every `data` names its type, so a browser's
/// `EventSource.onmessage` sees them all (it only fires for unnamed events). The seed
/// deployment guide's web app listens this way.
#[utoipa::path(get, path = "/api/events/stream", tag = "events", operation_id = "events_unnamed",
    params(EventsQuery, ("Last-Event-ID" = Option<String>, Header, description = "Replay every change after this sequence number")),
    responses(
        (status = 200, description = "The same events without `event:` lines; each `data` carries its `type` first", content_type = "text/event-stream", body = super::openapi::SseEvent),
        (status = 400, response = super::openapi::BadRequest),
        (status = 503, response = Unavailable),
    ))]
pub async fn stream_unnamed(
    State(state): State<Arc<AppState>>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    open(&state, connect, &headers, query, Naming::Unnamed)
}

/// `POST /api/events/ticket`: a single-use ticket for `?ticket=` on either stream,
/// with the scope of the key that asked, valid for 60 s. mcp-memory-service's body.
/// A ticket cannot buy another: this route takes no credential in its URL.
#[utoipa::path(post, path = "/api/events/ticket", tag = "events", operation_id = "events_ticket",
    responses(
        (status = 200, description = "A ticket for `?ticket=`", body = TicketResponse),
    ))]
pub async fn ticket(
    State(state): State<Arc<AppState>>,
    Extension(scope): Extension<Scope>,
) -> Result<Json<TicketResponse>, ApiError> {
    let ticket = state.tickets.issue(scope).map_err(|e| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_tickets",
            e.to_string(),
        )
    })?;
    Ok(Json(TicketResponse {
        ticket,
        expires_in_seconds: TICKET_TTL.as_secs_f64(),
        param_name: "ticket".into(),
    }))
}

/// How the stream names its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Naming {
    /// `event: memory_stored`, as `/api/events` and mcp-memory-service send them.
    Named,
    /// No `event:` line; the type goes into `data` as `"type"`.
    Unnamed,
}

fn open(
    state: &AppState,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: &HeaderMap,
    query: EventsQuery,
    naming: Naming,
) -> Result<Response, ApiError> {
    let feed = state.feed()?;
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(query.last_event_id);
    let last = match last.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(text.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!("last event id {text:?} is not a sequence number"))
        })?),
    };
    let events = frames(feed.subscribe(last, connect.map(|c| c.0.0)), naming);
    let mut response = Sse::new(events).into_response();
    let headers = response.headers_mut();
    // Proxies must neither cache nor buffer a live stream.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// Feed items as SSE frames. Changes carry `id: <seq>`, so a browser's reconnect
/// resumes after the last one it saw; heartbeats and the greeting carry no id.
fn frames(
    items: impl Stream<Item = Result<FeedItem, crate::storage::StorageError>> + Send + 'static,
    naming: Naming,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    items
        .take_while(|item| {
            if let Err(e) = item {
                tracing::error!(error = %e, "the change stream failed; closing it so the client reconnects");
            }
            std::future::ready(item.is_ok())
        })
        .filter_map(|item| std::future::ready(item.ok()))
        .map(move |item| {
            let (kind, data, id) = match item {
                FeedItem::Connected {
                    head,
                    subscriber,
                    heartbeat,
                } => (
                    "connection_established",
                    json!({
                        "timestamp": now(),
                        "connection_id": subscriber.to_string(),
                        "message": "Connected to MCP Memory Service SSE stream",
                        "heartbeat_interval": heartbeat.as_secs(),
                        "head_seq": head,
                    })
                    .to_string(),
                    None,
                ),
                FeedItem::Change(row) => {
                    let data = match naming {
                        Naming::Named => row.payload.clone(),
                        Naming::Unnamed => typed(&row.kind, &row.payload),
                    };
                    let event = frame(naming, &row.kind, data).id(row.seq.to_string());
                    return Ok(event);
                }
                FeedItem::Resync { head } => (
                    mnemo_api::events::RESYNC,
                    json!({
                        "timestamp": now(),
                        "head_seq": head,
                        "message": "the events after your last id are no longer kept; reload your view",
                    })
                    .to_string(),
                    Some(head),
                ),
                FeedItem::Heartbeat { subscribers } => (
                    "heartbeat",
                    json!({
                        "timestamp": now(),
                        "active_connections": subscribers,
                        "server_status": "healthy",
                    })
                    .to_string(),
                    None,
                ),
            };
            let data = match naming {
                Naming::Named => data,
                Naming::Unnamed => typed(kind, &data),
            };
            let event = frame(naming, kind, data);
            Ok(match id {
                Some(id) => event.id(id.to_string()),
                None => event,
            })
        })
}

/// An event of type `kind` with `data`, named or not.
fn frame(naming: Naming, kind: &str, data: String) -> Event {
    let event = Event::default().data(data);
    match naming {
        Naming::Named => event.event(kind),
        Naming::Unnamed => event,
    }
}

/// `payload` (a JSON object's text) with `"type": kind` first. Spliced into the text
/// rather than parsed and serialised again: payloads are written once on the write
/// path and sent as they are to every subscriber. No payload has a `type` of its
/// own.
fn typed(kind: &str, payload: &str) -> String {
    let kind = Value::from(kind).to_string();
    match payload.trim_start().strip_prefix('{') {
        Some(rest) if rest.trim_start().starts_with('}') => format!("{{\"type\":{kind}}}"),
        Some(rest) => format!("{{\"type\":{kind},{rest}"),
        // Not an object (never written so); sent unchanged rather than mangled.
        None => payload.to_owned(),
    }
}

/// `GET /api/events/stats` (admin): subscribers, and per subscriber its lag.
#[utoipa::path(get, path = "/api/events/stats", tag = "events", operation_id = "events_stats",
    responses(
        (status = 200, description = "Subscribers and their lag", body = FeedStats),
        (status = 503, response = Unavailable),
    ))]
pub async fn stats(State(state): State<Arc<AppState>>) -> Result<Json<FeedStats>, ApiError> {
    let feed = state.feed()?;
    let head = feed
        .head()
        .await
        .map_err(|e| ApiError::from(crate::service::ServiceError::from(e)))?;
    let subscribers = feed.subscribers();
    let clients = subscribers
        .iter()
        .take(MAX_LISTED)
        .map(|s| {
            let delivered = s.delivered.load(std::sync::atomic::Ordering::Relaxed);
            FeedClient {
                id: s.id,
                client: s.peer.map(|p| p.to_string()),
                connected_seconds: s.connected.elapsed().as_secs_f64(),
                last_event_id: delivered,
                lag: (head - delivered).max(0),
            }
        })
        .collect();
    Ok(Json(FeedStats {
        subscribers: subscribers.len(),
        stalled_disconnects: *feed.stalled_disconnects().borrow(),
        head_seq: head,
        clients,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The type goes first into any object payload, empty or not.
    #[test]
    fn typed_payloads() {
        let payload = json!({"content_hash": "abc", "tags": ["a"]}).to_string();
        let data: Value = serde_json::from_str(&typed("memory_stored", &payload)).unwrap();
        assert_eq!(data["type"], "memory_stored");
        assert_eq!(data["content_hash"], "abc");
        assert_eq!(typed("heartbeat", "{}"), r#"{"type":"heartbeat"}"#);
        assert_eq!(typed("odd", "[1]"), "[1]");
    }
}

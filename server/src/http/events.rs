//! `GET /api/events`, the SSE change stream, and `GET /api/events/stats` (admin).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiQuery};
use super::state::AppState;
use crate::feed::FeedItem;
use crate::memory::now_epoch;

/// The current time as every payload carries it: ISO 8601, as mcp-memory-service
/// sends it.
fn now() -> String {
    mnemo_api::rest::iso8601(now_epoch())
}

/// Most subscribers listed by the stats endpoint.
const MAX_LISTED: usize = 1000;

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    last_event_id: Option<String>,
}

/// `GET /api/events`. A reconnecting client sends `Last-Event-ID` (browsers do this
/// themselves) or `?last_event_id=`, and is replayed everything after it.
pub async fn stream(
    State(state): State<Arc<AppState>>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<EventsQuery>,
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
    let events = frames(feed.subscribe(last, connect.map(|c| c.0.0)));
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
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    items
        .take_while(|item| {
            if let Err(e) = item {
                tracing::error!(error = %e, "the change stream failed; closing it so the client reconnects");
            }
            std::future::ready(item.is_ok())
        })
        .filter_map(|item| std::future::ready(item.ok()))
        .map(|item| {
            let event = match item {
                FeedItem::Connected {
                    head,
                    subscriber,
                    heartbeat,
                } => Event::default().event("connection_established").data(
                    json!({
                        "timestamp": now(),
                        "connection_id": subscriber.to_string(),
                        "message": "Connected to MCP Memory Service SSE stream",
                        "heartbeat_interval": heartbeat.as_secs(),
                        "head_seq": head,
                    })
                    .to_string(),
                ),
                FeedItem::Change(row) => Event::default()
                    .id(row.seq.to_string())
                    .event(row.kind.clone())
                    .data(&row.payload),
                FeedItem::Resync { head } => Event::default().id(head.to_string()).event("resync").data(
                    json!({
                        "timestamp": now(),
                        "head_seq": head,
                        "message": "the events after your last id are no longer kept; reload your view",
                    })
                    .to_string(),
                ),
                FeedItem::Heartbeat { subscribers } => Event::default().event("heartbeat").data(
                    json!({
                        "timestamp": now(),
                        "active_connections": subscribers,
                        "server_status": "healthy",
                    })
                    .to_string(),
                ),
            };
            Ok(event)
        })
}

/// `GET /api/events/stats` (admin): subscribers, and per subscriber its lag.
pub async fn stats(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let feed = state.feed()?;
    let head = feed
        .head()
        .await
        .map_err(|e| ApiError::from(crate::service::ServiceError::from(e)))?;
    let subscribers = feed.subscribers();
    let clients: Vec<Value> = subscribers
        .iter()
        .take(MAX_LISTED)
        .map(|s| {
            let delivered = s.delivered.load(std::sync::atomic::Ordering::Relaxed);
            json!({
                "id": s.id,
                "client": s.peer.map(|p| p.to_string()),
                "connected_seconds": s.connected.elapsed().as_secs_f64(),
                "last_event_id": delivered,
                "lag": (head - delivered).max(0),
            })
        })
        .collect();
    Ok(Json(json!({
        "subscribers": subscribers.len(),
        "stalled_disconnects": *feed.stalled_disconnects().borrow(),
        "head_seq": head,
        "clients": clients,
    })))
}

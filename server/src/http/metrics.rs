//! `GET /metrics`, the Prometheus exposition of `crate::telemetry`'s recorder, and the
//! middleware that counts and times every request by its route.
//!
//! The route label is the template the router matched (`/api/memories/{hash}`), never
//! the path: a label per content hash would grow without bound. A request no route
//! matched gets one fixed label, and an unknown method another.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::state::AppState;
use crate::telemetry;

/// The content type of the text exposition format, as Prometheus asks for it.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`: sets what is read at scrape time (the store's size, the change
/// feed's subscribers and lag, the process's figures), then renders every metric.
/// While the model and database load, the rest is rendered without them.
#[utoipa::path(get, path = "/metrics", tag = "metrics", operation_id = "metrics",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
pub async fn scrape(State(state): State<Arc<AppState>>) -> Response {
    if let Some(service) = state.service.get() {
        crate::storage::observe(service.storage().as_ref()).await;
    }
    if let Some(feed) = state.feed.get() {
        feed.observe().await;
    }
    let body = telemetry::render();
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(EXPOSITION))],
        body,
    )
        .into_response()
}

/// Middleware: counts each request and records its latency to the response head, by
/// method, route template and status. It wraps every other layer, so refusals (401,
/// 413, 429) and errors count too.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(telemetry::UNMATCHED_ROUTE, MatchedPath::as_str)
        .to_owned();
    let response = next.run(request).await;
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!(telemetry::HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(telemetry::HTTP_DURATION, &labels).record(started.elapsed());
    response
}

/// The method as a label: the standard ones by name, anything else as `other`, since a
/// client may send any token as a method.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the standard methods name a series; an invented one cannot add series.
    #[test]
    fn methods_are_a_fixed_set() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let invented = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&invented), "other");
        assert_eq!(method_label(&Method::CONNECT), "other");
    }
}

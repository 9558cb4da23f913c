//! `/mcp`: the tool registry of `mnemo-mcp`, served with rmcp's streamable HTTP
//! transport behind the same API-key check as every REST route.
//!
//! Two rmcp services answer there. MCP clients get the streamable HTTP transport as
//! rmcp serves it: `initialize` opens a session, and requests in a session (or in the
//! stateless 2026-07-28 era) go on as before. Plain JSON-RPC, as mcp-memory-service's
//! documentation checks a server with `curl -d '{"jsonrpc":"2.0","method":
//! "tools/list","id":1}'`, has neither a session nor an `Accept` that names
//! `text/event-stream`; rmcp would refuse it (406, then 400 for the missing
//! session), so it goes to a second service, stateless and answering in JSON.
//!
//! The tools call the same operations as the REST handlers, so a tool call and the
//! REST request it mirrors validate, store and emit change events the same way: a
//! memory stored over `/mcp` reaches SSE subscribers like any other write. The caller
//! (the key's scope, `X-Agent-ID`) comes from the HTTP request that carried the call.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use mnemo_api::rest::{
    DeleteMatchingRequest, DeleteMatchingResponse, DetailedHealth, ListQuery, ListResponse, Memory,
    MutationResponse, SearchRequest, SearchResponse, StoreRequest, TagsResponse, UpdateRequest,
};
use mnemo_mcp::ops::{MemoryOps, OpsError, OpsErrorKind};
use mnemo_mcp::tools::Registry;
use rmcp::model::Extensions;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::error::ApiError;
use super::state::AppState;
use crate::auth::Scope;
use crate::config::Config;
use crate::operations::{Caller, OpError, catalog, health, memories, search};
use crate::service::MemoryService;

/// The memory operations for MCP tools, over the server's own operations layer.
pub struct ServerOps(Arc<AppState>);

impl ServerOps {
    /// The memory service, or "unavailable" while it loads.
    fn service(&self) -> Result<&MemoryService, OpsError> {
        Ok(self.0.service()?)
    }
}

impl From<ApiError> for OpsError {
    fn from(error: ApiError) -> Self {
        OpsError {
            kind: OpsErrorKind::for_status(error.status().as_u16()),
            content_hash: error.duplicate_of().map(str::to_owned),
            message: error.message().to_owned(),
        }
    }
}

impl From<OpError> for OpsError {
    fn from(error: OpError) -> Self {
        ApiError::from(error).into()
    }
}

impl MemoryOps for ServerOps {
    type Caller = Caller;

    /// Over HTTP, rmcp hands the tool the request's parts, where the auth middleware
    /// left the scope of the key that was presented.
    fn caller(&self, extensions: &Extensions) -> Result<Caller, OpsError> {
        extensions
            .get::<Parts>()
            .and_then(Caller::from_parts)
            .ok_or_else(|| {
                OpsError::new(
                    OpsErrorKind::Unauthorized,
                    "the request carried no authenticated key",
                )
            })
    }

    /// Refused before the tool runs, with the scope rule the operations apply.
    fn authorize_write(&self, caller: &Caller) -> Result<(), OpsError> {
        Ok(caller.require(Scope::Write)?)
    }

    async fn store(
        &self,
        caller: &Caller,
        request: StoreRequest,
    ) -> Result<MutationResponse, OpsError> {
        Ok(memories::store(self.service()?, caller, request).await?)
    }

    async fn search(
        &self,
        _caller: &Caller,
        request: SearchRequest,
    ) -> Result<SearchResponse, OpsError> {
        Ok(search::search(self.service()?, request).await?)
    }

    async fn list(&self, _caller: &Caller, query: ListQuery) -> Result<ListResponse, OpsError> {
        Ok(memories::list(self.service()?, query).await?)
    }

    async fn get(&self, _caller: &Caller, content_hash: String) -> Result<Memory, OpsError> {
        Ok(memories::get(self.service()?, &content_hash).await?)
    }

    async fn update(
        &self,
        caller: &Caller,
        content_hash: String,
        request: UpdateRequest,
    ) -> Result<MutationResponse, OpsError> {
        Ok(memories::update(self.service()?, caller, &content_hash, request).await?)
    }

    async fn delete(
        &self,
        caller: &Caller,
        content_hash: String,
    ) -> Result<MutationResponse, OpsError> {
        Ok(memories::delete(self.service()?, caller, &content_hash).await?)
    }

    async fn delete_matching(
        &self,
        caller: &Caller,
        request: DeleteMatchingRequest,
    ) -> Result<DeleteMatchingResponse, OpsError> {
        Ok(memories::delete_matching(self.service()?, caller, request).await?)
    }

    async fn tags(&self, _caller: &Caller) -> Result<TagsResponse, OpsError> {
        Ok(catalog::tags(self.service()?).await?)
    }

    async fn health(&self, _caller: &Caller) -> Result<DetailedHealth, OpsError> {
        Ok(health::detailed(self.service()?, self.0.facts()).await?)
    }
}

/// The `/mcp` service: both protocol eras on one endpoint (legacy sessions, and
/// stateless 2026-07-28 requests), plus plain JSON-RPC, ended by `shutdown`.
pub fn service(state: Arc<AppState>, config: &Config, shutdown: CancellationToken) -> McpService {
    let registry = Registry::new(Arc::new(ServerOps(state)), env!("CARGO_PKG_VERSION"));
    let mut http = StreamableHttpServerConfig::default()
        .with_cancellation_token(shutdown)
        .with_max_request_body_bytes(config.max_body_bytes);
    // rmcp refuses Host headers other than loopback names, against DNS rebinding
    // of a keyless local server. Off loopback the server is reached by whatever
    // name or address the LAN uses, and every request needs the API key anyway.
    if !config.host.is_loopback() {
        http = http.disable_allowed_hosts();
    }
    let plain = http
        .clone()
        .with_legacy_session_mode(false)
        .with_json_response(true);
    let sessions = {
        let registry = registry.clone();
        StreamableHttpService::new(
            move || Ok(registry.clone()),
            Arc::new(LocalSessionManager::default()),
            http,
        )
    };
    let plain = StreamableHttpService::new(
        move || Ok(registry.clone()),
        Arc::new(LocalSessionManager::default()),
        plain,
    );
    McpService {
        sessions,
        plain,
        max_body_bytes: config.max_body_bytes,
    }
}

type Rmcp = StreamableHttpService<Registry<ServerOps>, LocalSessionManager>;

/// `/mcp`: sends each request to the rmcp service that can answer it.
#[derive(Clone)]
pub struct McpService {
    /// Streamable HTTP with sessions, for MCP clients.
    sessions: Rmcp,
    /// Stateless, answering in JSON, for plain JSON-RPC and for requests without a
    /// session that rmcp's session mode would refuse.
    plain: Rmcp,
    max_body_bytes: usize,
}

impl McpService {
    async fn route(self, request: Request) -> Response {
        let headers = request.headers();
        let accepts = Accepts::of(headers);
        if request.method() != Method::POST
            || headers.contains_key("mcp-session-id")
            || !(accepts.event_stream || accepts.json)
        {
            // Sessions, their streams and their end; and an `Accept` that names
            // neither JSON nor SSE, which rmcp refuses with its own message.
            return self.sessions.handle(request).await.into_response();
        }
        let (mut parts, body) = request.into_parts();
        // Read here, to see what the request is, and handed on: rmcp reads the whole
        // body anyway, and the limit is the same.
        let body = match axum::body::to_bytes(body, self.max_body_bytes).await {
            Ok(body) => body,
            Err(_) => {
                return ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the request body is over {} bytes", self.max_body_bytes),
                )
                .into_response();
            }
        };
        let shape = Shape::of(&body);
        let to_sessions = accepts.event_stream && (shape.initialize || shape.per_request_version);
        if !to_sessions && !accepts.event_stream {
            // rmcp wants both named; this client takes JSON, which is what the
            // stateless service answers unless a tool streams notifications.
            parts.headers.insert(
                header::ACCEPT,
                HeaderValue::from_static("application/json, text/event-stream"),
            );
        }
        let request = Request::from_parts(parts, Body::from(body));
        let service = if to_sessions {
            self.sessions
        } else {
            self.plain
        };
        service.handle(request).await.into_response()
    }
}

impl tower::Service<Request> for McpService {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let service = self.clone();
        Box::pin(async move { Ok(service.route(request).await) })
    }
}

/// What a request's `Accept` admits. No `Accept` at all admits anything (RFC 9110).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Accepts {
    json: bool,
    event_stream: bool,
}

impl Accepts {
    fn of(headers: &HeaderMap) -> Self {
        let mut accepts = Accepts {
            json: headers.get(header::ACCEPT).is_none(),
            event_stream: false,
        };
        let ranges = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','));
        for range in ranges {
            let mut parameters = range.split(';');
            let essence = parameters.next().unwrap_or("").trim().to_ascii_lowercase();
            let refused = parameters.any(|p| {
                p.split_once('=').is_some_and(|(name, value)| {
                    name.trim().eq_ignore_ascii_case("q")
                        && value.trim().parse::<f32>().is_ok_and(|q| q == 0.0)
                })
            });
            if refused {
                continue;
            }
            match essence.as_str() {
                "text/event-stream" => accepts.event_stream = true,
                "application/json" | "application/*" | "*/*" => accepts.json = true,
                _ => {}
            }
        }
        accepts
    }
}

/// What the routing needs to know of a JSON-RPC body.
#[derive(Debug, Default, PartialEq, Eq)]
struct Shape {
    /// An `initialize` request, which opens a session.
    initialize: bool,
    /// Carries `_meta["io.modelcontextprotocol/protocolVersion"]`: a 2026-07-28
    /// request, which rmcp already serves without a session.
    per_request_version: bool,
}

impl Shape {
    /// Anything unreadable is neither; the stateless service then answers with the
    /// JSON-RPC error.
    fn of(body: &[u8]) -> Self {
        let Ok(message) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Shape::default();
        };
        Shape {
            initialize: message["method"] == "initialize",
            per_request_version: message["params"]["_meta"]
                .get("io.modelcontextprotocol/protocolVersion")
                .is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(values: &[&str]) -> Accepts {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        }
        Accepts::of(&headers)
    }

    /// curl's and httpx's `*/*`, a bare `application/json` and no `Accept` at all are
    /// plain JSON clients; MCP clients name both types.
    #[test]
    fn what_a_client_accepts() {
        let json = Accepts {
            json: true,
            event_stream: false,
        };
        assert_eq!(accepts(&[]), json);
        assert_eq!(accepts(&["*/*"]), json);
        assert_eq!(accepts(&["Application/JSON; charset=utf-8"]), json);
        assert_eq!(
            accepts(&["application/json, text/event-stream"]),
            Accepts {
                json: true,
                event_stream: true
            }
        );
        assert_eq!(
            accepts(&["text/event-stream;q=0, application/*;q=0.5"]),
            json
        );
        assert_eq!(
            accepts(&["text/html"]),
            Accepts {
                json: false,
                event_stream: false
            }
        );
    }

    /// The body tells an `initialize` and a 2026-07-28 request from the rest.
    #[test]
    fn what_a_body_is() {
        let shape = |body: &str| Shape::of(body.as_bytes());
        assert!(shape(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#).initialize);
        let meta = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        assert!(shape(meta).per_request_version);
        assert_eq!(
            shape(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
            Shape::default()
        );
        assert_eq!(shape("not json"), Shape::default());
    }
}

// The OpenAPI description of `/mcp` (`http/openapi.rs`). `McpService` serves the
// route; these functions exist only to carry their `#[utoipa::path]`.

/// `POST /mcp`: one JSON-RPC message (request, notification or response) of the
/// Model Context Protocol. An `initialize` (or a `2026-07-28` request) from a client
/// that accepts `text/event-stream` is answered as streamable HTTP, with a session
/// in `Mcp-Session-Id`; anything else is answered in JSON. Tools that write need
/// the write scope; a key that may only read is listed only the reading tools.
#[utoipa::path(post, path = "/mcp", tag = "mcp", operation_id = "mcp_post",
    params(
        ("Mcp-Session-Id" = Option<String>, Header, description = "The session, after `initialize`"),
        ("MCP-Protocol-Version" = Option<String>, Header, description = "The protocol version in use"),
    ),
    request_body(content = super::openapi::JsonRpcMessage, content_type = "application/json", description = "A JSON-RPC 2.0 message"),
    responses(
        (status = 200, description = "The JSON-RPC answer, or a stream of messages ending with it",
            content(
                (Object = "application/json"),
                (super::openapi::SseEvent = "text/event-stream"),
            )),
        (status = 202, description = "A notification or response was accepted"),
        (status = 400, response = super::openapi::BadRequest),
        (status = 404, description = "No such session (it ended, or the server restarted)", body = mnemo_api::error::ErrorBody),
        (status = 406, description = "`Accept` names neither `application/json` nor `text/event-stream`", body = mnemo_api::error::ErrorBody),
        (status = 413, response = super::openapi::PayloadTooLarge),
        (status = 415, description = "The body is not `application/json`", body = mnemo_api::error::ErrorBody),
    ))]
#[allow(
    dead_code,
    reason = "carries the OpenAPI description of a route McpService serves"
)]
pub fn post() {}

/// `GET /mcp`: the stream of a session's server-to-client messages.
#[utoipa::path(get, path = "/mcp", tag = "mcp", operation_id = "mcp_get",
    params(
        ("Mcp-Session-Id" = String, Header, description = "The session whose stream to open"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume the stream after this event"),
    ),
    responses(
        (status = 200, description = "The session's messages", content_type = "text/event-stream", body = super::openapi::SseEvent),
        (status = 400, response = super::openapi::BadRequest),
        (status = 404, description = "No such session", body = mnemo_api::error::ErrorBody),
        (status = 405, description = "The stateless service has no streams to open", body = mnemo_api::error::ErrorBody),
        (status = 406, description = "`Accept` does not name `text/event-stream`", body = mnemo_api::error::ErrorBody),
    ))]
#[allow(
    dead_code,
    reason = "carries the OpenAPI description of a route McpService serves"
)]
pub fn get() {}

/// `DELETE /mcp`: ends a session.
#[utoipa::path(delete, path = "/mcp", tag = "mcp", operation_id = "mcp_delete",
    params(
        ("Mcp-Session-Id" = String, Header, description = "The session to end"),
    ),
    responses(
        (status = 200, description = "The session ended"),
        (status = 202, description = "The session ended"),
        (status = 204, description = "The session ended"),
        (status = 400, response = super::openapi::BadRequest),
        (status = 404, description = "No such session", body = mnemo_api::error::ErrorBody),
    ))]
#[allow(
    dead_code,
    reason = "carries the OpenAPI description of a route McpService serves"
)]
pub fn delete() {}

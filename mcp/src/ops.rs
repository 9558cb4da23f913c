//! The memory operations both MCP paths serve, as one trait.
//!
//! The server implements [`MemoryOps`] over its operations layer, and the bridge
//! implements it as a REST client, so the tool registry in [`crate::tools`] cannot
//! tell them apart. The requests and answers are the REST bodies of [`mnemo_api::rest`],
//! which keeps the two implementations honest: whatever the bridge can say, the REST
//! API can carry.

use std::future::Future;

use rmcp::model::Extensions;
use serde_json::Value;
use thiserror::Error;

use mnemo_api::error::ErrorBody;
use mnemo_api::rest::{
    DeleteMatchingRequest, DeleteMatchingResponse, DetailedHealth, ListQuery, ListResponse, Memory,
    MutationResponse, SearchRequest, SearchResponse, StoreRequest, TagsResponse, UpdateRequest,
};

/// What a memory operation can do. Every method mirrors one REST endpoint.
///
/// The futures are `Send` because MCP requests are served on a multi-threaded
/// runtime; implementors may still write `async fn`.
pub trait MemoryOps: Send + Sync + 'static {
    /// Who calls, as this implementation needs to know it. The server reads the key's
    /// scope and the agent from the HTTP request; the bridge needs nothing, because
    /// its server checks the key on every REST call.
    type Caller: Send + Sync + 'static;

    /// Reads the caller from an MCP request's extensions (over HTTP they hold the
    /// request's parts). Called once per tool call, before the tool runs.
    fn caller(&self, extensions: &Extensions) -> Result<Self::Caller, OpsError>;

    /// Refuses a write the caller may not make, before the tool does anything. The
    /// default allows everything, which suits the bridge.
    fn authorize_write(&self, caller: &Self::Caller) -> Result<(), OpsError> {
        let _ = caller;
        Ok(())
    }

    /// `POST /api/memories`.
    fn store(
        &self,
        caller: &Self::Caller,
        request: StoreRequest,
    ) -> impl Future<Output = Result<MutationResponse, OpsError>> + Send;
    /// `POST /api/search`.
    fn search(
        &self,
        caller: &Self::Caller,
        request: SearchRequest,
    ) -> impl Future<Output = Result<SearchResponse, OpsError>> + Send;
    /// `GET /api/memories`.
    fn list(
        &self,
        caller: &Self::Caller,
        query: ListQuery,
    ) -> impl Future<Output = Result<ListResponse, OpsError>> + Send;
    /// `GET /api/memories/{hash}`.
    fn get(
        &self,
        caller: &Self::Caller,
        content_hash: String,
    ) -> impl Future<Output = Result<Memory, OpsError>> + Send;
    /// `PUT /api/memories/{hash}`.
    fn update(
        &self,
        caller: &Self::Caller,
        content_hash: String,
        request: UpdateRequest,
    ) -> impl Future<Output = Result<MutationResponse, OpsError>> + Send;
    /// `DELETE /api/memories/{hash}`.
    fn delete(
        &self,
        caller: &Self::Caller,
        content_hash: String,
    ) -> impl Future<Output = Result<MutationResponse, OpsError>> + Send;
    /// `POST /api/memories/delete`.
    fn delete_matching(
        &self,
        caller: &Self::Caller,
        request: DeleteMatchingRequest,
    ) -> impl Future<Output = Result<DeleteMatchingResponse, OpsError>> + Send;
    /// `GET /api/tags`.
    fn tags(
        &self,
        caller: &Self::Caller,
    ) -> impl Future<Output = Result<TagsResponse, OpsError>> + Send;
    /// `GET /api/health/detailed`.
    fn health(
        &self,
        caller: &Self::Caller,
    ) -> impl Future<Output = Result<DetailedHealth, OpsError>> + Send;
}

/// Why an operation failed, in terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpsErrorKind {
    /// The request itself is wrong; retrying it unchanged fails again.
    Invalid,
    NotFound,
    /// The content is already stored, under [`OpsError::content_hash`].
    Duplicate,
    /// No key, or a key the server does not know.
    Unauthorized,
    /// A valid key whose scope does not allow this.
    Forbidden,
    /// The server is loading, rate limiting or overloaded; retrying later may work.
    Unavailable,
    /// No server answered (not found, refused, timed out, or its certificate did
    /// not match the pin).
    Unreachable,
    /// The server failed; its log has the details.
    Internal,
    /// A setting of the program serving the tools (the bridge's environment block in
    /// the client's configuration) is wrong. No argument can fix it; the user must.
    Misconfigured,
}

/// A failed operation: its kind and a message for the person (or model) reading it.
#[derive(Debug, Clone, Error, PartialEq)]
#[error("{message}")]
pub struct OpsError {
    pub kind: OpsErrorKind,
    pub message: String,
    /// For [`OpsErrorKind::Duplicate`]: the memory that already holds the content.
    pub content_hash: Option<String>,
}

impl OpsErrorKind {
    /// The kind of a failed REST answer's status: how the bridge reads the server's
    /// answers and how the server's own tools read its handlers' errors.
    pub fn for_status(status: u16) -> Self {
        match status {
            400 | 405 | 413 | 415 | 422 => Self::Invalid,
            401 => Self::Unauthorized,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            409 => Self::Duplicate,
            429 | 502..=504 => Self::Unavailable,
            _ => Self::Internal,
        }
    }
}

impl OpsError {
    pub fn new(kind: OpsErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            content_hash: None,
        }
    }

    /// Reads a REST error answer: its status and its JSON body (the JSON error
    /// body, or mcp-memory-service's envelope for a duplicate).
    pub fn from_http(status: u16, body: &[u8]) -> Self {
        let kind = OpsErrorKind::for_status(status);
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let message = serde_json::from_slice::<ErrorBody>(body)
            .map(|e| e.message)
            .ok()
            .or_else(|| {
                let m = json.as_ref()?.get("message")?.as_str()?;
                Some(m.to_owned())
            })
            .unwrap_or_else(|| format!("the server answered HTTP {status}"));
        let content_hash = json
            .as_ref()
            .and_then(|j| j.get("content_hash"))
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty())
            .map(str::to_owned);
        Self {
            kind,
            message,
            content_hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_http_errors() {
        let body = br#"{"error":"not_found","message":"no memory has content hash x","detail":"no memory has content hash x"}"#;
        let e = OpsError::from_http(404, body);
        assert_eq!(e.kind, OpsErrorKind::NotFound);
        assert_eq!(e.message, "no memory has content hash x");

        let duplicate = br#"{"success":false,"message":"a memory with the same content already exists","content_hash":"abc","error":"duplicate","detail":"-"}"#;
        let e = OpsError::from_http(409, duplicate);
        assert_eq!(e.kind, OpsErrorKind::Duplicate);
        assert_eq!(e.content_hash.as_deref(), Some("abc"));

        let e = OpsError::from_http(502, b"<html>bad gateway</html>");
        assert_eq!(e.kind, OpsErrorKind::Unavailable);
        assert_eq!(e.message, "the server answered HTTP 502");
    }
}

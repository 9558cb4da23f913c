//! `/mcp`: the tool registry of `mnemo-mcp`, served with rmcp's streamable HTTP
//! transport behind the same API-key check as every REST route.
//!
//! The tools call the same operations as the REST handlers, so a tool call and the
//! REST request it mirrors validate, store and emit change events the same way: a
//! memory stored over `/mcp` reaches SSE subscribers like any other write. The caller
//! (the key's scope, `X-Agent-ID`) comes from the HTTP request that carried the call.

use std::sync::Arc;

use axum::http::request::Parts;
use mnemo_api::rest::{
    DeleteMatchingRequest, DeleteMatchingResponse, DetailedHealth, ListQuery, ListResponse, Memory,
    MutationResponse, SearchRequest, SearchResponse, StoreRequest, UpdateRequest,
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
use crate::operations::{Caller, OpError, health, memories, search};
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

    async fn health(&self, _caller: &Caller) -> Result<DetailedHealth, OpsError> {
        Ok(health::detailed(self.service()?, self.0.facts()).await?)
    }
}

/// The `/mcp` service: both protocol eras on one endpoint (legacy sessions, and
/// stateless 2026-07-28 requests), ended by `shutdown`.
pub fn service(
    state: Arc<AppState>,
    config: &Config,
    shutdown: CancellationToken,
) -> StreamableHttpService<Registry<ServerOps>, LocalSessionManager> {
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
    StreamableHttpService::new(
        move || Ok(registry.clone()),
        Arc::new(LocalSessionManager::default()),
        http,
    )
}

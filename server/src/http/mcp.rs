//! `/mcp`: the tool registry of `mnemo-mcp`, served with rmcp's streamable HTTP
//! transport behind the same API-key check as every REST route.
//!
//! The operations call the REST handlers themselves, so a tool call and the REST
//! request it mirrors validate, store and emit change events the same way: a memory
//! stored over `/mcp` reaches SSE subscribers like any other write.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
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

use super::error::{ApiError, ApiJson, ApiQuery};
use super::{AppState, health, memories, search};
use crate::auth::Scope;
use crate::config::Config;

/// The memory operations as the REST API performs them.
pub struct ServerOps(Arc<AppState>);

impl ServerOps {
    fn state(&self) -> State<Arc<AppState>> {
        State(Arc::clone(&self.0))
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

impl MemoryOps for ServerOps {
    async fn store(&self, request: StoreRequest) -> Result<MutationResponse, OpsError> {
        let (_, Json(r)) =
            memories::create(self.state(), HeaderMap::new(), ApiJson(request)).await?;
        Ok(r)
    }

    async fn search(&self, request: SearchRequest) -> Result<SearchResponse, OpsError> {
        Ok(search::search(self.state(), ApiJson(request)).await?.0)
    }

    async fn list(&self, query: ListQuery) -> Result<ListResponse, OpsError> {
        Ok(memories::list(self.state(), ApiQuery(query)).await?.0)
    }

    async fn get(&self, content_hash: String) -> Result<Memory, OpsError> {
        Ok(memories::get(self.state(), Path(content_hash)).await?.0)
    }

    async fn update(
        &self,
        content_hash: String,
        request: UpdateRequest,
    ) -> Result<MutationResponse, OpsError> {
        let answer = memories::update(self.state(), Path(content_hash), ApiJson(request));
        Ok(answer.await?.0)
    }

    async fn delete(&self, content_hash: String) -> Result<MutationResponse, OpsError> {
        Ok(memories::delete(self.state(), Path(content_hash)).await?.0)
    }

    async fn delete_matching(
        &self,
        request: DeleteMatchingRequest,
    ) -> Result<DeleteMatchingResponse, OpsError> {
        Ok(memories::delete_matching(self.state(), ApiJson(request))
            .await?
            .0)
    }

    async fn health(&self) -> Result<DetailedHealth, OpsError> {
        Ok(health::detailed(self.state()).await?.0)
    }

    /// Over HTTP, rmcp hands the tool the request's parts, where the auth middleware
    /// left the scope of the key that was presented.
    fn authorize_write(&self, extensions: &Extensions) -> Result<(), OpsError> {
        let scope = extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Scope>())
            .copied();
        match scope {
            Some(scope) if !scope.allows(Scope::Write) => Err(OpsError::new(
                OpsErrorKind::Forbidden,
                format!(
                    "this key has the {} scope; storing, updating and deleting need write",
                    scope.as_str()
                ),
            )),
            _ => Ok(()),
        }
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

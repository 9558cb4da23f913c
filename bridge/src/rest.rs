//! [`MemoryOps`] as a client of the server's REST API.
//!
//! The endpoint is found on the first call, not at start, so the bridge answers
//! `initialize` at once. A call that cannot reach the server forgets the endpoint
//! (the next attempt re-discovers it, which follows a restart or an address
//! change) and is tried once more when repeating it is harmless. Every call is
//! bounded by one deadline, so a client never waits longer than the configured
//! timeout for an answer.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;

use mnemo_api::Secret;
use mnemo_api::rest::{
    DeleteMatchingRequest, DeleteMatchingResponse, DetailedHealth, ListQuery, ListResponse, Memory,
    MutationResponse, SearchRequest, SearchResponse, StoreRequest, TagsResponse, UpdateRequest,
};
use mnemo_mcp::ops::{MemoryOps, OpsError, OpsErrorKind};
use reqwest::{Method, Url};
use rmcp::model::Extensions;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::endpoint::{Endpoint, Resolver, describe, unreachable};

/// How often a call re-asks a server that answered "still loading".
const LOADING_POLL: Duration = Duration::from_millis(100);

/// Whether repeating a request after an unclear failure is harmless.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Repeat {
    /// Reads, updates, deletes by hash, and stores (the content hash makes a repeated
    /// store a duplicate, not a second memory).
    Safe,
    /// A delete by filter: a repeat could delete another batch. Retried only when the
    /// first attempt never connected.
    Unsafe,
}

/// The REST client behind the bridge's tools.
pub struct RestOps {
    resolver: Resolver,
    api_key: Option<Secret>,
    timeout: Duration,
    endpoint: Mutex<Option<Endpoint>>,
    /// Why the bridge's settings cannot be used: every call answers with it.
    misconfigured: Option<String>,
}

/// How one attempt failed.
enum Failure {
    /// The server answered with an error; final.
    Answered(OpsError),
    /// No usable answer; `connected` tells whether the request may have arrived.
    Transport { error: String, connected: bool },
}

impl RestOps {
    pub fn new(resolver: Resolver, api_key: Option<Secret>, timeout: Duration) -> Self {
        Self {
            resolver,
            api_key,
            timeout,
            endpoint: Mutex::new(None),
            misconfigured: None,
        }
    }

    /// Makes every call fail with `problems` (settings the bridge could not read), so
    /// that the model relays them to the user instead of a connection error.
    pub fn misconfigured(self, problems: &[String]) -> Self {
        Self {
            misconfigured: (!problems.is_empty()).then(|| problems.join(" ")),
            ..self
        }
    }

    /// Uses `endpoint` until it fails, instead of resolving on the first call.
    pub fn starting_at(self, endpoint: Endpoint) -> Self {
        Self {
            endpoint: Mutex::new(Some(endpoint)),
            ..self
        }
    }

    /// The endpoint in use, resolving it first if there is none. Concurrent calls
    /// wait for one resolution instead of browsing side by side.
    async fn endpoint(&self) -> Result<Endpoint, OpsError> {
        let mut current = self.endpoint.lock().await;
        if let Some(endpoint) = current.as_ref() {
            return Ok(endpoint.clone());
        }
        let endpoint = self.resolver.resolve().await?;
        tracing::info!(url = %endpoint.url, instance = ?endpoint.instance, pin = ?endpoint.pin.map(|p| p.to_string()), "using this Mnemo server");
        *current = Some(endpoint.clone());
        Ok(endpoint)
    }

    /// Drops `failed` so the next call resolves again (unless another call already has).
    async fn forget(&self, failed: &Endpoint) {
        let mut current = self.endpoint.lock().await;
        if current.as_ref().is_some_and(|e| e.url == failed.url) {
            *current = None;
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        query: Option<&ListQuery>,
        body: Option<&Value>,
        repeat: Repeat,
    ) -> Result<T, OpsError> {
        if let Some(problem) = &self.misconfigured {
            return Err(OpsError::new(OpsErrorKind::Misconfigured, problem.clone()));
        }
        let attempts = async {
            let mut retried = false;
            loop {
                let endpoint = self.endpoint().await?;
                match self.once(&endpoint, &method, path, query, body).await {
                    Ok(value) => return Ok(value),
                    Err(Failure::Answered(e)) if e.kind == OpsErrorKind::Unavailable => {
                        // Loading after a restart, or rate limited: ask again until
                        // the deadline.
                        tokio::time::sleep(LOADING_POLL).await;
                    }
                    Err(Failure::Answered(e)) => return Err(e),
                    Err(Failure::Transport { error, connected }) => {
                        tracing::warn!(url = %endpoint.url, %error, "the server did not answer");
                        self.forget(&endpoint).await;
                        let harmless = repeat == Repeat::Safe || !connected;
                        if retried || !harmless {
                            return Err(unreachable(format!(
                                "the memory server at {} did not answer: {error}",
                                endpoint.url
                            )));
                        }
                        retried = true;
                    }
                }
            }
        };
        // A panic below must not leave the client waiting for an answer forever.
        let attempts = AssertUnwindSafe(attempts).catch_unwind();
        match tokio::time::timeout(self.timeout, attempts).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(OpsError::new(
                OpsErrorKind::Internal,
                "the bridge failed while handling this call (a bug: its log on stderr has the details)",
            )),
            Err(_) => Err(unreachable(format!(
                "no answer from the memory server within {:.1} s (MNEMO_BRIDGE_TIMEOUT)",
                self.timeout.as_secs_f64()
            ))),
        }
    }

    async fn once<T: DeserializeOwned>(
        &self,
        endpoint: &Endpoint,
        method: &Method,
        path: &[&str],
        query: Option<&ListQuery>,
        body: Option<&Value>,
    ) -> Result<T, Failure> {
        let url = url(&endpoint.url, path).map_err(Failure::Answered)?;
        let mut request = endpoint.http.request(method.clone(), url);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        if let Some(query) = query {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| Failure::Transport {
            connected: !e.is_connect(),
            error: describe(&e),
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| Failure::Transport {
            connected: true,
            error: describe(&e),
        })?;
        if !status.is_success() {
            return Err(Failure::Answered(OpsError::from_http(
                status.as_u16(),
                &bytes,
            )));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Failure::Answered(OpsError::new(
                OpsErrorKind::Internal,
                format!("the server's answer to {path:?} was not understood: {e}"),
            ))
        })
    }
}

/// `base` + path segments, each percent-encoded (a content hash comes from the model).
fn url(base: &str, path: &[&str]) -> Result<Url, OpsError> {
    let mut url = Url::parse(base).map_err(|e| {
        OpsError::new(
            OpsErrorKind::Misconfigured,
            format!("the server URL {base:?} (MCP_MEMORY_HTTP_ENDPOINT) is not valid: {e}"),
        )
    })?;
    url.path_segments_mut()
        .map_err(|()| {
            OpsError::new(
                OpsErrorKind::Misconfigured,
                format!("{base:?} (MCP_MEMORY_HTTP_ENDPOINT) cannot be a base URL"),
            )
        })?
        .pop_if_empty()
        .extend(path);
    Ok(url)
}

impl RestOps {
    async fn post<T: DeserializeOwned>(
        &self,
        path: &[&str],
        body: &impl Serialize,
        repeat: Repeat,
    ) -> Result<T, OpsError> {
        let body = serde_json::to_value(body).unwrap_or_default();
        self.call(Method::POST, path, None, Some(&body), repeat)
            .await
    }

    /// A body-less request that is safe to repeat.
    async fn plain<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
    ) -> Result<T, OpsError> {
        self.call(method, path, None, None, Repeat::Safe).await
    }
}

/// The bridge's server checks the key on every REST call, so the bridge needs
/// nothing of its MCP caller.
impl MemoryOps for RestOps {
    type Caller = ();

    fn caller(&self, _extensions: &Extensions) -> Result<(), OpsError> {
        Ok(())
    }

    async fn store(&self, _: &(), request: StoreRequest) -> Result<MutationResponse, OpsError> {
        self.post(&["api", "memories"], &request, Repeat::Safe)
            .await
    }

    async fn search(&self, _: &(), request: SearchRequest) -> Result<SearchResponse, OpsError> {
        self.post(&["api", "search"], &request, Repeat::Safe).await
    }

    async fn list(&self, _: &(), query: ListQuery) -> Result<ListResponse, OpsError> {
        let path = ["api", "memories"];
        self.call(Method::GET, &path, Some(&query), None, Repeat::Safe)
            .await
    }

    async fn get(&self, _: &(), content_hash: String) -> Result<Memory, OpsError> {
        self.plain(Method::GET, &["api", "memories", &content_hash])
            .await
    }

    async fn update(
        &self,
        _: &(),
        content_hash: String,
        request: UpdateRequest,
    ) -> Result<MutationResponse, OpsError> {
        let body = serde_json::to_value(&request).unwrap_or_default();
        let path = ["api", "memories", &content_hash];
        self.call(Method::PUT, &path, None, Some(&body), Repeat::Safe)
            .await
    }

    async fn delete(&self, _: &(), content_hash: String) -> Result<MutationResponse, OpsError> {
        self.plain(Method::DELETE, &["api", "memories", &content_hash])
            .await
    }

    async fn delete_matching(
        &self,
        _: &(),
        request: DeleteMatchingRequest,
    ) -> Result<DeleteMatchingResponse, OpsError> {
        self.post(&["api", "memories", "delete"], &request, Repeat::Unsafe)
            .await
    }

    async fn tags(&self, _: &()) -> Result<TagsResponse, OpsError> {
        self.plain(Method::GET, &["api", "tags"]).await
    }

    async fn health(&self, _: &()) -> Result<DetailedHealth, OpsError> {
        self.plain(Method::GET, &["api", "health", "detailed"])
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        let joined = url("http://127.0.0.1:8000/", &["api", "memories", "a/b?c"]).unwrap();
        assert_eq!(
            joined.as_str(),
            "http://127.0.0.1:8000/api/memories/a%2Fb%3Fc"
        );
        assert!(url("nonsense", &["api"]).is_err());
    }
}

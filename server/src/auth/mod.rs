//! Authentication: which key a request carries and what it may do (DESIGN §7).
//!
//! One middleware, [`authorize`], guards every route. What a route needs is decided in
//! one place, [`required_scope`], from the method and path, so a new route cannot be
//! added without deciding its scope here.

mod key_file;
mod master_key;
mod ring;
mod scope;

pub use key_file::{KEY_PREFIX, KEYS_FILE, KeyEntry, KeyError, KeyFile, generate_key};
pub use master_key::{DEFAULT_KEY_FILE, load_or_create_default_key};
pub use ring::KeyRing;
pub use scope::Scope;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::http::AppState;
use crate::http::error::ApiError;

/// The credentials checker shared by every request.
pub struct Auth {
    keys: KeyRing,
    /// `MCP_ALLOW_ANONYMOUS_ACCESS`: requests without any key may read and write.
    anonymous: bool,
    /// Failed attempts per client address; past the quota they get 429.
    failures: DefaultKeyedRateLimiter<IpAddr>,
}

impl Auth {
    pub fn new(keys: KeyRing, anonymous: bool, failures_per_minute: u32) -> Self {
        let quota = Quota::per_minute(
            NonZeroU32::new(failures_per_minute.max(1)).unwrap_or(NonZeroU32::MIN),
        );
        Self {
            keys,
            anonymous,
            failures: RateLimiter::keyed(quota),
        }
    }

    /// Decides a request: Ok to go on, or the error to answer with.
    fn check(
        &self,
        presented: Option<&str>,
        client: IpAddr,
        required: Scope,
    ) -> Result<Scope, ApiError> {
        let granted = match presented {
            // A wrong key is refused even when anonymous access is on.
            Some(key) => self
                .keys
                .authenticate(key)
                .ok_or("the API key is not valid"),
            None if self.anonymous && required != Scope::Admin => Ok(Scope::Write),
            None => Err(
                "an API key is required: send `Authorization: Bearer <key>`, `X-API-Key: <key>` or `?api_key=<key>`",
            ),
        };
        match granted {
            Ok(scope) if scope.allows(required) => Ok(scope),
            Ok(scope) => Err(ApiError::forbidden(format!(
                "this key has the {} scope; this request needs {}",
                scope.as_str(),
                required.as_str()
            ))),
            Err(message) => {
                if let Err(not_until) = self.failures.check_key(&client) {
                    let wait = not_until.wait_time_from(DefaultClock::default().now());
                    return Err(ApiError::rate_limited(wait.as_secs().max(1)));
                }
                Err(ApiError::unauthorized(message))
            }
        }
    }
}

/// The scope a request needs, or `None` for the public routes.
pub fn required_scope(method: &Method, path: &str) -> Option<Scope> {
    if path == "/api/health" {
        return None;
    }
    if path == "/mcp" {
        // Every MCP request needs a key; whether it may write is decided per tool.
        return Some(Scope::Read);
    }
    if path == "/api/memories/import" || path == "/api/events/stats" {
        return Some(Scope::Admin);
    }
    let reads = method == Method::GET
        || method == Method::HEAD
        || method == Method::OPTIONS
        || (method == Method::POST && path.starts_with("/api/search"));
    Some(if reads { Scope::Read } else { Scope::Write })
}

/// The key a request presents, from the first of: `Authorization: Bearer`,
/// `X-API-Key`, `?api_key=` (for EventSource, which cannot set headers).
fn presented_key(request: &Request) -> Option<String> {
    let headers = request.headers();
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().to_owned());
    }
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim().to_owned());
    }
    let query = request.uri().query()?;
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find_map(|(name, value)| (name == "api_key").then_some(value))
}

/// Middleware: lets a request through if its key has the scope the route needs.
pub async fn authorize(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(required) = required_scope(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let presented = presented_key(&request);
    let mut request = request;
    match state.auth.check(presented.as_deref(), client, required) {
        Ok(granted) => {
            // Handlers that decide per operation (each MCP tool) read the scope here.
            request.extensions_mut().insert(granted);
            next.run(request).await
        }
        Err(error) => {
            tracing::info!(%client, status = error.status().as_u16(), "request refused");
            error.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads need read, writes need write, import and feed stats need admin, health nothing.
    #[test]
    fn scopes_by_route() {
        let table = [
            (Method::GET, "/api/health", None),
            (Method::GET, "/api/health/detailed", Some(Scope::Read)),
            (Method::POST, "/api/search/by-tag", Some(Scope::Read)),
            (Method::POST, "/api/memories", Some(Scope::Write)),
            (Method::POST, "/api/memories/batch", Some(Scope::Write)),
            (Method::DELETE, "/api/memories/x", Some(Scope::Write)),
            (Method::POST, "/api/memories/import", Some(Scope::Admin)),
            (Method::GET, "/api/events/stats", Some(Scope::Admin)),
            (Method::POST, "/api/memories/delete", Some(Scope::Write)),
            (Method::POST, "/mcp", Some(Scope::Read)),
            (Method::DELETE, "/mcp", Some(Scope::Read)),
        ];
        for (method, path, scope) in table {
            assert_eq!(required_scope(&method, path), scope, "{method} {path}");
        }
    }
}

//! Authentication at the HTTP edge: the route table with the access each route
//! needs, the middleware that enforces it, and the [`Caller`] extractor.
//!
//! Routes are registered through [`Routes`], which takes the access a route needs in
//! the same call as its handler, so a route cannot be added without deciding who may
//! call it. The middleware looks the matched route up in that same table; a route
//! missing from it (registered some other way) needs the admin scope, so a mistake
//! fails closed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};

use super::error::ApiError;
use super::state::AppState;
use crate::auth::{self as keys, AuthError, Credential, Scope};
use crate::operations::Caller;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a key. Such a route must hold no memory data.
    Public,
    /// A key with at least this scope (or anonymous access, below admin).
    Needs(Scope),
}

pub const PUBLIC: Access = Access::Public;
pub const READ: Access = Access::Needs(Scope::Read);
pub const WRITE: Access = Access::Needs(Scope::Write);
pub const ADMIN: Access = Access::Needs(Scope::Admin);

/// One registered route: its method (`None`: every method) and path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteAccess {
    pub method: Option<Method>,
    pub path: &'static str,
    pub access: Access,
}

/// The router being built, and the access of every route in it.
pub struct Routes {
    router: Router<Arc<AppState>>,
    table: Vec<RouteAccess>,
}

impl Routes {
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            table: Vec::new(),
        }
    }

    /// Adds `handler` for `method` on `path`, callable with `access`.
    pub fn route<H, T>(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        handler: H,
    ) -> Self
    where
        H: Handler<T, Arc<AppState>>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone())
            .unwrap_or_else(|_| panic!("{method} cannot be routed"));
        self.router = self.router.route(path, on(filter, handler));
        self.table.push(RouteAccess {
            method: Some(method),
            path,
            access,
        });
        self
    }

    /// Adds a service that answers every method on `path`, callable with `access`.
    pub fn service<S>(mut self, path: &'static str, access: Access, service: S) -> Self
    where
        S: tower::Service<Request, Error = std::convert::Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: IntoResponse,
        S::Future: Send + 'static,
    {
        self.router = self.router.route_service(path, service);
        self.table.push(RouteAccess {
            method: None,
            path,
            access,
        });
        self
    }

    /// Every route and the access it was registered with.
    #[cfg(test)]
    pub fn table(&self) -> &[RouteAccess] {
        &self.table
    }

    /// The router with `not_found` for unknown paths and `not_allowed` for a method a
    /// path does not take, every request (theirs too) behind the access check.
    pub fn into_router<H, T, N, U>(
        self,
        state: &Arc<AppState>,
        not_found: H,
        not_allowed: N,
    ) -> Router<Arc<AppState>>
    where
        H: Handler<T, Arc<AppState>>,
        T: 'static,
        N: Handler<U, Arc<AppState>>,
        U: 'static,
    {
        let guard = Guard {
            state: Arc::clone(state),
            table: Arc::new(self.table),
        };
        let router = self
            .router
            .fallback(not_found)
            .method_not_allowed_fallback(not_allowed);
        guarded(router, guard)
    }
}

impl Default for Routes {
    fn default() -> Self {
        Self::new()
    }
}

/// What the middleware needs: the key checker and the route table.
#[derive(Clone)]
struct Guard {
    state: Arc<AppState>,
    table: Arc<Vec<RouteAccess>>,
}

impl Guard {
    /// The access a request needs. `Router::layer` runs the middleware after routing,
    /// so the matched route's pattern is known; unknown paths (the fallback) need any
    /// valid key, so the 404 tells no stranger which paths exist.
    fn access(&self, method: &Method, matched: Option<&MatchedPath>) -> Access {
        let Some(matched) = matched else {
            return READ;
        };
        // axum answers HEAD with the GET handler.
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.table
            .iter()
            .find(|r| r.path == matched.as_str() && r.method.as_ref().is_none_or(|m| m == method))
            .map_or(ADMIN, |r| r.access)
    }
}

/// Puts every route and the fallback of `router` behind the access check of `guard`.
fn guarded(router: Router<Arc<AppState>>, guard: Guard) -> Router<Arc<AppState>> {
    router.layer(middleware::from_fn_with_state(guard, authorize))
}

/// Middleware: lets a request through if its key has the access its route needs, and
/// leaves the granted scope in the request for [`Caller`].
async fn authorize(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let access = guard.access(request.method(), request.extensions().get::<MatchedPath>());
    let Access::Needs(required) = access else {
        return next.run(request).await;
    };
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let presented = presented_key(&request);
    let credential = match &presented {
        Ok(Some(key)) => Credential::Key(key),
        Ok(None) => Credential::Absent,
        Err(Unreadable) => Credential::Unreadable,
    };
    match guard.state.auth.check(credential, client, required).await {
        Ok(granted) => {
            let mut request = request;
            request.extensions_mut().insert(granted);
            next.run(request).await
        }
        Err(error) => {
            let error = ApiError::from(error);
            tracing::info!(%client, status = error.status().as_u16(), "request refused");
            error.into_response()
        }
    }
}

/// A credential that is there but cannot be a key: another scheme than Bearer, or
/// bytes that are not text.
struct Unreadable;

/// The key a request presents, from the first of: `Authorization: Bearer` (the
/// scheme in any case, RFC 9110), `X-API-Key`, `?api_key=` (for EventSource, which
/// cannot set headers). Anything else in those places is [`Unreadable`], so it is
/// refused rather than taken for no key.
fn presented_key(request: &Request) -> Result<Option<String>, Unreadable> {
    let headers = request.headers();
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| Unreadable)?.trim();
        let (scheme, key) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Unreadable);
        }
        return Ok(Some(key.trim().to_owned()));
    }
    if let Some(value) = headers.get("x-api-key") {
        let key = value.to_str().map_err(|_| Unreadable)?;
        return Ok(Some(key.trim().to_owned()));
    }
    let Some(query) = request.uri().query() else {
        return Ok(None);
    };
    match serde_urlencoded::from_str::<Vec<(String, String)>>(query) {
        Ok(pairs) => Ok(pairs
            .into_iter()
            .find_map(|(name, value)| (name == "api_key").then_some(value))),
        Err(_) if query.contains("api_key") => Err(Unreadable),
        Err(_) => Ok(None),
    }
}

/// The caller of a request: the scope its key was granted and its `X-Agent-ID`.
impl Caller {
    /// From the parts of a request that passed [`authorize`]; `None` for a request
    /// that did not (a public route), which then may not call an operation.
    pub fn from_parts(parts: &Parts) -> Option<Self> {
        let scope = *parts.extensions.get::<Scope>()?;
        let agent = parts
            .headers
            .get("x-agent-id")
            .and_then(|v| v.to_str().ok());
        Some(Caller::new(scope, agent))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Caller::from_parts(parts).ok_or_else(|| ApiError::from(AuthError::Missing))
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        let message = error.to_string();
        match error {
            AuthError::Missing | AuthError::Invalid => ApiError::unauthorized(message),
            AuthError::Insufficient { .. } => ApiError::forbidden(message),
            AuthError::BadNonce => ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_nonce",
                message,
            ),
            AuthError::RateLimited { retry_after } => {
                ApiError::rate_limited(keys::whole_seconds(retry_after))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;
    use crate::auth::Auth;
    use crate::auth::{KeyFile, KeyRing};
    use crate::config::Config;

    /// A server state whose service never loads: every allowed request answers 503,
    /// every refused one 401 or 403, which is all these tests look at.
    fn fixture() -> (tempfile::TempDir, Arc<AppState>, [String; 3]) {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyFile::new(dir.path());
        let scoped = [Scope::Read, Scope::Write, Scope::Admin]
            .map(|scope| keys.add(scope.as_str(), scope).unwrap().1);
        let auth = Auth::new(KeyRing::new(None, keys), false, 10_000);
        (dir, Arc::new(AppState::new(auth)), scoped)
    }

    async fn status(app: &Router, method: &Method, path: &str, key: Option<&str>) -> u16 {
        // rmcp refuses requests to `/mcp` without a loopback Host.
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, "localhost");
        if let Some(key) = key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        response.status().as_u16()
    }

    /// Walks the router's own route table: every route was registered with an access,
    /// and each is enforced: no key is 401, a key one scope short is 403, a key of the
    /// declared scope gets past the check.
    #[tokio::test]
    async fn every_route_enforces_its_declared_access() {
        let (dir, state, [read, write, admin]) = fixture();
        let config = Config::for_data_dir(dir.path());
        let routes = super::super::routes(&state, &config, Default::default());
        let table = routes.table().to_vec();
        let app = routes
            .into_router(
                &state,
                super::super::not_found,
                super::super::method_not_allowed,
            )
            .with_state(Arc::clone(&state));
        assert!(table.len() >= 18, "the whole table: {table:?}");
        for route in table {
            let path = route.path.replace("{hash}", "0000");
            let methods = match &route.method {
                Some(m) => vec![m.clone()],
                None => vec![Method::GET, Method::POST, Method::DELETE],
            };
            for method in methods {
                let what = format!("{method} {path} ({:?})", route.access);
                let anonymous = status(&app, &method, &path, None).await;
                let Access::Needs(needs) = route.access else {
                    assert_ne!(anonymous, 401, "{what}");
                    continue;
                };
                assert_eq!(anonymous, 401, "{what}");
                let (short, enough) = match needs {
                    Scope::Read => (None, &read),
                    Scope::Write => (Some(&read), &write),
                    Scope::Admin => (Some(&write), &admin),
                };
                if let Some(short) = short {
                    assert_eq!(
                        status(&app, &method, &path, Some(short)).await,
                        403,
                        "{what}"
                    );
                }
                let passed = status(&app, &method, &path, Some(enough)).await;
                assert!(passed != 401 && passed != 403, "{what}: {passed}");
            }
        }
    }

    /// A route added to the router without going through [`Routes`] needs admin, and
    /// an unknown path needs a valid key before it is told 404.
    #[tokio::test]
    async fn undeclared_routes_fail_closed() {
        let (_dir, state, [read, write, admin]) = fixture();
        let guard = Guard {
            state: Arc::clone(&state),
            table: Arc::new(Vec::new()),
        };
        let raw = Router::new()
            .route("/api/undeclared", post(|| async { "done" }))
            .fallback(super::super::not_found);
        let app = guarded(raw, guard).with_state(state);
        let post = Method::POST;
        assert_eq!(status(&app, &post, "/api/undeclared", None).await, 401);
        assert_eq!(
            status(&app, &post, "/api/undeclared", Some(&write)).await,
            403
        );
        assert_eq!(
            status(&app, &post, "/api/undeclared", Some(&admin)).await,
            200
        );
        assert_eq!(
            status(&app, &Method::GET, "/api/elsewhere", None).await,
            401
        );
        assert_eq!(
            status(&app, &Method::GET, "/api/elsewhere", Some(&read)).await,
            404
        );
    }

    fn status_of(error: AuthError) -> StatusCode {
        ApiError::from(error).status()
    }

    /// Each refusal answers with its own status.
    #[test]
    fn refusals_map_to_statuses() {
        assert_eq!(status_of(AuthError::Missing), StatusCode::UNAUTHORIZED);
        assert_eq!(status_of(AuthError::Invalid), StatusCode::UNAUTHORIZED);
        let short = AuthError::Insufficient {
            has: Scope::Read,
            needs: Scope::Write,
        };
        assert_eq!(status_of(short), StatusCode::FORBIDDEN);
        let limited = AuthError::RateLimited {
            retry_after: Duration::from_secs(3),
        };
        assert_eq!(status_of(limited), StatusCode::TOO_MANY_REQUESTS);
    }
}

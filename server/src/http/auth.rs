//! Authentication at the HTTP edge: the route table with the access each route
//! needs, the middleware that enforces it, and the [`Caller`] extractor.
//!
//! Routes are registered through [`Routes`], which takes the access a route needs in
//! the same call as its handler, so a route cannot be added without deciding who may
//! call it. The middleware looks the matched route up in that same table; a route
//! missing from it (registered some other way) needs the admin scope, so a mistake
//! fails closed.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};

use super::client_ip::ClientIp;
use super::error::ApiError;
use super::state::AppState;
use crate::auth::{self as keys, Auth, AuthError, Credential, Scope};
use crate::operations::Caller;
use crate::telemetry;

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
    /// Whether the route takes a credential in its URL (`?api_key=`, `?ticket=`):
    /// only the event streams do, because `EventSource` cannot set headers. A key in
    /// a URL ends up in proxy and access logs, so no other route accepts one.
    pub url_credentials: bool,
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
    pub fn route<H, T>(self, method: Method, path: &'static str, access: Access, handler: H) -> Self
    where
        H: Handler<T, Arc<AppState>>,
        T: 'static,
    {
        self.add(method, path, access, false, handler)
    }

    /// Like [`Routes::route`], for an event stream: it also takes its credential
    /// from the URL, as `?ticket=` or `?api_key=`.
    pub fn stream<H, T>(
        self,
        method: Method,
        path: &'static str,
        access: Access,
        handler: H,
    ) -> Self
    where
        H: Handler<T, Arc<AppState>>,
        T: 'static,
    {
        self.add(method, path, access, true, handler)
    }

    fn add<H, T>(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        url_credentials: bool,
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
            url_credentials,
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
            url_credentials: false,
        });
        self
    }

    /// Every route and the access it was registered with.
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
    /// The access a request needs, and whether its route takes a credential in the
    /// URL. `Router::layer` runs the middleware after routing, so the matched route's
    /// pattern is known; unknown paths (the fallback) and methods a path does not
    /// take need any valid key, so the 404 or 405 tells no stranger which paths
    /// exist. A matched path missing from the table needs the admin scope.
    fn access(&self, method: &Method, matched: Option<&MatchedPath>) -> (Access, bool) {
        let Some(matched) = matched else {
            return (READ, false);
        };
        // axum answers HEAD with the GET handler.
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        let mut on_path = self
            .table
            .iter()
            .filter(|r| r.path == matched.as_str())
            .peekable();
        if on_path.peek().is_none() {
            return (ADMIN, false);
        }
        // A method the path does not take can only reach `method_not_allowed`: every
        // handler on a path of the table came through `Routes`, under its method. So
        // any valid key may learn that it is a 405, as any may learn a 404.
        on_path
            .find(|r| r.method.as_ref().is_none_or(|m| m == method))
            .map_or((READ, false), |r| (r.access, r.url_credentials))
    }
}

/// Puts every route and the fallback of `router` behind the access check of `guard`.
fn guarded(router: Router<Arc<AppState>>, guard: Guard) -> Router<Arc<AppState>> {
    router.layer(middleware::from_fn_with_state(guard, authorize))
}

/// Middleware: lets a request through if its key (or, on an event stream, its
/// ticket) has the access its route needs, and leaves the granted scope in the
/// request for [`Caller`].
async fn authorize(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let (access, url_credentials) =
        guard.access(request.method(), request.extensions().get::<MatchedPath>());
    let Access::Needs(required) = access else {
        return next.run(request).await;
    };
    let client = ClientIp::of(request.extensions());
    let presented = presented(&request, url_credentials);
    let granted = match &presented {
        Ok(Presented::Ticket(ticket)) => redeem(&guard.state, ticket, required),
        Err(Refused::InUrl) => {
            metrics::counter!(telemetry::AUTH_FAILURES, "reason" => "key_in_url").increment(1);
            Err(ApiError::unauthorized(IN_URL))
        }
        Ok(Presented::Key(key)) => check(&guard, Credential::Key(key), client, required).await,
        Ok(Presented::Nothing) => check(&guard, Credential::Absent, client, required).await,
        Err(Refused::Unreadable) => check(&guard, Credential::Unreadable, client, required).await,
    };
    match granted {
        Ok(granted) => {
            let mut request = request;
            request.extensions_mut().insert(granted);
            next.run(request).await
        }
        Err(error) => {
            tracing::info!(%client, status = error.status().as_u16(), "request refused");
            error.into_response()
        }
    }
}

/// Asks the key ring about a key (or its absence).
async fn check(
    guard: &Guard,
    credential: Credential<'_>,
    client: IpAddr,
    required: Scope,
) -> Result<Scope, ApiError> {
    Ok(guard.state.auth.check(credential, client, required).await?)
}

/// Why a credential in the URL of any other route than an event stream is refused.
const IN_URL: &str = "`?api_key=` and `?ticket=` are accepted only by the event streams \
     (`/api/events`, `/api/events/stream`): a key in a URL ends up in proxy logs. Send \
     `Authorization: Bearer <key>` or `X-API-Key: <key>` instead";

/// Spends `ticket` for a request that needs `required`.
///
/// A wrong ticket does not count against the client's failed-key budget: tickets are
/// 256 random bits, which no one guesses, and a browser retrying a spent one is not
/// an attack.
fn redeem(state: &AppState, ticket: &str, required: Scope) -> Result<Scope, ApiError> {
    let scope = state.tickets.redeem(ticket).ok_or_else(|| {
        metrics::counter!(telemetry::AUTH_FAILURES, "reason" => "ticket").increment(1);
        ApiError::unauthorized(
            "the ticket is unknown, already used or expired (a ticket is good for one \
             connection within 60 s): get a new one with POST /api/events/ticket",
        )
    })?;
    Ok(Auth::allow(scope, required).inspect_err(crate::auth::count_refusal)?)
}

/// The credential a request presents.
enum Presented {
    Key(String),
    /// A single-use ticket, from `?ticket=` on an event stream.
    Ticket(String),
    Nothing,
}

/// A credential that is refused before any key is looked at.
enum Refused {
    /// There but cannot be a key: another scheme than Bearer, or bytes that are not
    /// text.
    Unreadable,
    /// `?api_key=` or `?ticket=` on a route that takes no credential in its URL.
    InUrl,
}

/// The credential a request presents, from the first of: `Authorization: Bearer`
/// (the scheme in any case, RFC 9110), `X-API-Key`, and only where `url_credentials`
/// (the event streams, for EventSource, which cannot set headers) `?ticket=` or
/// `?api_key=`. Anything else in those places is refused rather than taken for no
/// key, and so is a credential in the URL of any other route, even next to a good
/// header: the client should learn that its key is being logged.
fn presented(request: &Request, url_credentials: bool) -> Result<Presented, Refused> {
    let in_url = url_credential(request)?;
    if in_url.is_some() && !url_credentials {
        return Err(Refused::InUrl);
    }
    let headers = request.headers();
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| Refused::Unreadable)?.trim();
        let (scheme, key) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Refused::Unreadable);
        }
        return Ok(Presented::Key(key.trim().to_owned()));
    }
    if let Some(value) = headers.get("x-api-key") {
        let key = value.to_str().map_err(|_| Refused::Unreadable)?;
        return Ok(Presented::Key(key.trim().to_owned()));
    }
    Ok(in_url.unwrap_or(Presented::Nothing))
}

/// `?ticket=` (first) or `?api_key=` in the query, if any.
fn url_credential(request: &Request) -> Result<Option<Presented>, Refused> {
    let Some(query) = request.uri().query() else {
        return Ok(None);
    };
    let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(query) else {
        return if query.contains("api_key") || query.contains("ticket") {
            Err(Refused::Unreadable)
        } else {
            Ok(None)
        };
    };
    let find = |wanted: &str| {
        pairs
            .iter()
            .find_map(|(name, value)| (name == wanted).then(|| value.clone()))
    };
    Ok(find("ticket")
        .map(Presented::Ticket)
        .or_else(|| find("api_key").map(Presented::Key)))
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
    use crate::auth::{KeyFile, KeyRing};
    use crate::config::Config;
    use crate::http::ticket::Tickets;

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

    /// A method a routed path does not take is a 405 for any valid key (what
    /// schemathesis expects of an undocumented method), and a 401 without one.
    #[tokio::test]
    async fn an_unserved_method_is_405_for_any_key() {
        let (dir, state, [read, write, _admin]) = fixture();
        let config = Config::for_data_dir(dir.path());
        let app = super::super::router(state, &config, Default::default());
        for (method, path) in [
            (Method::TRACE, "/api/memories"),
            (Method::PATCH, "/api/memories/0000"),
            (Method::DELETE, "/api/search"),
        ] {
            assert_eq!(
                status(&app, &method, path, None).await,
                401,
                "{method} {path}"
            );
            for key in [&read, &write] {
                assert_eq!(
                    status(&app, &method, path, Some(key)).await,
                    405,
                    "{method} {path}"
                );
            }
        }
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
        let in_url: Vec<_> = table
            .iter()
            .filter(|r| r.url_credentials)
            .map(|r| r.path)
            .collect();
        assert_eq!(in_url, ["/api/events", "/api/events/stream"]);
        for path in ["/api/events/stream", "/api/events/ticket"] {
            assert!(table.iter().any(|r| r.path == path), "{path} is routed");
        }
        for route in table {
            let path = route
                .path
                .replace("{hash}", "0000")
                .replace("{file}", "0000");
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

    /// A ticket opens a stream until it expires, and grants no more than the scope
    /// of the key that bought it.
    #[tokio::test]
    async fn tickets_expire_and_keep_their_scope() {
        let app = |state: &Arc<AppState>, dir: &tempfile::TempDir| {
            let config = Config::for_data_dir(dir.path());
            super::super::routes(state, &config, Default::default())
                .into_router(
                    state,
                    super::super::not_found,
                    super::super::method_not_allowed,
                )
                .with_state(Arc::clone(state))
        };
        let stream = |ticket: &str| format!("/api/events/stream?ticket={ticket}");
        let get = Method::GET;
        let (dir, state, _) = fixture();
        let fresh = state.tickets.issue(Scope::Read).unwrap();
        // Past the check (the service never loads here, so 503).
        assert_eq!(
            status(&app(&state, &dir), &get, &stream(&fresh), None).await,
            503
        );

        let (dir, mut state, _) = fixture();
        Arc::get_mut(&mut state).unwrap().tickets = Tickets::with_ttl(Duration::ZERO);
        let stale = state.tickets.issue(Scope::Admin).unwrap();
        assert_eq!(
            status(&app(&state, &dir), &get, &stream(&stale), None).await,
            401
        );

        let (_dir, state, _) = fixture();
        let read = state.tickets.issue(Scope::Read).unwrap();
        assert!(matches!(
            redeem(&state, &read, Scope::Write),
            Err(e) if e.status() == StatusCode::FORBIDDEN
        ));
        let admin = state.tickets.issue(Scope::Admin).unwrap();
        assert_eq!(
            redeem(&state, &admin, Scope::Admin).ok(),
            Some(Scope::Admin)
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

//! The OpenAPI 3.1 document of the HTTP API, served at `GET /api/openapi.json`.
//!
//! It is assembled from three parts of the code, so that it cannot drift from it:
//! each handler's `#[utoipa::path]` (path, parameters, bodies, and the statuses only
//! that handler answers), the `ToSchema` derives on the wire types in `mnemo-api`,
//! and the route table (`auth::Routes`), which gives every operation its security
//! (the scope it needs and the key forms it takes) and the statuses that the access
//! check, the JSON extractor and the panic catcher answer for any route.
//! `http/tests.rs` checks that the route table and the document name the same
//! operations, both ways.
//!
//! To document a new route: give its handler a `#[utoipa::path(...)]` with its
//! method, path, bodies and own error statuses (the shared ones below, as
//! `response = NotFound`), and add the handler to `paths(...)` in [`Handlers`].

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use mnemo_api::error::{DuplicateBody, ErrorBody};
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, ObjectBuilder, OpenApi as Document, Ref, RefOr,
    Response as ResponseObject, SecurityRequirement, Type,
};
use utoipa::{OpenApi, PartialSchema, ToResponse, ToSchema};

use super::auth::{Access, RouteAccess};
use super::{
    backups, catalog, dashboard, docs, events, health, keys, mcp, memories, metrics, proof, search,
    stats, transfer,
};
use crate::auth::Scope;

/// Every documented handler. A route missing here fails `http::tests`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Mnemo",
        description = "Shared semantic memory for AI assistants: store short texts with \
            tags, a type and metadata, and find them by meaning. Wire-compatible with \
            mcp-memory-service 12.4. Every error answers `{\"error\", \"message\", \
            \"detail\"}`. Send the API key as `Authorization: Bearer <key>` or \
            `X-API-Key: <key>`; only the two event streams also take `?api_key=` or a \
            single-use `?ticket=`, because a browser's EventSource cannot set headers.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    paths(
        health::health,
        health::health_alias,
        health::detailed,
        proof::prove,
        memories::create,
        memories::list,
        memories::create_batch,
        memories::import,
        memories::delete_matching,
        memories::get,
        memories::update,
        memories::delete,
        memories::create_session,
        search::search,
        search::by_tag,
        search::by_time,
        search::similar,
        events::stream,
        events::stream_unnamed,
        events::ticket,
        events::stats,
        catalog::tags,
        catalog::types,
        mcp::post,
        mcp::get,
        mcp::delete,
        json,
        docs::redirect,
        docs::index,
        docs::file,
        dashboard::shell,
        dashboard::file,
        keys::scope,
        keys::list,
        keys::create,
        keys::revoke,
        stats::daily,
        metrics::scrape,
        transfer::export,
        transfer::import,
        backups::create,
        backups::create_now,
        backups::list,
        backups::list_alias,
        backups::status,
        backups::restore,
    ),
    components(
        schemas(ErrorBody, DuplicateBody, SseEvent, JsonRpcMessage),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            PayloadTooLarge,
            InvalidBody,
            RateLimited,
            Internal,
            Unavailable,
            InsufficientStorage,
        )
    ),
    tags(
        (name = "health", description = "Whether the server is up, and what it holds"),
        (name = "memories", description = "Store, list, read, update and delete memories"),
        (name = "search", description = "Find memories by meaning, words, tags or time"),
        (name = "events", description = "The change feed as Server-Sent Events"),
        (name = "auth", description = "Proof that the server holds the client's key"),
        (name = "mcp", description = "The Model Context Protocol endpoint (streamable HTTP)"),
        (name = "docs", description = "This document and the page that shows it"),
        (name = "dashboard", description = "The web dashboard's page and files"),
        (name = "keys", description = "The managed API keys (admin), shared with `mnemo-server keys`"),
        (name = "stats", description = "Figures for charts"),
        (name = "metrics", description = "Prometheus metrics"),
        (name = "transfer", description = "Every memory out as JSON Lines, and back in (admin)"),
        (name = "backups", description = "Backups and restores of the SQLite database (admin)"),
    )
)]
struct Handlers;

/// One Server-Sent Event, as a client reads it off a `text/event-stream` (the schema
/// of each event of the streams, not of the stream's bytes).
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "describes SSE frames in the document; never built"
)]
pub struct SseEvent {
    /// The event's name; absent on the unnamed stream.
    event: Option<String>,
    /// The payload: a JSON object's text.
    data: String,
    /// The sequence number of a change, for `Last-Event-ID`.
    id: Option<String>,
    retry: Option<u64>,
}

/// A JSON-RPC 2.0 message of MCP: a request (`method`, `id`), a notification
/// (`method`) or a response (`id`, `result` or `error`).
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "describes /mcp's request body in the document; never built"
)]
pub struct JsonRpcMessage {
    #[schema(pattern = r"^2\.0$")]
    jsonrpc: String,
    method: Option<String>,
    #[schema(value_type = Option<Object>)]
    params: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    id: Option<serde_json::Value>,
}

/// The document as served: built once per router, from its route table.
pub struct Served(Bytes);

impl Served {
    pub fn new(table: &[RouteAccess]) -> Self {
        let json = document(table)
            .to_json()
            .expect("the OpenAPI document serialises");
        Self(Bytes::from(json))
    }
}

/// `GET /api/openapi.json` (public): this document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "docs",
    operation_id = "openapi",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object),
    )
)]
pub async fn json(Extension(served): Extension<Arc<Served>>) -> Response {
    let mut response = served.0.clone().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The document for the routes of `table`: the handlers' annotations, then the
/// security and shared statuses that follow from each route's access.
pub fn document(table: &[RouteAccess]) -> Document {
    let mut document = Handlers::openapi();
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("The API key as `Authorization: Bearer <key>`"))
                .build(),
        ),
    );
    components.add_security_scheme(
        HEADER_KEY,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-API-Key",
            "The API key as `X-API-Key: <key>`",
        ))),
    );
    components.add_security_scheme(
        QUERY_KEY,
        SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
            "api_key",
            "The API key in the URL: only on the event streams, for EventSource",
        ))),
    );
    components.add_security_scheme(
        TICKET,
        SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
            "ticket",
            "A single-use ticket from `POST /api/events/ticket`: only on the event streams",
        ))),
    );
    for route in table {
        let Some(item) = document.paths.paths.get_mut(route.path) else {
            continue;
        };
        let methods: Vec<HttpMethod> = match &route.method {
            Some(method) => http_method(method).into_iter().collect(),
            None => ALL_METHODS.to_vec(),
        };
        for method in methods {
            if let Some(operation) = operation_mut(item, &method) {
                apply_access(operation, route);
                apply_shared_statuses(operation, route.method.is_some());
            }
        }
    }
    link_store_to_its_memory(&mut document);
    document
}

const BEARER: &str = "bearer";
const HEADER_KEY: &str = "x_api_key";
const QUERY_KEY: &str = "api_key_query";
const TICKET: &str = "ticket";

const ALL_METHODS: [HttpMethod; 8] = [
    HttpMethod::Get,
    HttpMethod::Put,
    HttpMethod::Post,
    HttpMethod::Delete,
    HttpMethod::Options,
    HttpMethod::Head,
    HttpMethod::Patch,
    HttpMethod::Trace,
];

fn http_method(method: &axum::http::Method) -> Option<HttpMethod> {
    use axum::http::Method as M;
    Some(match *method {
        M::GET => HttpMethod::Get,
        M::PUT => HttpMethod::Put,
        M::POST => HttpMethod::Post,
        M::DELETE => HttpMethod::Delete,
        M::OPTIONS => HttpMethod::Options,
        M::HEAD => HttpMethod::Head,
        M::PATCH => HttpMethod::Patch,
        M::TRACE => HttpMethod::Trace,
        _ => return None,
    })
}

/// The methods the document lists for `path`, as the route table spells them.
#[cfg(test)]
fn documented_methods(document: &Document, path: &str) -> Vec<axum::http::Method> {
    let Some(item) = document.paths.paths.get(path) else {
        return Vec::new();
    };
    let pairs = [
        (&item.get, axum::http::Method::GET),
        (&item.put, axum::http::Method::PUT),
        (&item.post, axum::http::Method::POST),
        (&item.delete, axum::http::Method::DELETE),
        (&item.options, axum::http::Method::OPTIONS),
        (&item.head, axum::http::Method::HEAD),
        (&item.patch, axum::http::Method::PATCH),
        (&item.trace, axum::http::Method::TRACE),
    ];
    pairs
        .into_iter()
        .filter_map(|(operation, method)| operation.is_some().then_some(method))
        .collect()
}

fn operation_mut<'a>(
    item: &'a mut utoipa::openapi::PathItem,
    method: &HttpMethod,
) -> Option<&'a mut Operation> {
    match method {
        HttpMethod::Get => item.get.as_mut(),
        HttpMethod::Put => item.put.as_mut(),
        HttpMethod::Post => item.post.as_mut(),
        HttpMethod::Delete => item.delete.as_mut(),
        HttpMethod::Options => item.options.as_mut(),
        HttpMethod::Head => item.head.as_mut(),
        HttpMethod::Patch => item.patch.as_mut(),
        HttpMethod::Trace => item.trace.as_mut(),
    }
}

/// Who may call the operation, with which key forms, and what a refusal answers.
/// OpenAPI 3.1 lets a non-OAuth requirement name roles: the scope goes there.
fn apply_access(operation: &mut Operation, route: &RouteAccess) {
    let Access::Needs(scope) = route.access else {
        // An empty list: no key needed, whatever a global default says.
        operation.security = Some(Vec::new());
        return;
    };
    let roles = [scope.as_str()];
    let mut forms = vec![
        SecurityRequirement::new(BEARER, roles),
        SecurityRequirement::new(HEADER_KEY, roles),
    ];
    if route.url_credentials {
        forms.push(SecurityRequirement::new(QUERY_KEY, roles));
        forms.push(SecurityRequirement::new(TICKET, roles));
    }
    operation.security = Some(forms);
    let needs = format!("Needs a key with the `{}` scope.", scope.as_str());
    operation.description = Some(match operation.description.take() {
        Some(text) if !text.is_empty() => format!("{text}\n\n{needs}"),
        _ => needs,
    });
    add(operation, "401", Unauthorized::response().0);
    // Every key has at least the read scope, so only a route that needs more
    // refuses a valid key.
    if scope > Scope::Read {
        add(operation, "403", Forbidden::response().0);
    }
    add(operation, "429", RateLimited::response().0);
}

/// What any route may answer besides its own statuses: a body the JSON extractor
/// refuses (routes of the table's own handlers, whose bodies go through `ApiJson`),
/// and the 500 of a failure or a panic.
fn apply_shared_statuses(operation: &mut Operation, own_handler: bool) {
    if own_handler && operation.request_body.is_some() {
        add(operation, "400", BadRequest::response().0);
        add(operation, "413", PayloadTooLarge::response().0);
        add(operation, "422", InvalidBody::response().0);
    }
    add(operation, "500", Internal::response().0);
}

/// Adds a reference to the shared response `name` for `status`, unless the handler
/// documented that status itself.
fn add(operation: &mut Operation, status: &str, name: &str) {
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
}

/// OpenAPI links from a stored memory to the operations on it, which lets a
/// stateful client (schemathesis) follow store → get → update → delete.
fn link_store_to_its_memory(document: &mut Document) {
    let targets = [
        ("GetMemory", "get_memory"),
        ("UpdateMemory", "update_memory"),
        ("DeleteMemory", "delete_memory"),
        ("SimilarMemories", "similar_memories"),
    ];
    let Some(store) = document
        .paths
        .paths
        .get_mut("/api/memories")
        .and_then(|item| item.post.as_mut())
    else {
        return;
    };
    let Some(RefOr::T(ok)) = store.responses.responses.get_mut("200") else {
        return;
    };
    for (name, operation_id) in targets {
        let link = LinkBuilder::new()
            .operation_id(operation_id)
            .parameter("hash", "$response.body#/content_hash")
            .build();
        ok.links.insert(name.to_owned(), RefOr::T(link));
    }
}

/// An error response whose body is [`ErrorBody`].
fn error_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(ErrorBody::name())))
            .build(),
    )
}

fn header_integer(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        ))
        .description(Some(description))
        .build()
}

/// Declares a shared error response: its component name is the type's name.
macro_rules! error_responses {
    ($($name:ident => $description:expr, $build:expr;)*) => {$(
        #[doc = $description]
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<ResponseObject>) {
                let build: fn(ResponseBuilder) -> ResponseBuilder = $build;
                (stringify!($name), RefOr::T(build(error_response($description)).build()))
            }
        }
    )*};
}

error_responses! {
    BadRequest => "The request is malformed: JSON that does not parse (`malformed_json`), \
        no `Content-Type: application/json` (`missing_content_type`), a query string that \
        does not parse (`invalid_query`), or input the server refuses (`invalid_input`, \
        `bad_request`)", |r| r;
    Unauthorized => "No key, a key the server does not know, a credential that is not a \
        key, or a key in the URL of a route other than an event stream (`unauthorized`)",
        |r| r.header("WWW-Authenticate", HeaderBuilder::new()
            .schema(Some(String::schema()))
            .description(Some("`Bearer`"))
            .build());
    Forbidden => "The key's scope is below what the route or the operation needs \
        (`forbidden`)", |r| r;
    NotFound => "No memory has this content hash (`not_found`)", |r| r;
    Conflict => "A memory with the same content already exists (`duplicate`); the body also \
        carries mcp-memory-service's `success: false` and the `content_hash` of that memory",
        |r| r.content("application/json", ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(DuplicateBody::name())))
            .build());
    PayloadTooLarge => "The body is larger than `MNEMO_MAX_BODY_BYTES` (`body_too_large`)",
        |r| r;
    InvalidBody => "The body is JSON of the wrong shape: a missing field, a wrong type, an \
        array (`invalid_body`)", |r| r;
    RateLimited => "Too many failed authentication attempts from this address \
        (`rate_limited`), or too many pending tickets (`too_many_tickets`)",
        |r| r.header("Retry-After", header_integer("Seconds until the next attempt may succeed"));
    Internal => "The server failed; its log has the details (`internal`)", |r| r;
    Unavailable => "The server is still loading its model and database (`loading`), the \
        database is unreachable (`database_unavailable`), or a read ran past \
        `MNEMO_READ_TIMEOUT` (`read_timeout`)",
        |r| r.header("Retry-After", header_integer("Seconds to wait before retrying"));
    InsufficientStorage => "The server's disk is full; nothing was written (`storage_full`)",
        |r| r;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::auth::{Auth, KeyFile, KeyRing};
    use crate::config::Config;
    use crate::http::AppState;

    /// The route table of a router as `http::router` builds it.
    fn table() -> Vec<RouteAccess> {
        let dir = tempfile::tempdir().unwrap();
        let auth = Auth::new(KeyRing::new(None, KeyFile::new(dir.path())), false, 10);
        let state = Arc::new(AppState::new(auth));
        let config = Config::for_data_dir(dir.path());
        let routes = super::super::routes(&state, &config, Default::default());
        routes.table().to_vec()
    }

    /// A route served but not described, or described but not served, fails here:
    /// the (method, path) pairs of the route table and of the document are the same.
    /// A service route (every method, `/mcp`) must have at least one operation.
    #[tokio::test]
    async fn the_document_lists_exactly_the_routes_served() {
        let table = table();
        let document = document(&table);
        let mut served = BTreeSet::new();
        for route in &table {
            match &route.method {
                Some(method) => {
                    served.insert((route.path.to_owned(), method.to_string()));
                }
                None => {
                    let methods = documented_methods(&document, route.path);
                    assert!(
                        !methods.is_empty(),
                        "{} is served but not documented",
                        route.path
                    );
                    for method in methods {
                        served.insert((route.path.to_owned(), method.to_string()));
                    }
                }
            }
        }
        let documented: BTreeSet<(String, String)> = document
            .paths
            .paths
            .keys()
            .flat_map(|path| {
                documented_methods(&document, path)
                    .into_iter()
                    .map(move |method| (path.clone(), method.to_string()))
            })
            .collect();
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty() && unserved.is_empty(),
            "served but not in the OpenAPI document: {undocumented:?}; \
             in the document but not served: {unserved:?}"
        );
        assert!(served.len() >= 30, "{served:?}");
    }

    /// Each operation's security follows its route's access: public routes need
    /// nothing, the rest a key of their scope by header, and only the event streams
    /// also in the URL.
    #[tokio::test]
    async fn security_follows_the_route_table() {
        let table = table();
        let json = serde_json::to_value(document(&table)).unwrap();
        let security = |path: &str, method: &str| json["paths"][path][method]["security"].clone();
        assert_eq!(security("/api/health", "get"), serde_json::json!([]));
        assert_eq!(security("/api/openapi.json", "get"), serde_json::json!([]));
        assert_eq!(security("/api/docs/", "get"), serde_json::json!([]));
        assert_eq!(
            security("/api/memories", "post"),
            serde_json::json!([{"bearer": ["write"]}, {"x_api_key": ["write"]}])
        );
        assert_eq!(
            security("/api/events", "get"),
            serde_json::json!([
                {"bearer": ["read"]}, {"x_api_key": ["read"]},
                {"api_key_query": ["read"]}, {"ticket": ["read"]},
            ])
        );
        for method in ["get", "post", "delete"] {
            let operation = &json["paths"]["/mcp"][method];
            assert_eq!(
                operation["security"][0],
                serde_json::json!({"bearer": ["read"]})
            );
            assert!(operation["responses"]["401"].is_object(), "{method} /mcp");
        }
        let store = &json["paths"]["/api/memories"]["post"]["responses"];
        for status in [
            "200", "400", "401", "403", "409", "413", "422", "429", "500", "503", "507",
        ] {
            assert!(
                store[status].is_object(),
                "POST /api/memories lacks {status}: {store}"
            );
        }
        assert_eq!(
            json["paths"]["/api/events"]["get"]["responses"]["200"]["content"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["text/event-stream"]
        );
    }

    /// The document is OpenAPI 3.1 and every response and schema it refers to exists.
    #[tokio::test]
    async fn every_referenced_response_is_a_component() {
        let document = document(&table());
        let json = serde_json::to_value(&document).unwrap();
        assert!(
            json["openapi"].as_str().unwrap().starts_with("3.1"),
            "{json}"
        );
        let text = json.to_string();
        for kind in ["responses", "schemas"] {
            let components = json["components"][kind].as_object().unwrap();
            let prefix = format!("#/components/{kind}/");
            for (at, _) in text.match_indices(&prefix) {
                let name: String = text[at + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                assert!(
                    components.contains_key(&name),
                    "{prefix}{name} is not a component"
                );
            }
        }
    }
}

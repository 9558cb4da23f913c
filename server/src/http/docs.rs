//! `/api/docs` (public): Swagger UI over `/api/openapi.json`.
//!
//! The viewer is Swagger UI as the crate `utoipa-swagger-ui-vendored` carries it on
//! crates.io (pinned by `Cargo.lock`'s checksum) and `utoipa-swagger-ui` embeds it at
//! build time, so the page needs no network: no CDN, no download at build or run time,
//! nothing third-party in the repository. Its files are served from memory with a
//! Content-Security-Policy that lets the page load nothing but this server's own
//! files and send requests only to this server.

use std::sync::{Arc, LazyLock};

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use utoipa_swagger_ui::Config;

use super::error::ApiError;

/// What the viewer shows: this server's document, with "Try it out" on, and no
/// validator badge (which would send the document to swagger.io).
static CONFIG: LazyLock<Arc<Config<'static>>> = LazyLock::new(|| {
    Arc::new(
        Config::new(["/api/openapi.json"])
            .validator_url("none")
            .try_it_out_enabled(true)
            .persist_authorization(false)
            .display_request_duration(true)
            .filter(true),
    )
});

/// Swagger UI's own scripts and styles only; its inline `style` attributes need
/// `'unsafe-inline'` for styles, and its icons are `data:` images.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// `GET /api/docs`: to `/api/docs/`, whose relative links find the viewer's files.
#[utoipa::path(get, path = "/api/docs", tag = "docs", operation_id = "docs_redirect",
    responses(
        (status = 308, description = "To `/api/docs/`",
            headers(("Location" = String, description = "`/api/docs/`"))),
    ))]
pub async fn redirect() -> Redirect {
    Redirect::permanent("/api/docs/")
}

/// `GET /api/docs/`: the browsable documentation of this API.
#[utoipa::path(get, path = "/api/docs/", tag = "docs", operation_id = "docs",
    responses(
        (status = 200, description = "Swagger UI's page", content_type = "text/html", body = String),
    ))]
pub async fn index() -> Response {
    file(Path(String::from("index.html"))).await
}

/// `GET /api/docs/{file}`: a file of the viewer (scripts, styles, icons).
#[utoipa::path(get, path = "/api/docs/{file}", tag = "docs", operation_id = "docs_file",
    params(("file" = String, Path, description = "A file of Swagger UI", example = "swagger-ui.css")),
    responses(
        (status = 200, description = "The file",
            content(
                (String = "text/html"),
                (String = "text/css"),
                (String = "text/javascript"),
                (String = "application/javascript"),
                (String = "image/png"),
            )),
        (status = 404, description = "No such file", body = mnemo_api::error::ErrorBody),
    ))]
pub async fn file(Path(name): Path<String>) -> Response {
    let file = match utoipa_swagger_ui::serve(&name, Arc::clone(&CONFIG)) {
        Ok(Some(file)) => file,
        Ok(None) => {
            return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such file")
                .into_response();
        }
        Err(error) => {
            tracing::error!(%error, "the docs page could not be served");
            return ApiError::internal().into_response();
        }
    };
    let mut response = file.bytes.into_owned().into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&file.content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if file.gzpipped {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

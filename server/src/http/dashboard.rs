//! The dashboard: one HTML shell at `/` and its script, style and icon under
//! `/static/`, built into the binary so a server on a LAN without internet serves
//! all of it. They are public and hold no data: the page asks for a key and reads
//! everything through the REST API and the change stream with it.
//!
//! Every answer carries a Content-Security-Policy that allows scripts, styles and
//! connections only from this origin and no inline script, so text stored in a
//! memory can never run as code even if a rendering bug let it into the page.

use axum::extract::Path;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The files under `/static/`, with their media types.
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../dashboard/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../dashboard/app.css"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_str!("../../dashboard/icon.svg"),
    ),
];

/// The page itself.
pub const SHELL: &str = include_str!("../../dashboard/index.html");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// `GET /`: the shell.
#[utoipa::path(get, path = "/", tag = "dashboard", operation_id = "dashboard",
    responses((status = 200, description = "The dashboard's page", content_type = "text/html", body = String)))]
pub async fn shell() -> Response {
    asset("text/html; charset=utf-8", SHELL)
}

/// `GET /static/{file}`.
#[utoipa::path(get, path = "/static/{file}", tag = "dashboard", operation_id = "dashboard_file",
    params(("file" = String, Path, description = "A file of the dashboard", example = "app.js")),
    responses(
        (status = 200, description = "The file",
            content((String = "text/javascript"), (String = "text/css"), (String = "image/svg+xml"))),
        (status = 404, response = super::openapi::NotFound),
    ))]
pub async fn file(Path(name): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(file, _, _)| *file == name)
        .map(|(_, media, body)| asset(media, body))
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such file"))
}

fn asset(media: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    let fixed = [
        (header::CONTENT_TYPE, media),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        // Small files on the local network: always revalidate, so an upgraded server
        // never runs yesterday's script against today's API.
        (header::CACHE_CONTROL, "no-cache"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The size of everything the dashboard serves, for the budget of 200 KB.
pub fn total_bytes() -> usize {
    SHELL.len() + ASSETS.iter().map(|(_, _, body)| body.len()).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shell, script, style and icon together stay within 200 KB, and the shell
    /// holds no inline script (the policy would block it).
    #[test]
    fn assets_fit_the_budget_and_script_is_external() {
        let total = total_bytes();
        assert!(
            total <= 200 * 1024,
            "the dashboard's assets are {total} bytes"
        );
        assert!(SHELL.contains(r#"<script src="/static/app.js""#));
        assert_eq!(SHELL.matches("<script").count(), 1, "one external script");
        let lower = SHELL.to_ascii_lowercase();
        let handlers = lower
            .split(|c: char| c.is_whitespace())
            .filter(|word| word.starts_with("on") && word.contains('='))
            .count();
        assert_eq!(handlers, 0, "no inline event handlers");
    }
}

//! Every failed request becomes one [`ApiError`], which renders the JSON error body of
//! ARCHITECTURE.md, "REST contract". Extractors are wrapped so that malformed JSON, a schema violation or an
//! oversized body get that body too, instead of axum's plain-text rejections.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mnemo_api::error::{DuplicateBody, ErrorBody};
use serde::de::DeserializeOwned;

use crate::operations::OpError;
use crate::service::ServiceError;
use crate::storage::StorageError;

/// An error answer: status, machine code and a message for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Set for a duplicate store, whose 409 carries mcp-memory-service's envelope too.
    duplicate_of: Option<String>,
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: bounded(message.into()),
            duplicate_of: None,
            retry_after: None,
        }
    }

    /// A 500 that tells the client only that it failed; the cause goes to the log.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to handle this request; the server log has the details",
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn loading() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "loading",
            "the server is still loading its model and database; retry in a moment",
        )
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many failed authentication attempts; retry in {retry_after_secs} s"),
        );
        error.retry_after = Some(retry_after_secs);
        error
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// For a duplicate store: the memory that already holds the content.
    pub fn duplicate_of(&self) -> Option<&str> {
        self.duplicate_of.as_deref()
    }
}

/// Caps a message that may quote the request (a serde error names the value it
/// refused), so an error stays small whatever was sent.
fn bounded(mut message: String) -> String {
    const MAX_BYTES: usize = 512;
    if message.len() > MAX_BYTES {
        let mut end = MAX_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = match self.duplicate_of {
            // mcp-memory-service's clients read `success` and `content_hash` on a duplicate.
            Some(hash) => {
                (self.status, Json(DuplicateBody::new(self.message, hash))).into_response()
            }
            None => (self.status, Json(ErrorBody::new(self.code, self.message))).into_response(),
        };
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Invalid(invalid) => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_input",
                invalid.to_string(),
            ),
            ServiceError::Storage(StorageError::NotFound { content_hash }) => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no memory has content hash {content_hash}"),
            ),
            ServiceError::Storage(StorageError::Duplicate { content_hash }) => {
                let mut error = Self::new(
                    StatusCode::CONFLICT,
                    "duplicate",
                    "a memory with the same content already exists",
                );
                error.duplicate_of = Some(content_hash);
                error
            }
            ServiceError::Storage(unavailable @ StorageError::Unavailable { .. }) => {
                tracing::warn!(error = %unavailable, "the database is unavailable");
                let mut error = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is unavailable; retry in a moment",
                );
                error.retry_after = Some(1);
                error
            }
            ServiceError::Storage(StorageError::Invalid(invalid)) => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_input",
                invalid.to_string(),
            ),
            ServiceError::Storage(full @ StorageError::Full { .. }) => {
                tracing::error!(error = %full, "the disk is full");
                Self::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "storage_full",
                    "the server's disk is full, so nothing was stored; free space on the server and retry",
                )
            }
            ServiceError::Storage(StorageError::Interrupted) => {
                tracing::warn!("a read ran past MNEMO_READ_TIMEOUT and was stopped");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "read_timeout",
                    "the query ran longer than the server allows (MNEMO_READ_TIMEOUT) and was stopped; \
                     narrow it (fewer words, a filter, fewer results) and retry",
                )
            }
            other => {
                // The log gets the details; the client only learns that it failed.
                tracing::error!(error = %other, "request failed");
                Self::internal()
            }
        }
    }
}

impl From<OpError> for ApiError {
    fn from(error: OpError) -> Self {
        match error {
            OpError::BadRequest(message) => Self::bad_request(message),
            forbidden @ OpError::Forbidden { .. } => Self::forbidden(forbidden.to_string()),
            OpError::Service(service) => service.into(),
        }
    }
}

/// The answer to a handler that panicked: the JSON 500, so the client gets an answer
/// and the connection stays usable, and the panic goes to the log.
pub fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    tracing::error!(panic = what, "a handler panicked");
    ApiError::internal().into_response()
}

/// Gives the JSON error body to an error answered without one: axum's own
/// rejections (a path that is not UTF-8), a layer's refusal, rmcp's. The status and
/// headers stay; a 4xx keeps the text as its message, a 5xx never shows it.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
    let message = if text.is_empty() || status.is_server_error() {
        reason
    } else {
        text
    };
    let mut answer = ApiError::new(status, code_for(status), message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}

/// The machine code of an error only known by its status.
fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_ACCEPTABLE => "not_acceptable",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::GATEWAY_TIMEOUT => "timeout",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    }
}

/// `Json<T>` whose rejections are [`ApiError`]s: 400 for malformed JSON or a missing
/// content type, 422 for JSON of the wrong shape, 413 for a body over the limit.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(missing_content_type());
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| json_rejection(JsonRejection::BytesRejection(e)))?;
        // serde reads a struct from an array too, field by field in order; every body
        // of this API is an object, so an array is refused rather than guessed at.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                "the body must be a JSON object, not an array",
            ));
        }
        match Json::<T>::from_bytes(&bytes) {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// `application/json` or any `application/*+json`, as axum's `Json` accepts.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!(
                "the JSON does not match the expected shape: {}",
                e.body_text()
            ),
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("malformed JSON: {}", e.body_text()),
        ),
        JsonRejection::MissingJsonContentType(_) => missing_content_type(),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is larger than the server accepts (MNEMO_MAX_BODY_BYTES)",
            )
        }
        other => ApiError::bad_request(other.body_text()),
    }
}

fn missing_content_type() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "missing_content_type",
        "send the body as JSON with `Content-Type: application/json`",
    )
}

/// `Query<T>` whose rejection is a 400 [`ApiError`].
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text())
            })
    }
}

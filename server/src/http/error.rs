//! Every failed request becomes one [`ApiError`], which renders the JSON error body of
//! ARCHITECTURE.md, "REST contract". Extractors are wrapped so that malformed JSON, a schema violation or an
//! oversized body get that body too, instead of axum's plain-text rejections.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mnemo_api::error::ErrorBody;
use mnemo_api::rest::MutationResponse;
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
            message: message.into(),
            duplicate_of: None,
            retry_after: None,
        }
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = match self.duplicate_of {
            // mcp-memory-service's clients read `success` and `content_hash` on a duplicate.
            Some(hash) => {
                let mut body = serde_json::to_value(MutationResponse {
                    success: false,
                    message: self.message.clone(),
                    content_hash: hash,
                    memory: None,
                })
                .unwrap_or_default();
                if let Some(map) = body.as_object_mut() {
                    map.insert("error".into(), self.code.into());
                    map.insert("detail".into(), self.message.into());
                }
                (self.status, Json(body)).into_response()
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
            other => {
                // The log gets the details; the client only learns that it failed.
                tracing::error!(error = %other, "request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the server failed to handle this request; the server log has the details",
                )
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
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the server failed to handle this request; the server log has the details",
    )
    .into_response()
}

/// `Json<T>` whose rejections are [`ApiError`]s: 400 for malformed JSON or a missing
/// content type, 422 for JSON of the wrong shape, 413 for a body over the limit.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
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
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_content_type",
            "send the body as JSON with `Content-Type: application/json`",
        ),
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

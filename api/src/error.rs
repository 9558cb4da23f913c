//! The error body every endpoint answers with (ARCHITECTURE.md, "REST contract").

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `{"error": "<code>", "message": "<for humans>", "detail": "<same as message>"}`.
/// `detail` is there for clients written against mcp-memory-service, which reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
    pub detail: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            error: code.into(),
            detail: message.clone(),
            message,
        }
    }
}

/// The 409 of a store whose content is already there: the error body plus
/// mcp-memory-service's envelope, whose clients read `success` and `content_hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DuplicateBody {
    /// Always `duplicate`.
    pub error: String,
    pub message: String,
    pub detail: String,
    /// Always `false`.
    pub success: bool,
    /// The memory that already holds the content.
    pub content_hash: String,
}

impl DuplicateBody {
    pub fn new(message: impl Into<String>, content_hash: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            error: "duplicate".into(),
            detail: message.clone(),
            message,
            success: false,
            content_hash: content_hash.into(),
        }
    }
}

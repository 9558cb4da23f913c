//! The error body every endpoint answers with (ARCHITECTURE.md, "REST contract").

use serde::{Deserialize, Serialize};

/// `{"error": "<code>", "message": "<for humans>", "detail": "<same as message>"}`.
/// `detail` is there for clients written against mcp-memory-service, which reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

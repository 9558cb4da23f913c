//! The body of `GET /api/health`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Whether the server can answer memory requests yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// The embedding model or the database is still being opened (HTTP 503).
    Loading,
    /// Ready for traffic (HTTP 200).
    Healthy,
}

/// `GET /api/health` answer. It needs no API key, so it says nothing about the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: HealthStatus,
    pub version: String,
}

//! The detailed health report: what the server runs and what it holds.

use std::time::Instant;

use mnemo_api::health::HealthStatus;
use mnemo_api::rest::DetailedHealth;

use super::OpError;
use crate::service::{MemoryService, ServiceError};

/// What the server knows about itself that the memory service does not.
pub struct ServerFacts {
    pub started: Instant,
    /// SHA-256 of the served certificate, when TLS is on.
    pub tls_fingerprint: Option<String>,
    /// SHA-256 of its public key, the pin, when TLS is on.
    pub tls_pin: Option<mnemo_certs::Fingerprint>,
}

pub async fn detailed(
    service: &MemoryService,
    server: ServerFacts,
) -> Result<DetailedHealth, OpError> {
    let spec = service.embedder().spec().clone();
    let storage = service.storage();
    Ok(DetailedHealth {
        status: HealthStatus::Healthy,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_seconds: server.started.elapsed().as_secs_f64(),
        model: spec.model_id,
        dimension: spec.dimension,
        memories: service.count().await?,
        database_path: storage.location(),
        database_bytes: storage.size_on_disk().await.map_err(ServiceError::from)?,
        tls_fingerprint: server.tls_fingerprint,
        tls_pin: server.tls_pin.map(|pin| pin.to_string()),
    })
}

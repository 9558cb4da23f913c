//! The detailed health report: what the server runs and what it holds.

use std::time::Instant;

use mnemo_api::health::HealthStatus;
use mnemo_api::rest::{DetailedHealth, HealthStatistics, StorageHealth, iso8601, size_mb};

use super::OpError;
use crate::memory::{Filter, now_epoch};
use crate::service::{MemoryService, ServiceError};

/// The window of `memories_this_week`.
const WEEK_SECONDS: f64 = 7.0 * 24.0 * 3600.0;

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
    let now = now_epoch();
    let this_week = Filter {
        after: Some(now - WEEK_SECONDS),
        ..Filter::default()
    };
    let (memories, bytes, tags, week) = tokio::try_join!(
        service.count(),
        async { Ok(storage.size_on_disk().await?) },
        service.tags(u32::MAX),
        service.list(this_week, 1, 1),
    )
    .map_err(|e: ServiceError| e)?;
    let backend = storage.backend().to_owned();
    let unique_tags = tags.len() as u64;
    Ok(DetailedHealth {
        status: HealthStatus::Healthy,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        timestamp: iso8601(now),
        uptime_seconds: server.started.elapsed().as_secs_f64(),
        storage: StorageHealth {
            backend: backend.clone(),
            status: "connected".into(),
            accessible: true,
            embedding_model: spec.model_id.clone(),
            embedding_dimension: spec.dimension,
            total_memories: memories,
            unique_tags,
            memories_this_week: week.total,
            database_size_bytes: bytes,
            database_size_mb: size_mb(bytes),
        },
        statistics: HealthStatistics {
            total_memories: memories,
            unique_tags,
            memories_this_week: week.total,
            database_size_mb: size_mb(bytes),
            backend,
        },
        model: spec.model_id,
        dimension: spec.dimension,
        memories,
        database_bytes: bytes,
        tls_fingerprint: server.tls_fingerprint,
        tls_pin: server.tls_pin.map(|pin| pin.to_string()),
    })
}

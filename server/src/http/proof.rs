//! `POST /api/auth/proof` (public): proves to a client that this server holds its API key,
//! before the client sends it (ARCHITECTURE.md, "Authentication").
//!
//! Public because a client asks before it trusts the server with its key; the work is
//! bounded by the nonce's length and `auth::MAX_PROOFS`, and every request counts against
//! the caller's quota of failed logins.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::Extensions;
use mnemo_api::rest::{ProofRequest, ProofResponse};

use super::client_ip::ClientIp;
use super::error::{ApiError, ApiJson};
use super::state::AppState;

/// `POST /api/auth/proof {nonce}`: `{proofs}`, bound to the pin this server serves (the
/// key pair is the same on every connection, whichever certificate it was issued in).
#[utoipa::path(post, path = "/api/auth/proof", tag = "auth", operation_id = "prove_key",
    request_body = ProofRequest,
    responses(
        (status = 200, description = "One proof per key the server holds", body = ProofResponse),
        (status = 400, response = super::openapi::BadRequest),
        (status = 429, response = super::openapi::RateLimited),
    ))]
pub async fn prove(
    State(state): State<Arc<AppState>>,
    extensions: Extensions,
    ApiJson(request): ApiJson<ProofRequest>,
) -> Result<Json<ProofResponse>, ApiError> {
    let client = ClientIp::of(&extensions);
    let proofs = state
        .auth
        .proofs(&request.nonce, state.tls_pin.as_ref(), client)
        .inspect_err(|_| tracing::info!(%client, "proof request refused"))?;
    Ok(Json(ProofResponse { proofs }))
}

//! `GET /api/auth/scope`: what the caller's own key may do. `GET /api/keys`,
//! `POST /api/keys`, `DELETE /api/keys/{name}` (admin): the managed
//! keys, through the same [`ManagedKeys`](crate::auth::ManagedKeys) as the
//! `mnemo-server keys` commands, so both see and change one set. Hashes never leave
//! the server; a new key is shown once, in the answer that created it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use mnemo_api::rest::{CreateKey, CreatedKey, KeyInfo, KeyList, KeyScope};

use super::error::{ApiError, ApiJson};
use super::state::AppState;
use crate::auth::{KeyEntry, KeyError, Scope, UnknownScope};
use crate::service::ServiceError;

/// `GET /api/auth/scope`: the scope the access check granted this request.
#[utoipa::path(get, path = "/api/auth/scope", tag = "auth", operation_id = "key_scope",
    responses((status = 200, description = "What the presented key may do", body = KeyScope)))]
pub async fn scope(Extension(scope): Extension<Scope>) -> Json<KeyScope> {
    Json(KeyScope {
        scope: scope.as_str().to_owned(),
    })
}

/// `GET /api/keys`: every managed key, oldest first (the master key is not one).
#[utoipa::path(get, path = "/api/keys", tag = "keys", operation_id = "list_keys",
    responses(
        (status = 200, description = "The managed keys, oldest first; never a key or its hash", body = KeyList),
    ))]
pub async fn list(State(state): State<Arc<AppState>>) -> Result<Json<KeyList>, ApiError> {
    let keys = state
        .auth
        .keys()
        .managed_keys()
        .list()
        .await
        .map_err(error)?;
    Ok(Json(KeyList {
        keys: keys.iter().map(info).collect(),
    }))
}

/// `POST /api/keys {"name": "laptop", "scope": "read"}`: 201 with the key.
#[utoipa::path(post, path = "/api/keys", tag = "keys", operation_id = "create_key",
    request_body = CreateKey,
    responses(
        (status = 201, description = "The new key: the only time it is shown", body = CreatedKey),
        (status = 409, response = super::openapi::Conflict),
    ))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<CreateKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let scope: Scope = request
        .scope
        .parse()
        .map_err(|e: UnknownScope| ApiError::bad_request(e.to_string()))?;
    let managed = state.auth.keys().managed_keys();
    let (entry, key) = managed
        .add(request.name.trim(), scope)
        .await
        .map_err(error)?;
    tracing::info!(id = %entry.id, name = %entry.name, scope = %scope, "key added");
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            info: info(&entry),
            key,
        }),
    ))
}

/// `DELETE /api/keys/{name}` (a name or an id): the revoked key's entry.
#[utoipa::path(delete, path = "/api/keys/{name}", tag = "keys", operation_id = "revoke_key",
    params(("name" = String, Path, description = "The key's name or id")),
    responses(
        (status = 200, description = "The revoked key", body = KeyInfo),
        (status = 404, response = super::openapi::NotFound),
    ))]
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<KeyInfo>, ApiError> {
    let entry = state
        .auth
        .keys()
        .managed_keys()
        .revoke(&name)
        .await
        .map_err(error)?;
    tracing::info!(id = %entry.id, name = %entry.name, "key revoked");
    Ok(Json(info(&entry)))
}

fn info(entry: &KeyEntry) -> KeyInfo {
    KeyInfo {
        id: entry.id.clone(),
        name: entry.name.clone(),
        scope: entry.scope.as_str().to_owned(),
        created_at: mnemo_api::rest::iso8601(entry.created_at),
    }
}

/// The keys' errors as answers. The place (a path, a database URL) stays in the log.
fn error(error: KeyError) -> ApiError {
    match error {
        KeyError::UnknownKey { id_or_name, .. } => ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_key",
            format!("no managed key has the id or name {id_or_name:?}"),
        ),
        KeyError::DuplicateName { name, .. } => ApiError::new(
            StatusCode::CONFLICT,
            "duplicate_key",
            format!("a key with the id or name {name:?} already exists; choose another name"),
        ),
        invalid @ KeyError::InvalidName { .. } => ApiError::bad_request(invalid.to_string()),
        KeyError::Database(storage) => ServiceError::Storage(storage).into(),
        other => {
            tracing::error!(error = %other, "managing keys failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the server could not read or change its keys; the server log has the details",
            )
        }
    }
}

//! Backups and restores (admin): the seed guide's `/api/admin/backup`,
//! `/api/admin/backups` and `/api/admin/restore`, and mcp-memory-service's
//! `/api/backup/now|list|status`, which answer the same bodies.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use mnemo_api::admin::{BackupCreated, BackupList, BackupStatus, RestoreRequest, RestoreResponse};

use super::error::{ApiError, ApiJson};
use super::state::AppState;
use crate::operations::backups::BackupError;
use crate::service::ServiceError;
use crate::storage::StorageError;

/// `POST /api/admin/backup`: a backup, now.
#[utoipa::path(post, path = "/api/admin/backup", tag = "backups", operation_id = "create_backup",
    responses(
        (status = 200, description = "The backup, written and checked", body = BackupCreated),
        (status = 501, description = "Not available with PostgreSQL: back it up with pg_dump", body = mnemo_api::error::ErrorBody),
        (status = 503, response = super::openapi::Unavailable),
        (status = 507, response = super::openapi::InsufficientStorage),
    ))]
pub async fn create(State(state): State<Arc<AppState>>) -> Result<Json<BackupCreated>, ApiError> {
    let storage = state.service()?.storage();
    Ok(Json(state.backups()?.create(&**storage).await?))
}

/// `POST /api/backup/now`: mcp-memory-service's name for [`create`].
#[utoipa::path(post, path = "/api/backup/now", tag = "backups", operation_id = "backup_now",
    responses(
        (status = 200, description = "The backup, written and checked", body = BackupCreated),
        (status = 501, description = "Not available with PostgreSQL: back it up with pg_dump", body = mnemo_api::error::ErrorBody),
        (status = 503, response = super::openapi::Unavailable),
        (status = 507, response = super::openapi::InsufficientStorage),
    ))]
pub async fn create_now(state: State<Arc<AppState>>) -> Result<Json<BackupCreated>, ApiError> {
    create(state).await
}

/// `GET /api/admin/backups`: newest first.
#[utoipa::path(get, path = "/api/admin/backups", tag = "backups", operation_id = "list_backups",
    responses(
        (status = 200, description = "The backups, newest first", body = BackupList),
        (status = 501, description = "Not available with PostgreSQL: back it up with pg_dump", body = mnemo_api::error::ErrorBody),
        (status = 503, response = super::openapi::Unavailable),
    ))]
pub async fn list(State(state): State<Arc<AppState>>) -> Result<Json<BackupList>, ApiError> {
    let storage = state.service()?.storage();
    Ok(Json(state.backups()?.list(&**storage)?))
}

/// `GET /api/backup/list`: mcp-memory-service's name for [`list`].
#[utoipa::path(get, path = "/api/backup/list", tag = "backups", operation_id = "backup_list",
    responses(
        (status = 200, description = "The backups, newest first", body = BackupList),
        (status = 501, description = "Not available with PostgreSQL: back it up with pg_dump", body = mnemo_api::error::ErrorBody),
        (status = 503, response = super::openapi::Unavailable),
    ))]
pub async fn list_alias(state: State<Arc<AppState>>) -> Result<Json<BackupList>, ApiError> {
    list(state).await
}

/// `GET /api/backup/status`: the schedule and the folder.
#[utoipa::path(get, path = "/api/backup/status", tag = "backups", operation_id = "backup_status",
    responses(
        (status = 200, description = "The schedule and the backups folder", body = BackupStatus),
        (status = 501, description = "Not available with PostgreSQL: back it up with pg_dump", body = mnemo_api::error::ErrorBody),
        (status = 503, response = super::openapi::Unavailable),
    ))]
pub async fn status(State(state): State<Arc<AppState>>) -> Result<Json<BackupStatus>, ApiError> {
    let storage = state.service()?.storage();
    Ok(Json(state.backups()?.status(&**storage)?))
}

/// `POST /api/admin/restore {"backup_id"}`: swaps the backup in while serving.
#[utoipa::path(post, path = "/api/admin/restore", tag = "backups", operation_id = "restore_backup",
    request_body = RestoreRequest,
    responses(
        (status = 200, description = "The backup is the database now", body = RestoreResponse),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, description = "The backup was made with another model (both are named)", body = mnemo_api::error::ErrorBody),
        (status = 422, description = "Not a usable Mnemo backup (damaged, empty, another program's, newer)", body = mnemo_api::error::ErrorBody),
        (status = 501, description = "Not available with PostgreSQL: back it up with pg_dump", body = mnemo_api::error::ErrorBody),
        (status = 503, response = super::openapi::Unavailable),
        (status = 507, response = super::openapi::InsufficientStorage),
    ))]
pub async fn restore(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<RestoreRequest>,
) -> Result<Json<RestoreResponse>, ApiError> {
    let storage = state.service()?.storage();
    Ok(Json(
        state
            .backups()?
            .restore(&**storage, &request.backup_id)
            .await?,
    ))
}

impl From<BackupError> for ApiError {
    fn from(error: BackupError) -> Self {
        match error {
            invalid @ BackupError::InvalidId(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_backup_id",
                invalid.to_string(),
            ),
            missing @ BackupError::NotFound(_) => Self::new(
                StatusCode::NOT_FOUND,
                "backup_not_found",
                missing.to_string(),
            ),
            BackupError::Storage(unsupported @ StorageError::Unsupported { .. }) => Self::new(
                StatusCode::NOT_IMPLEMENTED,
                "not_supported",
                unsupported.to_string(),
            ),
            BackupError::Storage(StorageError::ModelMismatch {
                stored_model,
                stored_dimension,
                configured_model,
                configured_dimension,
                ..
            }) => Self::new(
                StatusCode::CONFLICT,
                "model_mismatch",
                format!(
                    "the backup holds vectors of model {stored_model:?} ({stored_dimension} \
                     dimensions), but this server's database uses {configured_model:?} \
                     ({configured_dimension} dimensions); nothing was changed"
                ),
            ),
            BackupError::Storage(
                bad @ (StorageError::Corrupt { .. }
                | StorageError::EmptyFile { .. }
                | StorageError::SchemaTooNew { .. }),
            ) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_backup",
                format!("{bad}; nothing was changed"),
            ),
            BackupError::Storage(storage) => ServiceError::Storage(storage).into(),
            io @ BackupError::Io { .. } => {
                tracing::error!(error = %io, "backup failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the backup failed; the server log has the details",
                )
            }
        }
    }
}

//! `GET /api/tags` and `GET /api/types`: what the memories are labelled with.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use mnemo_api::rest::{TagsResponse, TypeCount};

use super::error::ApiError;
use super::openapi::Unavailable;
use super::state::AppState;
use crate::operations::catalog;

/// `GET /api/tags`: most used first.
#[utoipa::path(get, path = "/api/tags", tag = "memories", operation_id = "list_tags",
    responses(
        (status = 200, description = "Every tag and how many memories carry it", body = TagsResponse),
        (status = 503, response = Unavailable),
    ))]
pub async fn tags(State(state): State<Arc<AppState>>) -> Result<Json<TagsResponse>, ApiError> {
    Ok(Json(catalog::tags(state.service()?).await?))
}

/// `GET /api/types`: most used first.
#[utoipa::path(get, path = "/api/types", tag = "memories", operation_id = "list_types",
    responses(
        (status = 200, description = "Every memory type and how many memories have it", body = Vec<TypeCount>),
        (status = 503, response = Unavailable),
    ))]
pub async fn types(State(state): State<Arc<AppState>>) -> Result<Json<Vec<TypeCount>>, ApiError> {
    Ok(Json(catalog::types(state.service()?).await?))
}

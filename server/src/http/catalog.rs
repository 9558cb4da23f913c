//! `GET /api/tags` and `GET /api/types`: what the memories are labelled with.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use mnemo_api::rest::{TagsResponse, TypeCount};

use super::error::ApiError;
use super::state::AppState;
use crate::operations::catalog;

/// `GET /api/tags`: most used first.
pub async fn tags(State(state): State<Arc<AppState>>) -> Result<Json<TagsResponse>, ApiError> {
    Ok(Json(catalog::tags(state.service()?).await?))
}

/// `GET /api/types`: most used first.
pub async fn types(State(state): State<Arc<AppState>>) -> Result<Json<Vec<TypeCount>>, ApiError> {
    Ok(Json(catalog::types(state.service()?).await?))
}

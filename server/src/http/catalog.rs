//! `GET /api/tags` and `GET /api/types`: what the memories are labelled with.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use mnemo_api::rest::{TagCount, TagsResponse, TypeCount};

use super::AppState;
use super::error::ApiError;

/// Most tags or types listed; every list is bounded (DESIGN §5).
const MAX_LISTED: u32 = 1000;

/// `GET /api/tags`: most used first.
pub async fn tags(State(state): State<Arc<AppState>>) -> Result<Json<TagsResponse>, ApiError> {
    let tags = state.service()?.tags(MAX_LISTED).await?;
    Ok(Json(TagsResponse {
        tags: tags
            .into_iter()
            .map(|(tag, count)| TagCount { tag, count })
            .collect(),
    }))
}

/// `GET /api/types`: most used first.
pub async fn types(State(state): State<Arc<AppState>>) -> Result<Json<Vec<TypeCount>>, ApiError> {
    let types = state.service()?.types(MAX_LISTED).await?;
    Ok(Json(
        types
            .into_iter()
            .map(|(memory_type, count)| TypeCount { memory_type, count })
            .collect(),
    ))
}

//! The labels in use: tags and memory types, most used first.

use mnemo_api::rest::{TagCount, TagsResponse, TypeCount};

use super::OpError;
use crate::service::MemoryService;

/// Most tags or types listed; no list mnemo answers is unbounded.
const MAX_LISTED: u32 = 1000;

pub async fn tags(service: &MemoryService) -> Result<TagsResponse, OpError> {
    let tags = service.tags(MAX_LISTED).await?;
    Ok(TagsResponse {
        tags: tags
            .into_iter()
            .map(|(tag, count)| TagCount { tag, count })
            .collect(),
    })
}

pub async fn types(service: &MemoryService) -> Result<Vec<TypeCount>, OpError> {
    let types = service.types(MAX_LISTED).await?;
    Ok(types
        .into_iter()
        .map(|(memory_type, count)| TypeCount { memory_type, count })
        .collect())
}

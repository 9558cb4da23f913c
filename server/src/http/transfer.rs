//! `GET /api/export` and `POST /api/import` (both admin): every memory as JSON Lines,
//! and the same lines read back. Both are streams: the export is written page by page
//! as the client reads it, and the import reads its body a line at a time as the
//! memories are stored, so neither holds a whole database in memory. The import's
//! body is exempt from the body size limit and its read deadline is per chunk
//! (`connections::bound_body`); each line is bounded instead.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::{StreamExt, TryStreamExt};
use mnemo_api::transfer::{ExportQuery, ExportedMemory, ImportReport, JSONL};
use tokio_util::io::StreamReader;

use super::error::{ApiError, ApiQuery};
use super::state::AppState;
use crate::operations::{Caller, export, import};

/// `GET /api/export[?vectors=true]`: one memory per line, oldest first.
#[utoipa::path(get, path = "/api/export", tag = "transfer", operation_id = "export",
    params(ExportQuery),
    responses(
        (status = 200, description = "One memory per line, oldest first", content_type = "application/x-ndjson", body = ExportedMemory),
        (status = 400, response = super::openapi::BadRequest),
        (status = 503, response = super::openapi::Unavailable),
    ))]
pub async fn export(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let lines = export::export(state.service()?.clone(), &caller, query.vectors)?;
    // A failure midway can only cut the body short: the status is already sent. The
    // client sees a body that does not end in a newline; the server logs why.
    let body = lines.map(|line| {
        line.map(Bytes::from).map_err(|error| {
            tracing::error!(%error, "export stopped");
            std::io::Error::other(error.to_string())
        })
    });
    Ok((
        [
            (header::CONTENT_TYPE, JSONL),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"mnemo-export.jsonl\"",
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// `POST /api/import`: JSON Lines as `/api/export` writes them; answers the count of
/// each outcome and every duplicate or bad line by number.
#[utoipa::path(post, path = "/api/import", tag = "transfer", operation_id = "import",
    // text/plain as well: the body is read as lines whatever its type, and a client
    // (or a fuzzer) without an NDJSON serialiser can still send one.
    request_body(description = "JSON Lines as /api/export writes them, one memory per line",
        content((ExportedMemory = "application/x-ndjson"), (String = "text/plain"))),
    responses(
        (status = 200, description = "The count of each outcome, and every duplicate or bad line", body = ImportReport),
        (status = 503, response = super::openapi::Unavailable),
        (status = 507, response = super::openapi::InsufficientStorage),
    ))]
pub async fn import(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: Body,
) -> Result<Json<ImportReport>, ApiError> {
    let reader = StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
    let service = state.service()?;
    Ok(Json(
        import::import(service, &caller, reader, |_| {}).await?,
    ))
}

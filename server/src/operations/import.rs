//! JSON Lines in, memories stored, a report per line out: `POST /api/import` and
//! `mnemo-server import`, and through [`import_memories`] the migration from
//! mcp-memory-service.
//!
//! The body is read a line at a time, never whole, and a line is held only up to
//! [`MAX_LINE_BYTES`]: a longer one is skipped to its newline and reported, so an
//! import of any size runs in bounded memory. Lines go to the service in batches,
//! which embeds the ones without a usable vector as one model batch; the same
//! content twice is a duplicate, never a second memory, so an import can be run
//! again after a failure and only adds what is missing.

use mnemo_api::transfer::{ExportedMemory, ImportReport, LineReport, LineStatus, MAX_LINE_BYTES};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::{Caller, OpError};
use crate::auth::Scope;
use crate::memory::NewMemory;
use crate::service::{MemoryService, ServiceError};
use crate::storage::StorageError;

/// Lines stored per call to the service: one model batch, one group commit.
const BATCH: usize = 64;

/// How far an import has come: lines and body bytes read, for a progress bar.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub lines: u64,
    pub bytes: u64,
}

/// One memory to import, with where it came from: a line number, or a row.
#[derive(Debug)]
pub struct Item {
    pub line: u64,
    pub memory: NewMemory,
    pub vector: Option<Vec<f32>>,
}

/// Reads JSON Lines from `body` and stores each memory with its times, tags in
/// order, type and metadata, and its vector when it is one of this server's model.
/// `progress` hears after each batch. Admin only, as `POST /api/memories/import`:
/// an import writes the past.
///
/// A bad line is reported and skipped; the other lines are stored. The whole import
/// fails only when the body cannot be read or the server cannot store (what was
/// stored by then stays, and a second run skips it as duplicates).
pub async fn import(
    service: &MemoryService,
    caller: &Caller,
    mut body: impl AsyncBufRead + Unpin,
    mut progress: impl FnMut(Progress),
) -> Result<ImportReport, OpError> {
    caller.require(Scope::Admin)?;
    let model = service.embedder().spec().model_id.clone();
    let mut report = ImportReport::default();
    let mut done = Progress::default();
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(line) = read_line(&mut body, MAX_LINE_BYTES, &mut done.bytes)
        .await
        .map_err(|e| OpError::bad_request(format!("the body could not be read: {e}")))?
    {
        done.lines += 1;
        let number = done.lines;
        match line.and_then(|text| parse(&text, &model, number)) {
            Ok(None) => {}
            Ok(Some(item)) => batch.push(item),
            Err(message) => report.record(LineReport {
                line: number,
                status: LineStatus::Error,
                content_hash: String::new(),
                message,
            }),
        }
        if batch.len() == BATCH {
            store(service, std::mem::take(&mut batch), &mut report).await?;
            progress(done);
        }
    }
    store(service, batch, &mut report).await?;
    report.lines = done.lines;
    progress(done);
    Ok(report)
}

/// Stores items the caller has already read (another project's database), with the
/// same per-item report as a JSON Lines import.
pub async fn import_memories(
    service: &MemoryService,
    caller: &Caller,
    items: Vec<Item>,
    report: &mut ImportReport,
) -> Result<(), OpError> {
    caller.require(Scope::Admin)?;
    for chunk in chunks(items) {
        store(service, chunk, report).await?;
    }
    Ok(())
}

fn chunks(items: Vec<Item>) -> Vec<Vec<Item>> {
    let mut out = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        out.push(items.by_ref().take(BATCH).collect());
    }
    out
}

/// Line `line` as a memory to store, `None` for a blank line, or why it is refused.
fn parse(text: &[u8], model: &str, line: u64) -> Result<Option<Item>, String> {
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let exported: ExportedMemory =
        serde_json::from_slice(text).map_err(|e| format!("not a memory: {e}"))?;
    let vector = match (exported.embedding, exported.embedding_model) {
        (Some(_), Some(other)) if other != model => {
            return Err(format!(
                "its embedding is from model {other:?}; this server uses {model:?}: leave out \
                 `embedding` (export without ?vectors=true) to have it embedded again"
            ));
        }
        (vector, _) => vector,
    };
    let memory = NewMemory {
        content: exported.content,
        tags: exported.tags,
        memory_type: exported.memory_type,
        metadata: exported.metadata,
        created_at: exported.created_at,
        updated_at: exported.updated_at.or(exported.created_at),
    };
    Ok(Some(Item {
        line,
        memory,
        vector,
    }))
}

/// Stores a batch and records each item's outcome. Only a failure of the server
/// (storage, the model) fails the import.
async fn store(
    service: &MemoryService,
    batch: Vec<Item>,
    report: &mut ImportReport,
) -> Result<(), OpError> {
    if batch.is_empty() {
        return Ok(());
    }
    let lines: Vec<u64> = batch.iter().map(|item| item.line).collect();
    let outcomes = service
        .store_many_with_vectors(
            batch
                .into_iter()
                .map(|item| (item.memory, item.vector))
                .collect(),
        )
        .await?;
    for (line, outcome) in lines.into_iter().zip(outcomes) {
        let (status, content_hash, message) = match outcome {
            Ok(memory) => (LineStatus::Accepted, memory.content_hash, String::new()),
            Err(ServiceError::Storage(StorageError::Duplicate { content_hash })) => (
                LineStatus::Duplicate,
                content_hash,
                "already stored".to_owned(),
            ),
            Err(
                e @ (ServiceError::Invalid(_)
                | ServiceError::Storage(StorageError::WrongDimension { .. })),
            ) => (LineStatus::Error, String::new(), e.to_string()),
            Err(other) => return Err(other.into()),
        };
        report.record(LineReport {
            line,
            status,
            content_hash,
            message,
        });
    }
    Ok(())
}

/// The next line without its newline; `Err` with the reason for one longer than
/// `max` bytes, which is read past but not kept. `None` at the end. `bytes` counts
/// what was read.
async fn read_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    max: usize,
    bytes: &mut u64,
) -> std::io::Result<Option<Result<Vec<u8>, String>>> {
    let mut line = Vec::new();
    let mut length = 0usize;
    let mut started = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            break;
        }
        started = true;
        let (chunk, used, ends) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (&available[..at], at + 1, true),
            None => (available, available.len(), false),
        };
        length += chunk.len();
        if length <= max {
            line.extend_from_slice(chunk);
        } else if !line.is_empty() {
            line = Vec::new();
        }
        reader.consume(used);
        *bytes += used as u64;
        if ends {
            break;
        }
    }
    if !started {
        return Ok(None);
    }
    if length > max {
        return Ok(Some(Err(format!(
            "the line is {length} bytes; the limit is {max}"
        ))));
    }
    Ok(Some(Ok(line)))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(text: &[u8], max: usize) -> Vec<Result<Vec<u8>, String>> {
        let mut reader = tokio::io::BufReader::with_capacity(4, text);
        let mut bytes = 0;
        let mut out = Vec::new();
        while let Some(line) = read_line(&mut reader, max, &mut bytes).await.unwrap() {
            out.push(line);
        }
        assert_eq!(bytes, text.len() as u64);
        out
    }

    /// Lines split across reads come back whole; a line past the limit is an error
    /// and the next line is read as usual; a last line without newline counts.
    #[tokio::test]
    async fn lines_are_bounded() {
        let got = lines(b"abc\n0123456789\n\nxy", 8).await;
        assert_eq!(got[0], Ok(b"abc".to_vec()));
        assert!(got[1].as_ref().unwrap_err().contains("10 bytes"));
        assert_eq!(got[2], Ok(Vec::new()));
        assert_eq!(got[3], Ok(b"xy".to_vec()));
        assert_eq!(got.len(), 4);
    }

    /// A vector of another model is refused with what to do; blank lines are
    /// nothing; a missing update time is the creation time.
    #[test]
    fn parse_rules() {
        let other = br#"{"content":"a","embedding":[1.0],"embedding_model":"x"}"#;
        assert!(parse(other, "m", 1).unwrap_err().contains("leave out"));
        assert!(parse(b"  ", "m", 1).unwrap().is_none());
        assert!(parse(b"[1]", "m", 1).unwrap_err().contains("not a memory"));
        let item = parse(br#"{"content":"a","created_at":5}"#, "m", 3)
            .unwrap()
            .unwrap();
        let memory = &item.memory;
        assert_eq!(
            (memory.created_at, memory.updated_at),
            (Some(5.0), Some(5.0))
        );
        assert!(item.vector.is_none() && item.line == 3);
    }
}

//! Queries. Each takes a plain connection, so the same code serves the read pool and
//! the writer (which reads back what it just wrote).

use rusqlite::{Connection, OptionalExtension, Row, params_from_iter, types::Value};

use super::filter::SqlFilter;
use super::migrations::VECTOR_TABLE;
use super::vec::{floats, vector_bytes};
use super::vectors::VectorCopy;
use crate::memory::{Filter, Memory, ScoredMemory};
use crate::storage::{ExportCursor, Page, StorageError};

/// The columns [`memory_from_row`] reads, for a query over `memories m`. Tags come back
/// as one JSON array so a page needs no second query, in the order they were given
/// (`position`, written by `write::set_tags`).
const MEMORY_COLUMNS: &str = "m.content, m.content_hash, m.memory_type, m.metadata, \
     m.created_at, m.updated_at, \
     (SELECT json_group_array(tag) FROM \
        (SELECT tag FROM memory_tags WHERE memory_id = m.id ORDER BY position, tag)) AS tags";

fn memory_from_row(row: &Row<'_>) -> rusqlite::Result<Memory> {
    let json_column = |index: usize| -> rusqlite::Result<serde_json::Value> {
        let text: String = row.get(index)?;
        serde_json::from_str(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                index,
                rusqlite::types::Type::Text,
                Box::new(e),
            )
        })
    };
    let metadata = match json_column(3)? {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let tags = match json_column(6)? {
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    Ok(Memory {
        content: row.get(0)?,
        content_hash: row.get(1)?,
        memory_type: row.get(2)?,
        metadata,
        created_at: row.get(4)?,
        updated_at: row.get(5)?,
        tags,
    })
}

pub(super) fn get(conn: &Connection, content_hash: &str) -> Result<Memory, StorageError> {
    conn.prepare_cached(&format!(
        "SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.content_hash = ?"
    ))?
    .query_row([content_hash], memory_from_row)
    .optional()?
    .ok_or_else(|| StorageError::NotFound {
        content_hash: content_hash.to_owned(),
    })
}

pub(super) fn list(
    conn: &Connection,
    filter: &Filter,
    page: u32,
    page_size: u32,
) -> Result<Page, StorageError> {
    let sql = SqlFilter::new(filter);
    let total: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM memories m WHERE 1 = 1{}",
            sql.conditions
        ))?
        .query_row(params_from_iter(&sql.params), |r| r.get(0))?;

    let offset = u64::from(page.max(1) - 1) * u64::from(page_size);
    let mut params = sql.params.clone();
    params.push(Value::Integer(i64::from(page_size)));
    params.push(Value::Integer(offset as i64));
    let memories = conn
        .prepare_cached(&format!(
            "SELECT {MEMORY_COLUMNS} FROM memories m WHERE 1 = 1{} \
             ORDER BY m.created_at DESC, m.id DESC LIMIT ? OFFSET ?",
            sql.conditions
        ))?
        .query_map(params_from_iter(&params), memory_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Page {
        memories,
        total: total as u64,
    })
}

/// A keyset page in export order (creation time, then content hash).
pub(super) fn export_page(
    conn: &Connection,
    after: Option<&ExportCursor>,
    limit: u32,
) -> Result<Vec<Memory>, StorageError> {
    let (condition, params) = match after {
        Some(cursor) => (
            "WHERE (m.created_at, m.content_hash) > (?, ?)",
            vec![
                Value::Real(cursor.created_at),
                Value::Text(cursor.content_hash.clone()),
            ],
        ),
        None => ("", Vec::new()),
    };
    let mut params = params;
    params.push(Value::Integer(i64::from(limit)));
    let memories = conn
        .prepare_cached(&format!(
            "SELECT {MEMORY_COLUMNS} FROM memories m {condition} \
             ORDER BY m.created_at, m.content_hash LIMIT ?"
        ))?
        .query_map(params_from_iter(&params), memory_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(memories)
}

/// Exact k-nearest-neighbour search. The filter narrows the candidate rows inside the
/// vec0 scan (`rowid IN (...)`), before ranking, so a filtered search still returns `k`
/// results when `k` matching memories exist.
pub(super) fn search(
    conn: &Connection,
    vector: &[f32],
    k: usize,
    filter: &Filter,
) -> Result<Vec<ScoredMemory>, StorageError> {
    if k == 0 {
        return Ok(Vec::new());
    }
    let sql = SqlFilter::new(filter);
    let candidates = if sql.is_empty() {
        String::new()
    } else {
        format!(
            " AND rowid IN (SELECT m.id FROM memories m WHERE 1 = 1{})",
            sql.conditions
        )
    };
    let mut params = vec![Value::Blob(vector_bytes(vector)), Value::Integer(k as i64)];
    params.extend(sql.params);
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {MEMORY_COLUMNS}, knn.distance FROM \
           (SELECT rowid AS id, distance FROM {VECTOR_TABLE} \
            WHERE embedding MATCH ? AND k = ?{candidates}) AS knn \
         JOIN memories m ON m.id = knn.id \
         ORDER BY knn.distance"
    ))?;
    let hits = statement
        .query_map(params_from_iter(&params), |row| {
            let distance: f64 = row.get(7)?;
            Ok(ScoredMemory {
                memory: memory_from_row(row)?,
                // Vectors are unit length, so squared L2 distance = 2 - 2·cos.
                cosine_similarity: 1.0 - distance * distance / 2.0,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(hits)
}

/// The same search over the in-memory copy of the vectors. The filter becomes a list of
/// candidate ids first, so filtered searches still rank only matching memories.
pub(super) fn search_copy(
    conn: &Connection,
    vectors: &VectorCopy,
    vector: &[f32],
    k: usize,
    filter: &Filter,
) -> Result<Vec<ScoredMemory>, StorageError> {
    if k == 0 {
        return Ok(Vec::new());
    }
    let sql = SqlFilter::new(filter);
    let candidates: Option<Vec<i64>> = if sql.is_empty() {
        None
    } else {
        Some(
            conn.prepare_cached(&format!(
                "SELECT m.id FROM memories m WHERE 1 = 1{}",
                sql.conditions
            ))?
            .query_map(params_from_iter(&sql.params), |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?,
        )
    };
    let shortlist = vectors.shortlist(vector, k, candidates.as_deref());
    // vec0 answers a rowid lookup in about 25 µs here (a `rowid IN (...)` list would
    // scan the table).
    let mut exact = conn.prepare_cached(&format!(
        "SELECT embedding FROM {VECTOR_TABLE} WHERE rowid = ?"
    ))?;
    let ranked = shortlist.rank(vector, |id| {
        exact
            .query_row([id], |row| Ok(floats(row.get_ref(0)?.as_blob()?).collect()))
            .optional()
    })?;
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.id = ?"
    ))?;
    let mut hits = Vec::with_capacity(k);
    for (id, similarity) in ranked {
        // A memory deleted since the scan is simply not returned.
        if let Some(memory) = statement.query_row([id], memory_from_row).optional()? {
            hits.push(ScoredMemory {
                memory,
                cosine_similarity: similarity,
            });
        }
    }
    Ok(hits)
}

pub(super) fn count(conn: &Connection) -> Result<u64, StorageError> {
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM memories")?
        .query_row([], |r| r.get(0))?;
    Ok(n as u64)
}

/// Memories whose content matches the words of `query` (any of them), best BM25 first.
pub(super) fn keyword_search(
    conn: &Connection,
    query: &str,
    k: usize,
    filter: &Filter,
) -> Result<Vec<Memory>, StorageError> {
    let Some(fts_query) = fts_query(query) else {
        return Ok(Vec::new());
    };
    let sql = SqlFilter::new(filter);
    let mut params = vec![Value::Text(fts_query)];
    params.extend(sql.params);
    params.push(Value::Integer(k as i64));
    let memories = conn
        .prepare_cached(&format!(
            "SELECT {MEMORY_COLUMNS} FROM memories_fts f JOIN memories m ON m.id = f.rowid \
             WHERE memories_fts MATCH ?{} ORDER BY bm25(memories_fts) LIMIT ?",
            sql.conditions
        ))?
        .query_map(params_from_iter(&params), memory_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(memories)
}

/// Most distinct words of a query that reach the full-text index. FTS5 evaluates an
/// `OR` of n phrases in time that grows faster than n (a query of 64,000 words took 19 s),
/// and words past the first few dozen no longer change which memories rank first.
pub(super) const MAX_FTS_TERMS: usize = 32;

/// FTS5 query text: each distinct whitespace-separated word (up to [`MAX_FTS_TERMS`])
/// becomes a quoted phrase (so punctuation such as `E1234-XK` cannot be read as FTS
/// syntax), any of which matches.
fn fts_query(query: &str) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    let terms: Vec<String> = query
        // U+0000 separates words too: FTS5 refuses it inside a phrase.
        .split(|c: char| c.is_whitespace() || c == '\0')
        .map(|word| word.replace('"', ""))
        .filter(|word| word.chars().any(char::is_alphanumeric))
        // The index folds case, so "Word" and "word" are one term.
        .filter(|word| seen.insert(word.to_lowercase()))
        .take(MAX_FTS_TERMS)
        .map(|word| format!("\"{word}\""))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" OR "))
}

/// Memories whose content contains `text`, ignoring ASCII case, newest first.
pub(super) fn substring_search(
    conn: &Connection,
    text: &str,
    k: usize,
    filter: &Filter,
) -> Result<Vec<Memory>, StorageError> {
    let sql = SqlFilter::new(filter);
    let mut params = vec![Value::Text(text.to_lowercase())];
    params.extend(sql.params);
    params.push(Value::Integer(k as i64));
    let memories = conn
        .prepare_cached(&format!(
            "SELECT {MEMORY_COLUMNS} FROM memories m \
             WHERE instr(lower(m.content), ?) > 0{} \
             ORDER BY m.created_at DESC, m.id DESC LIMIT ?",
            sql.conditions
        ))?
        .query_map(params_from_iter(&params), memory_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(memories)
}

/// Cosine similarity between `vector` and the stored vector of one memory.
pub(super) fn similarity(
    conn: &Connection,
    vector: &[f32],
    content_hash: &str,
) -> Result<f64, StorageError> {
    let distance: f64 = conn
        .prepare_cached(&format!(
            "SELECT vec_distance_l2(v.embedding, ?) FROM {VECTOR_TABLE} v \
             JOIN memories m ON m.id = v.rowid WHERE m.content_hash = ?"
        ))?
        .query_row(rusqlite::params![vector_bytes(vector), content_hash], |r| {
            r.get(0)
        })
        .optional()?
        .ok_or_else(|| StorageError::NotFound {
            content_hash: content_hash.to_owned(),
        })?;
    Ok(1.0 - distance * distance / 2.0)
}

/// The vector vec0 holds for one memory: the source of truth, not the 8-bit copy.
pub(super) fn stored_vector(
    conn: &Connection,
    content_hash: &str,
) -> Result<Vec<f32>, StorageError> {
    let bytes: Vec<u8> = conn
        .prepare_cached(&format!(
            "SELECT v.embedding FROM {VECTOR_TABLE} v \
             JOIN memories m ON m.id = v.rowid WHERE m.content_hash = ?"
        ))?
        .query_row([content_hash], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StorageError::NotFound {
            content_hash: content_hash.to_owned(),
        })?;
    Ok(floats(&bytes).collect())
}

/// The most used tags with their counts, most used first.
pub(super) fn tag_counts(
    conn: &Connection,
    limit: u32,
) -> Result<Vec<(String, u64)>, StorageError> {
    counts(
        conn,
        "SELECT tag, count(*) AS n FROM memory_tags GROUP BY tag ORDER BY n DESC, tag LIMIT ?",
        limit,
    )
}

/// The memory types in use with their counts, most used first.
pub(super) fn type_counts(
    conn: &Connection,
    limit: u32,
) -> Result<Vec<(String, u64)>, StorageError> {
    counts(
        conn,
        "SELECT memory_type, count(*) AS n FROM memories WHERE memory_type IS NOT NULL \
         GROUP BY memory_type ORDER BY n DESC, memory_type LIMIT ?",
        limit,
    )
}

/// Memories created per day since `since`, the days shifted by `offset` seconds.
pub(super) fn daily_counts(
    conn: &Connection,
    since: f64,
    offset: i32,
) -> Result<Vec<(i64, u64)>, StorageError> {
    let rows = conn
        .prepare_cached(
            // SQLite may be built without floor(): a cast truncates toward zero, so
            // a negative fraction steps down one.
            "SELECT CAST(d AS INTEGER) - (d < CAST(d AS INTEGER)) AS day, count(*) \
             FROM (SELECT (created_at + ?2) / 86400.0 AS d FROM memories WHERE created_at >= ?1) \
             GROUP BY day ORDER BY day",
        )?
        .query_map(rusqlite::params![since, offset], |row| {
            Ok((row.get(0)?, row.get::<_, i64>(1)? as u64))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

fn counts(conn: &Connection, sql: &str, limit: u32) -> Result<Vec<(String, u64)>, StorageError> {
    let rows = conn
        .prepare_cached(sql)?
        .query_map([limit], |row| {
            Ok((row.get(0)?, row.get::<_, i64>(1)? as u64))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

#[cfg(test)]
mod fts_tests {
    use super::*;

    /// Repeated words reach FTS5 once, and at most MAX_FTS_TERMS distinct words do.
    #[test]
    fn fts_query_is_bounded() {
        let repeated = "word Word ".repeat(64_000);
        assert_eq!(fts_query(&repeated).as_deref(), Some("\"word\""));
        let distinct: String = (0..10_000).map(|i| format!("w{i} ")).collect();
        let query = fts_query(&distinct).unwrap();
        assert_eq!(query.matches(" OR ").count(), MAX_FTS_TERMS - 1);
        assert!(query.starts_with("\"w0\" OR \"w1\""));
        assert_eq!(fts_query("-- ?!"), None);
    }
}

//! Queries. Each takes any client (a pooled connection or an open transaction) and
//! prepares its statement once per connection.

use deadpool_postgres::GenericClient;
use pgvector::Vector;
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::VectorIndex;
use super::filter::{Params, conditions};
use crate::memory::{Filter, Memory, ScoredMemory};
use crate::storage::{EventRow, ExportCursor, Page, StorageError};

/// The columns [`memory_from_row`] reads, for a query over `memories m`.
pub(super) const MEMORY_COLUMNS: &str =
    "m.content, m.content_hash, m.tags, m.memory_type, m.metadata, m.created_at, m.updated_at";

pub(super) fn memory_from_row(row: &Row) -> Result<Memory, StorageError> {
    let metadata = match row.try_get::<_, Value>(4)? {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    Ok(Memory {
        content: row.try_get(0)?,
        content_hash: row.try_get(1)?,
        tags: row.try_get(2)?,
        memory_type: row.try_get(3)?,
        metadata,
        created_at: row.try_get(5)?,
        updated_at: row.try_get(6)?,
    })
}

/// Runs `sql` through the connection's statement cache.
pub(super) async fn query(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StorageError> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query(&statement, params).await?)
}

fn memories(rows: &[Row]) -> Result<Vec<Memory>, StorageError> {
    rows.iter().map(memory_from_row).collect()
}

pub(super) async fn get(
    client: &impl GenericClient,
    content_hash: &str,
) -> Result<Memory, StorageError> {
    refuse_nul_hash(content_hash)?;
    let rows = query(
        client,
        &format!("SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.content_hash = $1"),
        &[&content_hash],
    )
    .await?;
    match rows.first() {
        Some(row) => memory_from_row(row),
        None => Err(StorageError::NotFound {
            content_hash: content_hash.to_owned(),
        }),
    }
}

pub(super) async fn contains(
    client: &impl GenericClient,
    content_hashes: &[String],
) -> Result<Vec<bool>, StorageError> {
    if content_hashes.is_empty() {
        return Ok(Vec::new());
    }
    let askable: Vec<&str> = content_hashes
        .iter()
        .map(String::as_str)
        .filter(|h| !h.contains('\0'))
        .collect();
    let rows = query(
        client,
        "SELECT content_hash FROM memories WHERE content_hash = ANY($1)",
        &[&askable],
    )
    .await?;
    let stored: std::collections::HashSet<&str> = rows.iter().map(|r| r.get(0)).collect();
    Ok(content_hashes
        .iter()
        .map(|h| stored.contains(h.as_str()))
        .collect())
}

pub(super) async fn list(
    client: &impl GenericClient,
    filter: &Filter,
    page: u32,
    page_size: u32,
) -> Result<Page, StorageError> {
    let mut params = Params::default();
    let conditions = conditions(filter, &mut params);
    let total: i64 = query(
        client,
        &format!("SELECT count(*) FROM memories m WHERE true{conditions}"),
        &params.as_refs(),
    )
    .await?[0]
        .try_get(0)?;
    let offset = i64::from(page.max(1) - 1) * i64::from(page_size);
    let limit = params.push(i64::from(page_size));
    let offset = params.push(offset);
    let rows = query(
        client,
        &format!(
            "SELECT {MEMORY_COLUMNS} FROM memories m WHERE true{conditions} \
             ORDER BY m.created_at DESC, m.id DESC LIMIT {limit} OFFSET {offset}"
        ),
        &params.as_refs(),
    )
    .await?;
    Ok(Page {
        memories: memories(&rows)?,
        total: total as u64,
    })
}

/// A keyset page in export order (creation time, then content hash).
pub(super) async fn export_page(
    client: &impl GenericClient,
    after: Option<&ExportCursor>,
    limit: u32,
) -> Result<Vec<Memory>, StorageError> {
    let limit = i64::from(limit);
    let rows = match after {
        Some(cursor) => {
            query(
                client,
                &format!(
                    "SELECT {MEMORY_COLUMNS} FROM memories m \
                     WHERE (m.created_at, m.content_hash) > ($1, $2) \
                     ORDER BY m.created_at, m.content_hash LIMIT $3"
                ),
                &[&cursor.created_at, &cursor.content_hash, &limit],
            )
            .await?
        }
        None => {
            query(
                client,
                &format!(
                    "SELECT {MEMORY_COLUMNS} FROM memories m \
                     ORDER BY m.created_at, m.content_hash LIMIT $1"
                ),
                &[&limit],
            )
            .await?
        }
    };
    memories(&rows)
}

/// k-nearest-neighbour search, the filter applied before ranking.
///
/// Exact: PostgreSQL computes the cosine distance of every row the filter lets
/// through and keeps the best `k`, so recall is 1.0. The distance is ordered as an
/// expression (`+ 0`) that no index serves, so an HNSW index built for other servers
/// of the database is not used by this one.
///
/// HNSW: the index's iterative scan yields rows nearly in distance order (see
/// `connect`); the outer query puts the `k` it kept in exact order.
pub(super) async fn search(
    client: &impl GenericClient,
    vector: &[f32],
    k: usize,
    filter: &Filter,
    index: VectorIndex,
) -> Result<Vec<ScoredMemory>, StorageError> {
    if k == 0 {
        return Ok(Vec::new());
    }
    let mut params = Params::default();
    let query_vector = params.push(Vector::from(vector.to_vec()));
    let conditions = conditions(filter, &mut params);
    let limit = params.push(k as i64);
    let sql = search_sql(index, &query_vector, &conditions, &limit);
    let rows = query(client, &sql, &params.as_refs()).await?;
    rows.iter()
        .map(|row| {
            let distance: f64 = row.try_get(7)?;
            Ok(ScoredMemory {
                memory: memory_from_row(row)?,
                cosine_similarity: 1.0 - distance,
            })
        })
        .collect()
}

/// The search statement of each mode; `conditions` are the filter's, over `m`.
pub(super) fn search_sql(
    index: VectorIndex,
    query_vector: &str,
    conditions: &str,
    limit: &str,
) -> String {
    match index {
        VectorIndex::Exact => format!(
            "SELECT {MEMORY_COLUMNS}, (m.embedding <=> {query_vector}) + 0 AS distance \
             FROM memories m WHERE true{conditions} ORDER BY distance, m.id LIMIT {limit}"
        ),
        VectorIndex::Hnsw => format!(
            "WITH near AS MATERIALIZED ( \
               SELECT m.id, m.embedding <=> {query_vector} AS distance \
               FROM memories m WHERE true{conditions} \
               ORDER BY m.embedding <=> {query_vector} LIMIT {limit}) \
             SELECT {MEMORY_COLUMNS}, near.distance FROM near JOIN memories m ON m.id = near.id \
             ORDER BY near.distance + 0, m.id"
        ),
    }
}

/// Most distinct words of a query that reach full-text search, as in SQLite: past a
/// few dozen they no longer change which memories rank first, and each costs time.
const MAX_TERMS: usize = 32;

/// The distinct words of `query` (case folded), each later matched as a phrase of
/// its own, so punctuation such as `E1234-XK` or `"` is text, never syntax.
fn words(query: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    query
        .split(|c: char| c.is_whitespace() || c == '\0')
        .filter(|word| word.chars().any(char::is_alphanumeric))
        .map(str::to_lowercase)
        .filter(|word| seen.insert(word.clone()))
        .take(MAX_TERMS)
        .collect()
}

/// Memories whose content matches any word of `query`, best `ts_rank` first.
pub(super) async fn keyword_search(
    client: &impl GenericClient,
    query_text: &str,
    k: usize,
    filter: &Filter,
) -> Result<Vec<Memory>, StorageError> {
    let words = words(query_text);
    if words.is_empty() || k == 0 {
        return Ok(Vec::new());
    }
    let mut params = Params::default();
    let words = params.push(words);
    let conditions = conditions(filter, &mut params);
    let limit = params.push(k as i64);
    let rows = query(
        client,
        &format!(
            "SELECT {MEMORY_COLUMNS} FROM memories m, \
               (SELECT any_word(phraseto_tsquery('simple', w)) AS q FROM unnest({words}::text[]) w) AS q \
             WHERE m.content_tsv @@ q.q{conditions} \
             ORDER BY ts_rank(m.content_tsv, q.q) DESC, m.id LIMIT {limit}"
        ),
        &params.as_refs(),
    )
    .await?;
    memories(&rows)
}

/// Memories whose content contains `text`, case ignored, newest first.
pub(super) async fn substring_search(
    client: &impl GenericClient,
    text: &str,
    k: usize,
    filter: &Filter,
) -> Result<Vec<Memory>, StorageError> {
    // No stored content holds U+0000 (PostgreSQL cannot), so nothing contains it.
    if text.contains('\0') {
        return Ok(Vec::new());
    }
    let mut params = Params::default();
    let needle = params.push(text.to_lowercase());
    let conditions = conditions(filter, &mut params);
    let limit = params.push(k as i64);
    let rows = query(
        client,
        &format!(
            "SELECT {MEMORY_COLUMNS} FROM memories m \
             WHERE strpos(lower(m.content), {needle}) > 0{conditions} \
             ORDER BY m.created_at DESC, m.id DESC LIMIT {limit}"
        ),
        &params.as_refs(),
    )
    .await?;
    memories(&rows)
}

/// Cosine similarity of `vector` to each named memory, in order, in one query.
pub(super) async fn similarities(
    client: &impl GenericClient,
    vector: &[f32],
    content_hashes: &[String],
) -> Result<Vec<f64>, StorageError> {
    if content_hashes.is_empty() {
        return Ok(Vec::new());
    }
    content_hashes.iter().try_for_each(|h| refuse_nul_hash(h))?;
    let rows = query(
        client,
        "SELECT content_hash, 1 - (embedding <=> $1) FROM memories WHERE content_hash = ANY($2)",
        &[&Vector::from(vector.to_vec()), &content_hashes],
    )
    .await?;
    let found: std::collections::HashMap<&str, f64> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    content_hashes
        .iter()
        .map(|hash| {
            found
                .get(hash.as_str())
                .copied()
                .ok_or_else(|| StorageError::NotFound {
                    content_hash: hash.clone(),
                })
        })
        .collect()
}

/// No memory has a hash holding U+0000, which PostgreSQL would refuse as a parameter.
pub(super) fn refuse_nul_hash(content_hash: &str) -> Result<(), StorageError> {
    if content_hash.contains('\0') {
        Err(StorageError::NotFound {
            content_hash: content_hash.to_owned(),
        })
    } else {
        Ok(())
    }
}

pub(super) async fn count(client: &impl GenericClient) -> Result<u64, StorageError> {
    let n: i64 = query(client, "SELECT count(*) FROM memories", &[]).await?[0].try_get(0)?;
    Ok(n as u64)
}

/// The most used tags with their counts, most used first, ties by byte order (as
/// SQLite orders them, whatever the database's collation).
pub(super) async fn tag_counts(
    client: &impl GenericClient,
    limit: u32,
) -> Result<Vec<(String, u64)>, StorageError> {
    counts(
        client,
        "SELECT tag, count(*) AS n FROM memories, unnest(tags) AS tag \
         GROUP BY tag ORDER BY n DESC, tag COLLATE \"C\" LIMIT $1",
        limit,
    )
    .await
}

/// The memory types in use with their counts, most used first.
pub(super) async fn type_counts(
    client: &impl GenericClient,
    limit: u32,
) -> Result<Vec<(String, u64)>, StorageError> {
    counts(
        client,
        "SELECT memory_type, count(*) AS n FROM memories WHERE memory_type IS NOT NULL \
         GROUP BY memory_type ORDER BY n DESC, memory_type COLLATE \"C\" LIMIT $1",
        limit,
    )
    .await
}

/// Memories created per day since `since`, the days shifted by `offset` seconds.
pub(super) async fn daily_counts(
    client: &impl GenericClient,
    since: f64,
    offset: i32,
) -> Result<Vec<(i64, u64)>, StorageError> {
    query(
        client,
        "SELECT floor((created_at + $2) / 86400.0)::bigint AS day, count(*) \
         FROM memories WHERE created_at >= $1 GROUP BY day ORDER BY day",
        &[&since, &f64::from(offset)],
    )
    .await?
    .iter()
    .map(|row| Ok((row.try_get(0)?, row.try_get::<_, i64>(1)? as u64)))
    .collect()
}

async fn counts(
    client: &impl GenericClient,
    sql: &str,
    limit: u32,
) -> Result<Vec<(String, u64)>, StorageError> {
    query(client, sql, &[&i64::from(limit)])
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get::<_, i64>(1)? as u64)))
        .collect()
}

pub(super) async fn events_after(
    client: &impl GenericClient,
    after: i64,
    limit: u32,
) -> Result<Vec<EventRow>, StorageError> {
    query(
        client,
        "SELECT seq, at, kind, content_hash, payload FROM events \
         WHERE seq > $1 ORDER BY seq LIMIT $2",
        &[&after, &i64::from(limit)],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(EventRow {
            seq: row.try_get(0)?,
            at: row.try_get(1)?,
            kind: row.try_get(2)?,
            content_hash: row.try_get(3)?,
            payload: row.try_get(4)?,
        })
    })
    .collect()
}

/// The last sequence number ever assigned (0 before the first event), pruned or not.
pub(super) async fn head_seq(client: &impl GenericClient) -> Result<i64, StorageError> {
    Ok(query(client, "SELECT head FROM feed", &[]).await?[0].try_get(0)?)
}

pub(super) async fn oldest_seq(client: &impl GenericClient) -> Result<Option<i64>, StorageError> {
    Ok(query(client, "SELECT min(seq) FROM events", &[]).await?[0].try_get(0)?)
}

/// Bytes Mnemo's tables and their indexes take.
pub(super) async fn size_on_disk(client: &impl GenericClient) -> Result<u64, StorageError> {
    let bytes: i64 = query(
        client,
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'mnemo' AND c.relkind = 'r'",
        &[],
    )
    .await?[0]
        .try_get(0)?;
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Repeated words reach full-text search once, and at most MAX_TERMS do.
    #[test]
    fn words_are_distinct_and_bounded() {
        assert_eq!(
            words("Word word -- ?! E1234-XK a\0b"),
            ["word", "e1234-xk", "a", "b"]
        );
        let many: String = (0..1000).map(|i| format!("w{i} ")).collect();
        assert_eq!(words(&many).len(), MAX_TERMS);
    }
}

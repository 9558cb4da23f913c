//! The schema, as numbered migrations Mnemo applies itself, and the model pin.
//!
//! Everything lives in the schema `mnemo` (connections put it first on their
//! `search_path`), so Mnemo's tables cannot collide with others in a shared database.
//! `mnemo.migrations` lists the versions applied; a database newer than this server
//! is refused. Several servers may start at once against one database: each step
//! runs in a transaction holding an advisory lock, so exactly one applies it.
//!
//! As in SQLite, the vector column is the one piece of schema that is not static: its
//! width is the model's dimension, added in the transaction that records the model.

use deadpool_postgres::Client;

use super::VectorIndex;
use crate::memory::EmbeddingSpec;
use crate::storage::StorageError;

/// Every migration, in order. Index `i` moves the database from version `i` to `i + 1`.
/// A migration is never edited once released; a change is a new entry at the end.
const MIGRATIONS: &[&str] = &[V1_INITIAL, V2_API_KEYS];

/// The advisory lock key that serialises schema changes across servers ("mnemo" in
/// ASCII).
const SCHEMA_LOCK: i64 = 0x006d_6e65_6d6f;

/// Keys of the `meta` table.
mod meta_keys {
    pub const EMBEDDING_MODEL: &str = "embedding_model";
    pub const EMBEDDING_DIMENSION: &str = "embedding_dimension";
}

/// Brings the schema up to the latest version, one transaction per step.
pub(super) async fn migrate(client: &mut Client, location: &str) -> Result<(), StorageError> {
    client
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS mnemo; \
             CREATE TABLE IF NOT EXISTS mnemo.migrations ( \
                 version    integer     PRIMARY KEY, \
                 applied_at timestamptz NOT NULL DEFAULT now() \
             )",
        )
        .await
        .map_err(|e| schema_error("cannot create the schema mnemo", e))?;
    let supported = MIGRATIONS.len() as u32;
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let version = index as i32 + 1;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await?;
        let found: Option<i32> = tx
            .query_one("SELECT max(version) FROM mnemo.migrations", &[])
            .await?
            .get(0);
        let found = found.unwrap_or(0);
        if found as u32 > supported {
            return Err(StorageError::SchemaTooNew {
                location: location.to_owned(),
                found: found as u32,
                supported,
            });
        }
        if found >= version {
            continue;
        }
        // A migration may build indexes over many rows; the per-statement timeout
        // is for requests.
        tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
        tx.batch_execute(sql)
            .await
            .map_err(|e| schema_error(&format!("migration {version} failed"), e))?;
        tx.execute(
            "INSERT INTO mnemo.migrations (version) VALUES ($1)",
            &[&version],
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Records the model in a new database (adding its vector column), or checks that an
/// existing database was made with the same one.
pub(super) async fn pin_model(
    client: &mut Client,
    location: &str,
    spec: &EmbeddingSpec,
) -> Result<(), StorageError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await?;
    let meta = tx
        .query(
            "SELECT key, value FROM mnemo.meta WHERE key = ANY($1)",
            &[&[meta_keys::EMBEDDING_MODEL, meta_keys::EMBEDDING_DIMENSION].as_slice()],
        )
        .await?;
    let value = |key: &str| -> Option<String> {
        meta.iter()
            .find(|row| row.get::<_, &str>(0) == key)
            .map(|row| row.get(1))
    };
    match (
        value(meta_keys::EMBEDDING_MODEL),
        value(meta_keys::EMBEDDING_DIMENSION),
    ) {
        (Some(model), Some(dimension)) => {
            let dimension: usize = dimension.parse().unwrap_or(0);
            if model != spec.model_id || dimension != spec.dimension {
                return Err(StorageError::ModelMismatch {
                    location: location.to_owned(),
                    stored_model: model,
                    stored_dimension: dimension,
                    configured_model: spec.model_id.clone(),
                    configured_dimension: spec.dimension,
                });
            }
        }
        _ => {
            // The table is empty until a model is pinned, so the column can be NOT NULL.
            tx.batch_execute(&format!(
                "ALTER TABLE mnemo.memories ADD COLUMN embedding vector({}) NOT NULL",
                spec.dimension
            ))
            .await?;
            tx.execute(
                "INSERT INTO mnemo.meta (key, value) VALUES ($1, $2), ($3, $4)",
                &[
                    &meta_keys::EMBEDDING_MODEL,
                    &spec.model_id,
                    &meta_keys::EMBEDDING_DIMENSION,
                    &spec.dimension.to_string(),
                ],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Creates the HNSW index when `index` asks for one. It is never dropped here: a
/// database may be shared with servers that use it, and exact searches are written
/// so that the planner cannot use it (see `read::search`).
pub(super) async fn vector_index(
    client: &mut Client,
    index: VectorIndex,
) -> Result<(), StorageError> {
    if index != VectorIndex::Hnsw {
        return Ok(());
    }
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await?;
    let exists: bool = tx
        .query_one(
            "SELECT to_regclass('mnemo.memories_by_vector') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    if !exists {
        tracing::info!("building the HNSW index of the memories' vectors");
        // Building over many rows takes longer than any request may.
        tx.batch_execute(
            "SET LOCAL statement_timeout = 0; \
             CREATE INDEX memories_by_vector ON mnemo.memories \
                 USING hnsw (embedding vector_cosine_ops)",
        )
        .await
        .map_err(|e| schema_error("cannot build the HNSW index", e))?;
    }
    tx.commit().await?;
    Ok(())
}

/// A schema failure with what was being done; pgvector missing gets its own advice.
fn schema_error(context: &str, error: tokio_postgres::Error) -> StorageError {
    let message = error
        .as_db_error()
        .map(|db| db.message().to_owned())
        .unwrap_or_default();
    if message.contains("extension \"vector\"") || message.contains("type \"vector\"") {
        return StorageError::backend(
            format!(
                "{context}: pgvector is missing. Install pgvector 0.8 on the PostgreSQL server and run \
                 `CREATE EXTENSION vector;` in this database as a superuser, or let Mnemo's role create it"
            ),
            error,
        );
    }
    if let Some(db) = error.as_db_error()
        && db.code() == &tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE
    {
        return StorageError::backend(
            format!(
                "{context}: Mnemo's role may not create its schema; make it the database's owner, \
                 or GRANT CREATE ON DATABASE to it"
            ),
            error,
        );
    }
    StorageError::from(error).with_context(context)
}

impl StorageError {
    /// Prefixes a backend error's context; other variants are returned as they are.
    fn with_context(self, context: &str) -> Self {
        match self {
            Self::Backend {
                context: inner,
                source,
            } => Self::Backend {
                context: format!("{context}: {inner}"),
                source,
            },
            other => other,
        }
    }
}

const V1_INITIAL: &str = r#"
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE mnemo.memories (
    id           bigint           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    content_hash text             NOT NULL UNIQUE,
    content      text             NOT NULL,
    -- Normalised and sorted by the writer, so a read returns them as stored.
    tags         text[]           NOT NULL DEFAULT '{}',
    memory_type  text,
    metadata     jsonb            NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at   double precision NOT NULL,
    updated_at   double precision NOT NULL,
    -- 'simple': lower-cased words, no stemming and no stop words, as SQLite's FTS5
    -- tokenizer does, so both backends find the same memories.
    content_tsv  tsvector         GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED
);
CREATE INDEX memories_by_created ON mnemo.memories (created_at, id);
CREATE INDEX memories_by_type ON mnemo.memories (memory_type, created_at);
CREATE INDEX memories_by_tag ON mnemo.memories USING gin (tags);
CREATE INDEX memories_by_word ON mnemo.memories USING gin (content_tsv);

-- The change feed. seq comes from feed.head, which every write locks first, so
-- numbers are gap-free, follow commit order across servers, and are never reused
-- after pruning.
CREATE TABLE mnemo.events (
    seq          bigint           PRIMARY KEY,
    at           double precision NOT NULL,
    kind         text             NOT NULL,
    content_hash text             NOT NULL,
    payload      text             NOT NULL
);
CREATE INDEX events_by_at ON mnemo.events (at);

CREATE TABLE mnemo.feed (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    head     bigint  NOT NULL
);
INSERT INTO mnemo.feed (head) VALUES (0);

CREATE TABLE mnemo.meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- OR of tsqueries, so a query's words can arrive as one array parameter.
CREATE AGGREGATE mnemo.any_word(tsquery) (SFUNC = tsquery_or, STYPE = tsquery);
"#;

/// Managed API keys, shared by every server of the database (see `keys`). Ids and
/// names are one namespace, which the writer keeps under an advisory lock.
const V2_API_KEYS: &str = r#"
CREATE TABLE mnemo.api_keys (
    id         text             PRIMARY KEY,
    name       text             NOT NULL UNIQUE,
    sha256     bytea            NOT NULL UNIQUE CHECK (length(sha256) = 32),
    scope      text             NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    created_at double precision NOT NULL
);
"#;

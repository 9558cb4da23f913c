//! The memory database's schema, as numbered migrations.
//!
//! `PRAGMA user_version` holds the number of migrations applied. A migration is never
//! edited once released; a change is a new entry at the end of [`MIGRATIONS`].
//!
//! The vector table is the one piece of schema that is not static: its width is the
//! embedding model's dimension, which the database pins in `meta` when it is created.
//! [`vector_table_sql`] renders it, and the server runs it once, in the same
//! transaction that records the model.

/// Every migration, in order. Index `i` moves the database from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[V1_INITIAL, V2_TAG_POSITION];

/// The schema version a database has once every migration is applied.
pub fn latest_version() -> u32 {
    MIGRATIONS.len() as u32
}

/// Name of the sqlite-vec table that holds one vector per memory, keyed by memory id.
pub const VECTOR_TABLE: &str = "memory_vectors";

/// `CREATE` statement for the vector table at a given embedding dimension.
pub fn vector_table_sql(dimension: usize) -> String {
    format!("CREATE VIRTUAL TABLE {VECTOR_TABLE} USING vec0(embedding float[{dimension}])")
}

/// Keys of the `meta` table.
pub mod meta_keys {
    /// Identifier of the model whose vectors the database holds.
    pub const EMBEDDING_MODEL: &str = "embedding_model";
    /// Dimension of those vectors.
    pub const EMBEDDING_DIMENSION: &str = "embedding_dimension";
}

const V1_INITIAL: &str = r#"
CREATE TABLE memories (
    id           INTEGER PRIMARY KEY,
    content_hash TEXT    NOT NULL UNIQUE,
    content      TEXT    NOT NULL,
    memory_type  TEXT,
    metadata     TEXT    NOT NULL DEFAULT '{}' CHECK (json_type(metadata) = 'object'),
    created_at   REAL    NOT NULL,
    updated_at   REAL    NOT NULL
);
CREATE INDEX memories_by_created ON memories (created_at);
CREATE INDEX memories_by_type ON memories (memory_type, created_at);

CREATE TABLE memory_tags (
    memory_id INTEGER NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    tag       TEXT    NOT NULL,
    PRIMARY KEY (memory_id, tag)
) WITHOUT ROWID;
CREATE INDEX memory_tags_by_tag ON memory_tags (tag, memory_id);

-- External-content FTS5 index over memories.content, kept in step by triggers so that
-- no write path can forget it.
CREATE VIRTUAL TABLE memories_fts USING fts5 (content, content = 'memories', content_rowid = 'id');
CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts (rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER memories_fts_update AFTER UPDATE OF content ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO memories_fts (rowid, content) VALUES (new.id, new.content);
END;

-- The change feed. AUTOINCREMENT keeps seq strictly increasing even after the newest
-- rows are pruned, so a client's Last-Event-ID never points at a reused number.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           REAL    NOT NULL,
    kind         TEXT    NOT NULL,
    content_hash TEXT    NOT NULL,
    payload      TEXT    NOT NULL
);
CREATE INDEX events_by_at ON events (at);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"#;

/// Tags keep the order they were given in (mcp-memory-service keeps it). Rows written
/// before this step get position 0 and read back by name, as they always were.
const V2_TAG_POSITION: &str = r#"
ALTER TABLE memory_tags ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
"#;

//! Re-embedding a database with another model (`mnemo-server reembed`), resumably.
//!
//! New vectors go first into a staging table, `reembed_vectors`, committed a batch at
//! a time, and the target model is recorded in `meta`. The database keeps serving
//! its old model meanwhile: its pin, its vec0 table and every search are untouched.
//! Only when every memory has its new vector does one transaction swap them in: the
//! vec0 table is made again at the new width, filled from the staging table, and the
//! pin changes. A crash (or Ctrl-C) anywhere before that commit leaves the old model
//! in force, and the next run with the same target embeds only what is not staged
//! yet. A run with another target starts the staging over.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::migrations::{VECTOR_TABLE, latest_version, meta_keys, vector_table_sql};
use super::vec::{register, vector_bytes};
use super::{BUSY_TIMEOUT, file};
use crate::memory::EmbeddingSpec;
use crate::storage::StorageError;

/// The staging table and the `meta` keys naming its target.
const STAGING: &str = "reembed_vectors";
const TARGET_MODEL: &str = "reembed_model";
const TARGET_DIMENSION: &str = "reembed_dimension";

/// Memories embedded per committed batch.
const BATCH: usize = 32;

/// What a finished re-embed did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reembedded {
    /// The model the database was pinned to before.
    pub from: EmbeddingSpec,
    /// Memories embedded by this run (fewer than all when it resumed).
    pub embedded: u64,
    /// Memories whose vectors a run before this one had already staged.
    pub resumed: u64,
    pub total: u64,
}

/// Rewrites every vector of the database at `path` with `embed`, the model `target`
/// names, and pins `target` once all are written. `embed` gets a batch of texts and
/// answers one L2-normalised vector of `target.dimension` per text; `progress` hears
/// (done, total) after each batch. Takes the database's writer lock, so it refuses
/// to run beside a server.
pub fn reembed(
    path: &Path,
    target: &EmbeddingSpec,
    mut embed: impl FnMut(&[String]) -> Result<Vec<Vec<f32>>, String>,
    mut progress: impl FnMut(u64, u64),
) -> Result<Reembedded, StorageError> {
    let location = path.display().to_string();
    if !path.exists() {
        return Err(StorageError::backend(
            format!("opening {location}"),
            std::io::Error::new(std::io::ErrorKind::NotFound, "no database there"),
        ));
    }
    register();
    let _lock = file::lock(path)?;
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let from = pinned(&conn)?;
    let (Some(from), true) = (from, version == latest_version()) else {
        return Err(StorageError::backend(
            format!("re-embedding {location}"),
            std::io::Error::other(
                "the database is not at this server's schema, or has no model yet; start \
                 mnemo-server on it once, then re-embed",
            ),
        ));
    };
    let resumed = stage(&mut conn, target)?;
    let total: i64 = conn.query_row("SELECT count(*) FROM memories", [], |r| r.get(0))?;
    let total = total as u64;
    let mut done = resumed;
    let mut embedded = 0;
    progress(done, total);
    loop {
        let batch: Vec<(i64, String)> = conn
            .prepare(&format!(
                "SELECT m.id, m.content FROM memories m WHERE NOT EXISTS \
                 (SELECT 1 FROM {STAGING} r WHERE r.memory_id = m.id) ORDER BY m.id LIMIT ?"
            ))?
            .query_map([BATCH as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        if batch.is_empty() {
            break;
        }
        let texts: Vec<String> = batch.iter().map(|(_, text)| text.clone()).collect();
        let vectors = embed(&texts).map_err(|message| {
            StorageError::backend(
                "embedding with the new model",
                std::io::Error::other(message),
            )
        })?;
        if vectors.len() != batch.len() {
            return Err(StorageError::backend(
                "embedding with the new model",
                std::io::Error::other("the model answered a wrong number of vectors"),
            ));
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(&format!(
                "INSERT INTO {STAGING} (memory_id, embedding) VALUES (?, ?)"
            ))?;
            for ((id, _), vector) in batch.iter().zip(&vectors) {
                StorageError::check_dimension(target.dimension, vector)?;
                insert.execute(params![id, vector_bytes(vector)])?;
            }
        }
        tx.commit()?;
        done += batch.len() as u64;
        embedded += batch.len() as u64;
        progress(done.min(total), total);
    }
    swap_in(&mut conn, target)?;
    // Folds the log into the file, so the file alone is the re-embedded database.
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(Reembedded {
        from,
        embedded,
        resumed,
        total,
    })
}

/// The model the database is pinned to, if any.
fn pinned(conn: &Connection) -> Result<Option<EmbeddingSpec>, StorageError> {
    let meta = |key: &str| -> rusqlite::Result<Option<String>> {
        conn.query_row("SELECT value FROM meta WHERE key = ?", [key], |r| r.get(0))
            .optional()
    };
    Ok(
        match (
            meta(meta_keys::EMBEDDING_MODEL)?,
            meta(meta_keys::EMBEDDING_DIMENSION)?,
        ) {
            (Some(model_id), Some(dimension)) => Some(EmbeddingSpec {
                model_id,
                dimension: dimension.parse().unwrap_or(0),
            }),
            _ => None,
        },
    )
}

/// Makes the staging table ready for `target`: keeps what an unfinished run for the
/// same target staged (and answers how many), or starts it over. The table and its
/// target commit together, so staged vectors always belong to the recorded target.
fn stage(conn: &mut Connection, target: &EmbeddingSpec) -> Result<u64, StorageError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let meta = |key: &str| -> rusqlite::Result<Option<String>> {
        tx.query_row("SELECT value FROM meta WHERE key = ?", [key], |r| r.get(0))
            .optional()
    };
    let same = meta(TARGET_MODEL)?.as_deref() == Some(target.model_id.as_str())
        && meta(TARGET_DIMENSION)?.as_deref() == Some(target.dimension.to_string().as_str());
    if !same {
        tx.execute_batch(&format!(
            "DROP TABLE IF EXISTS {STAGING}; \
             CREATE TABLE {STAGING} (memory_id INTEGER PRIMARY KEY, embedding BLOB NOT NULL);"
        ))?;
        let mut set = tx.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)")?;
        set.execute([TARGET_MODEL, &target.model_id])?;
        set.execute([TARGET_DIMENSION, &target.dimension.to_string()])?;
    }
    // Staged vectors of memories deleted since (a server ran in between) do not count.
    let staged: i64 = tx.query_row(
        &format!("SELECT count(*) FROM {STAGING} r JOIN memories m ON m.id = r.memory_id"),
        [],
        |r| r.get(0),
    )?;
    tx.commit()?;
    Ok(staged as u64)
}

/// The one transaction that makes the new model the database's: the vec0 table at
/// the new width, filled from the staging table, and the pin.
fn swap_in(conn: &mut Connection, target: &EmbeddingSpec) -> Result<(), StorageError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(&format!("DROP TABLE {VECTOR_TABLE};"))?;
    tx.execute_batch(&vector_table_sql(target.dimension))?;
    tx.execute(
        &format!(
            "INSERT INTO {VECTOR_TABLE} (rowid, embedding) \
             SELECT r.memory_id, r.embedding FROM {STAGING} r \
             JOIN memories m ON m.id = r.memory_id ORDER BY r.memory_id"
        ),
        [],
    )?;
    let mut set = tx.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)")?;
    set.execute([meta_keys::EMBEDDING_MODEL, &target.model_id])?;
    set.execute([
        meta_keys::EMBEDDING_DIMENSION,
        &target.dimension.to_string(),
    ])?;
    drop(set);
    tx.execute_batch(&format!(
        "DROP TABLE {STAGING}; DELETE FROM meta WHERE key IN ('{TARGET_MODEL}', '{TARGET_DIMENSION}');"
    ))?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::conformance::{DIM, record, spec, unit};
    use crate::storage::sqlite::{SqliteOptions, SqliteStore};

    /// A stand-in model: `dimension` wide, the vector a function of the text only.
    fn model(dimension: usize) -> impl FnMut(&[String]) -> Result<Vec<Vec<f32>>, String> {
        move |texts| {
            Ok(texts
                .iter()
                .map(|text| {
                    let mut v: Vec<f32> = (0..dimension)
                        .map(|i| ((text.len() + i * 7) % 11) as f32 + 1.0)
                        .collect();
                    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    v.iter_mut().for_each(|x| *x /= norm);
                    v
                })
                .collect())
        }
    }

    fn seeded(dir: &tempfile::TempDir, count: usize) -> std::path::PathBuf {
        let path = dir.path().join("memories.db");
        let store = SqliteStore::open(&path, &spec(), SqliteOptions::default()).unwrap();
        let records = (0..count)
            .map(|i| {
                record(
                    &format!("memory number {i}"),
                    &[],
                    [1.0, i as f32, 0.5, 0.0],
                )
            })
            .collect();
        for result in store.insert_many(records) {
            result.unwrap();
        }
        path
    }

    /// A run that dies midway leaves the old pin and vectors in force; the next run
    /// embeds only the rest, then the pin and the vector width change together.
    #[test]
    fn a_crash_resumes_and_the_pin_changes_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = seeded(&dir, 100);
        let target = EmbeddingSpec {
            model_id: "wider-model".into(),
            dimension: 8,
        };
        let mut calls = 0;
        let mut wide = model(8);
        let crashed = reembed(
            &path,
            &target,
            |texts| {
                calls += 1;
                if calls == 3 {
                    return Err("the model died".into());
                }
                wide(texts)
            },
            |_, _| {},
        );
        assert!(crashed.unwrap_err().to_string().contains("the model died"));
        // Still the old model's database, fully searchable.
        let store = SqliteStore::open(&path, &spec(), SqliteOptions::default()).unwrap();
        assert_eq!(store.count().unwrap(), 100);
        assert_eq!(
            store
                .search(&unit([1.0; DIM]), 3, &Default::default())
                .unwrap()
                .len(),
            3
        );
        drop(store);

        let mut embedded_texts = 0;
        let mut wide = model(8);
        let done = reembed(
            &path,
            &target,
            |texts| {
                embedded_texts += texts.len();
                wide(texts)
            },
            |_, _| {},
        )
        .unwrap();
        assert_eq!((done.resumed, done.embedded, done.total), (64, 36, 100));
        assert_eq!(embedded_texts, 36);
        assert_eq!(done.from, spec());

        let old = SqliteStore::open(&path, &spec(), SqliteOptions::default());
        assert!(matches!(old, Err(StorageError::ModelMismatch { .. })));
        let store = SqliteStore::open(&path, &target, SqliteOptions::default()).unwrap();
        let query = model(8)(&["memory number 42".to_owned()])
            .unwrap()
            .remove(0);
        let best = store.search(&query, 1, &Default::default()).unwrap();
        assert!((best[0].cosine_similarity - 1.0).abs() < 1e-4);
        assert_eq!(store.count().unwrap(), 100);
    }

    /// A re-embed refuses to run beside an open store (a running server).
    #[test]
    fn refused_while_the_database_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = seeded(&dir, 1);
        let store = SqliteStore::open(&path, &spec(), SqliteOptions::default()).unwrap();
        let error = reembed(&path, &spec(), model(DIM), |_, _| {}).unwrap_err();
        assert!(matches!(error, StorageError::InUse { .. }), "{error}");
        drop(store);
        reembed(&path, &spec(), model(DIM), |_, _| {}).unwrap();
    }
}

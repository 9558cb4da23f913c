//! Managed API keys in the database, so that every server sharing it accepts the same
//! keys: one added or revoked through any server, or by `mnemo-server keys` on any
//! machine, holds on all of them.
//!
//! Storage knows rows, not scopes: the auth layer gives rows their meaning. Every
//! change sends a `NOTIFY` on [`KEYS_CHANNEL`] in its transaction, which each server's
//! key listener turns into a reload.

use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::connect::Target;
use super::read::query;
use super::{PostgresOptions, feed, schema};
use crate::storage::StorageError;

/// The channel a key change is announced on.
const KEYS_CHANNEL: &str = "mnemo_keys";

/// Serialises key changes, so that ids and names stay one namespace ("keys" in ASCII).
const KEYS_LOCK: i64 = 0x6b65_7973;

/// One managed key as stored: the key itself never is, only its SHA-256.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub sha256: Vec<u8>,
    pub scope: String,
    pub created_at: f64,
}

/// Why a key change was not made.
#[derive(Debug, thiserror::Error)]
pub enum KeyChangeError {
    /// An id or a name is already taken by another key.
    #[error("the id or name is taken")]
    Taken,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The `api_keys` table of one database. Cheap to clone.
#[derive(Clone)]
pub struct PostgresKeys {
    pool: Pool,
    location: String,
    changed: Arc<Notify>,
    /// For the listener; shared, as the handle is cloned for every `keys` use.
    target: Arc<Target>,
}

impl PostgresKeys {
    /// A handle on the keys of the database at `url`. Nothing is connected yet: the
    /// pool opens connections on first use.
    pub fn new(url: &str, options: &PostgresOptions) -> Result<Self, StorageError> {
        let target = Target::parse(url, options)?;
        Ok(Self {
            // Key lookups are rare (a miss, a reload, a `keys` command); two
            // connections are plenty and keep the requests' pool for requests.
            pool: target.pool(2)?,
            location: target.location.clone(),
            changed: Arc::new(Notify::new()),
            target: Arc::new(target),
        })
    }

    /// `postgres://user@host:port/database`, without the password.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Creates or migrates the schema, for a `keys` command run before any server has.
    pub async fn migrate(&self) -> Result<(), StorageError> {
        let mut client = self.pool.get().await?;
        schema::migrate(&mut client, &self.location).await
    }

    /// Starts listening for key changes made by any server; [`Self::changed`] fires on
    /// each, and after each (re)connection of the listener. Stops when the returned
    /// guard is dropped.
    pub fn listen(&self) -> DropGuard {
        let stop = CancellationToken::new();
        tokio::spawn(feed::listen(
            Target::clone(&self.target),
            KEYS_CHANNEL,
            Arc::clone(&self.changed),
            stop.clone(),
        ));
        stop.drop_guard()
    }

    /// Makes the next [`Self::changed`] resolve at once: for a change this server knows
    /// of without an announcement, such as the schema that holds the keys appearing.
    pub fn wake(&self) {
        self.changed.notify_one();
    }

    /// Resolves at the next change announced after [`Self::listen`].
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Every key, oldest first.
    pub async fn all(&self) -> Result<Vec<KeyRow>, StorageError> {
        let client = self.pool.get().await?;
        let rows = query(
            &client,
            "SELECT id, name, sha256, scope, created_at FROM api_keys ORDER BY created_at, id",
            &[],
        )
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// The key whose SHA-256 is `sha256`, if any.
    pub async fn find(&self, sha256: &[u8]) -> Result<Option<KeyRow>, StorageError> {
        let client = self.pool.get().await?;
        let rows = query(
            &client,
            "SELECT id, name, sha256, scope, created_at FROM api_keys WHERE sha256 = $1",
            &[&sha256],
        )
        .await?;
        rows.first().map(key_from_row).transpose()
    }

    /// Adds `row`, unless its id or name is already the id or name of another key.
    pub async fn insert(&self, row: &KeyRow) -> Result<(), KeyChangeError> {
        let mut client = self.pool.get().await.map_err(StorageError::from)?;
        let tx = client.transaction().await.map_err(StorageError::from)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&KEYS_LOCK])
            .await
            .map_err(StorageError::from)?;
        let taken: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = ANY($1) OR name = ANY($1))",
                &[&[row.id.as_str(), row.name.as_str()].as_slice()],
            )
            .await
            .map_err(StorageError::from)?
            .get(0);
        if taken {
            return Err(KeyChangeError::Taken);
        }
        tx.execute(
            "INSERT INTO api_keys (id, name, sha256, scope, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[&row.id, &row.name, &row.sha256, &row.scope, &row.created_at],
        )
        .await
        .map_err(StorageError::from)?;
        tx.batch_execute(&format!("NOTIFY {KEYS_CHANNEL}"))
            .await
            .map_err(StorageError::from)?;
        tx.commit().await.map_err(StorageError::from)?;
        Ok(())
    }

    /// Removes the key with this id or name and returns it; `None` if there is none.
    pub async fn delete(&self, id_or_name: &str) -> Result<Option<KeyRow>, StorageError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&KEYS_LOCK])
            .await?;
        let rows = tx
            .query(
                "DELETE FROM api_keys WHERE id = $1 OR name = $1 \
                 RETURNING id, name, sha256, scope, created_at",
                &[&id_or_name],
            )
            .await?;
        tx.batch_execute(&format!("NOTIFY {KEYS_CHANNEL}")).await?;
        tx.commit().await?;
        rows.first().map(key_from_row).transpose()
    }
}

fn key_from_row(row: &tokio_postgres::Row) -> Result<KeyRow, StorageError> {
    Ok(KeyRow {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        sha256: row.try_get(2)?,
        scope: row.try_get(3)?,
        created_at: row.try_get(4)?,
    })
}

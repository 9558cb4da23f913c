//! [`ManagedKeys`]: where the managed keys live, with one way to list, add and revoke
//! them for the `keys` commands (and any admin route): `<data dir>/keys.json` with
//! SQLite, the database's `api_keys` table with PostgreSQL, where every server of the
//! database shares them.

use super::key_file::{Digest, KeyEntry, KeyError, KeyFile, valid_name};
use super::scope::Scope;
use crate::storage::postgres::{KeyChangeError, KeyRow, PostgresKeys};

/// The managed keys of one server (or of every server sharing its database).
#[derive(Clone)]
pub enum ManagedKeys {
    File(KeyFile),
    Database(PostgresKeys),
}

impl ManagedKeys {
    /// Where the keys are, for messages: the file's path or the database's URL
    /// without its password.
    pub fn place(&self) -> String {
        match self {
            ManagedKeys::File(file) => file.path().display().to_string(),
            ManagedKeys::Database(table) => table.location().to_owned(),
        }
    }

    /// Every managed key, oldest first.
    pub async fn list(&self) -> Result<Vec<KeyEntry>, KeyError> {
        match self {
            ManagedKeys::File(file) => file.list(),
            ManagedKeys::Database(table) => table.all().await?.iter().map(entry_of).collect(),
        }
    }

    /// Creates a key named `name`; returns its entry and the key, shown only now.
    pub async fn add(&self, name: &str, scope: Scope) -> Result<(KeyEntry, String), KeyError> {
        match self {
            ManagedKeys::File(file) => file.add(name, scope),
            ManagedKeys::Database(table) => {
                let name = valid_name(name)?;
                let (entry, key) = KeyEntry::generate(name, scope);
                let row = KeyRow {
                    id: entry.id.clone(),
                    name: entry.name.clone(),
                    sha256: entry.digest().map(Vec::from).unwrap_or_default(),
                    scope: scope.as_str().to_owned(),
                    created_at: entry.created_at,
                };
                match table.insert(&row).await {
                    Ok(()) => Ok((entry, key)),
                    // The random id colliding with another key's id or name (a chance
                    // in four billion) reads as this too; adding again succeeds.
                    Err(KeyChangeError::Taken) => Err(KeyError::DuplicateName {
                        name: name.into(),
                        place: self.place(),
                    }),
                    Err(KeyChangeError::Storage(e)) => Err(e.into()),
                }
            }
        }
    }

    /// Revokes the key with this id or name and returns its entry.
    pub async fn revoke(&self, id_or_name: &str) -> Result<KeyEntry, KeyError> {
        match self {
            ManagedKeys::File(file) => file.revoke(id_or_name),
            ManagedKeys::Database(table) => match table.delete(id_or_name).await? {
                Some(row) => entry_of(&row),
                None => Err(KeyError::UnknownKey {
                    id_or_name: id_or_name.into(),
                    place: self.place(),
                }),
            },
        }
    }

    /// The digest and scope of every key (the ones a server checks against).
    pub(super) async fn digests(&self) -> Result<Vec<(Digest, Scope)>, KeyError> {
        Ok(self
            .list()
            .await?
            .iter()
            .filter_map(|entry| Some((entry.digest()?, entry.scope)))
            .collect())
    }
}

/// A row of the database as a key entry; a row no server could have written (an
/// unknown scope, a digest of the wrong length) is refused rather than guessed at.
pub(super) fn entry_of(row: &KeyRow) -> Result<KeyEntry, KeyError> {
    let scope: Scope = row.scope.parse().map_err(|e| KeyError::Corrupt {
        path: "api_keys".into(),
        message: format!("key {:?}: {e}", row.id),
    })?;
    let entry = KeyEntry {
        id: row.id.clone(),
        name: row.name.clone(),
        sha256: hex::encode(&row.sha256),
        scope,
        created_at: row.created_at,
    };
    if entry.digest().is_none() {
        return Err(KeyError::Corrupt {
            path: "api_keys".into(),
            message: format!("the sha256 of key {:?} is not 32 bytes", row.id),
        });
    }
    Ok(entry)
}

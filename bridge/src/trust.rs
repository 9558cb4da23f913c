//! The servers this bridge trusts: each a key pair (its SPKI pin) and an instance id,
//! with the name and address it was last seen at, kept in a small JSON file in the
//! user's config folder (`MNEMO_BRIDGE_TRUST_FILE`).
//!
//! A server is trusted by its pin, never by its mDNS name: anyone on the LAN can
//! advertise any name, but only the holder of the key can complete a handshake with its
//! pin. A server enters the list only by proving it holds the user's API key
//! (`POST /api/auth/proof`), and leaves it with `mnemo-bridge trust remove`.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use mnemo_certs::{Fingerprint, private_file};
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TrustError {
    #[error("cannot read the trust file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the trust file {path} is not valid JSON ({source}); fix or delete it")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write the trust file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no trusted server has the id, pin or name {0:?}; `mnemo-bridge trust list` shows them"
    )]
    Unknown(String),
}

/// One trusted server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrustedServer {
    /// Its instance id (TXT `id`); empty for a server given by URL.
    pub id: String,
    /// SHA-256 of its public key, colon-separated hex.
    pub pin: String,
    /// The mDNS instance name (or the URL) it was last used under.
    pub name: String,
    /// The URL it was last used at.
    pub address: String,
    /// Epoch seconds.
    pub first_used: u64,
    pub last_used: u64,
}

impl TrustedServer {
    pub fn pin(&self) -> Option<Fingerprint> {
        self.pin.parse().ok()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TrustDocument {
    servers: Vec<TrustedServer>,
}

/// The trust file. Each change is a read, modify and atomic replace (mode 0600), so two
/// bridges started together never leave a torn file.
#[derive(Debug, Clone)]
pub struct TrustStore {
    path: PathBuf,
}

impl TrustStore {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every trusted server, most recently used first.
    pub fn list(&self) -> Result<Vec<TrustedServer>, TrustError> {
        let mut servers = self.load()?.servers;
        servers.sort_by_key(|s| std::cmp::Reverse(s.last_used));
        Ok(servers)
    }

    fn load(&self) -> Result<TrustDocument, TrustError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| TrustError::Parse {
                path: self.path.clone(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TrustDocument::default()),
            Err(source) => Err(TrustError::Read {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn save(&self, document: &TrustDocument) -> Result<(), TrustError> {
        let text = serde_json::to_vec_pretty(document).unwrap_or_default();
        private_file::write(&self.path, &text).map_err(|error| TrustError::Write {
            path: self.path.clone(),
            source: error.cause,
        })
    }

    /// Records a use of the server with `pin`: adds it (trusting it) if absent, else
    /// updates its id, name, address and last use.
    pub fn record_use(
        &self,
        pin: &Fingerprint,
        id: &str,
        name: &str,
        address: &str,
    ) -> Result<(), TrustError> {
        let mut document = self.load()?;
        let now = now();
        let pin_text = pin.to_string();
        match document.servers.iter_mut().find(|s| s.pin == pin_text) {
            Some(server) => {
                if !id.is_empty() {
                    server.id = id.to_owned();
                }
                server.name = name.to_owned();
                server.address = address.to_owned();
                server.last_used = now;
            }
            None => document.servers.push(TrustedServer {
                id: id.to_owned(),
                pin: pin_text,
                name: name.to_owned(),
                address: address.to_owned(),
                first_used: now,
                last_used: now,
            }),
        }
        self.save(&document)
    }

    /// Removes every server whose id, pin or name is `what` (a pin in either accepted
    /// form); returns what was removed.
    pub fn remove(&self, what: &str) -> Result<Vec<TrustedServer>, TrustError> {
        let mut document = self.load()?;
        let pin = what.parse::<Fingerprint>().ok().map(|p| p.to_string());
        let (removed, kept): (Vec<_>, Vec<_>) = document.servers.into_iter().partition(|s| {
            (!s.id.is_empty() && s.id == what) || s.name == what || Some(&s.pin) == pin.as_ref()
        });
        if removed.is_empty() {
            return Err(TrustError::Unknown(what.to_owned()));
        }
        document.servers = kept;
        self.save(&document)?;
        Ok(removed)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A use adds a server once, later uses update it, and removal by id, pin or name
    /// takes it out; an unknown one is an error that says where to look.
    #[test]
    fn record_list_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = TrustStore::new(dir.path().join("sub/trust.json"));
        assert!(store.list().unwrap().is_empty());
        let (a, b) = (Fingerprint([1; 32]), Fingerprint([2; 32]));
        store
            .record_use(&a, "id-a", "nas", "https://10.0.0.2:8443")
            .unwrap();
        store
            .record_use(&b, "id-b", "other", "https://10.0.0.3:8443")
            .unwrap();
        store
            .record_use(&a, "id-a", "nas (2)", "https://10.0.0.9:8443")
            .unwrap();
        let listed = store.list().unwrap();
        assert_eq!(listed.len(), 2);
        let nas = listed.iter().find(|s| s.id == "id-a").unwrap();
        assert_eq!(
            (nas.name.as_str(), nas.address.as_str()),
            ("nas (2)", "https://10.0.0.9:8443")
        );
        assert_eq!(nas.pin(), Some(a));

        assert_eq!(store.remove("id-a").unwrap().len(), 1);
        assert_eq!(
            store.remove(&b.to_string().replace(':', "")).unwrap()[0].id,
            "id-b"
        );
        assert!(store.list().unwrap().is_empty());
        let error = store.remove("nas").unwrap_err();
        assert!(error.to_string().contains("trust list"), "{error}");
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trust.json");
        std::fs::write(&path, "{not json").unwrap();
        let error = TrustStore::new(path.clone()).list().unwrap_err();
        assert!(error.to_string().contains(&path.display().to_string()));
        assert!(error.to_string().contains("fix or delete it"));
    }
}

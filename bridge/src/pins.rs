//! Trust on first use: the certificate fingerprint a discovered server published
//! (its `fp` TXT record) the first time the bridge used it, kept per instance name
//! in a small JSON file in the user's config folder.
//!
//! A later server under the same name with another fingerprint is refused, which is
//! what makes discovery safe on a LAN where anyone can answer mDNS queries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mnemo_certs::{Fingerprint, private_file};
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PinError {
    #[error("cannot read the pin file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the pin file {path} is not valid JSON ({source}); fix or delete it")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write the pin file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One pinned server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pin {
    /// Colon-separated SHA-256, as the server logs it.
    pub fingerprint: String,
    /// The URL it was first used at, for the person reading the file.
    pub url: String,
    /// Unix seconds.
    pub pinned_at: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PinDocument {
    /// Instance name → pin.
    servers: BTreeMap<String, Pin>,
}

/// What the pin file says about a server that presents `fingerprint`.
#[derive(Debug, Clone, PartialEq)]
pub enum PinStatus {
    /// Pinned before, same fingerprint.
    Matches,
    /// Never seen: it will be pinned on first use.
    New,
    /// Pinned before with another fingerprint.
    Mismatch { pinned: String },
}

/// The pin file.
#[derive(Debug, Clone)]
pub struct PinFile {
    path: PathBuf,
}

impl PinFile {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self) -> Result<PinDocument, PinError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| PinError::Parse {
                path: self.path.clone(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PinDocument::default()),
            Err(source) => Err(PinError::Read {
                path: self.path.clone(),
                source,
            }),
        }
    }

    pub fn status(&self, instance: &str, fingerprint: &Fingerprint) -> Result<PinStatus, PinError> {
        let document = self.load()?;
        Ok(match document.servers.get(instance) {
            None => PinStatus::New,
            Some(pin) => match pin.fingerprint.parse::<Fingerprint>() {
                Ok(pinned) if pinned == *fingerprint => PinStatus::Matches,
                _ => PinStatus::Mismatch {
                    pinned: pin.fingerprint.clone(),
                },
            },
        })
    }

    /// Records `fingerprint` for `instance` unless a pin exists. Written to a
    /// temporary file and renamed (mode 0600), so two bridges started together (some
    /// clients probe with a short-lived copy) never leave a torn file.
    pub fn pin_if_new(
        &self,
        instance: &str,
        fingerprint: &Fingerprint,
        url: &str,
    ) -> Result<(), PinError> {
        let mut document = self.load()?;
        if document.servers.contains_key(instance) {
            return Ok(());
        }
        let pinned_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        document.servers.insert(
            instance.to_owned(),
            Pin {
                fingerprint: fingerprint.to_string(),
                url: url.to_owned(),
                pinned_at,
            },
        );
        let text = serde_json::to_vec_pretty(&document).unwrap_or_default();
        private_file::write(&self.path, &text).map_err(|error| PinError::Write {
            path: self.path.clone(),
            source: error.cause,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_use_pins_and_a_different_fingerprint_mismatches() {
        let dir = tempfile::tempdir().unwrap();
        let pins = PinFile::new(dir.path().join("sub/pins.json"));
        let a = Fingerprint([1; 32]);
        let b = Fingerprint([2; 32]);
        assert_eq!(pins.status("nas", &a).unwrap(), PinStatus::New);
        pins.pin_if_new("nas", &a, "https://10.0.0.2:8443").unwrap();
        assert_eq!(pins.status("nas", &a).unwrap(), PinStatus::Matches);
        assert_eq!(
            pins.status("nas", &b).unwrap(),
            PinStatus::Mismatch {
                pinned: a.to_string()
            }
        );
        // A first pin is never overwritten.
        pins.pin_if_new("nas", &b, "https://10.0.0.3:8443").unwrap();
        assert_eq!(pins.status("nas", &a).unwrap(), PinStatus::Matches);
        assert_eq!(pins.status("other", &b).unwrap(), PinStatus::New);
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pins.json");
        std::fs::write(&path, "{not json").unwrap();
        let error = PinFile::new(path.clone())
            .status("nas", &Fingerprint([1; 32]))
            .unwrap_err();
        assert!(error.to_string().contains(&path.display().to_string()));
        assert!(error.to_string().contains("fix or delete it"));
    }
}

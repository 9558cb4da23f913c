//! [`Scope`]: what a key may do. Three ordered levels rather than a set of permissions,
//! so that checking a request is one comparison and a key's power reads as one word in
//! `keys list`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a key may do. Ordered: Admin allows everything Write allows, Write everything
/// Read allows.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Search, list and read memories.
    Read,
    /// Also store, update and delete memories.
    Write,
    /// Also backups and key management.
    Admin,
}

impl Scope {
    /// Whether a key of this scope may do what needs `required`.
    pub fn allows(self, required: Scope) -> bool {
        self >= required
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

/// A scope's word (`read`, `write`, `admin`), in any case and with spaces around it:
/// how the key route and the database's rows name it.
impl std::str::FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(word: &str) -> Result<Self, Self::Err> {
        match word.trim().to_ascii_lowercase().as_str() {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            "admin" => Ok(Scope::Admin),
            _ => Err(UnknownScope(word.to_owned())),
        }
    }
}

/// A word that names no scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}: use read, write or admin")]
pub struct UnknownScope(pub String);

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Admin allows everything Write allows, Write everything Read allows, and not the
    /// other way round; scopes read and write as lowercase words.
    #[test]
    fn scopes_are_ordered() {
        assert!(Scope::Admin.allows(Scope::Admin));
        assert!(Scope::Admin.allows(Scope::Write));
        assert!(Scope::Admin.allows(Scope::Read));
        assert!(Scope::Write.allows(Scope::Read));
        assert!(!Scope::Write.allows(Scope::Admin));
        assert!(!Scope::Read.allows(Scope::Write));
        assert_eq!(Scope::Write.as_str(), "write");
        assert_eq!(serde_json::to_string(&Scope::Admin).unwrap(), "\"admin\"");
        assert_eq!(
            serde_json::from_str::<Scope>("\"read\"").unwrap(),
            Scope::Read
        );
    }

    /// A scope's word parses in any case and with spaces around it; anything else is
    /// refused with the words that would work.
    #[test]
    fn scopes_parse_from_their_words() {
        assert_eq!(" Admin ".parse::<Scope>(), Ok(Scope::Admin));
        assert_eq!("write".parse::<Scope>(), Ok(Scope::Write));
        let refused = "root".parse::<Scope>().unwrap_err();
        assert_eq!(
            refused.to_string(),
            "unknown scope \"root\": use read, write or admin"
        );
    }
}

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
}

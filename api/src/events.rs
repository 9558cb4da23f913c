//! Change-feed event names.
//!
//! The same names are stored in the `events.kind` column and sent as the SSE `event:`
//! field, so a replay from the table and a live event look identical to a client.

use serde::{Deserialize, Serialize};

/// What happened to a memory. Every committed write records exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    MemoryStored,
    MemoryUpdated,
    MemoryDeleted,
}

impl EventKind {
    /// The wire name, as stored in the events table and sent in SSE frames.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MemoryStored => "memory_stored",
            Self::MemoryUpdated => "memory_updated",
            Self::MemoryDeleted => "memory_deleted",
        }
    }
}

/// Sent when a subscriber cannot be brought up to date event by event: its
/// `Last-Event-ID` points at events no longer kept, or the database was restored (a
/// restore is stored as an event of this kind).
pub const RESYNC: &str = "resync";

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored name and the serde name never drift apart.
    #[test]
    fn as_str_matches_serde() {
        for kind in [
            EventKind::MemoryStored,
            EventKind::MemoryUpdated,
            EventKind::MemoryDeleted,
        ] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }
}

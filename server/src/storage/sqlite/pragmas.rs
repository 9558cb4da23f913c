//! `MCP_MEMORY_SQLITE_PRAGMAS`: SQLite tuning in mcp-memory-service's format,
//! comma-separated `name=value` pairs (`cache_size=20000,busy_timeout=15000`).
//!
//! Only pragmas that cannot weaken Mnemo's guarantees are applied, each on every
//! connection. Two would break them and stop the server at start, naming the pragma:
//! a `journal_mode` other than WAL (readers beside the one writer need WAL) and
//! `synchronous=OFF` (a power cut could then lose acknowledged writes). Any other name
//! is kept in [`Pragmas::unknown`] and only warned about, since mcp-memory-service
//! tuning guides mention pragmas that make no sense here. Values are checked before
//! they reach SQL: a number, or one of `temp_store`'s keywords.

/// The parsed setting: what to apply and what to warn about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pragmas {
    /// `(name, value)` to run as `PRAGMA name = value` on every connection, in order.
    pub apply: Vec<(&'static str, i64)>,
    /// Names Mnemo does not know, in the order given.
    pub unknown: Vec<String>,
}

/// Why the setting was refused. The message names the pragma and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PragmaError(String);

/// The pragmas that are honoured, and whether a negative value makes sense.
const HONOURED: &[(&str, bool)] = &[
    ("cache_size", true),
    ("temp_store", false),
    ("mmap_size", false),
    ("busy_timeout", false),
    ("wal_autocheckpoint", true),
];

impl Pragmas {
    /// Parses the setting; an empty one applies nothing.
    pub fn parse(text: &str) -> Result<Self, PragmaError> {
        let mut pragmas = Self::default();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, value)) = pair.split_once('=') else {
                return Err(PragmaError(format!(
                    "{pair:?} is not name=value; write MCP_MEMORY_SQLITE_PRAGMAS as \
                     comma-separated pairs such as cache_size=20000,busy_timeout=15000"
                )));
            };
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim();
            match name.as_str() {
                "journal_mode" if value.eq_ignore_ascii_case("wal") => {}
                "journal_mode" => {
                    return Err(PragmaError(format!(
                        "journal_mode={value} is refused: Mnemo needs WAL so that searches \
                         read beside its one writer; remove journal_mode from \
                         MCP_MEMORY_SQLITE_PRAGMAS"
                    )));
                }
                "synchronous" if value.eq_ignore_ascii_case("off") || value == "0" => {
                    return Err(PragmaError(format!(
                        "synchronous={value} is refused: a crash or power cut could lose \
                         writes Mnemo has already acknowledged; remove it from \
                         MCP_MEMORY_SQLITE_PRAGMAS (Mnemo runs synchronous=NORMAL)"
                    )));
                }
                // NORMAL is what Mnemo runs; anything stronger costs only speed, so
                // it is not worth a second code path.
                "synchronous" => {}
                _ => match HONOURED.iter().find(|(known, _)| *known == name) {
                    Some(&(known, negative_ok)) => {
                        let number = number(known, value, negative_ok)?;
                        pragmas.apply.retain(|(n, _)| *n != known);
                        pragmas.apply.push((known, number));
                    }
                    None => pragmas.unknown.push(name),
                },
            }
        }
        Ok(pragmas)
    }

    /// The value given for `name`, if any.
    pub fn get(&self, name: &str) -> Option<i64> {
        self.apply.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// Runs every honoured pragma on `conn`.
    pub fn apply_to(&self, conn: &rusqlite::Connection) -> rusqlite::Result<()> {
        for (name, value) in &self.apply {
            // `busy_timeout` answers with a row, which `pragma_update` tolerates.
            conn.pragma_update(None, name, value)?;
        }
        Ok(())
    }
}

fn number(name: &str, value: &str, negative_ok: bool) -> Result<i64, PragmaError> {
    let parsed = if name == "temp_store" {
        match value.to_ascii_lowercase().as_str() {
            "default" => Some(0),
            "file" => Some(1),
            "memory" => Some(2),
            other => other.parse::<i64>().ok().filter(|n| (0..=2).contains(n)),
        }
    } else {
        value.parse::<i64>().ok().filter(|n| negative_ok || *n >= 0)
    };
    parsed.ok_or_else(|| {
        let expected = match name {
            "temp_store" => "DEFAULT, FILE or MEMORY",
            _ if negative_ok => "a whole number",
            _ => "a whole number, 0 or more",
        };
        PragmaError(format!(
            "{name}={value:?} in MCP_MEMORY_SQLITE_PRAGMAS is not valid; give {expected}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The five honoured pragmas are read with their values, the last of a name wins,
    /// WAL and a safe `synchronous` are accepted, and unknown names are kept to warn.
    #[test]
    fn honoured_pragmas_are_read() {
        let p = Pragmas::parse(
            " cache_size=-20000, temp_store=MEMORY,mmap_size=268435456 ,busy_timeout=15000,\
             wal_autocheckpoint=500,journal_mode=wal,synchronous=NORMAL,cache_size=1000,\
             foo=bar",
        )
        .unwrap();
        assert_eq!(p.get("cache_size"), Some(1000));
        assert_eq!(p.get("temp_store"), Some(2));
        assert_eq!(p.get("mmap_size"), Some(268_435_456));
        assert_eq!(p.get("busy_timeout"), Some(15_000));
        assert_eq!(p.get("wal_autocheckpoint"), Some(500));
        assert_eq!(p.unknown, ["foo"]);
        assert_eq!(Pragmas::parse("").unwrap(), Pragmas::default());
    }

    /// What would break a guarantee, and values that are not numbers, are refused by
    /// name, so nothing unchecked reaches SQL.
    #[test]
    fn unsafe_or_malformed_pragmas_are_refused_by_name() {
        for (text, named) in [
            ("journal_mode=DELETE", "journal_mode=DELETE"),
            ("journal_mode=memory", "journal_mode=memory"),
            ("synchronous=OFF", "synchronous=OFF"),
            ("synchronous=0", "synchronous=0"),
            ("cache_size=lots", "cache_size"),
            ("mmap_size=-1", "mmap_size"),
            ("busy_timeout=1;DROP TABLE memories", "busy_timeout"),
            ("temp_store=3", "temp_store"),
            ("cache_size", "name=value"),
        ] {
            let error = Pragmas::parse(text).unwrap_err().to_string();
            assert!(error.contains(named), "{text}: {error}");
            assert!(
                error.contains("MCP_MEMORY_SQLITE_PRAGMAS"),
                "{text}: {error}"
            );
        }
    }
}

//! The command line: `mnemo-server [settings]` serves, `mnemo-server keys ...` manages
//! API keys. The settings themselves are [`Config`]; this file holds what only the
//! command line has, the subcommands and what the `keys` commands print.

use std::io::Write;
use std::path::Path;

use clap::{Parser, Subcommand};

use crate::auth::{KeyError, KeyFile, Scope};
use crate::config::Config;

/// The command line: serve (no subcommand) or manage keys.
#[derive(Parser, Debug)]
#[command(
    name = "mnemo-server",
    version,
    about = "Mnemo: shared semantic memory for AI assistants."
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Manage API keys with scopes (stored hashed in <data dir>/keys.json).
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// `mnemo-server keys ...`: manage the keys in `<data_dir>/keys.json`. A running
/// server picks changes up on its next request.
#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it once.
    Add {
        /// A unique name for the key, such as the machine or person it is for.
        #[arg(long)]
        name: String,
        /// What the key may do.
        #[arg(long, value_enum, default_value = "read")]
        scope: Scope,
    },
    /// List keys (id, name, scope, created), never the keys themselves.
    List,
    /// Revoke a key by id or name.
    Revoke {
        /// The key's id or name, as `keys list` shows them.
        id_or_name: String,
    },
}

/// Runs a subcommand against the keys file in `data_dir`, writing human-readable
/// output to `out`.
pub fn run_keys_command(
    data_dir: &Path,
    command: KeysCommand,
    out: &mut impl Write,
) -> Result<(), KeyError> {
    let file = KeyFile::new(data_dir);
    let output = |error| KeyError::Output { error };
    match command {
        KeysCommand::Add { name, scope } => {
            let (entry, key) = file.add(&name, scope)?;
            writeln!(
                out,
                "Created key {} {:?} with scope {}. Copy it now; it cannot be shown again:\n\n{key}",
                entry.id, entry.name, entry.scope
            )
            .map_err(output)
        }
        KeysCommand::List => {
            let entries = file.list()?;
            if entries.is_empty() {
                return writeln!(out, "No managed keys in {}.", file.path().display())
                    .map_err(output);
            }
            let id_width = entries.iter().map(|e| e.id.len()).max().unwrap_or(0).max(2);
            let name_width = entries
                .iter()
                .map(|e| e.name.len())
                .max()
                .unwrap_or(0)
                .max(4);
            writeln!(
                out,
                "{:id_width$}  {:name_width$}  SCOPE  CREATED",
                "ID", "NAME"
            )
            .map_err(output)?;
            for entry in &entries {
                writeln!(
                    out,
                    "{:id_width$}  {:name_width$}  {:5}  {}",
                    entry.id,
                    entry.name,
                    entry.scope.as_str(),
                    format_time(entry.created_at)
                )
                .map_err(output)?;
            }
            Ok(())
        }
        KeysCommand::Revoke { id_or_name } => {
            let entry = file.revoke(&id_or_name)?;
            writeln!(
                out,
                "Revoked key {} {:?} ({}). Running servers reject it from their next request on.",
                entry.id, entry.name, entry.scope
            )
            .map_err(output)
        }
    }
}

/// Epoch seconds as an RFC 3339 time in UTC, to the second.
fn format_time(epoch: f64) -> String {
    match jiff::Timestamp::from_second(epoch as i64) {
        Ok(time) => time.to_string(),
        Err(_) => epoch.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::KEY_PREFIX;

    /// `keys add` prints the new key; `keys list` shows ids, names and scopes but never
    /// a key; `keys revoke` removes it from the list.
    #[test]
    fn keys_commands_print_the_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let run = |command| {
            let mut out = Vec::new();
            run_keys_command(dir.path(), command, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };

        let added = run(KeysCommand::Add {
            name: "laptop".into(),
            scope: Scope::Write,
        });
        let key = added.lines().last().unwrap();
        assert!(key.starts_with(KEY_PREFIX), "{added}");
        let entry = KeyFile::new(dir.path()).list().unwrap().remove(0);

        let listed = run(KeysCommand::List);
        assert!(listed.contains(&entry.id), "{listed}");
        assert!(
            listed.contains("laptop") && listed.contains("write"),
            "{listed}"
        );
        assert!(!listed.contains(KEY_PREFIX), "{listed}");
        assert!(!listed.contains(&entry.sha256), "{listed}");

        let revoked = run(KeysCommand::Revoke {
            id_or_name: "laptop".into(),
        });
        assert!(revoked.contains(&entry.id), "{revoked}");
        assert!(run(KeysCommand::List).contains("No managed keys"));
    }
}

//! The command line: `mnemo-server [settings]` serves, `mnemo-server keys ...` manages
//! API keys, `mnemo-server tls rotate` replaces the server's key pair, `mnemo-server restore`
//! replaces the database with a backup offline (its body is `offline::restore`). The settings
//! themselves are [`Config`]; this file holds what only the command line has, the
//! subcommands and what they print.

use std::io::Write;

use clap::{Parser, Subcommand};

use crate::auth::{KeyError, KeyFile, ManagedKeys, Scope};
use crate::config::Config;
use crate::storage::postgres::PostgresKeys;

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
    /// Manage the server's TLS identity (the key pair in <data dir>/certs).
    #[command(subcommand)]
    Tls(TlsCommand),
    /// Write every memory as JSON Lines (with the server stopped; online: GET /api/export).
    Export(crate::offline::export::ExportArgs),
    /// Read memories from JSON Lines, as export writes them (with the server stopped;
    /// online: POST /api/import). Content already stored is skipped.
    Import(crate::offline::import::ImportArgs),
    /// Bring memories over from another memory server's database (with the server stopped).
    #[command(subcommand)]
    ImportFrom(crate::offline::mcp_memory_service::ImportSource),
    /// Rewrite every vector with another model, resumably; the database changes model
    /// only once every vector is written (with the server stopped).
    Reembed(crate::offline::reembed::ReembedArgs),
    /// Replace the SQLite database with a backup, while no server runs on it (a
    /// running server restores through POST /api/admin/restore). The database it
    /// replaces is backed up first into <data dir>/backups.
    Restore {
        /// A backup file, or the id of a backup in <data dir>/backups.
        backup: String,
    },
}

/// `mnemo-server tls ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum TlsCommand {
    /// Make a new key pair and certificate, and print the new pin. Bridges that trusted
    /// the old pin refuse the server until they trust the new one. Restart the server.
    Rotate,
}

/// Runs `tls rotate` for the server configured by `config`, writing what changed to `out`.
pub fn run_tls_command(
    config: &Config,
    command: TlsCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match command {
        TlsCommand::Rotate => {
            let identity = crate::tls::rotate(config)?;
            writeln!(
                out,
                "New key pair in {}.\nNew pin: {}\n\nRestart the server to serve it. Bridges \
                 that trusted the old pin now refuse this server; on each, run \
                 `mnemo-bridge trust remove <old pin or id>` so that it trusts the new pin once \
                 the server proves it holds the API key, or set MCP_MEMORY_CERT_FINGERPRINT to \
                 the new pin.",
                identity.key_path.display(),
                identity.pin
            )?;
            Ok(())
        }
    }
}

/// `mnemo-server keys ...`: manage the keys in `<data_dir>/keys.json`, or with
/// `MNEMO_DATABASE_URL` in the database, shared by every server of it. Running
/// servers pick changes up by their next request.
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

/// Where `config`'s server keeps its managed keys: `<data dir>/keys.json`, or with
/// `MNEMO_DATABASE_URL` the database (its schema created if this is the first use).
pub async fn managed_keys(config: &Config) -> Result<ManagedKeys, KeyError> {
    match &config.database_url {
        Some(url) => {
            let table = PostgresKeys::new(url.expose(), &config.postgres_options())?;
            table.migrate().await?;
            Ok(ManagedKeys::Database(table))
        }
        None => Ok(ManagedKeys::File(KeyFile::new(&config.data_dir()))),
    }
}

/// Runs a subcommand against `keys`, writing human-readable output to `out`.
pub async fn run_keys_command(
    keys: &ManagedKeys,
    command: KeysCommand,
    out: &mut impl Write,
) -> Result<(), KeyError> {
    let output = |error| KeyError::Output { error };
    match command {
        KeysCommand::Add { name, scope } => {
            let (entry, key) = keys.add(&name, scope).await?;
            writeln!(
                out,
                "Created key {} {:?} with scope {}. Copy it now; it cannot be shown again:\n\n{key}",
                entry.id, entry.name, entry.scope
            )
            .map_err(output)
        }
        KeysCommand::List => {
            let entries = keys.list().await?;
            if entries.is_empty() {
                return writeln!(out, "No managed keys in {}.", keys.place()).map_err(output);
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
            let entry = keys.revoke(&id_or_name).await?;
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
    #[tokio::test]
    async fn keys_commands_print_the_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ManagedKeys::File(KeyFile::new(dir.path()));
        let run = async |command| {
            let mut out = Vec::new();
            run_keys_command(&keys, command, &mut out).await.unwrap();
            String::from_utf8(out).unwrap()
        };

        let added = run(KeysCommand::Add {
            name: "laptop".into(),
            scope: Scope::Write,
        })
        .await;
        let key = added.lines().last().unwrap();
        assert!(key.starts_with(KEY_PREFIX), "{added}");
        let entry = KeyFile::new(dir.path()).list().unwrap().remove(0);

        let listed = run(KeysCommand::List).await;
        assert!(listed.contains(&entry.id), "{listed}");
        assert!(
            listed.contains("laptop") && listed.contains("write"),
            "{listed}"
        );
        assert!(!listed.contains(KEY_PREFIX), "{listed}");
        assert!(!listed.contains(&entry.sha256), "{listed}");

        let revoked = run(KeysCommand::Revoke {
            id_or_name: "laptop".into(),
        })
        .await;
        assert!(revoked.contains(&entry.id), "{revoked}");
        assert!(run(KeysCommand::List).await.contains("No managed keys"));
    }

    /// `tls rotate` prints a new pin, which the next start serves; a user-supplied
    /// certificate is refused with what to do instead.
    #[test]
    fn tls_rotate_prints_the_new_pin() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::for_data_dir(dir.path());
        let before = crate::tls::load_identity(&config).unwrap();
        let mut out = Vec::new();
        run_tls_command(&config, TlsCommand::Rotate, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        let after = crate::tls::load_identity(&config).unwrap();
        assert_ne!(after.pin, before.pin);
        assert!(out.contains(&after.pin.to_string()), "{out}");
        assert!(out.contains("mnemo-bridge trust remove"), "{out}");

        let mut user = Config::for_data_dir(dir.path());
        user.ssl_cert_file = Some(after.cert_path.clone());
        user.ssl_key_file = Some(after.key_path.clone());
        let error = run_tls_command(&user, TlsCommand::Rotate, &mut Vec::new()).unwrap_err();
        assert!(error.to_string().contains("MCP_SSL_CERT_FILE"), "{error}");
    }
}

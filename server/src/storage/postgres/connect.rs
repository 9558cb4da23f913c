//! Reaching the database: the URL, TLS, the pool, and what a failure of either means
//! to a caller.
//!
//! Every connection carries a statement timeout and every wait for one a deadline, so
//! a database that is down or stuck gives [`StorageError::Unavailable`] (503) within
//! seconds, never a hang.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use rustls_pki_types::pem::PemObject;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{PostgresOptions, VectorIndex};
use crate::storage::StorageError;

/// Where the database is and how to reach it, parsed once from the URL.
#[derive(Clone)]
pub(super) struct Target {
    pub config: tokio_postgres::Config,
    pub tls: MakeRustlsConnect,
    /// The URL without its password, for logs and detailed health.
    pub location: String,
}

impl Target {
    /// Parses a `postgres://` URL (or a libpq key-value string). `sslmode=require`,
    /// `verify-ca` or `verify-full` turn TLS on, checked against the Mozilla roots
    /// plus the PEM file `sslrootcert` names; any other mode connects in the clear.
    pub fn parse(url: &str, options: &PostgresOptions) -> Result<Self, StorageError> {
        let (url, root_file, wants_tls) = tls_parameters(url);
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StorageError::backend(
                "MNEMO_DATABASE_URL is not a PostgreSQL URL (postgres://user:password@host:port/database)",
                e,
            )
        })?;
        config.ssl_mode(if wants_tls {
            SslMode::Require
        } else {
            SslMode::Disable
        });
        config.connect_timeout(options.connect_timeout);
        // Our own tables live in their own schema; pgvector's type may live in public.
        let statement_ms = options.statement_timeout.as_millis().max(1);
        let mut startup =
            format!("-c search_path=mnemo,public -c statement_timeout={statement_ms}");
        if options.index == VectorIndex::Hnsw {
            // Iterative scans keep walking the graph until a filtered search has its
            // k rows (up to hnsw.max_scan_tuples); relaxed order is re-sorted by the
            // query, and a wider candidate list than the default 40 buys recall.
            startup.push_str(" -c hnsw.iterative_scan=relaxed_order -c hnsw.ef_search=100");
        }
        if let Some(theirs) = config.get_options() {
            startup = format!("{theirs} {startup}");
        }
        config.options(&startup);
        if config.get_application_name().is_none() {
            config.application_name("mnemo-server");
        }
        let location = location(&config);
        Ok(Self {
            tls: tls_connector(root_file.as_deref())?,
            config,
            location,
        })
    }

    /// A pool of `size` connections; waiting for one, opening one and checking one
    /// returned all give up after the connect timeout.
    pub fn pool(&self, size: usize) -> Result<Pool, StorageError> {
        let manager = Manager::from_config(
            self.config.clone(),
            self.tls.clone(),
            ManagerConfig {
                // Asks the server whether a pooled connection still works before
                // handing it out, so a database that restarted costs no failed request.
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let wait = self.config.get_connect_timeout().copied();
        Pool::builder(manager)
            .max_size(size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(wait)
            .create_timeout(wait)
            .recycle_timeout(wait)
            .build()
            .map_err(|e| StorageError::backend("cannot build the PostgreSQL pool", e))
    }
}

/// Takes the TLS settings tokio-postgres does not read out of the URL: whether TLS is
/// wanted (`verify-ca`/`verify-full` are libpq's names for what rustls always does)
/// and `sslrootcert`. Returns the URL with `sslmode` removed and those two gone.
fn tls_parameters(url: &str) -> (String, Option<String>, bool) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None, false);
    };
    let mut root_file = None;
    let mut wants_tls = false;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => {
                    wants_tls = matches!(value, "require" | "verify-ca" | "verify-full");
                    false
                }
                "sslrootcert" => {
                    root_file = Some(percent_decode(value));
                    false
                }
                _ => true,
            }
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, root_file, wants_tls)
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = value
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// rustls with ring, trusting the Mozilla roots and the certificates in `root_file`.
fn tls_connector(root_file: Option<&str>) -> Result<MakeRustlsConnect, StorageError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = root_file {
        let pem = std::fs::read(path)
            .map_err(|e| StorageError::backend(format!("cannot read sslrootcert {path}"), e))?;
        let mut added = 0;
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert = cert
                .map_err(|e| StorageError::backend(format!("sslrootcert {path} is not PEM"), e))?;
            roots.add(cert).map_err(|e| {
                StorageError::backend(format!("sslrootcert {path} holds a bad certificate"), e)
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(StorageError::backend(
                format!("sslrootcert {path}"),
                "the file holds no certificate",
            ));
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| StorageError::backend("cannot set up TLS", e))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// `postgres://user@host:port/database`: the URL without its password.
fn location(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let database = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{host}:{port}/{database}")
}

/// How long a pooled connection may be waited for, opened or checked.
pub(super) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl From<tokio_postgres::Error> for StorageError {
    fn from(error: tokio_postgres::Error) -> Self {
        if is_unavailable(&error) {
            return Self::Unavailable {
                context: "PostgreSQL cannot be reached".into(),
                source: Box::new(error),
            };
        }
        if error.code() == Some(&SqlState::QUERY_CANCELED) {
            return Self::backend(
                "a statement ran past MNEMO_READ_TIMEOUT and PostgreSQL cancelled it",
                error,
            );
        }
        Self::backend("PostgreSQL failed", error)
    }
}

impl From<PoolError> for StorageError {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::Backend(e) => e.into(),
            PoolError::Closed => Self::Stopped,
            PoolError::Timeout(_) => Self::Unavailable {
                context: "no PostgreSQL connection within the connect timeout".into(),
                source: Box::new(error),
            },
            other => Self::backend("the PostgreSQL pool failed", other),
        }
    }
}

/// Whether an error means the database is away (down, restarting, unreachable,
/// refusing connections), rather than a fault of the request.
fn is_unavailable(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    if let Some(code) = error.code() {
        let code = code.code();
        // Class 08: connection exception. 57P01-57P03: shut down, crashed, starting
        // up. 53300: too many connections.
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300");
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            // A certificate that does not verify is a configuration to fix, not an
            // outage to wait out: waiting would hide it behind retries.
            return io
                .get_ref()
                .is_none_or(|inner| inner.downcast_ref::<rustls::Error>().is_none());
        }
        source = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TLS settings come out of the URL; the password never reaches the location.
    #[test]
    fn url_parameters_and_location() {
        let (url, root, tls) = tls_parameters(
            "postgres://u:secret@db.example:6543/mem?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
        );
        assert_eq!(
            url,
            "postgres://u:secret@db.example:6543/mem?application_name=x"
        );
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
        assert!(tls);
        let (_, _, tls) = tls_parameters("postgres://u@h/d?sslmode=prefer");
        assert!(!tls);

        let target = Target::parse(
            "postgres://u:secret@db.example:6543/mem",
            &PostgresOptions::default(),
        )
        .unwrap();
        assert_eq!(target.location, "postgres://u@db.example:6543/mem");
        assert_eq!(target.config.get_ssl_mode(), SslMode::Disable);
    }

    /// A URL that is not one is refused with the expected form named.
    #[test]
    fn bad_url_is_refused() {
        let err = Target::parse("mysql://nope", &PostgresOptions::default())
            .err()
            .unwrap();
        assert!(err.to_string().contains("postgres://"), "{err}");
    }
}

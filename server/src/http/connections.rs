//! The accept loop, and a handle on every open connection.
//!
//! `axum::serve` offers no way to close one connection from outside. The change feed
//! needs that: a subscriber that stopped reading leaves hyper with a full socket, so
//! hyper stops polling its stream and nothing inside the stream can notice. The
//! feed's reaper sees that the subscriber made no progress and closes its connection
//! here, by peer address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::tls;

/// Open connections by peer address, each with the token that closes it.
#[derive(Default)]
pub struct Connections {
    open: Mutex<HashMap<SocketAddr, CancellationToken>>,
}

impl Connections {
    /// Closes the connection from `peer`, if it is still open.
    pub fn close(&self, peer: SocketAddr) {
        if let Some(token) = self.lock().get(&peer) {
            token.cancel();
        }
    }

    fn open(&self, peer: SocketAddr) -> CancellationToken {
        let token = CancellationToken::new();
        self.lock().insert(peer, token.clone());
        token
    }

    fn forget(&self, peer: SocketAddr) {
        self.lock().remove(&peer);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, CancellationToken>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Serves `app` until `shutdown`, then gives open connections `grace` to finish
/// before dropping them. With `tls`, every connection is TLS on the same port; the
/// handshake runs in the connection's own task, so a slow client never stalls accept.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    connections: Arc<Connections>,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let builder = Builder::new(TokioExecutor::new());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: keep serving the others.
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |mut request: axum::http::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let service = TowerToHyperService::new(service);
        let closed = connections.open(peer);
        let connections = Arc::clone(&connections);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let served = async {
                match tls {
                    None => {
                        let connection =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        watcher.watch(connection.into_owned()).await
                    }
                    Some(acceptor) => match tls::handshake(&acceptor, stream, peer).await {
                        Some(stream) => {
                            let connection = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service);
                            watcher.watch(connection.into_owned()).await
                        }
                        None => Ok(()),
                    },
                }
            };
            tokio::select! {
                result = served => {
                    if let Err(e) = result {
                        debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                // Dropping the connection closes its socket.
                _ = closed.cancelled() => debug!(%peer, "connection closed by the server"),
            }
            connections.forget(peer);
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("connections still open {grace:?} after shutdown; closing them");
    }
    Ok(())
}

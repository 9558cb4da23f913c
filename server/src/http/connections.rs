//! The accept loop, and a handle on every open connection.
//!
//! `axum::serve` offers no way to close one connection from outside. The change feed
//! needs that: a subscriber that stopped reading leaves hyper with a full socket, so
//! hyper stops polling its stream and nothing inside the stream can notice. The
//! feed's reaper sees that the subscriber made no progress and closes its connection
//! here, by peer address.
//!
//! It also bounds what one connection may hold (ARCHITECTURE.md, "Every connection is
//! bounded"): a deadline for the TLS handshake, for the first request's head, for each
//! request's body, and for a connection on which nothing happens; streams (SSE, MCP)
//! are exempt from the last one only. A body announced larger than the limit is
//! refused before it is read.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request};
use axum::http::{StatusCode, header};
use axum::response::Response;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::parse_errors::JsonParseErrors;
use tracing::{debug, warn};

use super::error::ApiError;
use crate::tls;

/// How long each step of a connection may take. Every bound is a setting (see
/// `Config`); the defaults suit a home network.
#[derive(Debug, Clone)]
pub struct Limits {
    /// From the first byte of a TLS connection to an encrypted stream.
    pub tls_handshake: Duration,
    /// For a request's head: with no byte at all since the connection opened, and
    /// (HTTP/1) from waiting for a request to its last header line.
    pub header_read: Duration,
    /// From a request's head to the last byte of its body.
    pub body_read: Duration,
    /// Nothing read nor written, and no request being handled. Streams are exempt.
    pub idle: Duration,
    /// Largest body accepted; a larger `Content-Length` is refused at once.
    pub max_body_bytes: usize,
    /// Connections open at once; the next one is refused (a 503 over plain HTTP,
    /// closed at once over TLS) until one closes.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            tls_handshake: Duration::from_secs(10),
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(30),
            idle: Duration::from_secs(60),
            max_body_bytes: 1024 * 1024,
            max_connections: 1024,
        }
    }
}

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
    limits: Limits,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    let app = app.layer(axum::middleware::map_request_with_state(
        limits.clone(),
        bound_body,
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut accept_errors = RateLimitedWarning::new("accept failed");
    let mut refusals =
        RateLimitedWarning::new("connection refused: MNEMO_MAX_CONNECTIONS are open");
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    accepted
                }
                // Out of file descriptors, most often: the error repeats at once until
                // a connection closes, so retrying at once would spin a core and flood
                // the log. Pause, longer each time, and keep serving the others.
                Err(e) => {
                    accept_errors.warn(&e);
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refusals.warn(&peer);
            tokio::spawn(refuse(stream, tls.is_none()));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let stream = Tracked {
            inner: stream,
            activity: Arc::clone(&activity),
        };
        let service = {
            let (started, finished) = (Arc::clone(&activity), Arc::clone(&activity));
            app.clone()
                .map_request(move |mut request: axum::http::Request<Incoming>| {
                    started.request_started();
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                })
                .map_response(move |response: Response| {
                    finished.request_answered(&response);
                    response
                })
        };
        let service = TowerToHyperService::new(service);
        let closed = connections.open(peer);
        let connections = Arc::clone(&connections);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let served = async {
                match tls {
                    None => {
                        let connection = builder.serve_connection_with_upgrades(
                            TokioIo::new(JsonParseErrors::new(stream)),
                            service,
                        );
                        watcher.watch(connection.into_owned()).await
                    }
                    Some(acceptor) => {
                        match tls::handshake(&acceptor, stream, peer, limits.tls_handshake).await {
                            Some(stream) => {
                                let connection = builder.serve_connection_with_upgrades(
                                    TokioIo::new(JsonParseErrors::new(stream)),
                                    service,
                                );
                                watcher.watch(connection.into_owned()).await
                            }
                            None => Ok(()),
                        }
                    }
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
                () = activity.idle(&limits) => debug!(%peer, "connection closed: idle"),
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

/// The first pause after a failed accept, and the longest.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How long a refused connection is given to take its 503.
const REFUSAL_WITHIN: Duration = Duration::from_secs(1);

/// Answers a connection over the limit and closes it. Over plain HTTP it gets a 503
/// with the JSON error body; over TLS it is closed at once (an answer would need the
/// handshake the limit exists to avoid).
async fn refuse(mut stream: TcpStream, plain: bool) {
    if !plain {
        return;
    }
    let body = serde_json::to_string(&mnemo_api::error::ErrorBody::new(
        "overloaded",
        "too many open connections; retry shortly",
    ))
    .unwrap_or_default();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_WITHIN, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        // Closing with the request unread would reset the connection, and the client
        // could lose the answer; read what it sent until it closes.
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        std::io::Result::Ok(())
    })
    .await;
}

/// A warning logged at most once per [`RateLimitedWarning::EVERY`], saying how many
/// were left out: a condition that repeats thousands of times a second must not fill
/// the disk.
struct RateLimitedWarning {
    what: &'static str,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedWarning {
    const EVERY: Duration = Duration::from_secs(10);

    fn new(what: &'static str) -> Self {
        Self {
            what,
            last: None,
            suppressed: 0,
        }
    }

    fn warn(&mut self, detail: &dyn std::fmt::Display) {
        if self.last.is_some_and(|last| last.elapsed() < Self::EVERY) {
            self.suppressed += 1;
            return;
        }
        warn!(detail = %detail, suppressed = self.suppressed, "{}", self.what);
        self.last = Some(Instant::now());
        self.suppressed = 0;
    }
}

/// Refuses a body announced larger than the limit before reading it, and gives the
/// rest [`Limits::body_read`] to arrive in full.
async fn bound_body(
    axum::extract::State(limits): axum::extract::State<Limits>,
    request: Request,
) -> Result<Request, ApiError> {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if STREAMED_BODIES.contains(&request.uri().path()) {
        let wait = Some(limits.body_read);
        let deadline = Box::pin(tokio::time::sleep(limits.body_read));
        return Ok(request.map(|body| {
            Body::new(DeadlineBody {
                body,
                deadline,
                wait,
                waiting: false,
            })
        }));
    }
    if announced.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the request body is larger than the server accepts ({} bytes, MNEMO_MAX_BODY_BYTES)",
                limits.max_body_bytes
            ),
        ));
    }
    let deadline = Box::pin(tokio::time::sleep(limits.body_read));
    Ok(request.map(|body| {
        Body::new(DeadlineBody {
            body,
            deadline,
            wait: None,
            waiting: false,
        })
    }))
}

/// Routes whose body is read as a stream while the handler works (an import of any
/// size, stored at the model's pace): no size limit (the handler bounds each line),
/// and the read deadline is for each wait on the client rather than the whole body.
const STREAMED_BODIES: &[&str] = &["/api/import"];

/// A request body that fails once its deadline passes, however steadily it trickles;
/// or, with `wait`, once the client has sent nothing for that long while the handler
/// waited for it.
struct DeadlineBody {
    body: Body,
    deadline: Pin<Box<Sleep>>,
    wait: Option<Duration>,
    /// The handler is waiting for a frame and the deadline runs from its first ask.
    waiting: bool,
}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            self.waiting = false;
            return Poll::Ready(frame);
        }
        if let Some(wait) = self.wait.filter(|_| !self.waiting) {
            self.waiting = true;
            self.deadline
                .as_mut()
                .reset(tokio::time::Instant::now() + wait);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(axum::Error::new(
                "the request body did not arrive within MNEMO_BODY_READ_TIMEOUT",
            ))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// What the idle watch of one connection needs to know.
struct Activity {
    opened: Instant,
    /// Milliseconds after `opened` of the last byte read or written.
    last: AtomicU64,
    /// Requests whose handler has not answered yet.
    handling: AtomicUsize,
    /// A request head arrived.
    requested: AtomicBool,
    /// A response was a stream (SSE, or MCP's), which may be quiet for long.
    streaming: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last: AtomicU64::new(0),
            handling: AtomicUsize::new(0),
            requested: AtomicBool::new(false),
            streaming: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        let now = self.opened.elapsed().as_millis() as u64;
        self.last.store(now, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }

    fn request_started(&self) {
        self.requested.store(true, Ordering::Relaxed);
        self.handling.fetch_add(1, Ordering::Relaxed);
        self.touch();
    }

    fn request_answered(&self, response: &Response) {
        let stream = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        if stream {
            self.streaming.store(true, Ordering::Relaxed);
        }
        self.handling.fetch_sub(1, Ordering::Relaxed);
        self.touch();
    }

    /// Resolves once the connection has been quiet too long: no request head within
    /// [`Limits::header_read`] of opening, or nothing at all for [`Limits::idle`] while
    /// no request is being handled and no stream was served.
    async fn idle(&self, limits: &Limits) {
        // Looked at again at least this often, so that a request arriving during a
        // wait switches from the header deadline to the idle one.
        let step = limits.header_read.min(limits.idle);
        loop {
            let requested = self.requested.load(Ordering::Relaxed);
            let quiet_for = if requested {
                limits.idle
            } else {
                limits.header_read
            };
            let deadline = self.last() + quiet_for;
            let now = Instant::now();
            if now < deadline {
                tokio::time::sleep_until(deadline.min(now + step)).await;
                continue;
            }
            let busy =
                self.handling.load(Ordering::Relaxed) > 0 || self.streaming.load(Ordering::Relaxed);
            if !(requested && busy) {
                return;
            }
            // Busy but quiet (a slow handler, a stream): look again a period later.
            self.touch();
        }
    }
}

/// A socket that records when it last moved a byte.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

//! The JSON error body for the answers hyper writes on its own.
//!
//! hyper answers a request it cannot parse (a malformed request line or header, a URI
//! or a header section too long) itself, before the router sees anything, and with no
//! body: `HTTP/1.1 414 URI Too Long`, `connection: close`, `content-length: 0`. It
//! offers no hook to change that answer. So the stream handed to hyper recognises
//! exactly that head as hyper writes it and writes the same status, headers and
//! connection close with the JSON error body every other error has.
//!
//! Nothing else can match: the router's own 4xx answers always carry a body (see
//! `error::json_errors`), so they never say `content-length: 0`, and they put
//! `content-type` first.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::StatusCode;
use mnemo_api::error::ErrorBody;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The head of hyper's bodiless error answers, after the status line.
const CANNED_HEADERS: &[u8] = b"\r\nconnection: close\r\ncontent-length: 0\r\n";

/// A stream that gives hyper's bodiless error answers the JSON error body.
pub struct JsonParseErrors<S> {
    inner: S,
    /// A replacement being written: the bytes, how many are written, and how many of
    /// hyper's bytes it stands for (what `poll_write` reports once it is all out).
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<S> JsonParseErrors<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            pending: None,
        }
    }
}

impl<S: AsyncWrite + Unpin> JsonParseErrors<S> {
    /// Writes the pending replacement; ready with the length of what it replaced.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let Self { inner, pending } = self;
        loop {
            let Some((bytes, written, replaced)) = pending.as_mut() else {
                return Poll::Ready(Ok(0));
            };
            if *written == bytes.len() {
                let replaced = *replaced;
                *pending = None;
                return Poll::Ready(Ok(replaced));
            }
            let n = ready!(Pin::new(&mut *inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
    }

    /// Starts replacing `data` if it is one of hyper's canned answers.
    fn intercept(&mut self, data: &[u8]) -> bool {
        if self.pending.is_some() {
            return true;
        }
        match with_json_body(data) {
            Some(replacement) => {
                self.pending = Some((replacement, 0, data.len()));
                true
            }
            None => false,
        }
    }
}

/// hyper's canned answer `head` rewritten with the JSON error body, or `None` when
/// `head` is anything else.
fn with_json_body(head: &[u8]) -> Option<Vec<u8>> {
    let rest = head.strip_prefix(b"HTTP/1.1 ")?;
    let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
    let status_line = &rest[..line_end];
    let after = rest[line_end..].strip_prefix(CANNED_HEADERS)?;
    if !after.ends_with(b"\r\n") {
        return None;
    }
    let code: u16 = std::str::from_utf8(status_line.get(..3)?)
        .ok()?
        .parse()
        .ok()?;
    let status = StatusCode::from_u16(code).ok()?;
    let (error, message) = match status {
        StatusCode::BAD_REQUEST => (
            "bad_request",
            "the request is not valid HTTP: its request line or a header could not be parsed",
        ),
        StatusCode::URI_TOO_LONG => ("uri_too_long", "the request's URI is too long"),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            "headers_too_large",
            "the request's headers are too large, or too many",
        ),
        _ => return None,
    };
    let body = serde_json::to_vec(&ErrorBody::new(error, message)).ok()?;
    let mut answer = Vec::with_capacity(head.len() + body.len() + 64);
    answer.extend_from_slice(b"HTTP/1.1 ");
    answer.extend_from_slice(status_line);
    answer.extend_from_slice(b"\r\nconnection: close\r\ncontent-type: application/json\r\n");
    answer.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    // The remaining headers (hyper's `date`) and the blank line, then the body.
    answer.extend_from_slice(after);
    answer.extend_from_slice(&body);
    Some(answer)
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonParseErrors<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.intercept(data) {
            return self.drive(cx);
        }
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        // A canned answer is one head with no body: the first slice holding data.
        if let Some(first) = bufs.iter().find(|b| !b.is_empty())
            && self.intercept(first)
        {
            return self.drive(cx);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.drive(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.drive(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYPER_414: &[u8] = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: Sat, 28 Nov 2026 10:14:52 GMT\r\n\r\n";

    #[test]
    fn a_canned_answer_gets_the_json_body() {
        let answer = with_json_body(HYPER_414).unwrap();
        let text = String::from_utf8(answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(
            head.contains("\r\ncontent-type: application/json\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())),
            "{head}"
        );
        assert!(head.contains("\r\ndate: "), "{head}");
        let body: ErrorBody = serde_json::from_str(body).unwrap();
        assert_eq!(body.error, "uri_too_long");
    }

    #[test]
    fn other_answers_pass_untouched() {
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 52\r\n\r\n";
        assert!(with_json_body(ours).is_none());
        let redirect =
            b"HTTP/1.1 301 Moved Permanently\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert!(with_json_body(redirect).is_none());
        assert!(with_json_body(b"HTTP/1.1 414").is_none());
        assert!(with_json_body(b"").is_none());
    }

    /// Written through the stream, a canned answer comes out whole with its body,
    /// and `poll_write` reports hyper's bytes as written.
    #[tokio::test]
    async fn the_stream_writes_the_replacement() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, server) = tokio::io::duplex(64);
        let mut server = JsonParseErrors::new(server);
        let writer = tokio::spawn(async move {
            let n = server.write(HYPER_414).await.unwrap();
            assert_eq!(n, HYPER_414.len());
            server.shutdown().await.unwrap();
        });
        let mut received = String::new();
        let mut client = client;
        client.read_to_string(&mut received).await.unwrap();
        writer.await.unwrap();
        assert!(received.ends_with(r#""error":"uri_too_long","message":"the request's URI is too long","detail":"the request's URI is too long"}"#), "{received}");
    }
}

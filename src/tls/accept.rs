//! The server side of one TLS connection before HTTP: read the first byte, answer plaintext with
//! a clear `400` naming `wss://`/`https://`, or run the rustls handshake.
//!
//! Invariants: the caller bounds [`accept`] with the pre-auth header timeout and runs it while
//! holding the connection's pre-auth budget slot, so a slow or stalled handshake occupies a slot
//! for at most that long; a plaintext client is read from at most [`PLAINTEXT_PEEK`] bytes, gets
//! one response and a close; nothing is read beyond the first byte before the handshake — that
//! byte is replayed to rustls by [`Rewind`]; a stream that ends before any byte (e.g. the PROXY
//! refusal in front of this) is closed without an answer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;

/// First byte of a TLS record carrying a handshake message (ClientHello).
const HANDSHAKE_RECORD: u8 = 0x16;
/// Bytes of a plaintext request read before answering it (enough for a request head).
pub const PLAINTEXT_PEEK: usize = 8 * 1024;

/// The answer to plaintext on a TLS port.
pub const PLAINTEXT_BODY: &str = "This gateway port speaks TLS only: connect with wss:// (WebSocket) or https:// (HTTP) to the same host and port.\n";

/// What the first bytes turned out to be.
pub enum Accepted<S> {
    /// A completed TLS handshake.
    Tls(Box<TlsStream<Rewind<S>>>),
    /// Plaintext: answered with a 400 and closed.
    Plaintext,
    /// Closed before or during the handshake (EOF, error, bad ClientHello).
    Closed(String),
}

/// Reads the first byte of `io` and either serves the 400 or completes the handshake.
pub async fn accept<S>(config: Arc<ServerConfig>, mut io: S) -> Accepted<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut first = [0u8; 1];
    match io.read(&mut first).await {
        Ok(1) => {}
        Ok(_) => return Accepted::Closed("closed before the first byte".into()),
        Err(e) => return Accepted::Closed(e.to_string()),
    }
    if first[0] != HANDSHAKE_RECORD {
        answer_plaintext(io, first[0]).await;
        return Accepted::Plaintext;
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    match acceptor.accept(Rewind::new(first[0], io)).await {
        Ok(s) => Accepted::Tls(Box::new(s)),
        Err(e) => Accepted::Closed(format!("TLS handshake failed: {e}")),
    }
}

/// Reads the request head (bounded), writes the 400 and closes.
async fn answer_plaintext<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, first: u8) {
    let mut head = vec![first];
    let mut buf = [0u8; 1024];
    while head.len() < PLAINTEXT_PEEK && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match io.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let resp = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n{PLAINTEXT_BODY}",
        PLAINTEXT_BODY.len()
    );
    let _ = io.write_all(resp.as_bytes()).await;
    let _ = io.shutdown().await;
}

/// A stream that yields one held byte before the inner stream's bytes.
pub struct Rewind<S> {
    held: Option<u8>,
    inner: S,
}

impl<S> Rewind<S> {
    pub fn new(byte: u8, inner: S) -> Self {
        Rewind {
            held: Some(byte),
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(b) = this.held {
            if buf.remaining() > 0 {
                buf.put_slice(&[b]);
                this.held = None;
                return Poll::Ready(Ok(()));
            }
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, d: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, d)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plaintext_gets_a_400_naming_wss() {
        let (mut client, server) = tokio::io::duplex(4096);
        let cfg = crate::tls::server::test_config();
        let task = tokio::spawn(accept(cfg, server));
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 400"), "{out}");
        assert!(out.contains("wss://") && out.contains("https://"), "{out}");
        assert!(matches!(task.await.unwrap(), Accepted::Plaintext));
    }

    #[tokio::test]
    async fn eof_before_a_byte_is_closed_silently() {
        let (client, server) = tokio::io::duplex(64);
        drop(client);
        let cfg = crate::tls::server::test_config();
        assert!(matches!(accept(cfg, server).await, Accepted::Closed(_)));
    }

    #[tokio::test]
    async fn rewind_replays_the_byte() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b"bc").await.unwrap();
        drop(a);
        let mut r = Rewind::new(b'a', b);
        let mut s = String::new();
        r.read_to_string(&mut s).await.unwrap();
        assert_eq!(s, "abc");
    }
}

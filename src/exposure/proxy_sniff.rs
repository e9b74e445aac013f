//! A PROXY v2 header on an ordinary gateway listener is never an answer-worthy request (PX-9):
//! [`RefuseProxy`] wraps the connection's byte stream in front of HTTP and, when the stream opens
//! with the v2 signature, ends the read side before any byte reaches the HTTP parser, so the
//! sender gets no answer at all (not even a 400), and reports it once.
//!
//! Invariants: an HTTP request (its first byte is a method letter) is passed through untouched,
//! with no extra read or copy; only bytes that could still be a signature (at most 12) are held
//! back, and are replayed in order when they turn out not to be one; a recognised header is never
//! parsed — its claimed source means nothing here; writes pass straight through.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::proxy_v2::SIGNATURE;

/// Where the sniffing is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// `len` bytes held back so far, all a prefix of the signature.
    Sniffing { len: usize },
    /// Replaying held-back bytes from `pos` (they were not a signature).
    Replay { pos: usize, len: usize },
    /// Ordinary traffic: pass through.
    Pass,
    /// A PROXY header: the read side is at EOF for good.
    Refused,
}

/// See the module docs. `on_proxy` runs once, when a signature is recognised.
pub struct RefuseProxy<S> {
    inner: S,
    held: [u8; SIGNATURE.len()],
    state: State,
    on_proxy: Option<Box<dyn FnOnce() + Send>>,
}

impl<S> RefuseProxy<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, on_proxy: impl FnOnce() + Send + 'static) -> Self {
        Self {
            inner,
            held: [0; SIGNATURE.len()],
            state: State::Sniffing { len: 0 },
            on_proxy: Some(Box::new(on_proxy)),
        }
    }

    fn refuse(&mut self) {
        self.state = State::Refused;
        if let Some(f) = self.on_proxy.take() {
            f();
        }
    }

    /// Classifies bytes the first read put straight into the caller's buffer at `from`.
    fn first_read(&mut self, buf: &mut ReadBuf<'_>, from: usize) {
        let new = &buf.filled()[from..];
        let n = new.len().min(SIGNATURE.len());
        if new.is_empty() || new[..n] != SIGNATURE[..n] {
            self.state = State::Pass;
        } else if n == SIGNATURE.len() {
            buf.set_filled(from);
            self.refuse();
        } else {
            self.held[..n].copy_from_slice(&new[..n]);
            buf.set_filled(from);
            self.state = State::Sniffing { len: n };
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for RefuseProxy<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this.state {
                State::Pass => return Pin::new(&mut this.inner).poll_read(cx, buf),
                State::Refused => return Poll::Ready(Ok(())),
                State::Replay { pos, len } if pos == len => this.state = State::Pass,
                State::Replay { pos, len } => {
                    let n = (len - pos).min(buf.remaining());
                    buf.put_slice(&this.held[pos..pos + n]);
                    this.state = State::Replay { pos: pos + n, len };
                    return Poll::Ready(Ok(()));
                }
                State::Sniffing { len: 0 } => {
                    let from = buf.filled().len();
                    std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
                    this.first_read(buf, from);
                    if this.state == State::Pass {
                        return Poll::Ready(Ok(()));
                    }
                }
                State::Sniffing { len } => {
                    let mut rb = ReadBuf::new(&mut this.held[len..]);
                    std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
                    let got = rb.filled().len();
                    let now = len + got;
                    if got == 0 || this.held[..now] != SIGNATURE[..now] {
                        this.state = State::Replay { pos: 0, len: now };
                    } else if now == SIGNATURE.len() {
                        this.refuse();
                    } else {
                        this.state = State::Sniffing { len: now };
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for RefuseProxy<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Feeds `chunks` (each a separate write) through the wrapper; returns what it let through
    /// and how often it reported a PROXY header.
    async fn through(chunks: &[&[u8]]) -> (Vec<u8>, usize) {
        let (mut client, server) = tokio::io::duplex(64);
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let mut wrapped = RefuseProxy::new(server, move || {
            h.fetch_add(1, Ordering::SeqCst);
        });
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        let writer = tokio::spawn(async move {
            for c in chunks {
                if client.write_all(&c).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
            // Dropping `client` here is the EOF the reader waits for.
        });
        let mut out = Vec::new();
        wrapped.read_to_end(&mut out).await.unwrap_or_default();
        writer.await.unwrap();
        (out, hits.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn http_passes_untouched() {
        let req: &[u8] = b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        assert_eq!(through(&[req]).await, (req.to_vec(), 0));
    }

    #[tokio::test]
    async fn a_proxy_header_gets_eof_and_one_report() {
        let mut h = SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11, 0, 12, 100, 64, 0, 1]);
        h.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(through(&[&h]).await, (Vec::new(), 1));
        // Split across reads, still recognised, nothing leaks.
        assert_eq!(
            through(&[&h[..3], &h[3..7], &h[7..]]).await,
            (Vec::new(), 1)
        );
    }

    #[tokio::test]
    async fn a_signature_prefix_that_is_not_one_is_replayed() {
        // Leading CRLFs are legal before an HTTP request line (RFC 9112 §2.2).
        let req: &[u8] = b"\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        assert_eq!(through(&[&req[..2], &req[2..]]).await, (req.to_vec(), 0));
        let short: &[u8] = b"\r\n";
        assert_eq!(through(&[short]).await, (short.to_vec(), 0));
    }
}

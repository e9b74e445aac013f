//! An I/O wrapper that runs the pre-auth [`FrameGuard`] over inbound bytes
//! before tungstenite sees them. Writes pass through untouched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::protocol::frame_guard::FrameGuard;

pub struct GuardedIo<S> {
    inner: S,
    guard: FrameGuard,
    tripped: bool,
}

impl<S> GuardedIo<S> {
    pub fn new(inner: S, cap: usize) -> Self {
        GuardedIo {
            inner,
            guard: FrameGuard::new(cap),
            tripped: false,
        }
    }

    /// After `hello-ok`: stop checking.
    pub fn disarm(&mut self) {
        self.guard.disarm();
    }

    /// The guard refused an oversized pre-auth message.
    pub fn tripped(&self) -> bool {
        self.tripped
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for GuardedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.tripped {
            return Poll::Ready(Err(io::Error::other("preauth payload too large")));
        }
        let before = buf.filled().len();
        let this = &mut *self;
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            if this.guard.feed(&buf.filled()[before..]).is_err() {
                this.tripped = true;
                buf.set_filled(before);
                return Poll::Ready(Err(io::Error::other("preauth payload too large")));
            }
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GuardedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

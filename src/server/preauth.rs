//! Time bounds of the pre-upgrade HTTP phase and of the accept loop (threats.md RL-1).
//!
//! Owns: the hyper HTTP/1 builder for gateway connections (header-read timeout with a real timer,
//! a whole-phase deadline counted from accept, eviction, close after every refusal) and the
//! accept-error backoff.
//!
//! Invariants: no socket stays in the HTTP phase longer than its [`PhaseLimits::deadline`]; a
//! response with status ≥ 400 always carries `Connection: close`, so hyper closes the socket right
//! after writing it; a refused socket (budget refusal) never serves more than one response;
//! accept errors pause with a bounded exponential backoff and log at most once per
//! [`ACCEPT_LOG_EVERY`].

use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// hyper's read buffer cap for the HTTP phase (requests are small; the WS has its own).
const HTTP_BUF: usize = 16 * 1024;
/// A complete request head must arrive within this time after hyper starts reading it (also the
/// idle time allowed before the first byte): real clients send the head in one segment, 5 s covers
/// slow mobile links, and a slowloris head trickling a byte a second is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// A socket admitted only to be refused gets this long to send its request and read the 503.
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(1);

/// First pause after a failed `accept`.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// Longest pause after repeated `accept` failures: short enough that the listener recovers within
/// a second once file descriptors are free again.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one accept-failure log line per this interval (the rest are counted).
pub const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// Bounds of one connection's HTTP phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseLimits {
    /// hyper's header-read timeout.
    pub header_read: Duration,
    /// From accept to the end of the HTTP phase (the upgrade, or the socket closes).
    pub deadline: Duration,
    /// Serve one response, then close.
    pub refusal: bool,
}

impl PhaseLimits {
    /// Limits for a live socket under `handshake_timeout`, or a refusal.
    pub fn new(handshake_timeout: Duration, refusal: bool) -> Self {
        let deadline = if refusal {
            REFUSAL_WINDOW.min(handshake_timeout)
        } else {
            handshake_timeout
        };
        PhaseLimits {
            header_read: HEADER_READ_TIMEOUT.min(deadline),
            deadline,
            refusal,
        }
    }
}

impl PhaseLimits {
    /// What is left of these limits `spent` after accept (the TLS handshake took it).
    pub fn after(self, spent: Duration) -> Self {
        let deadline = self
            .deadline
            .saturating_sub(spent)
            .max(Duration::from_millis(1));
        PhaseLimits {
            header_read: self.header_read.min(deadline),
            deadline,
            refusal: self.refusal,
        }
    }
}

/// How the HTTP phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// hyper finished: closed, timed out reading a head, or handed the socket to an upgrade.
    Done,
    /// The whole-phase deadline passed.
    Deadline,
    /// The pre-auth budget evicted the socket.
    Evicted,
    /// The gateway is shutting down.
    Shutdown,
}

/// Adds `Connection: close` to a refusal (status ≥ 400): hyper then closes after writing it.
pub fn close_on_refusal<B>(mut r: Response<B>) -> Response<B> {
    if r.status().as_u16() >= 400 {
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

/// Serves HTTP/1.1 (with upgrades) on `io` until it ends, the deadline passes, `evicted` or
/// `cancel` fires (the socket is then dropped).
pub async fn drive<S, Svc, B>(
    io: S,
    svc: Svc,
    limits: PhaseLimits,
    evicted: CancellationToken,
    cancel: CancellationToken,
) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    Svc: Service<Request<Incoming>, Response = Response<B>> + Send,
    Svc::Future: Send + 'static,
    Svc::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let deadline = Instant::now() + limits.deadline;
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .keep_alive(!limits.refusal)
        .max_buf_size(HTTP_BUF)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => Ended::Done,
        _ = tokio::time::sleep_until(deadline) => Ended::Deadline,
        _ = evicted.cancelled() => Ended::Evicted,
        _ = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            Ended::Shutdown
        }
    }
}

/// Concurrent streams per HTTP/2 connection: one WebSocket plus a few probes (the budget slot
/// admits one WebSocket per connection anyway).
pub const H2_MAX_STREAMS: u32 = 8;
/// How long an h2 connection carrying a WebSocket may take to drain at shutdown.
const H2_DRAIN: Duration = Duration::from_secs(5);

/// [`drive`] for HTTP/2 with RFC 8441 extended CONNECT. The phase limits apply until `upgraded`
/// fires (an h2 stream became a WebSocket); the connection then carries it, so it is driven until
/// it ends, or drained (GOAWAY, bounded) at shutdown.
pub async fn drive_h2<S, Svc, B>(
    io: S,
    svc: Svc,
    limits: PhaseLimits,
    evicted: CancellationToken,
    cancel: CancellationToken,
    upgraded: CancellationToken,
) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    Svc: Service<Request<Incoming>, Response = Response<B>> + Send + Clone + 'static,
    Svc::Future: Send + 'static,
    Svc::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let deadline = Instant::now() + limits.deadline;
    let conn = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .timer(TokioTimer::new())
        .enable_connect_protocol()
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(HTTP_BUF as u32)
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return Ended::Done,
        _ = tokio::time::sleep_until(deadline) => return Ended::Deadline,
        _ = evicted.cancelled() => return Ended::Evicted,
        _ = cancel.cancelled() => return Ended::Shutdown,
        _ = upgraded.cancelled() => {}
    }
    tokio::select! {
        _ = conn.as_mut() => Ended::Done,
        _ = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(H2_DRAIN, conn).await;
            Ended::Shutdown
        }
    }
}

/// Bounded exponential backoff and rate-limited logging for a failing `accept`.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    delay: Option<Duration>,
    last_log: Option<Instant>,
    suppressed: u64,
}

/// What to do after one failed `accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub pause: Duration,
    /// `Some(n)`: log now, mentioning the `n` failures not logged since the last line.
    pub log: Option<u64>,
}

impl AcceptBackoff {
    /// Records a failure at `now`.
    pub fn failure(&mut self, now: Instant) -> Failure {
        let pause = self
            .delay
            .map_or(ACCEPT_BACKOFF_MIN, |d| (d * 2).min(ACCEPT_BACKOFF_MAX));
        self.delay = Some(pause);
        let due = self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= ACCEPT_LOG_EVERY);
        let log = if due {
            self.last_log = Some(now);
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        };
        Failure { pause, log }
    }

    /// Records a successful `accept`: the next failure starts from the shortest pause again.
    pub fn success(&mut self) {
        self.delay = None;
    }
}

/// Whether an accept error means the process or system ran out of file descriptors.
pub fn out_of_fds(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::EMFILE) | Some(nix::libc::ENFILE)
    )
}

#[cfg(test)]
#[path = "preauth_tests.rs"]
mod tests;

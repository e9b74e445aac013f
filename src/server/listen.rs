//! Listeners: which addresses a bind mode means, binding them (never widening),
//! and the accept loops that hand connections to hyper.
//!
//! Invariants: a requested address that cannot be bound is an error — except
//! `::1` for `loopback`, which is skipped (with a log line) on hosts without IPv6. Every
//! connection takes a pre-auth budget slot before hyper reads a byte ([`serve_http`], threats.md
//! RL-1); accept errors back off and shed the oldest pre-auth sockets when out of descriptors.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use hyper::service::service_fn;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

use super::budget::PermitSlot;
use super::preauth::{self, AcceptBackoff, PhaseLimits};
use super::Gateway;
use crate::config::{BindMode, Settings};
use crate::exposure::ingress::Via;
use crate::exposure::proxy_sniff::RefuseProxy;

/// Pre-auth sockets closed per failed `accept` that ran out of file descriptors: enough to let
/// the listener and an authenticated client's reconnect through, few enough not to empty the
/// budget on one transient error.
const SHED_ON_FD_EXHAUSTION: usize = 16;

/// Listen backlog: enough for handshake bursts from benchmarks and reconnect storms.
pub const BACKLOG: u32 = 1024;

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source} (fix: free the port, pick another with --port, or change gateway.bind)")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: io::Error,
}

/// Whether the mode listens on all interfaces: `lan`, or `auto` inside a detected
/// container (which publishes to the host's loopback, threats.md EX-5; config.md §3).
fn all_interfaces(s: &Settings) -> bool {
    match s.bind {
        BindMode::Lan => true,
        BindMode::Auto => crate::discovery::container::detect_cached().is_some(),
        _ => false,
    }
}

/// Addresses for a bind mode: (address, required).
pub fn addresses(s: &Settings) -> Vec<(SocketAddr, bool)> {
    let p = s.port;
    let v4lo = (SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p), true);
    let v6lo = (SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), p), false);
    if all_interfaces(s) {
        return vec![
            (SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), p), true),
            (SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), p), false),
        ];
    }
    match (s.bind, s.custom_bind_host) {
        (BindMode::Custom, Some(ip)) if !ip.is_loopback() => {
            vec![v4lo, (SocketAddr::new(ip, p), true)]
        }
        (BindMode::Custom, _) => vec![v4lo],
        _ => vec![v4lo, v6lo],
    }
}

/// Binds one address (reuseaddr, v6-only for IPv6, [`BACKLOG`]).
pub fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    if addr.is_ipv6() {
        let s2 = socket2::SockRef::from(&sock);
        s2.set_only_v6(true)?;
    }
    sock.bind(addr)?;
    sock.listen(BACKLOG)
}

/// Binds every address of the mode; errors name the address and the fix.
pub fn bind_all(s: &Settings) -> Result<Vec<TcpListener>, BindError> {
    let mut out = Vec::new();
    for (addr, required) in addresses(s) {
        match bind_one(addr) {
            Ok(l) => out.push(l),
            Err(e) if !required && e.kind() != io::ErrorKind::AddrInUse => {
                tracing::info!(%addr, "skipping optional listener: {e}");
            }
            Err(source) => return Err(BindError { addr, source }),
        }
    }
    Ok(out)
}

/// Runs accept loops for `listeners` on the gateway's tracker until the gateway stops.
pub fn serve(gw: &Arc<Gateway>, listeners: Vec<TcpListener>) {
    for l in listeners {
        serve_until(gw, l, gw.cancel.clone());
    }
}

/// Runs one accept loop for `l` on the gateway's tracker until `stop` (the gateway's token or a
/// child of it) is cancelled; the listener is then closed and its address leaves `listen_addrs`.
/// Connections already accepted are not touched: they end on their own or at gateway shutdown.
pub fn serve_until(gw: &Arc<Gateway>, l: TcpListener, stop: CancellationToken) {
    let addr = l.local_addr().ok();
    if let (Some(a), Ok(mut v)) = (addr, gw.listen_addrs.lock()) {
        v.push(a);
    }
    let gw2 = gw.clone();
    gw.tracker.spawn(async move {
        accept_until(gw2.clone(), l, "gateway", stop, direct).await;
        if let (Some(a), Ok(mut v)) = (addr, gw2.listen_addrs.lock()) {
            v.retain(|x| *x != a);
        }
    });
}

async fn direct(gw: Arc<Gateway>, stream: TcpStream, peer: SocketAddr) {
    if let Ok(local) = stream.local_addr() {
        let exposure = gw.exposure.clone();
        let stream = RefuseProxy::new(stream, move || exposure.loopback.alert_forged_proxy(peer));
        serve_http(gw, stream, peer, local, Via::Direct).await;
    }
}

/// Accepts until the gateway is cancelled, running `on` for each connection on the
/// gateway's tracker. Accept errors (e.g. EMFILE) back off (bounded, exponential) and are
/// logged at most once per [`preauth::ACCEPT_LOG_EVERY`].
pub async fn accept_each<F, Fut>(gw: Arc<Gateway>, l: TcpListener, what: &'static str, on: F)
where
    F: Fn(Arc<Gateway>, TcpStream, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let stop = gw.cancel.clone();
    accept_until(gw, l, what, stop, on).await
}

/// [`accept_each`] until `stop` is cancelled (then `l` is dropped: the socket closes).
async fn accept_until<F, Fut>(
    gw: Arc<Gateway>,
    l: TcpListener,
    what: &'static str,
    stop: CancellationToken,
    on: F,
) where
    F: Fn(Arc<Gateway>, TcpStream, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut backoff = AcceptBackoff::default();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            r = l.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    let pause = accept_failed(&gw, &mut backoff, what, &e);
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(pause) => continue,
                    }
                }
            },
        };
        backoff.success();
        let _ = stream.set_nodelay(true);
        gw.tracker.spawn(on(gw.clone(), stream, peer));
    }
}

/// Handles a failed `accept`: sheds pre-auth sockets when out of file descriptors, logs (rate
/// limited) and returns the pause before the next attempt.
fn accept_failed(
    gw: &Gateway,
    backoff: &mut AcceptBackoff,
    what: &str,
    e: &io::Error,
) -> std::time::Duration {
    let shed = if preauth::out_of_fds(e) {
        gw.budget.shed(SHED_ON_FD_EXHAUSTION)
    } else {
        0
    };
    let f = backoff.failure(tokio::time::Instant::now());
    if let Some(suppressed) = f.log {
        tracing::warn!(
            shed,
            suppressed,
            pause = ?f.pause,
            "{what} accept failed: {e} (closed {shed} unauthenticated sockets; {suppressed} similar failures since the last report)"
        );
    }
    f.pause
}

/// Serves HTTP (with WebSocket upgrades) on one connection until it ends or the gateway shuts
/// down. The connection first takes a pre-auth budget slot keyed by `peer` (closed at once when
/// refused; answered 503 and closed when admitted as a refusal); the slot rides in each request's
/// extensions so the upgrade can carry it to `hello-ok`. With gateway TLS on, a direct connection
/// completes its TLS handshake inside that slot and the header-read timeout
/// ([`super::tls_conn`]); the Serve ingress (TLS already terminated by tailscaled) never does.
pub async fn serve_http<S>(
    gw: Arc<Gateway>,
    stream: S,
    peer: SocketAddr,
    local: SocketAddr,
    via: Via,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let permit = match gw.budget.admit(peer.ip()) {
        Ok(p) => p,
        Err(why) => {
            tracing::debug!(%peer, ?why, "pre-auth budget full: closing at accept");
            return;
        }
    };
    let limits = PhaseLimits::new(gw.settings.handshake_timeout, permit.is_refusal());
    let conn = Admitted {
        gw: gw.clone(),
        permit,
        limits,
        peer,
        local,
        via,
    };
    match gw.tls.get().filter(|_| matches!(conn.via, Via::Direct)) {
        Some(tls) => super::tls_conn::serve(conn, tls.clone(), stream).await,
        None => conn.serve_h1(stream, false).await,
    }
}

/// A connection holding its pre-auth budget slot, before HTTP.
pub(super) struct Admitted {
    pub gw: Arc<Gateway>,
    pub permit: super::budget::Permit,
    pub limits: PhaseLimits,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub via: Via,
}

/// Marks a request that arrived over the gateway's own TLS (`secure` in the upgrade checks).
#[derive(Debug, Clone, Copy)]
pub struct OverTls;

impl Admitted {
    /// Serves HTTP/1.1 on `stream`; `secure` when it is the gateway's own TLS.
    pub(super) async fn serve_h1<S>(self, stream: S, secure: bool)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Admitted {
            gw,
            permit,
            limits,
            peer,
            local,
            via,
        } = self;
        let evicted = permit.evicted();
        let cancel = gw.cancel.clone();
        if permit.is_refusal() {
            let svc = service_fn(|_req| async {
                let r = super::http::too_many_unauthenticated();
                Ok::<_, std::convert::Infallible>(preauth::close_on_refusal(r))
            });
            preauth::drive(stream, svc, limits, evicted, cancel).await;
            drop(permit);
            return;
        }
        let slot = PermitSlot::new(permit);
        let svc = service_fn(move |mut req| {
            req.extensions_mut().insert(slot.clone());
            if secure {
                req.extensions_mut().insert(OverTls);
            }
            let resp = super::http::handle_via(gw.clone(), peer, local, via.clone(), req);
            async move { resp.await.map(preauth::close_on_refusal) }
        });
        preauth::drive(stream, svc, limits, evicted, cancel).await;
    }
}

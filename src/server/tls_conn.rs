//! A direct connection on a TLS listener: the handshake inside the pre-auth budget, then HTTP/1.1
//! or HTTP/2 by ALPN. HTTP/2 accepts RFC 8441 extended CONNECT (`:protocol websocket`), so
//! browsers and h2-only clients get a WebSocket over one h2 stream.
//!
//! Invariants: the handshake runs while the connection holds its budget slot, bounded by the
//! header-read timeout and cut short by eviction or shutdown (a stalled ClientHello costs one slot
//! for at most that long, threats.md RL-1); the HTTP phase then gets what is left of the phase
//! deadline; plaintext gets the 400 from [`crate::tls::accept`]; every request carries
//! [`OverTls`], which lifts the plaintext refusal (issue 15 §5) and nothing else.

use std::sync::Arc;

use hyper::service::service_fn;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::budget::PermitSlot;
use super::listen::{Admitted, OverTls};
use super::preauth;
use crate::tls::accept::{accept, Accepted};
use crate::tls::server::TlsServer;

/// Cancelled when an h2 stream was upgraded to a WebSocket (the connection then lives on).
#[derive(Debug, Clone)]
pub struct H2Upgraded(pub CancellationToken);

/// Runs the TLS handshake on `stream`, then serves HTTP on it.
pub(super) async fn serve<S>(mut conn: Admitted, tls: Arc<TlsServer>, stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let started = Instant::now();
    let evicted = conn.permit.evicted();
    let cancel = conn.gw.cancel.clone();
    let peer = conn.peer;
    let within = conn.limits.header_read;
    let accepted = tokio::select! {
        r = tokio::time::timeout(within, accept(tls.config(), stream)) => match r {
            Ok(a) => a,
            Err(_) => return tracing::debug!(%peer, "TLS handshake timed out after {within:?}"),
        },
        _ = evicted.cancelled() => return,
        _ = cancel.cancelled() => return,
    };
    let s = match accepted {
        Accepted::Tls(s) => s,
        Accepted::Plaintext => {
            return tracing::debug!(%peer, "plaintext on the TLS port: answered 400")
        }
        Accepted::Closed(why) => return tracing::debug!(%peer, "TLS connection closed: {why}"),
    };
    conn.limits = conn.limits.after(started.elapsed());
    if s.get_ref().1.alpn_protocol() == Some(b"h2") {
        serve_h2(conn, s).await
    } else {
        conn.serve_h1(s, true).await
    }
}

/// Serves HTTP/2 with extended CONNECT on an established TLS stream.
async fn serve_h2<S>(conn: Admitted, io: S)
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
    } = conn;
    let evicted = permit.evicted();
    let cancel = gw.cancel.clone();
    let upgraded = CancellationToken::new();
    if permit.is_refusal() {
        let svc = service_fn(|_req| async {
            Ok::<_, std::convert::Infallible>(super::http::too_many_unauthenticated())
        });
        preauth::drive_h2(io, svc, limits, evicted, cancel, upgraded).await;
        drop(permit);
        return;
    }
    let slot = PermitSlot::new(permit);
    let signal = H2Upgraded(upgraded.clone());
    let svc = service_fn(move |mut req| {
        req.extensions_mut().insert(slot.clone());
        req.extensions_mut().insert(OverTls);
        req.extensions_mut().insert(signal.clone());
        super::http::handle_via(gw.clone(), peer, local, via.clone(), req)
    });
    preauth::drive_h2(io, svc, limits, evicted, cancel, upgraded).await;
}

//! The dedicated Serve/Funnel ingress listener (tailscale.md §4 option B, threats.md SL-9, PX-9):
//! a `127.0.0.2:<ephemeral>` socket that only tailscaled's TLS-terminated TCP forward targets
//! (userspace tailscaled forwards tailnet peers to `127.0.0.1` only, §12.1).
//! Every connection must start with a PROXY v2 header; its source is identified by whois and the
//! HTTP/1.1 request that follows is served by the ordinary HTTP surface with
//! [`Via::Ingress`] provenance.
//!
//! Invariants: this listener is the only place that grants tailnet provenance; everything on it
//! is a proxy ingress (never local, never silent pairing, no rate-limit exemption); a missing,
//! malformed or `LOCAL` PROXY header closes the connection before any HTTP is read (a PROXY
//! header on any other listener is never parsed); an unidentifiable source is `Public` (Funnel),
//! never a tailnet user; whois failures (LocalAPI down) refuse the connection; each `Public`
//! connection is noted as the last Funnel connection (informational).

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};

use super::identity::{IngressPeer, WhoisCache};
use super::proxy_v2;
use super::Origin;
use crate::server::{listen, Gateway};

/// How a request reached the HTTP surface.
#[derive(Debug, Clone)]
pub enum Via {
    /// An ordinary gateway listener (loopback, LAN, tailnet bind): plaintext rules apply.
    Direct,
    /// The dedicated Serve/Funnel listener, with the whois-verified source.
    Ingress(Arc<IngressPeer>),
}

impl Via {
    /// The verified tailnet peer, if any.
    pub fn peer(&self) -> Option<&Arc<IngressPeer>> {
        match self {
            Via::Direct => None,
            Via::Ingress(p) => Some(p),
        }
    }
}

/// The ingress address: a loopback address that userspace tailscaled never dials when it
/// forwards a tailnet peer (it always dials `127.0.0.1` or `::1`, tailscale.md §12.1), so only
/// a Serve forward, which dials exactly the configured target, can reach it. On Linux all of
/// 127.0.0.0/8 is local without configuration.
pub const INGRESS_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Binds the dedicated listener on an ephemeral port of [`INGRESS_IP`], falling back to
/// `127.0.0.1` where that address is not local (e.g. macOS without an alias); there each
/// connection is also checked against the loopback guard.
pub async fn bind() -> io::Result<TcpListener> {
    match TcpListener::bind(SocketAddr::from((INGRESS_IP, 0))).await {
        Ok(l) => Ok(l),
        Err(e) => {
            tracing::warn!("cannot bind the Serve ingress on {INGRESS_IP} ({e}); using 127.0.0.1, reachable by a userspace tailscaled's forwards, which are refused by whois");
            TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
        }
    }
}

/// Runs the accept loop on the gateway's tracker until the gateway is cancelled.
pub fn serve(gw: &Arc<Gateway>, listener: TcpListener, whois: Arc<WhoisCache>) {
    let accept = listen::accept_each(gw.clone(), listener, "ingress", move |gw, stream, _| {
        connection(gw, stream, whois.clone())
    });
    gw.tracker.spawn(accept);
}

/// One ingress connection: PROXY header → whois → HTTP/1.1 (with upgrades).
async fn connection(gw: Arc<Gateway>, mut stream: TcpStream, whois: Arc<WhoisCache>) {
    let _ = stream.set_nodelay(true);
    let (Ok(local), Ok(hop)) = (stream.local_addr(), stream.peer_addr()) else {
        return;
    };
    let header = tokio::select! {
        _ = gw.cancel.cancelled() => return,
        h = proxy_v2::read_header(&mut stream) => h,
    };
    let source = match header {
        Ok(h) => h.source,
        Err(e) => {
            tracing::warn!("ingress connection without a valid PROXY v2 header: {e}");
            return;
        }
    };
    // Only the Serve hop may speak here; a userspace tailscaled forward of a tailnet peer that
    // reached this port is a forged header (PX-9): no answer, no identity.
    if let o @ (Origin::Forwarded { .. } | Origin::Unproven(_)) =
        gw.exposure.loopback.classify(hop).await
    {
        tracing::warn!(%hop, claimed = %source, "PROXY v2 header from a forwarded tailnet peer on the Serve ingress refused: {o:?}");
        return;
    }
    let peer = match whois.lookup(source.ip()).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(%source, "whois failed; refusing ingress connection: {e}");
            return;
        }
    };
    tracing::debug!(%source, peer = %peer.describe(), "ingress connection");
    if *peer == IngressPeer::Public {
        gw.exposure.note_funnel_connection(); // SL-10: informational "last Funnel connection"
    }
    listen::serve_http(gw, stream, source, local, Via::Ingress(peer)).await;
}

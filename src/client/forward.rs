//! `clawgate connect --forward`: keeps the selected transport up and exposes it as a loopback
//! endpoint, so any OpenClaw client (the real CLI, a node host) gets the policy without knowing it.
//!
//! Owns the loopback listener and one relay task per accepted connection (owned by a
//! `TaskTracker`, cancelled together). Each relay opens its own upstream with
//! [`super::pins::open_stream`] — plain TCP for a `ws://` endpoint, TLS under the endpoint's pins
//! for `wss://` — and copies bytes both ways; the HTTP upgrade and every frame pass unchanged, so credentials
//! stay between the client and the gateway.
//!
//! Invariants: the listener binds loopback only (a LAN-reachable forward would hand LAN peers
//! whatever the upstream grants: over SSH the gateway sees loopback); at most
//! [`MAX_RELAYS`] relays run — further clients wait in the accept backlog (back-pressure, nothing
//! dropped); an upstream that cannot be opened closes that one client, never the listener.
//! What the gateway sees: over a direct route, the forwarding host's own address — a remote
//! client never gains local privileges; over the SSH tunnel (step 4), loopback on the gateway
//! host, as with any SSH tunnel (the SSH login is the credential, protocol.md §7). Over a tunnel
//! each relay dials the tunnel's *current* local port (it may move on reconnect) and waits up to
//! [`UPSTREAM_TIMEOUT`] while the tunnel is reconnecting; a tunnel that stopped for good (host
//! key, login) ends the forward with that reason.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::tunnel::TunnelState;
use super::TlsOpts;

/// Concurrent relays; a node host and a CLI need a handful, 256 bounds memory and fds.
pub const MAX_RELAYS: usize = 256;
/// Upstream open bound per relay.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("--forward {0} is not a loopback address; the forward must stay on this host")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source} (is a gateway or another forward already there? pick another with --forward 127.0.0.1:PORT)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Binds the loopback listener.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ForwardError> {
    if !addr.ip().is_loopback() {
        return Err(ForwardError::NotLoopback(addr));
    }
    TcpListener::bind(addr)
        .await
        .map_err(|source| ForwardError::Bind { addr, source })
}

/// Where relays go.
pub struct Upstream {
    /// The route's URL (for a tunnel: its scheme; the port is the tunnel's current one).
    pub url: String,
    pub tls: TlsOpts,
    /// Step 4's tunnel state.
    pub tunnel: Option<watch::Receiver<TunnelState>>,
}

impl Upstream {
    /// The URL to dial now; over a tunnel, waits (bounded) for it to be up.
    async fn current_url(&self) -> std::io::Result<String> {
        let Some(rx) = &self.tunnel else {
            return Ok(self.url.clone());
        };
        let mut rx = rx.clone();
        let up = tokio::time::timeout(
            UPSTREAM_TIMEOUT,
            rx.wait_for(|s| !matches!(s, TunnelState::Down(_))),
        )
        .await;
        let state = match up {
            Ok(Ok(s)) => s.clone(),
            Ok(Err(_)) => return Err(std::io::Error::other("SSH tunnel closed")),
            Err(_) => return Err(std::io::Error::other("SSH tunnel still reconnecting")),
        };
        match state {
            TunnelState::Up(port) => {
                let scheme = if self.url.starts_with("wss://") {
                    "wss"
                } else {
                    "ws"
                };
                Ok(format!("{scheme}://127.0.0.1:{port}"))
            }
            other => Err(std::io::Error::other(format!("SSH tunnel: {other:?}"))),
        }
    }
}

/// Resolves when the tunnel has stopped for good (never without a tunnel).
async fn tunnel_failed(tunnel: Option<watch::Receiver<TunnelState>>) -> String {
    let Some(mut rx) = tunnel else {
        return std::future::pending().await;
    };
    let why = match rx.wait_for(|s| matches!(s, TunnelState::Failed(_))).await {
        Ok(s) => match &*s {
            TunnelState::Failed(f) => f.to_string(),
            _ => "SSH tunnel stopped".to_string(),
        },
        Err(_) => "SSH tunnel stopped".to_string(),
    };
    why
}

/// Accepts until `cancel`, relaying each client to a fresh upstream; `Err` when the tunnel
/// stopped for good.
pub async fn serve(
    listener: TcpListener,
    upstream: Upstream,
    cancel: CancellationToken,
) -> Result<(), String> {
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(MAX_RELAYS));
    let failed = tunnel_failed(upstream.tunnel.clone());
    tokio::pin!(failed);
    let upstream = Arc::new(upstream);
    let mut outcome = Ok(());
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p,
            _ = cancel.cancelled() => break,
            why = &mut failed => { outcome = Err(why); break }
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = cancel.cancelled() => break,
            why = &mut failed => { outcome = Err(why); break }
        };
        let (client, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let up = upstream.clone();
        let cancel = cancel.clone();
        let span = tracing::info_span!("relay", %peer);
        tracker.spawn(
            async move {
                let _permit = permit;
                tokio::select! {
                    r = relay(client, &up) => if let Err(e) = r {
                        tracing::info!("relay ended: {e}");
                    },
                    _ = cancel.cancelled() => {}
                }
            }
            .instrument(span),
        );
    }
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    outcome
}

async fn relay(mut client: TcpStream, up: &Upstream) -> std::io::Result<()> {
    let _ = client.set_nodelay(true);
    let url = up.current_url().await?;
    let opened =
        tokio::time::timeout(UPSTREAM_TIMEOUT, super::pins::open_stream(&url, &up.tls)).await;
    let mut upstream = match opened {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(std::io::Error::other(format!("upstream: {e}"))),
        Err(_) => return Err(std::io::Error::other("upstream: timed out")),
    };
    let (a, b) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    tracing::debug!(to_gateway = a, from_gateway = b, "relay closed");
    Ok(())
}

//! Whether host loopback can carry tailnet peers, and the per-connection proof of locality
//! (tailscale.md §12.1; threats.md PR-9, PX-2, RL-3, TN-6; ADR 0060).
//!
//! A tailscaled in userspace-networking mode dials every inbound tailnet TCP connection to
//! `127.0.0.1:<port>` on its host: a loopback peer address alone proves nothing. This module owns
//! what is known about that forwarding ([`Forwarding`], learnt from the backend's `status.TUN`)
//! and the verdict for one loopback connection ([`Origin`]).
//!
//! Invariants:
//! - a loopback connection is [`Origin::Direct`] only when nothing known forwards tailnet peers to
//!   loopback, or when the forwarding tailscaled itself says it is not one of its forwards
//!   (`whois` of the peer `ip:port` answers 404; it is asked after the request bytes arrived,
//!   because tailscaled registers a forward only once its dial completed);
//! - a forward is attributed to the tailnet peer's own address ([`Origin::Forwarded`]): it gets
//!   that address's rate-limit bucket and pre-auth budget, never loopback privileges;
//! - any other whois outcome (timeout, permission, malformed answer) is [`Origin::Unproven`]:
//!   remote, fail closed; a LocalAPI that cannot be dialled at all means no tailscaled is running
//!   there, so nothing is being forwarded;
//! - the sidecar (tsnet) does not forward to host loopback (tested in `exposure_userspace`), so
//!   with it no whois is made.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use serde_json::{json, Value};

use super::identity::TailnetPeer;
use crate::tailscale::{LocalApi, LocalApiError, Status, WhoIs};

/// What is known about tailnet traffic being forwarded to host loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarding {
    /// No Tailscale backend on this gateway, or one that cannot forward to loopback (the tsnet
    /// sidecar, or a tailscaled with a kernel TUN device).
    None,
    /// The backend tailscaled uses userspace networking: tailnet peers reach loopback ports.
    Userspace,
    /// The backend tailscaled has not told us yet (starting, or unreachable).
    Unknown,
}

impl Forwarding {
    /// From the backend tailscaled's `status`.
    pub fn from_status(s: &Status) -> Self {
        match s.tun {
            Some(true) => Self::None,
            Some(false) => Self::Userspace,
            None => Self::Unknown,
        }
    }

    /// Wire name in `exposure.loopback.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "local-only",
            Self::Userspace => "forwarded",
            Self::Unknown => "unknown",
        }
    }
}

/// The verdict for one connection whose socket peer is on loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The socket peer is the client itself: a genuinely local client, or not loopback at all.
    Direct,
    /// Forwarded by userspace tailscaled from this tailnet node.
    Forwarded {
        /// The node's tailnet address (the connection's attributed source).
        addr: IpAddr,
        /// Who it is.
        peer: TailnetPeer,
    },
    /// Loopback, but the forwarding tailscaled could not confirm it is local: remote.
    Unproven(String),
}

impl Origin {
    /// The address the connection is attributed to (`socket` unless forwarded).
    pub fn attributed(&self, socket: IpAddr) -> IpAddr {
        match self {
            Self::Forwarded { addr, .. } => *addr,
            _ => socket,
        }
    }

    /// Whether the socket peer is the client (loopback privileges may apply to a loopback one).
    pub fn is_direct(&self) -> bool {
        matches!(self, Self::Direct)
    }
}

/// The loopback-forwarding state of this gateway and the whois prover, shared by the listeners.
#[derive(Default)]
pub struct LoopbackGuard {
    state: RwLock<Option<Forwarding>>,
    prover: OnceLock<Arc<dyn LocalApi>>,
    alerted_forward: AtomicBool,
    alerted_proxy: AtomicBool,
}

impl std::fmt::Debug for LoopbackGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LoopbackGuard({:?})", self.forwarding())
    }
}

impl LoopbackGuard {
    /// Makes the backend tailscaled the judge of loopback connections (system tailscaled only;
    /// the sidecar never forwards to loopback). State is `Unknown` until [`Self::observe`].
    pub fn set_prover(&self, api: Arc<dyn LocalApi>) {
        if self.prover.set(api).is_ok() {
            self.set(Forwarding::Unknown);
        }
    }

    /// Records the backend's `status` (called wherever the exposure tasks refresh it).
    pub fn observe(&self, status: &Status) {
        if self.prover.get().is_some() {
            self.set(Forwarding::from_status(status));
        }
    }

    fn set(&self, f: Forwarding) {
        let old = match self.state.write() {
            Ok(mut g) => g.replace(f),
            Err(p) => p.into_inner().replace(f),
        };
        if f == Forwarding::Userspace && old != Some(f) {
            tracing::warn!(
                "tailscaled runs userspace networking: tailnet peers can reach this gateway's loopback port; {} (fix: {})",
                CONSEQUENCE,
                FIX
            );
        }
    }

    /// Records that the backend is clawgate's tsnet sidecar, which never forwards to loopback.
    pub fn set_sidecar(&self) {
        self.set(Forwarding::None);
    }

    /// The state as learnt; `None` when nothing was checked (`tailscale.mode = off` makes no
    /// Tailscale calls, SL-1).
    fn learnt(&self) -> Option<Forwarding> {
        match self.state.read() {
            Ok(g) => *g,
            Err(p) => *p.into_inner(),
        }
    }

    /// The current state for classification (nothing checked ⇒ nothing to ask: `None`).
    pub fn forwarding(&self) -> Forwarding {
        self.learnt().unwrap_or(Forwarding::None)
    }

    /// The verdict for a connection from `peer` (call it after the first request bytes arrived).
    pub async fn classify(&self, peer: SocketAddr) -> Origin {
        if !peer.ip().to_canonical().is_loopback() || self.forwarding() == Forwarding::None {
            return Origin::Direct;
        }
        let Some(api) = self.prover.get() else {
            return Origin::Direct;
        };
        let origin = verdict(api.whois(peer.into()).await);
        if let Origin::Forwarded { addr, peer: p } = &origin {
            self.alert_once(*addr, p);
        }
        origin
    }

    /// A PROXY v2 header arrived on an ordinary gateway listener (never parsed there, PX-9): an
    /// alert the first time, debug afterwards.
    pub fn alert_forged_proxy(&self, socket_peer: SocketAddr) {
        if !self.alerted_proxy.swap(true, Ordering::Relaxed) {
            tracing::warn!(%socket_peer, "PROXY v2 header on the gateway port refused without an answer: only tailscaled's Serve hop may send one, to the dedicated ingress (a forged source claim? with userspace tailscaled a tailnet peer arrives from loopback)");
        } else {
            tracing::debug!(%socket_peer, "PROXY v2 header on the gateway port refused");
        }
    }

    fn alert_once(&self, addr: IpAddr, peer: &TailnetPeer) {
        let first = !self.alerted_forward.swap(true, Ordering::Relaxed);
        let who = peer.login.as_deref().unwrap_or("tagged node");
        if first {
            tracing::warn!(%addr, node = %peer.node, %who, "tailnet peer reached the loopback gateway through tailscaled's userspace forwarding; treated as a remote client (fix: {FIX})");
        } else {
            tracing::debug!(%addr, node = %peer.node, "forwarded tailnet peer on loopback");
        }
    }

    /// `exposure.loopback` in `/readyz`, `status` and `doctor --json`.
    pub fn report(&self) -> Value {
        let Some(f) = self.learnt() else {
            return json!({"state": "unchecked", "consequence": UNCHECKED, "fix": UNCHECKED_FIX});
        };
        let (consequence, fix) = match f {
            Forwarding::Userspace => (Some(CONSEQUENCE), Some(FIX)),
            Forwarding::Unknown => (Some(UNKNOWN), None),
            Forwarding::None => (None, None),
        };
        json!({"state": f.as_str(), "consequence": consequence, "fix": fix})
    }
}

/// What userspace forwarding means for this gateway.
pub const CONSEQUENCE: &str = "tailnet peers reach loopback ports in plain ws; each loopback client is checked with whois and forwarded peers are treated as remote tailnet clients (pairing required, their own rate limits)";
/// How to stop loopback being reachable from the tailnet.
pub const FIX: &str = "run tailscaled with a TUN device (drop --tun=userspace-networking), or use clawgate's own sidecar (gateway.tailscale.sidecar), which never forwards to host loopback";
const UNCHECKED: &str = "tailscale.mode = off: no Tailscale calls are made, so a userspace-networking tailscaled on this host (or in this pod) would go unseen and its tailnet peers would look local";
const UNCHECKED_FIX: &str = "if a tailscaled runs with --tun=userspace-networking here, point clawgate at it (gateway.tailscale.socket and mode serve) or use the sidecar";
const UNKNOWN: &str = "tailscaled has not reported whether it uses userspace networking yet; loopback clients are checked with whois meanwhile";

/// Maps a whois answer for a loopback `ip:port` to a verdict.
fn verdict(answer: Result<WhoIs, LocalApiError>) -> Origin {
    match answer {
        Ok(w) => match w.node.as_ref().and_then(|n| first_address(&n.addresses)) {
            Some(addr) => Origin::Forwarded {
                addr,
                peer: TailnetPeer::from_whois(&w),
            },
            None => Origin::Unproven("whois answered without a node address".into()),
        },
        Err(LocalApiError::Status { status: 404, .. }) => Origin::Direct,
        Err(LocalApiError::Connect { source, .. }) if not_running(&source) => Origin::Direct,
        Err(e) => Origin::Unproven(format!("whois failed: {e}")),
    }
}

/// A LocalAPI socket that is absent or refuses connections: no tailscaled runs there.
fn not_running(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
    )
}

/// The first `Addresses` prefix as an address (`100.64.0.4/32` → `100.64.0.4`).
fn first_address(prefixes: &[String]) -> Option<IpAddr> {
    prefixes
        .iter()
        .find_map(|p| p.split('/').next()?.parse::<IpAddr>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tailscale::{FakeLocalApi, Status};

    fn whois(json: serde_json::Value) -> WhoIs {
        serde_json::from_value(json).unwrap()
    }

    fn status(tun: Option<bool>) -> Status {
        Status {
            tun,
            ..Status::default()
        }
    }

    #[test]
    fn tun_flag_maps_to_forwarding() {
        assert_eq!(
            Forwarding::from_status(&status(Some(true))),
            Forwarding::None
        );
        let us = Forwarding::from_status(&status(Some(false)));
        assert_eq!(us, Forwarding::Userspace);
        assert_eq!(Forwarding::from_status(&status(None)), Forwarding::Unknown);
        let parsed: Status = serde_json::from_str(r#"{"TUN": false}"#).unwrap();
        assert_eq!(Forwarding::from_status(&parsed), Forwarding::Userspace);
    }

    #[test]
    fn whois_answers_map_to_verdicts() {
        let vienna = whois(
            serde_json::json!({"Node":{"Name":"vienna.ts.net.","Addresses":["100.64.0.4/32","fd7a:115c:a1e0::4/128"]},"UserProfile":{"LoginName":"v@example.com"}}),
        );
        match verdict(Ok(vienna)) {
            Origin::Forwarded { addr, peer } => {
                assert_eq!(addr.to_string(), "100.64.0.4");
                assert_eq!(peer.login.as_deref(), Some("v@example.com"));
            }
            o => panic!("{o:?}"),
        }
        let not_found = LocalApiError::Status {
            status: 404,
            message: "no match".into(),
        };
        assert_eq!(verdict(Err(not_found)), Origin::Direct);
        let refused = LocalApiError::Connect {
            endpoint: "unix:/x".into(),
            source: std::io::ErrorKind::ConnectionRefused.into(),
        };
        assert_eq!(verdict(Err(refused)), Origin::Direct);
        let denied = LocalApiError::Connect {
            endpoint: "unix:/x".into(),
            source: std::io::ErrorKind::PermissionDenied.into(),
        };
        assert!(matches!(verdict(Err(denied)), Origin::Unproven(_)));
        let timeout = LocalApiError::Timeout {
            what: "whois",
            after: std::time::Duration::from_secs(1),
        };
        assert!(matches!(verdict(Err(timeout)), Origin::Unproven(_)));
        let nodeless = verdict(Ok(WhoIs::default()));
        assert!(matches!(nodeless, Origin::Unproven(_)), "{nodeless:?}");
    }

    #[tokio::test]
    async fn classify_asks_only_when_loopback_may_be_forwarded() {
        let fake = Arc::new(FakeLocalApi::new(Status::default()));
        let lo: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        fake.insert_whois(
            lo.ip(),
            whois(
                serde_json::json!({"Node":{"Name":"vienna.ts.net.","Addresses":["100.64.0.4/32"]}}),
            ),
        );
        let guard = LoopbackGuard::default();
        assert_eq!(
            guard.classify(lo).await,
            Origin::Direct,
            "no backend: local"
        );
        assert_eq!(guard.report()["state"], "unchecked");
        guard.set_prover(fake.clone());
        assert_eq!(guard.forwarding(), Forwarding::Unknown);
        let o = guard.classify(lo).await;
        assert_eq!(o.attributed(lo.ip()).to_string(), "100.64.0.4", "{o:?}");
        assert!(!o.is_direct());
        guard.observe(&status(Some(true)));
        let calls = fake.call_count();
        assert_eq!(
            guard.classify(lo).await,
            Origin::Direct,
            "kernel TUN: no whois"
        );
        assert_eq!(fake.call_count(), calls);
        guard.observe(&status(Some(false)));
        assert_eq!(guard.report()["state"], "forwarded");
        let lan: SocketAddr = "192.168.1.9:5000".parse().unwrap();
        assert_eq!(guard.classify(lan).await, Origin::Direct, "not loopback");
        assert_eq!(fake.call_count(), calls);
    }
}

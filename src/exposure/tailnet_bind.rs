//! `gateway.bind = tailnet` (config.md §3, threats.md TN-1, TN-2): listen on every address in
//! LocalAPI `status.Self.TailscaleIPs` (any prefix, IPv4 and IPv6) in addition to the loopback
//! listeners `listen::bind_all` already opened, and follow that set as it changes (IPN bus wake-ups,
//! re-checks every [`RETRY`] / [`IDLE`]). While Tailscale is not up — or an address is not (yet) on
//! an OS interface — serve loopback only, say so once, and retry.
//!
//! The decision is the pure [`plan`] over what is bound and what Tailscale said ([`Seen`]):
//! - `Running`: the reported set is authoritative — bind what is new, close what left it (re-login
//!   with a new address, address change).
//! - Tailscale answered it is not connected (`Stopped` after `tailscale down`, `NeedsLogin` after
//!   logout or key expiry, …): close every tailnet listener at once.
//! - No answer (LocalAPI down, tailscaled restarting) or a transient state (`NoState`,
//!   `Starting`): bind nothing new, keep what is bound for [`GRACE`] so a tailscaled restart does
//!   not flap listeners, then close everything — a stale address never stays bound for long.
//!
//! Closing a listener stops its accept loop and closes the socket immediately (the port is gone
//! from `ss`); connections already accepted on it are left to end on their own (their peer closes,
//! the tunnel under them is gone so TCP gives up, or the gateway shuts down) — they were admitted
//! while the address was ours and kept their auth; only new connections are refused.
//!
//! Invariants: addresses come only from Tailscale (never 100.64/10 guesses); a wildcard, loopback
//! or multicast "tailnet IP" is never bound; the loopback listeners are never touched; every
//! listener runs on the gateway's tracker under a child of the gateway's cancel token.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Exposure;
use crate::server::{listen, Gateway};
use crate::tailscale::{notify_mask, BackendState, IpnBus, LocalApi, Status};

/// Re-check period while something is missing or unknown (tsnet/userspace addresses never appear
/// on an OS interface; the log says so once).
pub const RETRY: Duration = Duration::from_secs(1);
/// Re-check period when everything is bound (the bus normally wakes us first).
pub const IDLE: Duration = Duration::from_secs(30);
/// How long bound addresses survive while Tailscale cannot be asked or is in a transient state:
/// a tailscaled restart is back in a few seconds; anything longer is treated as "gone".
pub const GRACE: Duration = Duration::from_secs(30);

/// What one LocalAPI check said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// `Running` with these `Self.TailscaleIPs` (authoritative).
    Running(Vec<IpAddr>),
    /// Tailscale answered that it is not connected (the state is named): nothing is ours.
    Down(BackendState),
    /// No answer, or a transient state (named when there was an answer).
    Unknown(Option<BackendState>),
}

impl Seen {
    pub fn from_status(s: &Status) -> Seen {
        match &s.backend_state {
            BackendState::Running => Seen::Running(s.tailscale_ips.clone()),
            BackendState::NoState | BackendState::Starting | BackendState::Other(_) => {
                Seen::Unknown(Some(s.backend_state.clone()))
            }
            st => Seen::Down(st.clone()),
        }
    }
}

/// What to change now.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    pub bind: Vec<IpAddr>,
    pub close: Vec<IpAddr>,
}

/// Whether Tailscale's address may be bound (never wildcard, loopback or multicast).
fn usable(ip: &IpAddr) -> bool {
    !(ip.is_unspecified() || ip.is_loopback() || ip.is_multicast())
}

/// The pure reconcile decision. `unknown_for` is how long `Seen::Unknown` has lasted without a
/// definite answer (ignored otherwise).
pub fn plan(bound: &BTreeSet<IpAddr>, seen: &Seen, unknown_for: Duration) -> Plan {
    let want: BTreeSet<IpAddr> = match seen {
        Seen::Running(ips) => ips
            .iter()
            .map(IpAddr::to_canonical)
            .filter(usable)
            .collect(),
        Seen::Down(_) => BTreeSet::new(),
        Seen::Unknown(_) if unknown_for >= GRACE => BTreeSet::new(),
        Seen::Unknown(_) => return Plan::default(),
    };
    Plan {
        bind: want.difference(bound).copied().collect(),
        close: bound.difference(&want).copied().collect(),
    }
}

/// Runs until the gateway is cancelled.
pub async fn run(gw: Arc<Gateway>, api: Arc<dyn LocalApi>, exposure: Arc<Exposure>) {
    let mut b = Binder {
        gw,
        bound: BTreeMap::new(),
        unknown_since: None,
        said: String::new(),
    };
    let mut bus: Option<IpnBus> = None;
    loop {
        if bus.is_none() {
            bus = api.watch_ipn_bus(notify_mask::PORTABLE).await.ok();
        }
        let pending = b.step(&*api, &exposure).await;
        let wait = if pending { RETRY } else { IDLE };
        tokio::select! {
            _ = b.gw.cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            m = next(&mut bus) => if !matches!(m, Some(Ok(_))) { bus = None; }
        }
    }
}

async fn next(
    bus: &mut Option<IpnBus>,
) -> Option<crate::tailscale::Result<crate::tailscale::Notify>> {
    match bus {
        Some(b) => b.next().await,
        None => std::future::pending().await,
    }
}

/// The loop's state: one child token per bound tailnet address.
struct Binder {
    gw: Arc<Gateway>,
    bound: BTreeMap<IpAddr, CancellationToken>,
    unknown_since: Option<Instant>,
    said: String,
}

impl Binder {
    /// Logs `msg` at info once (until it changes).
    fn say(&mut self, msg: String) {
        if self.said != msg {
            tracing::info!("bind=tailnet: {msg}");
            self.said = msg;
        }
    }

    /// Asks the LocalAPI (publishing the addresses to `exposure`).
    async fn observe(&mut self, api: &dyn LocalApi, exposure: &Exposure) -> Seen {
        match api.self_status().await {
            Ok(status) => {
                exposure.observe_status(&status);
                Seen::from_status(&status)
            }
            Err(e) => {
                self.say(format!(
                    "Tailscale LocalAPI unreachable ({e}); serving loopback, retrying"
                ));
                Seen::Unknown(None)
            }
        }
    }

    /// One reconcile; returns whether something is still missing or unknown.
    async fn step(&mut self, api: &dyn LocalApi, exposure: &Exposure) -> bool {
        let seen = self.observe(api, exposure).await;
        let now = Instant::now();
        let unknown_for = match seen {
            Seen::Unknown(_) => now - *self.unknown_since.get_or_insert(now),
            _ => {
                self.unknown_since = None;
                Duration::ZERO
            }
        };
        let keys: BTreeSet<IpAddr> = self.bound.keys().copied().collect();
        let p = plan(&keys, &seen, unknown_for);
        let why = reason(&seen);
        self.close(&p.close, &why);
        match &seen {
            Seen::Down(_) => self.say(format!("{why}; serving loopback only, retrying")),
            Seen::Unknown(Some(st)) => self.say(format!(
                "Tailscale is {}; keeping tailnet listeners up to {GRACE:?}, binding nothing new, retrying",
                st.name()
            )),
            _ => {}
        }
        let missing = self.bind(&p.bind);
        if !missing.is_empty() {
            self.say(format!("cannot bind {} yet — the address is not on an OS interface (tailscaled with a TUN device is needed; userspace/tsnet nodes should use tailscale.mode=serve); serving loopback meanwhile, retrying", missing.join(", ")));
        } else if matches!(seen, Seen::Running(_)) {
            self.said.clear(); // all bound: a later problem is worth a new line
            return false;
        }
        true
    }

    /// Stops each address's accept loop (the socket closes; accepted connections are left alone).
    fn close(&mut self, ips: &[IpAddr], why: &str) {
        for ip in ips {
            if let Some(t) = self.bound.remove(ip) {
                t.cancel();
                let addr = SocketAddr::new(*ip, self.gw.settings.port);
                tracing::info!(%addr, "bind=tailnet: stopped listening on tailnet address ({why}); connections already accepted on it are left to finish");
            }
        }
    }

    /// Binds and serves each address; returns the ones that could not be bound.
    fn bind(&mut self, ips: &[IpAddr]) -> Vec<String> {
        let mut missing = Vec::new();
        for ip in ips {
            let addr = SocketAddr::new(*ip, self.gw.settings.port);
            match listen::bind_one(addr) {
                Ok(l) => {
                    tracing::info!(%addr, "bind=tailnet: listening on tailnet address");
                    let stop = self.gw.cancel.child_token();
                    listen::serve_until(&self.gw, l, stop.clone());
                    self.bound.insert(*ip, stop);
                }
                Err(e) => missing.push(format!("{addr} ({e})")),
            }
        }
        missing
    }
}

/// Why listeners are closed under `seen`, for the log.
fn reason(seen: &Seen) -> String {
    match seen {
        Seen::Running(_) => "no longer reported by Tailscale (re-login or address change)".into(),
        Seen::Down(st) => format!("Tailscale is {} (not connected)", st.name()),
        Seen::Unknown(Some(st)) => format!("Tailscale still {} after {GRACE:?}", st.name()),
        Seen::Unknown(None) => format!("Tailscale LocalAPI unreachable for {GRACE:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn set(v: &[&str]) -> BTreeSet<IpAddr> {
        v.iter().map(|s| ip(s)).collect()
    }

    const V4: &str = "100.101.102.103";
    const V6: &str = "fd7a:115c:a1e0::1";

    #[test]
    fn running_binds_new_and_closes_departed() {
        let seen = Seen::Running(vec![ip("100.64.0.9"), ip(V6)]);
        let p = plan(&set(&[V4, V6]), &seen, Duration::ZERO);
        assert_eq!(p.bind, vec![ip("100.64.0.9")]);
        assert_eq!(p.close, vec![ip(V4)]);
    }

    #[test]
    fn running_with_same_set_changes_nothing() {
        let seen = Seen::Running(vec![ip(V6), ip(V4)]);
        assert_eq!(plan(&set(&[V4, V6]), &seen, GRACE * 10), Plan::default());
    }

    #[test]
    fn any_prefix_is_bound_but_never_wildcard_loopback_or_multicast() {
        let seen = Seen::Running(
            [
                "10.1.2.3",
                "0.0.0.0",
                "::",
                "127.0.0.1",
                "::1",
                "224.0.0.1",
                "ff02::1",
            ]
            .map(ip)
            .to_vec(),
        );
        let p = plan(&BTreeSet::new(), &seen, Duration::ZERO);
        assert_eq!(p.bind, vec![ip("10.1.2.3")]);
    }

    #[test]
    fn v4_mapped_v6_is_canonicalised() {
        let seen = Seen::Running(vec![ip("::ffff:100.101.102.103")]);
        let p = plan(&set(&[V4]), &seen, Duration::ZERO);
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn down_states_close_everything_at_once() {
        for st in [
            BackendState::Stopped,
            BackendState::NeedsLogin,
            BackendState::NeedsMachineAuth,
            BackendState::InUseOtherUser,
        ] {
            let p = plan(&set(&[V4, V6]), &Seen::Down(st), Duration::ZERO);
            assert_eq!(p.close, vec![ip(V4), ip(V6)]);
            assert!(p.bind.is_empty());
        }
    }

    #[test]
    fn unknown_keeps_bound_within_grace_then_closes() {
        let bound = set(&[V4]);
        for seen in [
            Seen::Unknown(None),
            Seen::Unknown(Some(BackendState::Starting)),
        ] {
            let under = GRACE - Duration::from_millis(1);
            assert_eq!(plan(&bound, &seen, under), Plan::default());
            assert_eq!(plan(&bound, &seen, GRACE).close, vec![ip(V4)]);
        }
    }

    #[test]
    fn status_maps_to_seen() {
        let mut s = Status {
            backend_state: BackendState::Running,
            tailscale_ips: vec![ip(V4)],
            ..Default::default()
        };
        assert_eq!(Seen::from_status(&s), Seen::Running(vec![ip(V4)]));
        s.backend_state = BackendState::Stopped;
        assert_eq!(Seen::from_status(&s), Seen::Down(BackendState::Stopped));
        s.backend_state = BackendState::Starting;
        assert!(matches!(Seen::from_status(&s), Seen::Unknown(Some(_))));
        s.backend_state = BackendState::NoState;
        assert!(matches!(Seen::from_status(&s), Seen::Unknown(Some(_))));
    }
}

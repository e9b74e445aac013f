//! Tailscale-first exposure (issue 5, config.md §3/§5, tailscale.md §2–§5, threats.md SL/WS/TN/PX):
//! the owned Serve/Funnel route ([`route`]), the dedicated PROXY-v2 ingress listener that is the
//! only place granting tailnet provenance ([`ingress`]), tailnet identity from whois
//! ([`identity`]), tailnet binding ([`tailnet_bind`]), the plaintext rule ([`plaintext`]),
//! tailnet-vs-public reachability ([`reach`]) and the one source of truth for the public endpoint
//! ([`Exposure`]).
//!
//! Invariants: `tailscale.mode = off` with a non-tailnet bind creates no LocalAPI client at all
//! (SL-1); exposure failures only ever degrade [`Exposure`] — they never stop the loopback gateway
//! (SL-5); the public endpoint (MagicDNS name) comes from Tailscale's own `status` (or
//! `OPENCLAW_TAILNET_DNS`), never from a CIDR guess (TN-1, WS-4); the top-level health is always
//! the worst of the reachability lines that apply (SL-10), set only through
//! [`Exposure::set_reach`].

pub mod identity;
pub mod ingress;
pub mod loopback;
pub mod plaintext;
pub mod proxy_sniff;
pub mod proxy_v2;
pub mod reach;
pub mod route;
pub mod start;
pub mod tailnet_bind;

use std::net::{IpAddr, SocketAddr};
use std::sync::RwLock;

use serde_json::{json, Value};

use crate::config::TailscaleMode;

pub use identity::{IngressPeer, TailnetPeer, WhoisCache};
pub use loopback::{Forwarding, LoopbackGuard, Origin};
pub use reach::{Line, Reachability};
pub use start::{start, ExposureRuntime};

/// Env override for the MagicDNS name (OpenClaw compatible).
pub const ENV_TAILNET_DNS: &str = "OPENCLAW_TAILNET_DNS";

/// Exposure health as reported by `/readyz`, `status` and `doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Nothing is exposed through Tailscale (mode off).
    Off,
    /// The route is claimed and points at our dedicated listener.
    Ok,
    /// Exposure is wanted but not working right now (reason + remedy say why).
    Degraded,
}

impl Health {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Off => "off",
            Health::Ok => "ok",
            Health::Degraded => "degraded",
        }
    }
}

/// A snapshot of the exposure state.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Configured mode.
    pub mode: TailscaleMode,
    /// Tailnet (Serve) and public (Funnel) reachability (SL-10); the top-level health, reason
    /// and remedy are `reach.overall()`.
    pub reach: Reachability,
    /// When the ingress listener last accepted a Funnel (non-tailnet) connection, in ms since
    /// the epoch (informational).
    pub last_funnel_ms: Option<i64>,
    /// MagicDNS FQDN from `status` (no trailing dot).
    pub fqdn: Option<String>,
    /// `Self.TailscaleIPs`.
    pub tailnet_ips: Vec<IpAddr>,
    /// The dedicated ingress listener (Serve target).
    pub ingress: Option<SocketAddr>,
    /// The public port of the route (443 for Serve, the Funnel port for Funnel).
    pub public_port: u16,
}

/// Shared exposure state, updated by the route and bind tasks, read by probes and methods.
#[derive(Debug)]
pub struct Exposure {
    inner: RwLock<Snapshot>,
    /// Which LocalAPI backend is in use (system tailscaled or sidecar), once started.
    source: RwLock<Option<crate::tailscale::SourceProbe>>,
    /// Whether loopback can carry tailnet peers, and the per-connection proof (tailscale.md §12.1).
    pub loopback: LoopbackGuard,
}

impl Default for Exposure {
    fn default() -> Self {
        Self::new(TailscaleMode::Off, 443)
    }
}

impl Exposure {
    /// Initial state for `mode` (degraded "starting" unless off).
    pub fn new(mode: TailscaleMode, public_port: u16) -> Self {
        Self {
            source: RwLock::new(None),
            loopback: LoopbackGuard::default(),
            inner: RwLock::new(Snapshot {
                mode,
                reach: Reachability::starting(mode.into()),
                last_funnel_ms: None,
                fqdn: None,
                tailnet_ips: Vec::new(),
                ingress: None,
                public_port,
            }),
        }
    }

    /// Records how to report the LocalAPI backend (called once the runtime started).
    pub fn set_source(&self, probe: crate::tailscale::SourceProbe) {
        if let Ok(mut g) = self.source.write() {
            *g = Some(probe);
        }
    }

    /// The LocalAPI backend in use and its state (`off` when none was started).
    pub fn source_report(&self) -> crate::tailscale::SourceReport {
        let probe = self.source.read().ok().and_then(|g| g.clone());
        probe
            .map(|p| p.get().report())
            .unwrap_or_else(|| crate::tailscale::TailscaleSource::Off.report())
    }

    /// The current state.
    pub fn snapshot(&self) -> Snapshot {
        match self.inner.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Applies `f` to the state.
    pub fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        match self.inner.write() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// Publishes what the backend's `status` says about this node: its tailnet addresses, its
    /// MagicDNS name and whether loopback is forwarded.
    pub fn observe_status(&self, status: &crate::tailscale::Status) {
        self.update(|s| {
            s.tailnet_ips = status.tailscale_ips.clone();
            s.fqdn = status.fqdn().map(str::to_owned);
        });
        self.loopback.observe(status);
    }

    /// Sets both reachability lines (the top-level health is their worst).
    pub fn set_reach(&self, reach: Reachability) {
        self.update(|s| s.reach = reach);
    }

    /// Records a Funnel connection on the ingress listener (now).
    pub fn note_funnel_connection(&self) {
        let now = crate::util::now_ms();
        self.update(|s| s.last_funnel_ms = Some(now));
    }

    /// The MagicDNS name to publish (`OPENCLAW_TAILNET_DNS` wins), for the discovery beacon's
    /// `tailnetDns`, setup codes and the banner.
    pub fn tailnet_dns(&self) -> Option<String> {
        if let Some(v) = crate::config::process_env(ENV_TAILNET_DNS) {
            return Some(v.trim_end_matches('.').to_ascii_lowercase());
        }
        self.snapshot().fqdn
    }

    /// `wss://<MagicDNS>[:port]` while a Serve/Funnel route is wanted and the name is known.
    pub fn public_url(&self) -> Option<String> {
        let s = self.snapshot();
        if s.mode == TailscaleMode::Off {
            return None;
        }
        let name = self.tailnet_dns()?;
        Some(match s.public_port {
            443 => format!("wss://{name}"),
            p => format!("wss://{name}:{p}"),
        })
    }

    /// The Serve/Funnel endpoint by MagicDNS name and public port, while a route is wanted and
    /// the name is known (what the wide-area beacon must point at, issue 16 item 1).
    pub fn secure_route(&self) -> Option<crate::discovery::SecureRoute> {
        let s = self.snapshot();
        if s.mode == TailscaleMode::Off {
            return None;
        }
        Some(crate::discovery::SecureRoute {
            host: self.tailnet_dns()?,
            port: s.public_port,
        })
    }

    /// Whether `ip` is one of this node's tailnet addresses (from Tailscale, not a CIDR).
    pub fn is_tailnet_ip(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.snapshot().tailnet_ips.contains(&ip)
    }

    /// The `exposure` object of `/readyz`, `status` and `doctor --json`.
    pub fn report(&self) -> Value {
        let s = self.snapshot();
        let top = s.reach.overall();
        json!({
            "tailscale": top.state.as_str(),
            "mode": mode_name(s.mode),
            // With mode off there is nothing to explain at the top (the lines say why).
            "reason": top.reason.as_ref().filter(|_| top.state != Health::Off),
            "remedy": top.remedy,
            "magicDns": self.tailnet_dns(),
            "publicUrl": self.public_url(),
            "tailnetIps": s.tailnet_ips,
            "ingress": s.ingress.map(|a| a.to_string()),
            "reachability": reach_json(&s),
            "loopback": self.loopback.report(),
        })
    }
}

/// `{tailnet: {state, reason, remedy}, public: {state, reason, remedy, lastFunnelConnectionMs?}}`.
fn reach_json(s: &Snapshot) -> Value {
    let mut public = s.reach.public.to_json();
    if let Some(ms) = s.last_funnel_ms {
        public["lastFunnelConnectionMs"] = json!(ms);
    }
    json!({"tailnet": s.reach.tailnet.to_json(), "public": public})
}

/// `off` / `serve` / `funnel`.
pub fn mode_name(m: TailscaleMode) -> &'static str {
    match m {
        TailscaleMode::Off => "off",
        TailscaleMode::Serve => "serve",
        TailscaleMode::Funnel => "funnel",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_follows_the_magicdns_name_and_port() {
        let e = Exposure::new(TailscaleMode::Serve, 443);
        assert_eq!(e.report()["tailscale"], "degraded");
        assert_eq!(e.public_url(), None);
        e.update(|s| s.fqdn = Some("london.tail-scale.ts.net".into()));
        if std::env::var_os(ENV_TAILNET_DNS).is_none() {
            assert_eq!(
                e.public_url().as_deref(),
                Some("wss://london.tail-scale.ts.net")
            );
            e.update(|s| s.public_port = 8443);
            assert_eq!(
                e.public_url().as_deref(),
                Some("wss://london.tail-scale.ts.net:8443")
            );
        }
        let off = Exposure::default();
        assert_eq!(off.report()["tailscale"], "off");
        assert_eq!(off.public_url(), None);
    }

    #[test]
    fn report_carries_both_reachability_lines_and_the_worst_on_top() {
        let e = Exposure::new(TailscaleMode::Funnel, 443);
        let r = e.report();
        assert_eq!(r["reachability"]["tailnet"]["state"], "degraded", "{r}");
        assert_eq!(r["reachability"]["public"]["state"], "degraded", "{r}");
        let route = Line::ok("route held");
        let public = Line::degraded("Funnel is not permitted", "add the funnel nodeAttr");
        e.set_reach(Reachability {
            tailnet: route.clone(),
            public: public.clone(),
        });
        let r = e.report();
        assert_eq!(r["tailscale"], "degraded");
        assert_eq!(r["remedy"], "add the funnel nodeAttr");
        assert_eq!(r["reachability"]["tailnet"]["state"], "ok");
        assert!(r["reachability"]["public"]
            .get("lastFunnelConnectionMs")
            .is_none());
        e.note_funnel_connection();
        let at = e.report()["reachability"]["public"]["lastFunnelConnectionMs"].as_i64();
        assert!(at.is_some_and(|ms| ms > 0));
        e.set_reach(Reachability {
            tailnet: route,
            public: Line::ok("Funnel permitted"),
        });
        assert_eq!(e.report()["tailscale"], "ok");
        assert_eq!(e.report()["reason"], "route held");
        let serve = Exposure::new(TailscaleMode::Serve, 443).report();
        assert_eq!(serve["reachability"]["public"]["state"], "off", "{serve}");
        let off = Exposure::default().report();
        assert_eq!(off["reachability"]["tailnet"]["state"], "off", "{off}");
    }
}

//! Tailscale-first exposure (issue 5, config.md §3/§5, tailscale.md §2–§5, threats.md SL/WS/TN/PX):
//! the owned Serve/Funnel route ([`route`]), the dedicated PROXY-v2 ingress listener that is the
//! only place granting tailnet provenance ([`ingress`]), tailnet identity from whois
//! ([`identity`]), tailnet binding ([`tailnet_bind`]), the plaintext rule ([`plaintext`]) and the
//! one source of truth for the public endpoint ([`Exposure`]).
//!
//! Invariants: `tailscale.mode = off` with a non-tailnet bind creates no LocalAPI client at all
//! (SL-1); exposure failures only ever degrade [`Exposure`] — they never stop the loopback gateway
//! (SL-5); the public endpoint (MagicDNS name) comes from Tailscale's own `status` (or
//! `OPENCLAW_TAILNET_DNS`), never from a CIDR guess (TN-1, WS-4).

pub mod identity;
pub mod ingress;
pub mod plaintext;
pub mod proxy_v2;
pub mod route;
pub mod start;
pub mod tailnet_bind;

use std::net::{IpAddr, SocketAddr};
use std::sync::RwLock;

use serde_json::{json, Value};

use crate::config::TailscaleMode;

pub use identity::{IngressPeer, TailnetPeer, WhoisCache};
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
    /// Current health.
    pub health: Health,
    /// Why it is degraded (or what is working).
    pub reason: Option<String>,
    /// What the operator should do.
    pub remedy: Option<String>,
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
}

impl Default for Exposure {
    fn default() -> Self {
        Self::new(TailscaleMode::Off, 443)
    }
}

impl Exposure {
    /// Initial state for `mode` (degraded "starting" unless off).
    pub fn new(mode: TailscaleMode, public_port: u16) -> Self {
        let (health, reason) = match mode {
            TailscaleMode::Off => (Health::Off, None),
            _ => (
                Health::Degraded,
                Some("starting: route not claimed yet".into()),
            ),
        };
        Self {
            source: RwLock::new(None),
            inner: RwLock::new(Snapshot {
                mode,
                health,
                reason,
                remedy: None,
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

    /// Sets health with reason and remedy.
    pub fn set_health(&self, health: Health, reason: Option<String>, remedy: Option<String>) {
        self.update(|s| {
            s.health = health;
            s.reason = reason;
            s.remedy = remedy;
        });
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

    /// Whether `ip` is one of this node's tailnet addresses (from Tailscale, not a CIDR).
    pub fn is_tailnet_ip(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.snapshot().tailnet_ips.contains(&ip)
    }

    /// The `exposure` object of `/readyz`, `status` and `doctor --json`.
    pub fn report(&self) -> Value {
        let s = self.snapshot();
        json!({
            "tailscale": s.health.as_str(),
            "mode": mode_name(s.mode),
            "reason": s.reason,
            "remedy": s.remedy,
            "magicDns": self.tailnet_dns(),
            "publicUrl": self.public_url(),
            "tailnetIps": s.tailnet_ips,
            "ingress": s.ingress.map(|a| a.to_string()),
        })
    }
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
}

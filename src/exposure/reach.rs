//! Tailnet (Serve) vs public (Funnel) reachability (threats.md SL-10): Funnel can be down for
//! hours while Serve works (a WAN failover, a revoked nodeAttr), so exposure health reports the
//! two separately. [`evaluate`] turns the mode, the state of the owned route and live LocalAPI
//! data ([`Observed`]) into a [`Reachability`]; [`observe`] is the only I/O here (three cheap
//! LocalAPI reads) and [`blocks_route`] says which preflight issues stop the route itself.
//!
//! Invariants: [`evaluate`] is pure; `mode = off` ⇒ both lines off, `serve` ⇒ public off;
//! tailnet reachability comes only from the route (the route is what tailnet peers reach); public
//! is `ok` only while the route is held AND the node may Funnel on our port AND `AllowFunnel`
//! is still set AND shields are down AND tailscaled reports no known Funnel/relay/network
//! warning; every degraded public line names the specific remedy. Health warnings are matched
//! conservatively ([`FUNNEL_WARNINGS`]): unknown warnings never degrade Funnel.

use std::time::Duration;

use serde_json::{json, Value};

use super::Health;
use crate::tailscale::{
    preflight, FunnelPort, LocalApi, PreflightIssue, Prefs, ServeConfig, Status, TailscaleMode,
};

/// How often public reachability is re-read while a Funnel route is held (3 local LocalAPI
/// reads; bus wake-ups re-check sooner): bounds how stale the public line can be.
pub const RECHECK: Duration = Duration::from_secs(5);

/// Lower-case fragments of tailscaled health warnings (health/warnings.go) known to break Funnel:
/// anything naming Funnel, DERP relay trouble (Funnel ingress reaches the node through the
/// relays' network path) and "the network is down". Kept short on purpose (be conservative).
pub const FUNNEL_WARNINGS: [&str; 3] = ["funnel", "relay server", "network is down"];

/// One reachability line: state, why, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// off / ok / degraded.
    pub state: Health,
    /// What is (not) working.
    pub reason: Option<String>,
    /// What the operator should do (degraded lines).
    pub remedy: Option<String>,
}

impl Line {
    /// Not wanted.
    pub fn off(reason: impl Into<String>) -> Self {
        Self {
            state: Health::Off,
            reason: Some(reason.into()),
            remedy: None,
        }
    }

    /// Working.
    pub fn ok(reason: impl Into<String>) -> Self {
        Self {
            state: Health::Ok,
            reason: Some(reason.into()),
            remedy: None,
        }
    }

    /// Wanted but not working.
    pub fn degraded(reason: impl Into<String>, remedy: impl Into<String>) -> Self {
        Self {
            state: Health::Degraded,
            reason: Some(reason.into()),
            remedy: Some(remedy.into()),
        }
    }

    /// `{state, reason, remedy}`.
    pub fn to_json(&self) -> Value {
        json!({"state": self.state.as_str(), "reason": self.reason, "remedy": self.remedy})
    }
}

/// Both lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reachability {
    /// Tailnet peers through Serve (the owned route).
    pub tailnet: Line,
    /// The public internet through Funnel.
    pub public: Line,
}

impl Reachability {
    /// Initial state for `mode` before the route task ran.
    pub fn starting(mode: TailscaleMode) -> Self {
        let route = Line::degraded(
            "starting: route not claimed yet",
            "wait a few seconds; if it persists see the gateway log",
        );
        evaluate(mode, &route, Err("not checked yet"))
    }

    /// The top-level health: the worst of the lines that apply (degraded > ok > off); the tailnet
    /// line wins ties, so a healthy funnel gateway reports the route.
    pub fn overall(&self) -> &Line {
        let rank = |h: Health| match h {
            Health::Off => 0,
            Health::Ok => 1,
            Health::Degraded => 2,
        };
        if rank(self.public.state) > rank(self.tailnet.state) {
            &self.public
        } else {
            &self.tailnet
        }
    }
}

/// Live LocalAPI data the public check reads.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// `status?peers=false` (Self.CapMap, Health).
    pub status: Status,
    /// `prefs` (shields-up); `None` when unreadable.
    pub prefs: Option<Prefs>,
    /// The live serve config (AllowFunnel).
    pub serve: ServeConfig,
    /// Our MagicDNS name.
    pub fqdn: String,
    /// Our Funnel port.
    pub port: FunnelPort,
}

/// Reads what [`evaluate`] needs for the public line; `Err` is a human-readable reason.
pub async fn observe(api: &dyn LocalApi, fqdn: &str, port: FunnelPort) -> Result<Observed, String> {
    let status = api
        .self_status()
        .await
        .map_err(|e| format!("status: {e}"))?;
    let (serve, _) = api
        .serve_config()
        .await
        .map_err(|e| format!("serve-config: {e}"))?;
    let prefs = api.prefs().await.ok();
    Ok(Observed {
        status,
        prefs,
        serve,
        fqdn: fqdn.to_owned(),
        port,
    })
}

/// Whether a preflight issue stops the route itself (and so tailnet reachability). Funnel
/// permission only affects the public line: the route keeps serving the tailnet (SL-10).
/// Shields-up does block the route: tailscaled refuses a Funnel serve config while it is on.
pub fn blocks_route(issue: &PreflightIssue) -> bool {
    !matches!(
        issue,
        PreflightIssue::FunnelNotPermitted | PreflightIssue::FunnelPortNotAllowed { .. }
    )
}

/// The two lines from the mode, the route line (as the claim loop sees it) and live data
/// (`Err(why)` when it could not be read).
pub fn evaluate(mode: TailscaleMode, route: &Line, live: Result<&Observed, &str>) -> Reachability {
    match mode {
        TailscaleMode::Off => Reachability {
            tailnet: Line::off("tailscale.mode is off"),
            public: Line::off("tailscale.mode is off"),
        },
        TailscaleMode::Serve => Reachability {
            tailnet: route.clone(),
            public: Line::off("Funnel not enabled (tailscale.mode = serve)"),
        },
        TailscaleMode::Funnel => Reachability {
            tailnet: route.clone(),
            public: public_line(route, live),
        },
    }
}

fn public_line(route: &Line, live: Result<&Observed, &str>) -> Line {
    if route.state != Health::Ok {
        return Line::degraded(
            format!(
                "no Funnel without the route: {}",
                route.reason.as_deref().unwrap_or("route not held")
            ),
            route
                .remedy
                .clone()
                .unwrap_or_else(|| "fix the tailnet route first".into()),
        );
    }
    let o = match live {
        Ok(o) => o,
        Err(why) => {
            return Line::degraded(
                format!("Funnel state unknown: {why}"),
                "check that tailscaled (or the sidecar) answers its LocalAPI",
            )
        }
    };
    let issues = funnel_issues(o);
    if issues.is_empty() {
        return Line::ok(format!(
            "Funnel permitted and allowed on {}:{}",
            o.fqdn,
            u16::from(o.port)
        ));
    }
    let (reasons, remedies): (Vec<String>, Vec<String>) = issues.into_iter().unzip();
    Line::degraded(reasons.join("; "), remedies.join("; "))
}

/// Every live reason Funnel cannot reach us, as (reason, remedy): the Funnel preconditions of
/// [`preflight`] (permission, port, shields-up), `AllowFunnel` and known health warnings.
fn funnel_issues(o: &Observed) -> Vec<(String, String)> {
    let issues = preflight(&o.status, o.prefs.as_ref(), TailscaleMode::Funnel, o.port);
    let no_cap = issues.contains(&PreflightIssue::FunnelNotPermitted);
    let mut out: Vec<(String, String)> = issues
        .iter()
        .filter(|i| match i {
            PreflightIssue::FunnelNotPermitted | PreflightIssue::ShieldsUp => true,
            // Without the cap the port list adds nothing: one remedy, not two.
            PreflightIssue::FunnelPortNotAllowed { .. } => !no_cap,
            // Route preconditions: they already degrade the tailnet line.
            _ => false,
        })
        .map(|i| (i.to_string(), i.remedy()))
        .collect();
    let port = u16::from(o.port);
    if !allows_funnel(&o.serve, &o.fqdn, port) {
        out.push((
            format!("AllowFunnel[\"{}:{port}\"] is not set in the live serve config", o.fqdn),
            "another process rewrote the serve config (see `tailscale funnel status`): stop that writer, clawgate then re-claims its route".into(),
        ));
    }
    for w in funnel_warnings(&o.status) {
        out.push((
            format!("Tailscale reports: {w}"),
            "restore this host's Internet path to Tailscale's relays (HTTPS 443 and UDP 3478/41641 outbound, check the firewall after a WAN failover) — tailnet peers may still connect directly".into(),
        ));
    }
    out
}

/// Whether the serve config (background or any Foreground session, as tailscaled's
/// `HasFunnelForTarget` reads it) allows Funnel on `fqdn:port`.
fn allows_funnel(cfg: &ServeConfig, fqdn: &str, port: u16) -> bool {
    let key = format!("{fqdn}:{port}");
    let on = |c: &ServeConfig| c.allow_funnel.get(&key) == Some(&true);
    on(cfg) || cfg.foreground.values().any(on)
}

/// Status health warnings known to affect Funnel ([`FUNNEL_WARNINGS`]).
fn funnel_warnings(status: &Status) -> Vec<&str> {
    status
        .health
        .iter()
        .filter(|w| {
            let w = w.to_ascii_lowercase();
            FUNNEL_WARNINGS.iter().any(|m| w.contains(m))
        })
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
#[path = "reach_tests.rs"]
mod tests;

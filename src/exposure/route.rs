//! The owned Serve/Funnel route (config.md §5.3, threats.md SL-2..SL-5, SL-9..SL-11): a
//! Foreground serve entry `TCP[<port>] = {TCPForward: <ingress>, TerminateTLS: <fqdn>,
//! ProxyProtocol: 2}` (+ `AllowFunnel` for Funnel), claimed through the LocalAPI and held for the
//! life of the gateway; re-claimed when the IPN bus closes (tailscaled or sidecar restart).
//!
//! Invariants: only our own Foreground entry is ever written, with If-Match (never a global reset,
//! never a foreign route overwritten — a conflict is reported, see `ForegroundSession::claim`); the
//! route vanishes when we die (the bus stream closes); every failure leaves the loopback gateway
//! running, is logged once per distinct reason with its remedy, and is retried with bounded
//! backoff ([`Backoff`]); the tailnet line is `ok` only while the claim is held; Funnel
//! permission problems degrade only the public line and never drop the route (SL-10), which is
//! re-checked every [`reach::RECHECK`] and on IPN bus wake-ups while held.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::reach::{self, Line};
use super::{Exposure, Health};
use crate::tailscale::{
    preflight, ClaimError, ForegroundSession, FunnelPort, LocalApi, ServeConfig, Status,
    TailscaleMode, TcpPortHandler,
};

/// First retry delay.
pub const BACKOFF_START: Duration = Duration::from_millis(200);
/// Retry cap during the first [`FAST_WINDOW`] of an outage: keeps "route back ≤ 5 s" after a
/// tailscaled/sidecar restart.
pub const BACKOFF_FAST_CAP: Duration = Duration::from_secs(1);
/// Retry cap after that (a long outage: don't hammer the daemon).
pub const BACKOFF_SLOW_CAP: Duration = Duration::from_secs(30);
/// How long an outage counts as "just restarted".
pub const FAST_WINDOW: Duration = Duration::from_secs(60);

/// Exponential backoff, fast for the first minute of an outage, then slow.
#[derive(Debug, Default)]
pub struct Backoff {
    since: Option<Instant>,
    next: Duration,
}

impl Backoff {
    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let since = *self.since.get_or_insert_with(Instant::now);
        let cap = if since.elapsed() < FAST_WINDOW {
            BACKOFF_FAST_CAP
        } else {
            BACKOFF_SLOW_CAP
        };
        let d = if self.next.is_zero() {
            BACKOFF_START
        } else {
            self.next
        };
        self.next = (d * 2).min(cap);
        d.min(cap)
    }

    /// After a success.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// What the route task needs.
pub struct RouteSpec {
    /// serve or funnel.
    pub mode: TailscaleMode,
    /// Funnel port (also the Serve port when Funnel is used).
    pub funnel_port: FunnelPort,
    /// The dedicated ingress listener.
    pub ingress: SocketAddr,
    /// The LocalAPI is clawgate's own tsnet sidecar (remedies name it, not `tailscale set`).
    pub sidecar: bool,
}

impl RouteSpec {
    /// The fix when the LocalAPI cannot be reached or refuses us: about the sidecar when it is
    /// ours (its supervisor restarts it; nobody needs operator rights), else about tailscaled.
    pub fn access_remedy(&self) -> String {
        if self.sidecar {
            "clawgate's tsnet sidecar (clawgate-tsnet) is not up: `clawgate status` shows its state and last error (tailscaleSource); it is restarted automatically — check gateway.tailscale.sidecar (binary, authKeyFile, stateDir) and its log".into()
        } else {
            "start tailscaled (or check gateway.tailscale.socket), and make sure this user may use it: `sudo tailscale set --operator=$USER` (or use the sidecar, gateway.tailscale.sidecar)".into()
        }
    }

    /// The public port: 443 for Serve, the Funnel port for Funnel.
    pub fn public_port(&self) -> u16 {
        match self.mode {
            TailscaleMode::Funnel => u16::from(self.funnel_port),
            _ => 443,
        }
    }

    /// Our Foreground entry for `fqdn`.
    pub fn entry(&self, fqdn: &str) -> ServeConfig {
        let port = self.public_port();
        let mut e = ServeConfig::default();
        e.tcp.insert(
            port.to_string(),
            TcpPortHandler {
                tcp_forward: Some(self.ingress.to_string()),
                terminate_tls: Some(fqdn.to_owned()),
                proxy_protocol: Some(2),
                ..Default::default()
            },
        );
        if self.mode == TailscaleMode::Funnel {
            e.allow_funnel.insert(format!("{fqdn}:{port}"), true);
        }
        e
    }
}

/// One failure: reason and remedy.
struct Failure(String, String);

/// Runs until `cancel`: claim, hold, re-claim.
pub async fn run(
    api: Arc<dyn LocalApi>,
    spec: RouteSpec,
    exposure: Arc<Exposure>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::default();
    let mut last_logged: Option<String> = None;
    while !cancel.is_cancelled() {
        let outcome = tokio::select! {
            _ = cancel.cancelled() => return,
            r = claim_and_hold(&*api, &spec, &exposure, &cancel, &mut backoff, &mut last_logged) => r,
        };
        let Failure(reason, remedy) = outcome;
        if last_logged.as_deref() != Some(reason.as_str()) {
            tracing::warn!("tailscale exposure degraded: {reason} — fix: {remedy}");
            last_logged = Some(reason.clone());
        }
        let route = Line::degraded(reason, remedy);
        exposure.set_reach(reach::evaluate(spec.mode, &route, Err("route not held")));
        let delay = backoff.next_delay();
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Refreshes status into the exposure state; returns the FQDN or a failure.
async fn refresh(
    api: &dyn LocalApi,
    spec: &RouteSpec,
    exposure: &Exposure,
) -> Result<(Status, String), Failure> {
    let status = api.self_status().await.map_err(|e| {
        Failure(
            format!("Tailscale LocalAPI unreachable: {e}"),
            spec.access_remedy(),
        )
    })?;
    exposure.observe_status(&status);
    let prefs = api.prefs().await.ok();
    let mut issues = preflight(&status, prefs.as_ref(), spec.mode, spec.funnel_port);
    issues.retain(reach::blocks_route); // Funnel permission only degrades the public line
    if let Some(first) = issues.first() {
        let all: Vec<String> = issues.iter().map(|i| i.remedy()).collect();
        return Err(Failure(format!("preflight: {first}"), all.join("; ")));
    }
    let fqdn = status.fqdn().map(str::to_owned).ok_or_else(|| {
        Failure(
            "no MagicDNS name yet".into(),
            "enable MagicDNS in the Tailscale admin console".into(),
        )
    })?;
    Ok((status, fqdn))
}

/// Claims the route and holds it until the bus closes, the name changes or cancel. Always
/// returns why it stopped holding.
async fn claim_and_hold(
    api: &dyn LocalApi,
    spec: &RouteSpec,
    exposure: &Exposure,
    cancel: &CancellationToken,
    backoff: &mut Backoff,
    last_logged: &mut Option<String>,
) -> Failure {
    let (_, fqdn) = match refresh(api, spec, exposure).await {
        Ok(x) => x,
        Err(f) => return f,
    };
    let mut session = match ForegroundSession::open(api).await {
        Ok(s) => s,
        Err(e) => {
            return Failure(
                format!("cannot open the IPN bus: {e}"),
                spec.access_remedy(),
            )
        }
    };
    match session.claim(api, &spec.entry(&fqdn)).await {
        Ok(_) => {}
        Err(e @ ClaimError::PortInUse { .. }) => {
            return Failure(
                format!("route conflict: {e}"),
                format!("remove the other handler on port {} (`tailscale serve status`), or run clawgate's exposure on another Funnel port", spec.public_port()),
            )
        }
        Err(ClaimError::Api(e)) => {
            let fix = if spec.sidecar {
                spec.access_remedy()
            } else {
                "give this user LocalAPI write access (`sudo tailscale set --operator=$USER`) or use the sidecar; if tailscaled runs with --config, set Locked: false".into()
            };
            return Failure(format!("serve config refused: {e}"), fix);
        }
    }
    if let Err(f) = verify(api, &session, spec, &fqdn).await {
        return f;
    }
    backoff.reset();
    *last_logged = None;
    let url = format!(
        "wss://{fqdn}{}",
        match spec.public_port() {
            443 => String::new(),
            p => format!(":{p}"),
        }
    );
    tracing::info!(%url, ingress = %spec.ingress, funnel = spec.mode == TailscaleMode::Funnel, "tailscale route claimed");
    let route = Line::ok(format!(
        "route {} → {} held",
        spec.public_port(),
        spec.ingress
    ));
    publish(api, spec, exposure, &fqdn, &route).await;
    hold(api, &mut session, spec, exposure, cancel, &fqdn, &route).await
}

/// Re-evaluates both reachability lines with the route held (`route`): reads live Funnel data
/// in funnel mode; logs a public-line change once.
async fn publish(
    api: &dyn LocalApi,
    spec: &RouteSpec,
    exposure: &Exposure,
    fqdn: &str,
    route: &Line,
) {
    let live = match spec.mode {
        TailscaleMode::Funnel => reach::observe(api, fqdn, spec.funnel_port).await,
        _ => Err("not needed".into()),
    };
    let now = reach::evaluate(spec.mode, route, live.as_ref().map_err(String::as_str));
    let before = exposure.snapshot().reach.public;
    // Log once per distinct (state, remedy): reasons may carry changing durations.
    let changed = (now.public.state, &now.public.remedy) != (before.state, &before.remedy);
    if changed && spec.mode == TailscaleMode::Funnel {
        let (reason, remedy) = (now.public.reason.as_deref(), now.public.remedy.as_deref());
        match now.public.state {
            Health::Degraded => tracing::warn!(
                "public (Funnel) reachability degraded: {} — fix: {}",
                reason.unwrap_or(""),
                remedy.unwrap_or("")
            ),
            _ => tracing::info!("public (Funnel) reachability: {}", reason.unwrap_or("")),
        }
    }
    exposure.set_reach(now);
}

/// Re-reads the serve config and checks our entry is there, unchanged, pointing at our own
/// ingress listener (threats.md SL-2 "then verify", SL-9).
async fn verify(
    api: &dyn LocalApi,
    session: &ForegroundSession,
    spec: &RouteSpec,
    fqdn: &str,
) -> Result<(), Failure> {
    let (cfg, _) = api.serve_config().await.map_err(|e| {
        Failure(
            format!("cannot re-read the serve config: {e}"),
            "check the LocalAPI".into(),
        )
    })?;
    if cfg.foreground.get(session.id()) == Some(&spec.entry(fqdn)) {
        return Ok(());
    }
    Err(Failure(
        "route verification failed: our foreground entry is missing or was altered".into(),
        "another process is rewriting the serve config; check `tailscale serve status`".into(),
    ))
}

/// Reads the session's bus (tailscaled disconnects slow readers) until something invalidates
/// the claim.
async fn hold(
    api: &dyn LocalApi,
    session: &mut ForegroundSession,
    spec: &RouteSpec,
    exposure: &Exposure,
    cancel: &CancellationToken,
    fqdn: &str,
    route: &Line,
) -> Failure {
    let remedy = "none needed: clawgate re-claims automatically".to_owned();
    let funnel = spec.mode == TailscaleMode::Funnel;
    let start = tokio::time::Instant::now() + reach::RECHECK;
    let mut recheck = tokio::time::interval_at(start, reach::RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let msg = tokio::select! {
            _ = cancel.cancelled() => return Failure("shutting down".into(), remedy),
            _ = recheck.tick(), if funnel => {
                if let Err(f) = verify(api, session, spec, fqdn).await {
                    return f;
                }
                publish(api, spec, exposure, fqdn, route).await;
                continue;
            }
            m = session.next() => m,
        };
        match msg {
            None => {
                return Failure(
                    "route dropped: Tailscale restarted or the IPN bus closed".into(),
                    remedy,
                )
            }
            Some(Err(e)) => return Failure(format!("route dropped: IPN bus error: {e}"), remedy),
            Some(Ok(n)) if n.wants_status_refresh() => match refresh(api, spec, exposure).await {
                Ok((_, now)) if now == fqdn => publish(api, spec, exposure, fqdn, route).await,
                Ok((_, now)) => {
                    return Failure(
                        format!("MagicDNS name changed to {now}; re-claiming"),
                        remedy,
                    )
                }
                Err(f) => return f,
            },
            Some(Ok(n)) if n.health.is_some() && funnel => {
                publish(api, spec, exposure, fqdn, route).await
            }
            Some(Ok(_)) => {}
        }
    }
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;

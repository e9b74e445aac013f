//! The whole route to a gateway: the selection ([`super::select`], steps 1–3) and step 4, the
//! managed SSH tunnel ([`super::tunnel`]), returned as one [`Route`] or one [`RouteError`]
//! carrying every step's report.
//!
//! Invariants: step 4 is considered only when steps 1–3 found nothing and neither `--url` nor
//! `transport: "direct"` rules it out; the plaintext rule is judged on the tunnel's effective
//! loopback URL (threats.md SSH-2), and a `wss://` gateway stays `wss://` through the tunnel
//! with the original host as TLS name and pin key; a host-key or login failure is a trust
//! failure (`UNTRUSTED`), never a fall-through; the tunnel lives exactly as long as the
//! [`Route`] that holds it.

use std::time::Duration;

use super::candidates::{self, Candidate};
use super::probe::{probe, Probe};
use super::select::{self, Inputs, Outcome, Report, SelectError};
use super::ssh::TunnelSpec;
use super::tunnel::Tunnel;
use super::TlsOpts;

/// A usable route.
pub struct Route {
    /// The URL to dial now (a tunnel's local end for step 4).
    pub url: String,
    pub tls: TlsOpts,
    /// The step that won (1–4).
    pub step: u8,
    pub report: Report,
    /// Step 4's tunnel; dropping the route stops it.
    pub tunnel: Option<Tunnel>,
}

/// No route, with the report of every step.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RouteError {
    pub message: String,
    /// Stable code: NO_ROUTE, UNTRUSTED, PICK, STATE.
    pub code: &'static str,
    pub report: Report,
}

/// Runs the four steps.
pub async fn route(inp: &Inputs, base: &TlsOpts, timeout: Duration) -> Result<Route, RouteError> {
    let mut report = Report::new();
    let e = match select::select(inp, base, timeout, &mut report).await {
        Ok(s) => {
            return Ok(Route {
                url: s.url,
                tls: s.tls,
                step: s.step,
                report,
                tunnel: None,
            })
        }
        Err(e) => e,
    };
    let (code, message) = match e {
        SelectError::NoDirect => return step_ssh(inp, base, timeout, report).await,
        SelectError::Trust(m) => ("UNTRUSTED", m),
        SelectError::NeedPick { .. } => ("PICK", e.to_string()),
        SelectError::Saved(_) => ("STATE", e.to_string()),
    };
    Err(RouteError {
        message,
        code,
        report,
    })
}

fn no_route(report: Report) -> RouteError {
    RouteError {
        message: "no route to a gateway: every step failed or was skipped (see the steps)".into(),
        code: "NO_ROUTE",
        report,
    }
}

/// Step 4: open the tunnel, then probe the gateway through it.
async fn step_ssh(
    inp: &Inputs,
    base: &TlsOpts,
    timeout: Duration,
    mut report: Report,
) -> Result<Route, RouteError> {
    let spec = match (select::ssh_refused(inp), &inp.ssh) {
        (None, Some(spec)) => spec,
        (why, _) => {
            let why = why.unwrap_or("no SSH target configured");
            select::line(&mut report, 4, Outcome::Skipped, why, None);
            return Err(no_route(report));
        }
    };
    let tunnel = match Tunnel::open(spec.clone(), spec.remote_port).await {
        Ok(t) => t,
        Err(f) => {
            let fatal = f.is_fatal();
            select::line(&mut report, 4, Outcome::Failed, f.to_string(), None);
            if !fatal {
                return Err(no_route(report));
            }
            let (message, code) = (f.to_string(), "UNTRUSTED");
            return Err(RouteError {
                message,
                code,
                report,
            });
        }
    };
    let port = match tunnel.state() {
        super::tunnel::TunnelState::Up(p) => p,
        _ => return Err(no_route(report)),
    };
    let (url, tls) = through_tunnel(inp, base, port);
    match judge(spec, &url, &tls, timeout).await {
        Ok(why) => {
            select::line(&mut report, 4, Outcome::Chosen, why, Some(&url));
            Ok(Route {
                url,
                tls,
                step: 4,
                report,
                tunnel: Some(tunnel),
            })
        }
        Err((why, trust)) => {
            select::line(&mut report, 4, Outcome::Failed, why.clone(), Some(&url));
            tunnel.close().await;
            let mut e = no_route(report);
            if trust {
                (e.message, e.code) = (why, "UNTRUSTED");
            }
            Err(e)
        }
    }
}

/// The tunnel's effective URL and TLS rules: `wss://` when the configured gateway URL is, with
/// its host as server name and `host:port` as pin key (threats.md SSH-2); else `ws://`.
pub fn through_tunnel(inp: &Inputs, base: &TlsOpts, port: u16) -> (String, TlsOpts) {
    let configured = inp.configured_url.as_deref();
    let wss = configured
        .filter(|u| u.starts_with("wss://"))
        .and_then(candidates::host_port);
    match wss {
        Some((host, real_port)) => {
            let c = Candidate::plain("", inp.configured_fingerprint.clone());
            let mut tls = c.tls_opts(base);
            tls.server_name = Some(host);
            tls.pin_port = Some(real_port);
            (format!("wss://127.0.0.1:{port}"), tls)
        }
        None => (format!("ws://127.0.0.1:{port}"), base.clone()),
    }
}

/// Whether a gateway answers through the tunnel: `Ok(why chosen)` or `Err((why, trust failure))`.
async fn judge(
    spec: &TunnelSpec,
    url: &str,
    tls: &TlsOpts,
    timeout: Duration,
) -> Result<String, (String, bool)> {
    let url = candidates::vet(url).await.map_err(|w| (w, false))?;
    match probe(&url, tls, timeout).await {
        Probe::Reachable => Ok(format!(
            "SSH tunnel to {} is up; the gateway answered on its 127.0.0.1:{}",
            spec.target, spec.remote_port
        )),
        Probe::Unreachable(why) => Err((
            format!(
                "SSH tunnel to {} is up, but no gateway answered on its 127.0.0.1:{}: {why}",
                spec.target, spec.remote_port
            ),
            false,
        )),
        Probe::Untrusted(why) => Err((why, true)),
    }
}

//! The whole route to a gateway: the four-step selection ([`super::select`]) plus step 4, the
//! SSH tunnel, returned as one [`Route`] every client command and `connect` use.
//!
//! Invariants: step 4 runs only when steps 1–3 found nothing; the managed SSH tunnel is not
//! built yet, so step 4 is reported as unavailable (never faked) and the route fails with every
//! step's reason.

use std::path::PathBuf;
use std::time::Duration;

use super::remote::HostKeyPolicy;
use super::select::{self, Inputs, Report, SelectError};
use super::TlsOpts;

/// SSH settings for step 4.
#[derive(Debug, Clone)]
pub struct SshConfig {
    pub target: String,
    pub identity: Option<PathBuf>,
    pub remote_port: u16,
    pub policy: HostKeyPolicy,
    /// `UserKnownHostsFile` (tests, or a dedicated file).
    pub known_hosts: Option<PathBuf>,
    /// Local port for the tunnel (`None`: 18789 if free, else ephemeral).
    pub local_port: Option<u16>,
}

/// A usable route.
pub struct Route {
    /// Effective URL (the tunnel's loopback URL for SSH).
    pub url: String,
    pub tls: TlsOpts,
    /// The step that won (1–4).
    pub step: u8,
    pub report: Report,
    /// The SSH tunnel's local port, when step 4 won (step 4 is not built yet: always `None`).
    pub tunnel: Option<std::net::SocketAddr>,
}

/// No route, with the report of every step.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RouteError {
    pub message: String,
    /// Stable code: NO_ROUTE, UNTRUSTED, PICK, SSH, STATE.
    pub code: &'static str,
    pub report: Report,
}

/// Runs the four steps.
pub async fn route(
    inp: &Inputs,
    ssh_cfg: Option<&SshConfig>,
    base: &TlsOpts,
    timeout: Duration,
) -> Result<Route, RouteError> {
    let mut report = Report::new();
    let fail = |code, message: String, report: Report| RouteError {
        message,
        code,
        report,
    };
    match select::select(inp, base, timeout, &mut report).await {
        Ok(s) => {
            return Ok(Route {
                url: s.url,
                tls: s.tls,
                step: s.step,
                report,
                tunnel: None,
            })
        }
        Err(SelectError::NoDirect) => {}
        Err(e @ SelectError::Trust(_)) => return Err(fail("UNTRUSTED", e.to_string(), report)),
        Err(e @ SelectError::NeedPick { .. }) => return Err(fail("PICK", e.to_string(), report)),
        Err(e @ SelectError::Saved(_)) => return Err(fail("STATE", e.to_string(), report)),
    }
    // Step 4 (the managed SSH tunnel) is not built yet: say so instead of pretending.
    let _ = ssh_cfg;
    select::ssh_skipped(inp, &mut report);
    let msg = "no route to a gateway: every step failed or was skipped (see the steps)";
    Err(fail("NO_ROUTE", msg.into(), report))
}

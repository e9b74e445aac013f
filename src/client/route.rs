//! The whole route to a gateway: the selection ([`super::select`], steps 1–3) and step 4,
//! returned as one [`Route`] or one [`RouteError`] carrying every step's report.
//!
//! Invariants: step 4 is considered only when steps 1–3 found nothing; the managed SSH tunnel
//! is not built yet, so step 4 is reported as unavailable (never faked) and the route fails with
//! every step's reason.

use std::time::Duration;

use super::select::{self, Inputs, Report, SelectError};
use super::TlsOpts;

/// A usable direct route.
pub struct Route {
    pub url: String,
    pub tls: TlsOpts,
    /// The step that won (1–3).
    pub step: u8,
    pub report: Report,
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
            })
        }
        Err(e) => e,
    };
    let code = match e {
        SelectError::NoDirect => {
            select::ssh_skipped(inp, &mut report);
            "NO_ROUTE"
        }
        SelectError::Trust(_) => "UNTRUSTED",
        SelectError::NeedPick { .. } => "PICK",
        SelectError::Saved(_) => "STATE",
    };
    let message = match e {
        SelectError::NoDirect => {
            "no route to a gateway: every step failed or was skipped (see the steps)".to_string()
        }
        other => other.to_string(),
    };
    Err(RouteError {
        message,
        code,
        report,
    })
}

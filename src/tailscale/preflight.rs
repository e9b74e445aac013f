//! Serve/Funnel preflight (tailscale.md §3): the checks tailscaled's CLI and tsnet run before
//! exposing a port — which `LocalBackend.SetServeConfig` itself does NOT run — each with the remedy
//! an operator should be told.
//!
//! Invariant: pure functions of `status` (+ `prefs`); no LocalAPI calls here, so the gateway decides
//! when to fetch and the checks are unit-testable on captured JSON.

use super::config::{FunnelPort, TailscaleMode};
use super::types::{BackendState, Prefs, Status};

/// Node capability for HTTPS certificates.
pub const CAP_HTTPS: &str = "https";
/// Node capability permitting Funnel.
pub const CAP_FUNNEL: &str = "funnel";

/// One failed precondition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreflightIssue {
    /// The backend is not `Running`.
    NotRunning(BackendState),
    /// MagicDNS is off for the tailnet.
    MagicDnsOff,
    /// HTTPS certificates are not enabled (no `CertDomains` or no `https` cap).
    HttpsOff,
    /// The node lacks the `funnel` node attribute.
    FunnelNotPermitted,
    /// The Funnel port is not in the node's `funnel-ports` capability.
    FunnelPortNotAllowed {
        /// Configured port.
        port: u16,
        /// Ports the capability allows.
        allowed: Vec<u16>,
    },
    /// Shields up blocks incoming connections.
    ShieldsUp,
}

impl PreflightIssue {
    /// What the operator should do.
    pub fn remedy(&self) -> String {
        match self {
            Self::NotRunning(s) => format!(
                "Tailscale is {} — log in (`tailscale up`, or give the sidecar an auth key)",
                s.name()
            ),
            Self::MagicDnsOff => "enable MagicDNS in the Tailscale admin console (DNS page)".into(),
            Self::HttpsOff => {
                "enable HTTPS certificates in the Tailscale admin console (DNS page)".into()
            }
            Self::FunnelNotPermitted => {
                "add the funnel nodeAttr for this node in the tailnet policy file".into()
            }
            Self::FunnelPortNotAllowed { port, allowed } => format!(
                "Funnel port {port} is not permitted for this node (allowed: {allowed:?}); use 443, 8443 or 10000 and check the funnel-ports nodeAttr"
            ),
            Self::ShieldsUp => "turn shields-up off: `tailscale set --shields-up=false`".into(),
        }
    }
}

/// What is wrong, for people (the remedy is [`PreflightIssue::remedy`]).
impl std::fmt::Display for PreflightIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotRunning(s) => write!(f, "Tailscale is {}", s.name()),
            Self::MagicDnsOff => f.write_str("MagicDNS is off"),
            Self::HttpsOff => f.write_str("HTTPS certificates are not enabled"),
            Self::FunnelNotPermitted => {
                f.write_str("Funnel is not permitted for this node (no `funnel` node attribute)")
            }
            Self::FunnelPortNotAllowed { port, allowed } => write!(
                f,
                "Funnel port {port} is not in this node's funnel-ports {allowed:?}"
            ),
            Self::ShieldsUp => f.write_str(
                "shields-up is on: tailscaled blocks incoming connections, Funnel included",
            ),
        }
    }
}

/// Everything that prevents `mode` from working on this node; empty means ready.
pub fn preflight(
    status: &Status,
    prefs: Option<&Prefs>,
    mode: TailscaleMode,
    funnel_port: FunnelPort,
) -> Vec<PreflightIssue> {
    let mut issues = Vec::new();
    if mode == TailscaleMode::Off {
        return issues;
    }
    if status.backend_state != BackendState::Running {
        issues.push(PreflightIssue::NotRunning(status.backend_state.clone()));
        return issues;
    }
    if !status.magic_dns_enabled() {
        issues.push(PreflightIssue::MagicDnsOff);
    }
    let me = status.self_node.clone().unwrap_or_default();
    if status.cert_domains.is_empty() || !me.has_cap(CAP_HTTPS) {
        issues.push(PreflightIssue::HttpsOff);
    }
    if mode == TailscaleMode::Funnel {
        if !me.has_cap(CAP_FUNNEL) {
            issues.push(PreflightIssue::FunnelNotPermitted);
        }
        let port = u16::from(funnel_port);
        let allowed = me.funnel_ports();
        if !allowed.contains(&port) {
            issues.push(PreflightIssue::FunnelPortNotAllowed { port, allowed });
        }
        if prefs.is_some_and(|p| p.shields_up) {
            issues.push(PreflightIssue::ShieldsUp);
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(caps: &[&str], cert_domains: &[&str], magic: bool) -> Status {
        let json = serde_json::json!({
            "BackendState": "Running",
            "CertDomains": cert_domains,
            "CurrentTailnet": {"MagicDNSEnabled": magic},
            "Self": {"CapMap": caps.iter().map(|c| (c.to_string(), serde_json::Value::Null)).collect::<serde_json::Map<_, _>>()},
        });
        serde_json::from_value(json).unwrap()
    }

    const PORTS: &str = "https://tailscale.com/cap/funnel-ports?ports=443,8443,10000";

    #[test]
    fn a_ready_node_passes_and_off_checks_nothing() {
        let st = node(&["https", "funnel", PORTS], &["gw.ts.net"], true);
        assert!(preflight(&st, None, TailscaleMode::Funnel, FunnelPort::P10000).is_empty());
        let down = Status::default();
        assert!(preflight(&down, None, TailscaleMode::Off, FunnelPort::P443).is_empty());
        assert_eq!(
            preflight(&down, None, TailscaleMode::Serve, FunnelPort::P443),
            vec![PreflightIssue::NotRunning(BackendState::NoState)]
        );
    }

    #[test]
    fn each_missing_precondition_is_reported_with_a_remedy() {
        let st = node(
            &["https://tailscale.com/cap/funnel-ports?ports=8080,443"],
            &[],
            false,
        );
        let prefs = Prefs {
            shields_up: true,
            ..Prefs::default()
        };
        let issues = preflight(&st, Some(&prefs), TailscaleMode::Funnel, FunnelPort::P8443);
        assert_eq!(
            issues,
            vec![
                PreflightIssue::MagicDnsOff,
                PreflightIssue::HttpsOff,
                PreflightIssue::FunnelNotPermitted,
                PreflightIssue::FunnelPortNotAllowed {
                    port: 8443,
                    allowed: vec![8080, 443]
                },
                PreflightIssue::ShieldsUp,
            ]
        );
        assert!(issues
            .iter()
            .all(|i| !i.remedy().is_empty() && !i.to_string().is_empty()));
        // Serve needs neither the funnel cap nor shields down.
        let serve = preflight(&st, Some(&prefs), TailscaleMode::Serve, FunnelPort::P8443);
        assert_eq!(
            serve,
            vec![PreflightIssue::MagicDnsOff, PreflightIssue::HttpsOff]
        );
    }
}

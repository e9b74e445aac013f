//! Reachability probe for transport selection: open the WebSocket under the endpoint's TLS
//! rules and wait for `connect.challenge`.
//!
//! Invariants: sends nothing after the upgrade (no `connect`, so no credential, threats.md
//! TLS-7); bounded by the caller's timeout; a TLS trust failure is reported apart from
//! unreachability, because it must stop the selection.

use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use super::pins::{self, OpenError};
use super::TlsOpts;

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A gateway answered with `connect.challenge`.
    Reachable,
    /// Nothing (or not a gateway) answered.
    Unreachable(String),
    /// TLS trust refused the certificate (mismatch, unconfirmed first use).
    Untrusted(String),
}

/// Probes `url`.
pub async fn probe(url: &str, tls: &TlsOpts, timeout: Duration) -> Probe {
    match tokio::time::timeout(timeout, probe_inner(url, tls)).await {
        Ok(p) => p,
        Err(_) => Probe::Unreachable(format!("no answer within {timeout:?}")),
    }
}

async fn probe_inner(url: &str, tls: &TlsOpts) -> Probe {
    let mut ws = match pins::open(url, tls).await {
        Ok(ws) => ws,
        Err(e @ OpenError::Untrusted(_)) => return Probe::Untrusted(e.to_string()),
        Err(e @ (OpenError::Unreachable(_) | OpenError::Ws(_))) => {
            return Probe::Unreachable(e.to_string())
        }
    };
    let first = ws.next().await;
    let _ = ws.close(None).await;
    match first {
        Some(Ok(Message::Text(t))) if t.contains("\"connect.challenge\"") => Probe::Reachable,
        Some(Ok(other)) => Probe::Unreachable(format!("not a gateway (first frame {other:?})")),
        Some(Err(e)) => Probe::Unreachable(e.to_string()),
        None => Probe::Unreachable("closed before connect.challenge".into()),
    }
}

//! `gateway.bind = tailnet` (config.md §3, threats.md TN-1, TN-2): listen on every address in
//! LocalAPI `status.Self.TailscaleIPs` (any prefix, IPv4 and IPv6) in addition to the loopback
//! listeners `listen::bind_all` already opened; while Tailscale is not up — or an address is not
//! (yet) on an OS interface — serve loopback only, say so once, and retry; follow changes through
//! the IPN bus.
//!
//! Invariants: addresses come only from Tailscale (never 100.64/10 guesses); a wildcard address is
//! never bound (an unspecified "tailnet IP" is ignored); an address that disappears keeps its
//! socket until restart (it simply receives no traffic) — re-binding on re-appearance is skipped
//! because the socket already exists.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::Exposure;
use crate::server::{listen, Gateway};
use crate::tailscale::{notify_mask, BackendState, IpnBus, LocalApi};

/// Re-check period while an address is still missing (tsnet/userspace addresses never appear on
/// an OS interface; the log says so once).
pub const RETRY: Duration = Duration::from_secs(1);
/// Re-check period when everything is bound (the bus normally wakes us first).
pub const IDLE: Duration = Duration::from_secs(30);

/// Runs until the gateway is cancelled.
pub async fn run(gw: Arc<Gateway>, api: Arc<dyn LocalApi>, exposure: Arc<Exposure>) {
    let mut bound: HashSet<IpAddr> = HashSet::new();
    let mut bus: Option<IpnBus> = None;
    let mut said = String::new();
    loop {
        let pending = step(&gw, &*api, &exposure, &mut bound, &mut said).await;
        if bus.is_none() {
            bus = api.watch_ipn_bus(notify_mask::PORTABLE).await.ok();
        }
        let wait = if pending { RETRY } else { IDLE };
        tokio::select! {
            _ = gw.cancel.cancelled() => return,
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

/// Logs `msg` at info once (until it changes).
fn say(said: &mut String, msg: String) {
    if *said != msg {
        tracing::info!("bind=tailnet: {msg}");
        *said = msg;
    }
}

/// One reconcile; returns whether something is still missing.
async fn step(
    gw: &Arc<Gateway>,
    api: &dyn LocalApi,
    exposure: &Exposure,
    bound: &mut HashSet<IpAddr>,
    said: &mut String,
) -> bool {
    let status = match api.self_status().await {
        Ok(s) => s,
        Err(e) => {
            say(
                said,
                format!("Tailscale LocalAPI unreachable ({e}); serving loopback only, retrying"),
            );
            return true;
        }
    };
    exposure.update(|s| {
        s.tailnet_ips = status.tailscale_ips.clone();
        s.fqdn = status.fqdn().map(str::to_owned);
    });
    if status.backend_state != BackendState::Running || status.tailscale_ips.is_empty() {
        say(
            said,
            format!(
                "Tailscale is {} with no tailnet address yet; serving loopback only, retrying",
                status.backend_state.name()
            ),
        );
        return true;
    }
    let mut missing = Vec::new();
    for ip in status.tailscale_ips.iter().map(|i| i.to_canonical()) {
        if ip.is_unspecified() || ip.is_loopback() || bound.contains(&ip) {
            continue;
        }
        let addr = SocketAddr::new(ip, gw.settings.port);
        match listen::bind_one(addr) {
            Ok(l) => {
                tracing::info!(%addr, "bind=tailnet: listening on tailnet address");
                listen::serve(gw, vec![l]);
                bound.insert(ip);
            }
            Err(e) => missing.push(format!("{addr} ({e})")),
        }
    }
    if missing.is_empty() {
        return false;
    }
    say(said, format!("cannot bind {} yet — the address is not on an OS interface (tailscaled with a TUN device is needed; userspace/tsnet nodes should use tailscale.mode=serve); serving loopback meanwhile, retrying", missing.join(", ")));
    true
}

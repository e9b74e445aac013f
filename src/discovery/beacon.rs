//! The LAN mDNS beacon on top of `mdns-sd` (spec discovery.md §1, §3, §4; threats.md MD-1/3/8).
//!
//! One supervised task owns one `ServiceDaemon` at a time. Invariants:
//! - every daemon is shut down (goodbye packets) on cancel and on every error path ([`DaemonGuard`]);
//! - interface selection goes through [`super::ifpolicy`] via an `IfKind::Predicate` on both the
//!   daemon and the `ServiceInfo` (so auto-added addresses are filtered too);
//! - re-registration happens only when the built `ServiceInfo` (TXT, addresses) changes;
//! - conflict renames are left to mdns-sd (one rename per conflict); more than
//!   [`MAX_RENAMES`] renames in one daemon life counts as a failure (rename storm);
//! - failures restart the daemon with backoff at most [`MAX_RESTARTS`] times, then one warning and
//!   the beacon stays off — nothing here can stop the gateway.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mdns_sd::{DaemonEvent, IfKind, IfPredicate, ServiceDaemon, ServiceInfo};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::ifpolicy::{self, Policy, Selection};
use super::status::{ComponentState, StatusCell};
use super::{names, txt, DynamicInfo, Resolved};

/// Service type on the LAN (mdns-sd form).
pub const SERVICE_TYPE: &str = "_openclaw-gw._tcp.local.";
/// Daemon restarts before the beacon gives up (MD-3: bounded, then a single warning).
pub const MAX_RESTARTS: u32 = 3;
/// Conflict renames tolerated per daemon life; beyond this we are in a storm and stop.
pub const MAX_RENAMES: u32 = 4;
/// Interface snapshot reuse window: the predicate is called per address on each poll.
const SNAPSHOT_TTL: Duration = Duration::from_millis(500);
/// First restart delay (doubles per consecutive failure: 1 s, 2 s, 4 s).
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// A daemon life this long counts as healthy and refills the restart budget.
const HEALTHY_LIFE: Duration = Duration::from_secs(600);
/// How long shutdown waits for the daemon to confirm it sent goodbyes.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// Why one daemon life ended.
#[derive(Debug, thiserror::Error)]
pub enum BeaconError {
    /// mdns-sd API error (daemon start, register, channel).
    #[error("mdns-sd: {0}")]
    Mdns(#[from] mdns_sd::Error),
    /// The daemon's event channel closed unexpectedly.
    #[error("mDNS daemon exited")]
    DaemonGone,
    /// Too many conflict renames.
    #[error("name conflict storm: {0} renames")]
    RenameStorm(u32),
}

/// Shuts the daemon down (with goodbyes) when dropped, whatever path we leave by.
struct DaemonGuard(ServiceDaemon);

impl DaemonGuard {
    async fn shutdown(self) {
        if let Ok(rx) = self.0.shutdown() {
            let _ = tokio::time::timeout(SHUTDOWN_WAIT, rx.recv_async()).await;
        }
        // Drop runs shutdown() again: harmless, the daemon has exited or ignores a second Exit.
    }
}

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        let _ = self.0.shutdown();
    }
}

/// Cached policy evaluation shared with mdns-sd's predicate (called on the daemon thread).
#[derive(Clone)]
pub struct PolicyCache {
    policy: Arc<Mutex<Policy>>,
    cached: Arc<Mutex<Option<(Instant, Selection)>>>,
}

impl PolicyCache {
    /// New cache for `policy`.
    pub fn new(policy: Policy) -> Self {
        PolicyCache {
            policy: Arc::new(Mutex::new(policy)),
            cached: Arc::new(Mutex::new(None)),
        }
    }

    /// Current selection (re-evaluated at most every [`SNAPSHOT_TTL`]); logs changes.
    pub fn current(&self) -> Selection {
        let mut guard = match self.cached.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((at, sel)) = guard.as_ref() {
            if at.elapsed() < SNAPSHOT_TTL {
                return sel.clone();
            }
        }
        let policy = match self.policy.lock() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let sel = ifpolicy::select(&ifpolicy::snapshot(), &policy);
        let changed = guard
            .as_ref()
            .is_none_or(|(_, old)| old.selected != sel.selected);
        if changed {
            tracing::info!(interfaces = ?sel.interfaces(), skipped = ?sel.skipped, "mDNS interface selection");
        }
        *guard = Some((Instant::now(), sel.clone()));
        sel
    }

    /// Tailnet addresses learned after start (custom ranges): re-evaluate on next use.
    pub fn set_tailnet_ips(&self, ips: &[std::net::IpAddr]) {
        let mut p = match self.policy.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        if p.tailnet_ips != ips {
            p.tailnet_ips = ips.to_vec();
            drop(p);
            if let Ok(mut c) = self.cached.lock() {
                *c = None;
            }
        }
    }

    fn predicate(&self) -> IfKind {
        let me = self.clone();
        IfKind::Predicate(IfPredicate::new(move |intf| {
            me.current().allows(&intf.name, intf.ip())
        }))
    }
}

/// Build the `ServiceInfo` for the current state.
fn service_info(
    r: &Resolved,
    d: &DynamicInfo,
    cache: &PolicyCache,
) -> Result<ServiceInfo, BeaconError> {
    let props = txt::lan_txt(&r.txt_input(d));
    let host = format!("{}.local.", r.host_label);
    let specific: Vec<std::net::IpAddr> = r
        .listen_ips
        .iter()
        .copied()
        .filter(|ip| !ip.is_unspecified() && !ip.is_loopback())
        .collect();
    let info = if specific.is_empty() {
        ServiceInfo::new(
            SERVICE_TYPE,
            &r.instance,
            &host,
            (),
            r.gateway_port,
            &props[..],
        )?
        .enable_addr_auto()
    } else {
        ServiceInfo::new(
            SERVICE_TYPE,
            &r.instance,
            &host,
            &specific[..],
            r.gateway_port,
            &props[..],
        )?
    };
    let mut info = info;
    info.set_interfaces(vec![cache.predicate()]);
    Ok(info)
}

fn fingerprint(info: &ServiceInfo) -> String {
    let mut props: Vec<String> = info
        .get_properties()
        .iter()
        .map(|p| format!("{}={}", p.key(), p.val_str()))
        .collect();
    props.sort();
    props.join("\n")
}

/// One daemon life, abstracted so the restart policy can be tested without multicast.
pub trait DaemonLife {
    /// Run until cancelled (`Ok`) or failed (`Err`).
    fn run(&mut self) -> impl std::future::Future<Output = Result<(), BeaconError>> + Send;
}

struct MdnsLife {
    r: Arc<Resolved>,
    updates: watch::Receiver<DynamicInfo>,
    status: StatusCell,
    cache: PolicyCache,
    cancel: CancellationToken,
}

impl DaemonLife for MdnsLife {
    fn run(&mut self) -> impl std::future::Future<Output = Result<(), BeaconError>> + Send {
        run_once(
            &self.r,
            &mut self.updates,
            &self.status,
            &self.cache,
            &self.cancel,
        )
    }
}

/// Supervisor: run daemon lives until cancelled or the restart budget is spent.
pub async fn supervise(
    r: Arc<Resolved>,
    updates: watch::Receiver<DynamicInfo>,
    status: StatusCell,
    cancel: CancellationToken,
) {
    let cache = PolicyCache::new(r.policy());
    let mut life = MdnsLife {
        r,
        updates,
        status: status.clone(),
        cache,
        cancel: cancel.clone(),
    };
    supervise_lives(&mut life, &status, &cancel, BACKOFF_BASE).await;
}

/// Restart policy: at most [`MAX_RESTARTS`] restarts (backoff `base·2^n`), the budget refilled
/// after a life of [`HEALTHY_LIFE`]; then one warning and `Failed`.
pub async fn supervise_lives<L: DaemonLife>(
    life: &mut L,
    status: &StatusCell,
    cancel: &CancellationToken,
    base: Duration,
) {
    let mut failures = 0u32;
    loop {
        status.set_mdns(ComponentState::Starting);
        let started = Instant::now();
        let Err(e) = life.run().await else {
            status.set_mdns(ComponentState::Stopped);
            return;
        };
        if started.elapsed() >= HEALTHY_LIFE {
            failures = 0;
        }
        failures += 1;
        if failures > MAX_RESTARTS {
            tracing::warn!(error = %e, "LAN discovery disabled after {MAX_RESTARTS} restarts; the gateway keeps serving");
            status.set_mdns(ComponentState::Failed(e.to_string()));
            return;
        }
        tracing::debug!(error = %e, attempt = failures, "mDNS beacon restarting");
        tokio::select! {
            _ = cancel.cancelled() => {
                status.set_mdns(ComponentState::Stopped);
                return;
            }
            _ = tokio::time::sleep(base * (1 << failures.min(5))) => {}
        }
    }
}

async fn run_once(
    r: &Resolved,
    updates: &mut watch::Receiver<DynamicInfo>,
    status: &StatusCell,
    cache: &PolicyCache,
    cancel: &CancellationToken,
) -> Result<(), BeaconError> {
    let daemon = DaemonGuard(ServiceDaemon::new()?);
    daemon.0.disable_interface(IfKind::All)?;
    daemon.0.enable_interface(cache.predicate())?;
    let monitor = daemon.0.monitor()?;
    let mut info = service_info(r, &updates.borrow_and_update(), cache)?;
    let mut registered = fingerprint(&info);
    daemon.0.register(info.clone())?;
    let mut renames: HashSet<(String, String)> = HashSet::new();
    let mut updates_open = true;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                daemon.shutdown().await;
                tracing::info!("mDNS beacon stopped (goodbye sent)");
                return Ok(());
            }
            changed = updates.changed(), if updates_open => {
                if changed.is_err() {
                    updates_open = false; // handle dropped: keep the last values
                    continue;
                }
                let d = updates.borrow_and_update().clone();
                cache.set_tailnet_ips(&d.tailnet_ips);
                info = service_info(r, &d, cache)?;
                let fp = fingerprint(&info);
                if fp != registered {
                    tracing::info!("TXT changed; re-registering the beacon");
                    daemon.0.register(info.clone())?;
                    registered = fp;
                }
            }
            ev = monitor.recv_async() => match ev {
                Err(_) => return Err(BeaconError::DaemonGone),
                Ok(ev) => handle_event(ev, status, &mut renames)?,
            }
        }
    }
}

/// `renames` holds distinct (new name, interface) pairs: mdns-sd reports one `NameChange` per
/// record type of a single rename, which must count once.
fn handle_event(
    ev: DaemonEvent,
    status: &StatusCell,
    renames: &mut HashSet<(String, String)>,
) -> Result<(), BeaconError> {
    match ev {
        DaemonEvent::Announce(name, via) => status.announced(&name, &via),
        DaemonEvent::NameChange(c) => {
            if renames.insert((c.new_name.clone(), c.intf_name.clone())) {
                tracing::info!(from = %c.original, to = %c.new_name, intf = %c.intf_name, "mDNS name conflict resolved by rename");
                status.renamed(&c.new_name);
            }
            let n = renames.len() as u32;
            if n > MAX_RENAMES {
                return Err(BeaconError::RenameStorm(n));
            }
        }
        DaemonEvent::Error(e) => tracing::debug!(error = %e, "mDNS daemon error"),
        DaemonEvent::IpAdd(ip) => tracing::debug!(%ip, "interface address added"),
        DaemonEvent::IpDel(ip) => tracing::debug!(%ip, "interface address removed"),
        _ => {}
    }
    Ok(())
}

/// The instance name for `base` (or the OS host name), exposed for `status`.
pub fn default_instance(base: Option<&str>) -> String {
    match base {
        Some(b) => names::instance_name(b),
        None => names::instance_name(&names::os_hostname()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing(u32);

    impl DaemonLife for Failing {
        fn run(&mut self) -> impl std::future::Future<Output = Result<(), BeaconError>> + Send {
            self.0 += 1;
            std::future::ready(Err(BeaconError::DaemonGone))
        }
    }

    #[tokio::test]
    async fn bounded_restarts_then_failed() {
        let status = StatusCell::new(Instant::now());
        let mut life = Failing(0);
        let base = Duration::from_millis(1);
        supervise_lives(&mut life, &status, &CancellationToken::new(), base).await;
        assert_eq!(life.0, MAX_RESTARTS + 1, "initial run + bounded restarts");
        assert_eq!(
            status.get().mdns,
            ComponentState::Failed("mDNS daemon exited".into())
        );
    }

    #[tokio::test]
    async fn cancel_during_backoff_stops_cleanly() {
        let status = StatusCell::new(Instant::now());
        let cancel = CancellationToken::new();
        cancel.cancel();
        let mut life = Failing(0);
        supervise_lives(&mut life, &status, &cancel, Duration::from_secs(3600)).await;
        assert_eq!(life.0, 1);
        assert_eq!(status.get().mdns, ComponentState::Stopped);
    }
}

//! Wide-area (unicast) DNS-SD publisher: zone file + embedded DNS server on the tailnet address
//! (spec discovery.md §6).
//!
//! Invariants: runs only with a domain and a tailnet IPv4; the zone file and the server always
//! carry the same content and serial; a bind failure (e.g. port 53 without
//! CAP_NET_BIND_SERVICE) is retried a bounded number of times, then reported once while the zone
//! file stays available for an external server (CoreDNS/BIND); nothing here stops the gateway.

pub mod server;
pub mod zone;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::status::{ComponentState, StatusCell};
use super::{names, txt, DynamicInfo, Resolved};
use server::DnsServer;
use zone::ZoneSpec;

/// Bind attempts before the embedded server gives up (the zone file stays).
pub const MAX_BIND_ATTEMPTS: u32 = 3;

/// Build the zone model, or `None` without a tailnet IPv4.
pub fn zone_spec(r: &Resolved, domain: &str, d: &DynamicInfo) -> Option<ZoneSpec> {
    let v4 = d.tailnet_ips.iter().find_map(|ip| match ip {
        IpAddr::V4(v4) => Some(*v4),
        IpAddr::V6(_) => None,
    })?;
    let v6 = d
        .tailnet_ips
        .iter()
        .filter_map(|ip| match ip {
            IpAddr::V6(v6) => Some(*v6),
            IpAddr::V4(_) => None,
        })
        .collect();
    let route = d.secure_route.as_ref().filter(|sr| {
        let ok = zone::ldh_fqdn(&sr.host);
        if !ok {
            tracing::warn!(name = %sr.host, "secure route name is not an LDH host name; SRV keeps the gateway port");
        }
        ok
    });
    let txt_input = match route {
        Some(_) => r.wide_area_txt_input(d),
        None => r.txt_input(d),
    };
    Some(ZoneSpec {
        domain: domain.to_string(),
        instance: names::wide_area_instance_label(&r.hostname),
        host: r.host_label.clone(),
        port: route.map_or(r.gateway_port, |sr| sr.port),
        srv_target: route.map(|sr| sr.host.clone()),
        txt: txt::wide_area_txt(&txt_input),
        v4,
        v6,
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn write_zone(r: &Resolved, z: &ZoneSpec, status: &StatusCell) -> Option<u32> {
    match zone::write_if_changed(&r.state_dir, z, unix_now()) {
        Ok(w) => {
            if w.changed {
                tracing::info!(path = %w.path.display(), serial = w.serial, "wide-area zone written");
            }
            status.zone_file(&w.path.display().to_string());
            Some(w.serial)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot write the wide-area zone file");
            None
        }
    }
}

async fn start_server(
    z: &ZoneSpec,
    serial: u32,
    bind: &[SocketAddr],
    cancel: &CancellationToken,
) -> Option<DnsServer> {
    for attempt in 1..=MAX_BIND_ATTEMPTS {
        match DnsServer::start(z, serial, bind).await {
            Ok(s) => return Some(s),
            Err(e) if attempt == MAX_BIND_ATTEMPTS => {
                tracing::warn!(error = %e, "wide-area DNS server off (zone file still written; serve it with CoreDNS/BIND or grant CAP_NET_BIND_SERVICE)");
                return None;
            }
            Err(e) => tracing::debug!(error = %e, attempt, "wide-area DNS bind failed; retrying"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return None,
            _ = tokio::time::sleep(Duration::from_millis(500 << attempt)) => {}
        }
    }
    None
}

/// The embedded server together with the addresses it is bound to.
struct Running {
    bind: Vec<SocketAddr>,
    server: DnsServer,
}

/// Bring the server in line with `z`: swap records if the bind set is unchanged, otherwise
/// rebind (stop the old listeners, start new ones with bounded retries).
async fn reconcile(
    running: Option<Running>,
    z: &ZoneSpec,
    serial: u32,
    bind: Vec<SocketAddr>,
    status: &StatusCell,
    cancel: &CancellationToken,
) -> Option<Running> {
    if let Some(r) = running {
        if r.bind == bind {
            if let Err(e) = r.server.replace(z, serial).await {
                tracing::warn!(error = %e, "wide-area zone update failed");
            }
            return Some(r);
        }
        r.server.shutdown().await;
    }
    let started = start_server(z, serial, &bind, cancel).await;
    status.set_wide_area(match &started {
        Some(_) => ComponentState::Running,
        None => ComponentState::Failed("embedded DNS server could not bind".into()),
    });
    started.map(|server| Running { bind, server })
}

/// Publish until cancelled. Tailnet addresses may arrive (or change) after start through
/// `DiscoveryHandle::update`: until a tailnet IPv4 is known the component waits.
pub async fn supervise(
    r: Arc<Resolved>,
    domain: String,
    mut updates: watch::Receiver<DynamicInfo>,
    status: StatusCell,
    cancel: CancellationToken,
) {
    let port = r.config.wide_area_port();
    let mut running: Option<Running> = None;
    let mut current: Option<ZoneSpec> = None;
    let mut serial = 1;
    loop {
        let d = updates.borrow_and_update().clone();
        match zone_spec(&r, &domain, &d) {
            None => {
                if let Some(old) = running.take() {
                    old.server.shutdown().await;
                }
                current = None;
                let why = "waiting for a tailnet IPv4 address";
                status.set_wide_area(ComponentState::Disabled(why.into()));
            }
            Some(z) if current.as_ref() != Some(&z) => {
                serial = write_zone(&r, &z, &status).unwrap_or(serial);
                let bind = d
                    .tailnet_ips
                    .iter()
                    .map(|ip| SocketAddr::new(*ip, port))
                    .collect();
                running = reconcile(running, &z, serial, bind, &status, &cancel).await;
                current = Some(z);
            }
            Some(_) => {}
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            changed = updates.changed() => if changed.is_err() {
                cancel.cancelled().await;
                break;
            },
        }
    }
    if let Some(r) = running {
        r.server.shutdown().await;
    }
    status.set_wide_area(ComponentState::Stopped);
}

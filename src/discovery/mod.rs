//! LAN (mDNS) and wide-area (unicast DNS-SD) discovery of the gateway (spec discovery.md).
//!
//! Entry point [`spawn`] starts two supervised, best-effort components on the caller's
//! `TaskTracker`: the mDNS beacon ([`beacon`]) and the wide-area publisher ([`widearea`]).
//! Invariants (threats.md MD-1..MD-8):
//! - nothing in here can stop, block or crash-loop the gateway: failures are retried a bounded
//!   number of times, then logged once and the component stays off ([`DiscoveryHandle::status`]);
//! - LAN advertising is off for `mode = off`, `OPENCLAW_DISABLE_BONJOUR` truthy, a loopback-only
//!   listener, and (auto mode) inside containers/WSL — `OPENCLAW_DISABLE_BONJOUR=0` forces it on;
//! - TXT values are hints; clients route on SRV + A/AAAA; nothing advertised is ever a trust pin;
//! - cancellation sends mDNS goodbyes and stops the DNS server before the tasks finish.
//!
//! Back-pressure: runtime updates go through a `watch` channel (latest value wins; intermediate
//! values are intentionally dropped because only the newest TXT matters).

pub mod beacon;
pub mod browse;
pub mod cli;
pub mod config;
pub mod container;
pub mod ifpolicy;
pub mod names;
pub mod status;
pub mod txt;
pub mod widearea;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{BonjourSwitch, DiscoveryConfig, MdnsMode};
pub use status::{ComponentState, DiscoveryStatus};

/// Runtime facts that may change while the gateway runs (TXT is re-registered on change).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DynamicInfo {
    /// Gateway TLS is on (`gatewayTls=1`).
    pub tls: bool,
    /// SHA-256 of the certificate DER (hex, colons allowed).
    pub tls_sha256: Option<String>,
    /// MagicDNS name of this node (`OPENCLAW_TAILNET_DNS` overrides).
    pub tailnet_dns: Option<String>,
    /// Tailnet addresses of this node (wide-area A/AAAA, interface classification).
    pub tailnet_ips: Vec<IpAddr>,
    /// The secure way in while Serve/Funnel fronts the gateway: the wide-area SRV points here
    /// (MagicDNS name, 443 or the Funnel port) with TLS flagged, never at the loopback port.
    pub secure_route: Option<SecureRoute>,
}

/// A TLS endpoint in front of the gateway (Serve/Funnel), by MagicDNS name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecureRoute {
    /// MagicDNS FQDN, lower case, no trailing dot.
    pub host: String,
    /// Its HTTPS port.
    pub port: u16,
}

/// Everything the gateway knows that discovery needs.
#[derive(Debug, Clone)]
pub struct BeaconSettings {
    /// The `discovery` config with env applied.
    pub config: DiscoveryConfig,
    /// State directory (`~/.openclaw`); the zone goes to `<state>/dns/<domain>.db`.
    pub state_dir: PathBuf,
    /// Gateway port (SRV port, `gatewayPort`).
    pub gateway_port: u16,
    /// Addresses the gateway's listeners are bound to.
    pub listen_addrs: Vec<SocketAddr>,
    /// Instance name base (e.g. `plugins.entries.bonjour.config.instanceName`); `None` = OS host name.
    pub instance_name: Option<String>,
    /// Absolute path of the clawgate CLI, for `cliPath` in full mode (`OPENCLAW_CLI_PATH` wins).
    pub cli_path: Option<PathBuf>,
    /// Initial dynamic values.
    pub dynamic: DynamicInfo,
}

/// Values derived once from [`BeaconSettings`].
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Instance name (≤ 63 bytes).
    pub instance: String,
    /// mDNS host label.
    pub host_label: String,
    /// OS host name (wide-area labels).
    pub hostname: String,
    /// Gateway port.
    pub gateway_port: u16,
    /// Listener IPs.
    pub listen_ips: Vec<IpAddr>,
    /// Config with env applied.
    pub config: DiscoveryConfig,
    /// State dir.
    pub state_dir: PathBuf,
    cli_path: Option<String>,
    tailnet_ips: Vec<IpAddr>,
}

impl Resolved {
    /// Derive names and fixed values.
    pub fn new(s: &BeaconSettings) -> Self {
        let hostname = names::os_hostname();
        let base = s.instance_name.clone().unwrap_or_else(|| hostname.clone());
        let cli_path = s.config.env.cli_path.clone().or_else(|| {
            s.cli_path
                .clone()
                .or_else(|| std::env::current_exe().ok())
                .map(|p| p.display().to_string())
        });
        Resolved {
            instance: names::instance_name(&base),
            host_label: names::host_label(s.config.env.mdns_hostname.as_deref(), &hostname),
            hostname,
            gateway_port: s.gateway_port,
            listen_ips: s
                .listen_addrs
                .iter()
                .map(|a| a.ip().to_canonical())
                .collect(),
            config: s.config.clone(),
            state_dir: s.state_dir.clone(),
            cli_path,
            tailnet_ips: s.dynamic.tailnet_ips.clone(),
        }
    }

    /// TXT builder input for the current dynamic values.
    pub fn txt_input(&self, d: &DynamicInfo) -> txt::TxtInput {
        txt::TxtInput {
            mode: self.config.mdns.mode,
            gateway_port: self.gateway_port,
            display_name: names::display_name(&self.instance),
            host_label: self.host_label.clone(),
            tls: d.tls,
            tls_sha256: d.tls_sha256.clone(),
            direct_reachable: ifpolicy::lan_reachable(&self.listen_ips),
            tailnet_dns: self
                .config
                .env
                .tailnet_dns
                .clone()
                .or(d.tailnet_dns.clone()),
            ssh_port: self.config.ssh_port(),
            cli_path: self.cli_path.clone(),
        }
    }

    /// TXT input for the wide-area zone: while a secure route fronts the gateway, its port and
    /// `gatewayTls=1` — without `gatewayTlsSha256`, because Serve presents its own certificate,
    /// not the gateway's.
    pub fn wide_area_txt_input(&self, d: &DynamicInfo) -> txt::TxtInput {
        let mut t = self.txt_input(d);
        if let Some(r) = &d.secure_route {
            t.gateway_port = r.port;
            t.tls = true;
            t.tls_sha256 = None;
        }
        t
    }

    /// Interface policy inputs.
    pub fn policy(&self) -> ifpolicy::Policy {
        ifpolicy::Policy {
            pinned: self.config.mdns.interfaces.clone(),
            listen_ips: self.listen_ips.clone(),
            tailnet_ips: self.tailnet_ips.clone(),
        }
    }
}

/// Why LAN advertising is off, or `None` if it should run. `container` is the detector result.
pub fn mdns_gate(
    cfg: &DiscoveryConfig,
    listen_ips: &[IpAddr],
    container: impl FnOnce() -> Option<container::ContainerSignal>,
) -> Option<String> {
    let sw = cfg.env.bonjour;
    if sw == BonjourSwitch::Disabled {
        return Some(format!("{} is set", config::ENV_DISABLE_BONJOUR));
    }
    if !ifpolicy::lan_reachable(listen_ips) {
        return Some("gateway listens on loopback only".into());
    }
    if sw == BonjourSwitch::ForcedOn {
        return None; // env wins over config and over container detection
    }
    if cfg.mdns.mode == MdnsMode::Off {
        return Some("discovery.mdns.mode is off".into());
    }
    container().map(|sig| {
        format!(
            "container detected ({}); set {}=0 to advertise anyway",
            sig.0,
            config::ENV_DISABLE_BONJOUR
        )
    })
}

/// Handle owned by the gateway: runtime updates and status.
#[derive(Clone)]
pub struct DiscoveryHandle {
    updates: Arc<watch::Sender<DynamicInfo>>,
    status: status::StatusCell,
}

impl DiscoveryHandle {
    /// Publish new dynamic values (TLS fingerprint rotation, MagicDNS name, tailnet IPs).
    /// The beacon re-registers and the zone is rebuilt only if something visible changed.
    pub fn update(&self, d: DynamicInfo) {
        self.updates.send_if_modified(|cur| {
            let changed = *cur != d;
            *cur = d;
            changed
        });
    }

    /// Current status snapshot.
    pub fn status(&self) -> DiscoveryStatus {
        self.status.get()
    }
}

/// Start discovery. Must be called inside a tokio runtime. Never fails: problems end up in
/// [`DiscoveryHandle::status`] and the log.
pub fn spawn(
    settings: BeaconSettings,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) -> DiscoveryHandle {
    let started = Instant::now();
    let cell = status::StatusCell::new(started);
    let (tx, rx) = watch::channel(settings.dynamic.clone());
    let r = Arc::new(Resolved::new(&settings));
    cell.identity(&r.instance, &format!("{}.local", r.host_label));
    let mdns_mode = settings.config.mdns.mode;
    match mdns_gate(&settings.config, &r.listen_ips, container::detect_cached) {
        Some(reason) => {
            tracing::info!(%reason, "LAN discovery (mDNS) off");
            cell.set_mdns(ComponentState::Disabled(reason));
        }
        None => {
            tracing::info!(instance = %r.instance, host = %r.host_label, mode = ?mdns_mode, "starting mDNS beacon");
            tracker.spawn(beacon::supervise(
                r.clone(),
                rx.clone(),
                cell.clone(),
                cancel.clone(),
            ));
        }
    }
    match settings.config.wide_area_domain() {
        None => cell.set_wide_area(ComponentState::Disabled(
            "no discovery.wideArea.domain".into(),
        )),
        Some(domain) => {
            tracker.spawn(widearea::supervise(r, domain, rx, cell.clone(), cancel));
        }
    }
    DiscoveryHandle {
        updates: Arc::new(tx),
        status: cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_order() {
        let lan: Vec<IpAddr> = vec!["0.0.0.0".parse().expect("lit")];
        let lo: Vec<IpAddr> = vec!["127.0.0.1".parse().expect("lit")];
        let sig = || Some(container::ContainerSignal("/.dockerenv".into()));
        let mut c = DiscoveryConfig::default();
        assert_eq!(mdns_gate(&c, &lan, || None), None);
        assert!(mdns_gate(&c, &lo, || None).is_some_and(|r| r.contains("loopback")));
        assert!(mdns_gate(&c, &lan, sig).is_some_and(|r| r.contains("/.dockerenv")));
        c.env.bonjour = BonjourSwitch::ForcedOn;
        assert_eq!(mdns_gate(&c, &lan, sig), None);
        assert!(mdns_gate(&c, &lo, sig).is_some());
        c.env.bonjour = BonjourSwitch::Disabled;
        assert!(mdns_gate(&c, &lan, || None).is_some());
        let mut off = DiscoveryConfig::default();
        off.mdns.mode = MdnsMode::Off;
        assert!(mdns_gate(&off, &lan, || None).is_some_and(|r| r.contains("off")));
    }
}

#[cfg(test)]
mod route_tests {
    use super::*;

    fn resolved() -> Resolved {
        Resolved::new(&BeaconSettings {
            config: DiscoveryConfig::default(),
            state_dir: PathBuf::from("/nonexistent"),
            gateway_port: 18789,
            listen_addrs: vec!["127.0.0.1:18789".parse().expect("lit")],
            instance_name: Some("vienna".into()),
            cli_path: None,
            dynamic: DynamicInfo::default(),
        })
    }

    fn txt(z: &widearea::zone::ZoneSpec, key: &str) -> Option<String> {
        z.txt.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    #[test]
    fn serve_mode_publishes_the_secure_route_not_the_loopback_port() {
        let r = resolved();
        let mut d = DynamicInfo {
            tls: true,
            tls_sha256: Some("ab".repeat(32)),
            tailnet_ips: vec!["100.101.102.103".parse().expect("lit")],
            ..Default::default()
        };
        let plain = widearea::zone_spec(&r, "openclaw.internal", &d).expect("zone");
        assert_eq!((plain.port, plain.srv_target.as_deref()), (18789, None));
        assert_eq!(txt(&plain, "gatewayTlsSha256"), Some("ab".repeat(32)));
        d.secure_route = Some(SecureRoute {
            host: "vienna.tail1234.ts.net".into(),
            port: 443,
        });
        let z = widearea::zone_spec(&r, "openclaw.internal", &d).expect("zone");
        assert_eq!(z.port, 443);
        assert_eq!(z.srv_target.as_deref(), Some("vienna.tail1234.ts.net"));
        assert_eq!(txt(&z, "gatewayPort").as_deref(), Some("443"));
        assert_eq!(txt(&z, "gatewayTls").as_deref(), Some("1"));
        assert_eq!(
            txt(&z, "gatewayTlsSha256"),
            None,
            "Serve's certificate is not ours"
        );
        d.secure_route = Some(SecureRoute {
            host: "evil name\n@ IN NS x".into(),
            port: 443,
        });
        let z = widearea::zone_spec(&r, "openclaw.internal", &d).expect("zone");
        assert_eq!((z.port, z.srv_target), (18789, None));
    }
}

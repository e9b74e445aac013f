//! The gateway server: shared state ([`Gateway`]), listeners, the HTTP surface
//! and the WebSocket connection actors.
//!
//! Structured concurrency: every task is spawned on the gateway's
//! [`TaskTracker`] and observes its [`CancellationToken`]; [`Gateway::shutdown`]
//! cancels, lets connections send `shutdown` + close 1012, and waits for the drain.

pub mod admit;
pub mod budget;
pub mod conn;
pub mod fdlimit;
pub mod guard_io;
pub mod http;
pub mod hub;
pub mod listen;
pub mod log_throttle;
pub mod methods;
pub mod methods_nodes;
pub mod methods_pairing;
pub mod nodes;
pub mod preauth;
pub mod presence;
pub mod reload;
pub mod tls_conn;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::origin::HostPolicy;
use crate::auth::ratelimit::RateLimiter;
use crate::config::{Settings, MAX_PENDING_HANDSHAKES};
use crate::identity::Identity;
use crate::protocol::frames::EventFrame;

/// How long shutdown waits for connections to drain.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Shared state of a running gateway.
pub struct Gateway {
    pub settings: Settings,
    pub identity: Identity,
    pub hub: hub::Hub,
    pub pairing: crate::pairing::store::Store,
    pub nodes: nodes::Nodes,
    pub limiter: RateLimiter,
    pub budget: Arc<budget::Budget>,
    pub hosts: HostPolicy,
    pub started: Instant,
    pub boot_id: String,
    pub cancel: CancellationToken,
    pub tracker: TaskTracker,
    pub listen_addrs: std::sync::Mutex<Vec<SocketAddr>>,
    /// LAN / wide-area discovery, once started.
    pub discovery: std::sync::OnceLock<crate::discovery::DiscoveryHandle>,
    /// Tailscale exposure state and the public endpoint (MagicDNS).
    pub exposure: Arc<crate::exposure::Exposure>,
    /// Audit findings: settings at start plus evidence seen since (EX-4, PX-2, PX-6).
    pub audit: crate::audit::Audit,
    /// Throttles the INFO line per refused `connect` (RL-3).
    pub refusal_log: log_throttle::LogThrottle,
    /// Throttles the INFO line per denied method call (RL-4).
    pub denial_log: log_throttle::LogThrottle,
    /// Gateway TLS (`gateway.tls.enabled`), set before the listeners start serving.
    pub tls: std::sync::OnceLock<Arc<crate::tls::server::TlsServer>>,
    /// The live auth settings (hot-reloadable, see [`reload`]).
    auth: std::sync::RwLock<Arc<crate::config::AuthSettings>>,
}

impl Gateway {
    pub fn new(
        settings: Settings,
        identity: Identity,
        pairing: crate::pairing::store::Store,
    ) -> Arc<Gateway> {
        let limiter = RateLimiter::new(&settings.auth.rate_limit);
        let auth = settings.auth.clone();
        let global = budget::global_cap(MAX_PENDING_HANDSHAKES, fdlimit::soft());
        let budget = budget::Budget::new(settings.max_preauth_per_ip, global);
        let hosts = host_policy(&settings);
        let audit = crate::audit::Audit::new(&settings);
        let hub = hub::Hub::new(presence::Presence::new(Some(self_presence())));
        let exposure = Arc::new(crate::exposure::Exposure::new(
            settings.tailscale_mode,
            crate::exposure::start::public_port(&settings),
        ));
        Arc::new(Gateway {
            settings,
            identity,
            hub,
            pairing,
            nodes: nodes::Nodes::default(),
            limiter,
            budget,
            hosts,
            started: Instant::now(),
            boot_id: uuid::Uuid::new_v4().to_string(),
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
            listen_addrs: Default::default(),
            discovery: Default::default(),
            exposure,
            audit,
            refusal_log: Default::default(),
            denial_log: Default::default(),
            tls: Default::default(),
            auth: std::sync::RwLock::new(Arc::new(auth)),
        })
    }

    /// The auth settings in force now.
    pub fn auth(&self) -> Arc<crate::config::AuthSettings> {
        self.auth
            .read()
            .map(|a| a.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn set_auth(&self, a: crate::config::AuthSettings) {
        match self.auth.write() {
            Ok(mut g) => *g = Arc::new(a),
            Err(p) => *p.into_inner() = Arc::new(a),
        }
    }

    pub fn uptime_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Starts the tick broadcaster.
    pub fn spawn_tick(self: &Arc<Self>) {
        let gw = self.clone();
        self.tracker.spawn(async move {
            let mut every = tokio::time::interval(gw.settings.tick_interval);
            every.tick().await;
            loop {
                tokio::select! {
                    _ = gw.cancel.cancelled() => return,
                    _ = every.tick() => gw.hub.broadcast(EventFrame::new("tick", &json!({"ts": crate::util::now_ms()}))),
                }
            }
        });
    }

    /// Starts the `_openclaw-gw._tcp` beacon and wide-area DNS-SD (supervised; never fails).
    pub fn spawn_discovery(self: &Arc<Self>) {
        use crate::discovery::BeaconSettings;
        let listen_addrs = self
            .listen_addrs
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        let port = listen_addrs
            .first()
            .map(|a| a.port())
            .unwrap_or(self.settings.port);
        let instance = self
            .settings
            .file
            .plugins
            .pointer("/entries/bonjour/config/instanceName")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string);
        let settings = BeaconSettings {
            config: self.settings.discovery.clone(),
            state_dir: self.settings.paths.state_dir.clone(),
            gateway_port: port,
            listen_addrs,
            instance_name: instance,
            cli_path: std::env::current_exe().ok(),
            dynamic: self.tls_info(),
        };
        let handle = crate::discovery::spawn(settings, &self.tracker, self.cancel.child_token());
        let _ = self.discovery.set(handle.clone());
        self.spawn_discovery_follower(handle);
    }

    /// Keeps the beacon's `tailnetDns` / tailnet IPs in step with the exposure state
    /// (the MagicDNS name is the one source of truth, threats.md WS-4). Reads only the
    /// in-memory exposure snapshot: no LocalAPI calls.
    fn spawn_discovery_follower(self: &Arc<Self>, handle: crate::discovery::DiscoveryHandle) {
        const EVERY: Duration = Duration::from_secs(2);
        let gw = self.clone();
        self.tracker.spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            loop {
                tokio::select! {
                    _ = gw.cancel.cancelled() => return,
                    _ = tick.tick() => {
                        let snap = gw.exposure.snapshot();
                        handle.update(crate::discovery::DynamicInfo {
                            tailnet_dns: gw.exposure.tailnet_dns(),
                            tailnet_ips: snap.tailnet_ips.clone(),
                            secure_route: gw.exposure.secure_route(),
                            ..gw.tls_info()
                        });
                    }
                }
            }
        });
    }

    /// `gatewayTls` / `gatewayTlsSha256` for the beacons (discovery.md).
    fn tls_info(&self) -> crate::discovery::DynamicInfo {
        crate::discovery::DynamicInfo {
            tls: self.tls.get().is_some(),
            tls_sha256: self.tls.get().map(|t| t.fingerprint()),
            ..Default::default()
        }
    }

    /// Re-publishes the TLS fingerprint after a certificate swap (the follower also does, within
    /// its period).
    pub fn refresh_discovery_tls(&self) {
        if let Some(h) = self.discovery.get() {
            let snap = self.exposure.snapshot();
            h.update(crate::discovery::DynamicInfo {
                tailnet_dns: self.exposure.tailnet_dns(),
                tailnet_ips: snap.tailnet_ips.clone(),
                secure_route: self.exposure.secure_route(),
                ..self.tls_info()
            });
        }
    }

    /// Broadcasts the presence list with its new state version.
    pub fn broadcast_presence(&self, sv: crate::protocol::frames::StateVersion) {
        let list: serde_json::Value =
            serde_json::from_str(&self.hub.presence.list_json(crate::util::now_ms()))
                .unwrap_or_default();
        self.hub.broadcast(EventFrame::with_state(
            "presence",
            &json!({"presence": list}),
            sv,
        ));
    }

    /// Cancels everything and waits (bounded) for tasks to finish.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tracker.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("shutdown drain timed out after {DRAIN_TIMEOUT:?}");
        }
    }
}

fn host_policy(s: &Settings) -> HostPolicy {
    let mut names = Vec::new();
    if let Ok(h) = hostname() {
        names.push(format!("{h}.local"));
        names.push(h);
    }
    let origins = s
        .allowed_origins
        .iter()
        .chain(s.file.gateway.public_origin.iter());
    for o in origins {
        if let Some((_, rest)) = o.split_once("://") {
            names.push(crate::auth::origin::host_part(
                rest.split('/').next().unwrap_or(""),
            ));
        }
    }
    if let Some(dns) = crate::config::process_env("OPENCLAW_TAILNET_DNS") {
        names.push(dns.trim_end_matches('.').to_ascii_lowercase());
    }
    HostPolicy { names }
}

pub use crate::util::hostname;

fn self_presence() -> Map<String, Value> {
    let host = hostname().unwrap_or_else(|_| "gateway".into());
    let version = env!("CARGO_PKG_VERSION");
    let v = json!({
        "host": host,
        "version": version,
        "platform": std::env::consts::OS,
        "deviceFamily": "Linux",
        "mode": "gateway",
        "reason": "self",
        "instanceId": uuid::Uuid::new_v4().to_string(),
        "text": format!("Gateway: {host} \u{b7} app {version} \u{b7} mode gateway \u{b7} reason self"),
    });
    v.as_object().cloned().unwrap_or_default()
}

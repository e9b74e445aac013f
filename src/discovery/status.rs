//! Observable state of the discovery subsystem, for `clawgate status` and tests.
//!
//! Invariants: a [`StatusCell`] is the only writer path (short mutex sections, never held across
//! `.await`); readers get a cloned [`DiscoveryStatus`] snapshot; `first_announce_ms` is measured
//! from the moment discovery was spawned and set once.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

/// State of one discovery component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "state", content = "detail")]
pub enum ComponentState {
    /// Not running, with the reason (config, env, container, loopback bind, …).
    Disabled(String),
    /// Starting or restarting.
    Starting,
    /// Announced / serving.
    Running,
    /// Gave up after bounded retries (the gateway keeps serving).
    Failed(String),
    /// Stopped on shutdown.
    Stopped,
}

/// Snapshot returned by `DiscoveryHandle::status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryStatus {
    /// LAN beacon.
    pub mdns: ComponentState,
    /// Wide-area zone + DNS server.
    pub wide_area: ComponentState,
    /// Instance name as currently announced (after renames).
    pub instance: Option<String>,
    /// SRV target host.
    pub host: Option<String>,
    /// Interfaces announced on (from mdns-sd `Announce` events).
    pub announced_on: Vec<String>,
    /// Milliseconds from spawn to the first announcement.
    pub first_announce_ms: Option<u64>,
    /// Conflict renames seen.
    pub renames: u32,
    /// Wide-area zone file path, when written.
    pub zone_file: Option<String>,
}

/// Shared, cheaply clonable writer/reader of the status.
#[derive(Clone)]
pub struct StatusCell {
    inner: Arc<Mutex<DiscoveryStatus>>,
    started: Instant,
}

impl StatusCell {
    /// New cell; `started` is the reference point for `first_announce_ms`.
    pub fn new(started: Instant) -> Self {
        let off = ComponentState::Disabled("not started".into());
        StatusCell {
            inner: Arc::new(Mutex::new(DiscoveryStatus {
                mdns: off.clone(),
                wide_area: off,
                instance: None,
                host: None,
                announced_on: Vec::new(),
                first_announce_ms: None,
                renames: 0,
                zone_file: None,
            })),
            started,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut DiscoveryStatus) -> R) -> R {
        let mut g = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut g)
    }

    /// Snapshot.
    pub fn get(&self) -> DiscoveryStatus {
        self.with(|s| s.clone())
    }

    /// Set the beacon state.
    pub fn set_mdns(&self, st: ComponentState) {
        self.with(|s| s.mdns = st);
    }

    /// Set the wide-area state.
    pub fn set_wide_area(&self, st: ComponentState) {
        self.with(|s| s.wide_area = st);
    }

    /// Record the identity being announced.
    pub fn identity(&self, instance: &str, host: &str) {
        self.with(|s| {
            s.instance = Some(instance.to_string());
            s.host = Some(host.to_string());
        });
    }

    /// Record the zone file path.
    pub fn zone_file(&self, path: &str) {
        self.with(|s| s.zone_file = Some(path.to_string()));
    }

    /// mdns-sd `Announce(fullname, "host:intf" or address list)`.
    pub fn announced(&self, fullname: &str, via: &str) {
        let ms = self.started.elapsed().as_millis() as u64;
        let first = self.with(|s| {
            s.mdns = ComponentState::Running;
            // "host:intf" from re-announcements; the first announcement carries a debug list.
            let intf = via.rsplit_once(':').map(|(_, i)| i).unwrap_or_default();
            let plausible = !intf.is_empty() && intf.len() <= 15 && !intf.contains([' ', ']', '}']);
            if plausible && !s.announced_on.iter().any(|a| a == intf) {
                s.announced_on.push(intf.to_string());
            }
            s.first_announce_ms
                .is_none()
                .then(|| s.first_announce_ms = Some(ms))
        });
        if first.is_some() {
            tracing::info!(service = %fullname, first_announce_ms = ms, "mDNS beacon announced");
        } else {
            tracing::debug!(service = %fullname, via, "mDNS beacon re-announced");
        }
    }

    /// A conflict rename happened.
    pub fn renamed(&self, new_name: &str) {
        self.with(|s| {
            s.renames += 1;
            if new_name.contains("._") {
                s.instance = new_name.split("._").next().map(str::to_string);
            } else {
                s.host = Some(new_name.trim_end_matches('.').to_string());
            }
        });
    }
}

//! Interface policy: on which (interface, address) pairs the beacon may be heard
//! (spec discovery.md §3; threats.md MD-4).
//!
//! Pure function [`select`] over an interface snapshot. Invariants:
//! - nothing is selected when the gateway listens on loopback only;
//! - never loopback, point-to-point/tunnel (`tailscale*`, `wg*`, …) or down interfaces;
//! - container bridges/veths only when named in `discovery.mdns.interfaces`;
//! - an interface carrying **any** public address is excluded entirely, even if pinned;
//! - only private (RFC 1918, ULA outside Tailscale's) and link-local addresses are used;
//! - at most one interface per IPv4/IPv6 subnet (first by index, then name).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::net_class::{classify_with_tailnet, AddrClass};

/// Name prefixes of tunnel interfaces (even when the kernel does not flag them point-to-point).
const TUNNEL_PREFIXES: &[&str] = &["tailscale", "wg", "ppp", "tun", "utun", "zt", "ipsec"];
/// Name prefixes of container/VM bridges and veths (esphome/device-builder#788 list + CNI).
const CONTAINER_PREFIXES: &[&str] = &[
    "docker",
    "br-",
    "veth",
    "cni",
    "virbr",
    "vethernet",
    "flannel",
    "cali",
    "podman",
    "lxc",
    "vnet",
    "kube",
];
/// Apple peer-to-peer links.
const APPLE_P2P_PREFIXES: &[&str] = &["awdl", "llw"];

/// One address of one interface (a snapshot row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfEntry {
    /// Interface name.
    pub name: String,
    /// Kernel index (ordering for the one-per-subnet rule).
    pub index: u32,
    /// The address.
    pub ip: IpAddr,
    /// Prefix length of the address.
    pub prefix: u8,
    /// Loopback flag.
    pub loopback: bool,
    /// Point-to-point flag.
    pub p2p: bool,
    /// Operationally up.
    pub up: bool,
}

impl From<&if_addrs::Interface> for IfEntry {
    fn from(i: &if_addrs::Interface) -> Self {
        let prefix = match &i.addr {
            if_addrs::IfAddr::V4(a) => a.prefixlen,
            if_addrs::IfAddr::V6(a) => a.prefixlen,
        };
        IfEntry {
            name: i.name.clone(),
            index: i.index.unwrap_or(u32::MAX),
            ip: i.ip(),
            prefix,
            loopback: i.is_loopback(),
            p2p: i.is_p2p(),
            up: i.is_oper_up(),
        }
    }
}

/// Inputs of the policy besides the interface snapshot.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// `discovery.mdns.interfaces` (empty = automatic).
    pub pinned: Vec<String>,
    /// Addresses the gateway listens on (wildcards allowed).
    pub listen_ips: Vec<IpAddr>,
    /// Known tailnet addresses of this node.
    pub tailnet_ips: Vec<IpAddr>,
}

/// Result: the selected (interface, address) pairs and why other interfaces were skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Selected pairs.
    pub selected: BTreeSet<(String, IpAddr)>,
    /// Skipped interfaces with the reason (for logs and `status`).
    pub skipped: BTreeMap<String, &'static str>,
}

impl Selection {
    /// Whether `(name, ip)` may carry the beacon.
    pub fn allows(&self, name: &str, ip: IpAddr) -> bool {
        self.selected.contains(&(name.to_string(), ip))
    }
    /// Names of selected interfaces.
    pub fn interfaces(&self) -> BTreeSet<String> {
        self.selected.iter().map(|(n, _)| n.clone()).collect()
    }
}

/// True if a LAN peer could reach a socket bound to one of `listen_ips`.
pub fn lan_reachable(listen_ips: &[IpAddr]) -> bool {
    listen_ips.iter().any(|ip| !ip.to_canonical().is_loopback())
}

fn has_prefix(name: &str, prefixes: &[&str]) -> bool {
    let lower = name.to_ascii_lowercase();
    prefixes.iter().any(|p| lower.starts_with(p))
}

fn interface_veto(e: &IfEntry, pinned: &[String]) -> Option<&'static str> {
    let named = pinned.iter().any(|p| p == &e.name);
    if e.loopback {
        Some("loopback")
    } else if e.p2p || has_prefix(&e.name, TUNNEL_PREFIXES) {
        Some("point-to-point or tunnel")
    } else if has_prefix(&e.name, APPLE_P2P_PREFIXES) {
        Some("apple peer-to-peer link")
    } else if !e.up {
        Some("down")
    } else if !pinned.is_empty() && !named {
        Some("not in discovery.mdns.interfaces")
    } else if has_prefix(&e.name, CONTAINER_PREFIXES) && !named {
        Some("container bridge/veth (pin it in discovery.mdns.interfaces to use it)")
    } else {
        None
    }
}

fn listen_allows(ip: IpAddr, listen: &[IpAddr]) -> bool {
    listen.iter().any(|l| match l.to_canonical() {
        IpAddr::V4(v4) if v4.is_unspecified() => ip.is_ipv4(),
        IpAddr::V6(v6) if v6.is_unspecified() => true,
        other => other == ip,
    })
}

fn subnet_key(ip: IpAddr, prefix: u8) -> Option<ipnet::IpNet> {
    let is_v6_ll = matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local());
    if is_v6_ll {
        return None; // fe80::/64 exists on every link; not a shared-subnet signal
    }
    ipnet::IpNet::new(ip, prefix).ok().map(|n| n.trunc())
}

/// Apply the policy to a snapshot.
pub fn select(snapshot: &[IfEntry], policy: &Policy) -> Selection {
    let mut out = Selection::default();
    if !lan_reachable(&policy.listen_ips) {
        return out;
    }
    let mut sorted: Vec<&IfEntry> = snapshot.iter().collect();
    sorted.sort_by(|a, b| (a.index, &a.name).cmp(&(b.index, &b.name)));
    let class = |e: &IfEntry| classify_with_tailnet(e.ip, &policy.tailnet_ips);
    // Fail closed: anything that is not loopback/LAN/tailnet counts as public.
    let public: BTreeSet<&str> = sorted
        .iter()
        .filter(|e| {
            !matches!(
                class(e),
                AddrClass::Loopback
                    | AddrClass::PrivateLan
                    | AddrClass::LinkLocal
                    | AddrClass::Tailnet
            )
        })
        .map(|e| e.name.as_str())
        .collect();
    let mut subnet_owner: BTreeMap<ipnet::IpNet, String> = BTreeMap::new();
    let mut dup: BTreeSet<String> = BTreeSet::new();
    for e in &sorted {
        if let Some(why) = interface_veto(e, &policy.pinned) {
            out.skipped.insert(e.name.clone(), why);
        } else if public.contains(e.name.as_str()) {
            out.skipped.insert(e.name.clone(), "has a public address");
        } else if class(e).is_lan() && listen_allows(e.ip, &policy.listen_ips) {
            if let Some(net) = subnet_key(e.ip, e.prefix) {
                let owner = subnet_owner.entry(net).or_insert_with(|| e.name.clone());
                if owner != &e.name {
                    dup.insert(e.name.clone());
                    continue;
                }
            }
            out.selected.insert((e.name.clone(), e.ip));
        }
    }
    out.selected.retain(|(n, _)| !dup.contains(n));
    for d in dup {
        out.skipped
            .insert(d, "shares a subnet with an earlier interface");
    }
    out
}

/// Take a snapshot of the host's interfaces (empty on error: advertising nowhere is safe).
pub fn snapshot() -> Vec<IfEntry> {
    match if_addrs::get_if_addrs() {
        Ok(v) => v.iter().map(IfEntry::from).collect(),
        Err(e) => {
            tracing::debug!(error = %e, "interface enumeration failed");
            Vec::new()
        }
    }
}

#[cfg(test)]
#[path = "ifpolicy_tests.rs"]
mod tests;

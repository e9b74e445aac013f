//! Address classification for discovery and the plaintext policy (spec discovery.md §5).
//!
//! A small pure module: `classify(IpAddr) -> AddrClass`, no I/O. Invariants:
//! - IPv4-mapped IPv6 addresses are canonicalized before classification;
//! - `100.64.0.0/10` (RFC 6598 / Tailscale CGNAT) and `fd7a:115c:a1e0::/48` (Tailscale ULA) are
//!   [`AddrClass::Tailnet`], never private, even though the ULA range sits inside `fc00::/7`;
//! - anything not matched by a narrower class is [`AddrClass::Public`] (fail closed).
//!
//! Tailnet prefixes are not fixed (headscale may use custom ranges): callers that know the
//! node's own tailnet addresses should additionally treat those as tailnet (see
//! [`classify_with_tailnet`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// RFC 6598 shared address space; Tailscale assigns node IPv4s from it.
pub const CGNAT_V4: Ipv4Net = match Ipv4Net::new(Ipv4Addr::new(100, 64, 0, 0), 10) {
    Ok(n) => n,
    Err(_) => panic!("static prefix"),
};

/// Tailscale's ULA range (`tsaddr.TailscaleULARange`).
pub const TAILSCALE_ULA: Ipv6Net =
    match Ipv6Net::new(Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, 0), 48) {
        Ok(n) => n,
        Err(_) => panic!("static prefix"),
    };

/// Coarse class of an IP address, from the point of view of "may this carry LAN traffic".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrClass {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// RFC 1918 IPv4 or IPv6 ULA (fc00::/7) outside Tailscale's ULA.
    PrivateLan,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// 100.64.0.0/10 or fd7a:115c:a1e0::/48 (or a known tailnet address).
    Tailnet,
    /// 0.0.0.0, ::, broadcast, documentation and other non-routable specials.
    Unspecified,
    /// Multicast groups.
    Multicast,
    /// Everything else: globally routable.
    Public,
}

impl AddrClass {
    /// True for the classes that are confined to the local link or site (plaintext-eligible LAN).
    pub fn is_lan(self) -> bool {
        matches!(self, AddrClass::PrivateLan | AddrClass::LinkLocal)
    }
}

/// Classify an address using only the fixed prefixes.
pub fn classify(ip: IpAddr) -> AddrClass {
    match ip.to_canonical() {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Classify, additionally treating `tailnet_ips` (e.g. `status.Self.TailscaleIPs`) as tailnet.
pub fn classify_with_tailnet(ip: IpAddr, tailnet_ips: &[IpAddr]) -> AddrClass {
    let canon = ip.to_canonical();
    if tailnet_ips.iter().any(|t| t.to_canonical() == canon) {
        return AddrClass::Tailnet;
    }
    classify(canon)
}

fn classify_v4(ip: Ipv4Addr) -> AddrClass {
    if ip.is_loopback() {
        AddrClass::Loopback
    } else if CGNAT_V4.contains(&ip) {
        AddrClass::Tailnet
    } else if ip.is_private() {
        AddrClass::PrivateLan
    } else if ip.is_link_local() {
        AddrClass::LinkLocal
    } else if ip.is_multicast() {
        AddrClass::Multicast
    } else if ip.is_unspecified() || ip.is_broadcast() || ip.is_documentation() {
        AddrClass::Unspecified
    } else {
        AddrClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddrClass {
    if ip.is_loopback() {
        AddrClass::Loopback
    } else if TAILSCALE_ULA.contains(&ip) {
        AddrClass::Tailnet
    } else if ip.is_unique_local() {
        AddrClass::PrivateLan
    } else if ip.is_unicast_link_local() {
        AddrClass::LinkLocal
    } else if ip.is_multicast() {
        AddrClass::Multicast
    } else if ip.is_unspecified() {
        AddrClass::Unspecified
    } else {
        AddrClass::Public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> AddrClass {
        classify(s.parse().expect("test literal"))
    }

    #[test]
    fn fixed_ranges() {
        assert_eq!(c("127.0.0.1"), AddrClass::Loopback);
        assert_eq!(c("::1"), AddrClass::Loopback);
        assert_eq!(c("10.1.2.3"), AddrClass::PrivateLan);
        assert_eq!(c("172.31.255.1"), AddrClass::PrivateLan);
        assert_eq!(c("172.32.0.1"), AddrClass::Public);
        assert_eq!(c("192.168.1.1"), AddrClass::PrivateLan);
        assert_eq!(c("169.254.9.9"), AddrClass::LinkLocal);
        assert_eq!(c("fe80::1"), AddrClass::LinkLocal);
        assert_eq!(c("fd00::1"), AddrClass::PrivateLan);
        assert_eq!(c("fd7a:115c:a1e0::1234"), AddrClass::Tailnet);
        assert_eq!(c("fd7a:115c:a1e1::1"), AddrClass::PrivateLan);
        assert_eq!(c("100.64.0.1"), AddrClass::Tailnet);
        assert_eq!(c("100.127.255.254"), AddrClass::Tailnet);
        assert_eq!(c("100.128.0.1"), AddrClass::Public);
        assert_eq!(c("100.100.100.100"), AddrClass::Tailnet);
        assert_eq!(c("8.8.8.8"), AddrClass::Public);
        assert_eq!(c("2001:4860::8888"), AddrClass::Public);
        assert_eq!(c("224.0.0.251"), AddrClass::Multicast);
        assert_eq!(c("ff02::fb"), AddrClass::Multicast);
        assert_eq!(c("0.0.0.0"), AddrClass::Unspecified);
        assert_eq!(c("::"), AddrClass::Unspecified);
    }

    #[test]
    fn mapped_v6_is_canonicalized() {
        assert_eq!(c("::ffff:10.0.0.1"), AddrClass::PrivateLan);
        assert_eq!(c("::ffff:100.64.1.1"), AddrClass::Tailnet);
        assert_eq!(c("::ffff:1.1.1.1"), AddrClass::Public);
    }

    #[test]
    fn known_tailnet_addresses_override() {
        let ts: Vec<IpAddr> = vec!["10.200.0.5".parse().expect("lit")];
        let ip = "10.200.0.5".parse().expect("lit");
        assert_eq!(classify_with_tailnet(ip, &ts), AddrClass::Tailnet);
        assert_eq!(
            classify_with_tailnet("10.200.0.6".parse().expect("lit"), &ts),
            AddrClass::PrivateLan
        );
        assert!(AddrClass::LinkLocal.is_lan());
        assert!(!AddrClass::Tailnet.is_lan());
    }
}

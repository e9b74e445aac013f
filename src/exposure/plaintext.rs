//! The plaintext rule for ordinary (non-Serve) listeners (discovery.md §5, protocol.md §15.5,
//! issue 5 §5): plain `ws` is accepted from loopback and from private-LAN peers on private-LAN
//! addresses (RFC 1918, link-local, ULA other than Tailscale's fd7a:115c:a1e0::/48); a plain `ws`
//! connection to a tailnet or public address is refused with a reason naming the `wss://` URL.
//!
//! Invariants: the decision uses the socket addresses only (the local address that accepted the
//! connection and the peer) — never `Host` or forwarded headers; tailnet addresses are recognised
//! from Tailscale's own list (`Exposure::is_tailnet_ip`) in addition to the fixed ranges, which
//! `pairing::setup_code::plaintext_ok_ip` already excludes. Connections on the dedicated Serve
//! listener never come here (TLS was terminated by tailscaled).
//!
//! Note: classification is by range; an "on-link" refinement (peer inside a local interface
//! prefix) belongs to the shared `net_class` module the discovery work adds.

use std::net::IpAddr;

use super::Exposure;
use crate::pairing::setup_code::plaintext_ok_ip;

/// Why a plaintext connection is refused, or `None` when it is allowed. The text fits a
/// WebSocket close reason (≤ 123 bytes) for realistic MagicDNS names.
pub fn refusal(exposure: &Exposure, peer: IpAddr, local: IpAddr) -> Option<String> {
    let (peer, local) = (peer.to_canonical(), local.to_canonical());
    if local.is_loopback() && peer.is_loopback() {
        return None;
    }
    let tailnet = exposure.is_tailnet_ip(local);
    if !tailnet && plaintext_ok_ip(local) && plaintext_ok_ip(peer) {
        return None;
    }
    let kind = if tailnet || is_fixed_tailnet_range(local) {
        "tailnet"
    } else {
        "public"
    };
    Some(match (exposure.public_url(), exposure.tailnet_dns()) {
        (Some(url), _) => format!("plaintext ws refused on a {kind} address; use {url}"),
        (None, Some(name)) => format!(
            "plaintext ws refused on a {kind} address; use wss://{name} (tailscale.mode=serve)"
        ),
        (None, None) => format!(
            "plaintext ws refused on a {kind} address; use wss:// (gateway.tailscale.mode=serve)"
        ),
    })
}

/// 100.64.0.0/10 or fd7a:115c:a1e0::/48 (fallback classification only).
fn is_fixed_tailnet_range(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            o[0] == 100 && (o[1] & 0xc0) == 64
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            s[0] == 0xfd7a && s[1] == 0x115c && s[2] == 0xa1e0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TailscaleMode;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_and_private_lan_pass_tailnet_and_public_do_not() {
        let e = Exposure::new(TailscaleMode::Off, 443);
        assert_eq!(refusal(&e, ip("127.0.0.1"), ip("127.0.0.1")), None);
        assert_eq!(refusal(&e, ip("::ffff:127.0.0.1"), ip("::1")), None);
        assert_eq!(refusal(&e, ip("192.168.1.9"), ip("192.168.1.2")), None);
        assert_eq!(refusal(&e, ip("fe80::2"), ip("fe80::1")), None);
        assert_eq!(refusal(&e, ip("fd00::2"), ip("fd00::1")), None);
        let t = refusal(&e, ip("100.64.0.4"), ip("100.64.0.3")).unwrap();
        assert!(t.contains("tailnet"), "{t}");
        assert!(refusal(&e, ip("fd7a:115c:a1e0::4"), ip("fd7a:115c:a1e0::3")).is_some());
        let p = refusal(&e, ip("8.8.8.8"), ip("192.0.2.1")).unwrap();
        assert!(p.contains("public"), "{p}");
        // A public peer reaching a LAN address (port forward) is refused too.
        assert!(refusal(&e, ip("8.8.8.8"), ip("192.168.1.2")).is_some());
    }

    #[test]
    fn tailnet_addresses_come_from_tailscale_and_the_reason_names_the_url() {
        let e = Exposure::new(TailscaleMode::Serve, 443);
        e.update(|s| {
            s.tailnet_ips = vec![ip("10.99.0.3")]; // a headscale custom prefix inside RFC 1918
            s.fqdn = Some("london.tail-scale.ts.net".into());
        });
        let r = refusal(&e, ip("10.99.0.4"), ip("10.99.0.3")).unwrap();
        if std::env::var_os(super::super::ENV_TAILNET_DNS).is_none() {
            assert_eq!(
                r,
                "plaintext ws refused on a tailnet address; use wss://london.tail-scale.ts.net"
            );
        }
        assert!(r.len() <= 123);
    }
}

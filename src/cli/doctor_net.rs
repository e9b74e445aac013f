//! The listener part of `clawgate doctor`: the gateway's LISTEN sockets (Linux
//! `/proc/net/tcp{,6}`) and their loopback/private/tailnet/public class.
//!
//! Invariant: classification uses Tailscale's own address list first and the fixed tailnet ranges
//! only as a fallback (threats.md TN-1); reading `/proc` never fails the doctor run (missing files
//! simply list nothing).

use std::net::{IpAddr, SocketAddr};

use super::doctor::{fail, pass, Check};
use crate::exposure::{loopback, Forwarding};

/// Classifies an address for the socket list.
pub fn classify(ip: IpAddr, tailnet: &[IpAddr]) -> &'static str {
    let ip = ip.to_canonical();
    if ip.is_unspecified() {
        "all-interfaces"
    } else if ip.is_loopback() {
        "loopback"
    } else if tailnet.contains(&ip) {
        "tailnet"
    } else if crate::pairing::setup_code::plaintext_ok_ip(ip) {
        "private"
    } else if crate::exposure::plaintext::refusal(&crate::exposure::Exposure::default(), ip, ip)
        .is_some_and(|r| r.contains("tailnet"))
    {
        "tailnet"
    } else {
        "public"
    }
}

/// Lists LISTEN sockets on the gateway port and the ingress port (Linux `/proc/net/tcp{,6}`).
pub(super) fn sockets(
    port: u16,
    bind: crate::config::BindMode,
    ingress: Option<SocketAddr>,
    tailnet: &[IpAddr],
    checks: &mut Vec<Check>,
) {
    let mut found = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        found.extend(text.lines().skip(1).filter_map(|l| listen_entry(l, v6)));
    }
    for addr in found
        .into_iter()
        .filter(|a| a.port() == port || Some(*a) == ingress)
    {
        let class = classify(addr.ip(), tailnet);
        let role = if Some(addr) == ingress {
            "serve ingress (PROXY v2, tailscaled only)"
        } else {
            "gateway"
        };
        let detail = format!("{addr} {class} — {role}");
        // `bind: lan` (and `auto` without a tailnet) listen on all interfaces by design; plaintext
        // from public and tailnet peers is still refused per connection (documented setup).
        let by_design = class == "all-interfaces"
            && matches!(
                bind,
                crate::config::BindMode::Lan | crate::config::BindMode::Auto
            );
        checks.push(if by_design {
            pass("listener", format!("{detail} (bind {}: LAN clients; plaintext from public or tailnet addresses refused per connection)", bind_name(bind)))
        } else if class == "public" || class == "all-interfaces" && role == "gateway" {
            fail("listener", detail, "plaintext ws on public addresses is refused per connection; prefer bind loopback/tailnet with Serve")
        } else {
            pass("listener", detail)
        });
    }
}

fn bind_name(b: crate::config::BindMode) -> String {
    serde_json::to_value(b)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Parses one `/proc/net/tcp[6]` line in LISTEN state (st = 0A) into its local address.
fn listen_entry(line: &str, v6: bool) -> Option<SocketAddr> {
    let mut f = line.split_whitespace();
    let local = f.nth(1)?;
    if f.nth(1)? != "0A" {
        return None;
    }
    let (ip_hex, port_hex) = local.split_once(':')?;
    let port = u16::from_str_radix(port_hex, 16).ok()?;
    let bytes = hex::decode(ip_hex).ok()?;
    let ip = if v6 {
        let mut b = [0u8; 16];
        for (i, w) in bytes.chunks(4).enumerate() {
            for (j, x) in w.iter().rev().enumerate() {
                *b.get_mut(i * 4 + j)? = *x;
            }
        }
        IpAddr::from(b)
    } else {
        let b: [u8; 4] = bytes.try_into().ok()?;
        IpAddr::from([b[3], b[2], b[1], b[0]])
    };
    Some(SocketAddr::new(ip, port))
}

/// What the running gateway's `/readyz` says about loopback forwarding (`None` when it does not
/// run or did not say).
pub(super) fn loopback_from_report(exposure: &serde_json::Value) -> Option<Forwarding> {
    match exposure["loopback"]["state"].as_str()? {
        "forwarded" => Some(Forwarding::Userspace),
        "unknown" => Some(Forwarding::Unknown),
        "local-only" => Some(Forwarding::None),
        _ => None, // "unchecked" (mode off: no Tailscale calls) and anything unknown
    }
}

/// With `tailscale.mode = off` nothing is asked (SL-1): say so, with what it cannot see.
pub(super) fn loopback_unchecked(exposure: &serde_json::Value) -> Option<Check> {
    let l = &exposure["loopback"];
    (l["state"] == "unchecked").then(|| {
        let why = l["consequence"].as_str().unwrap_or_default();
        let fix = l["fix"].as_str().unwrap_or_default();
        pass("loopback forwarding", format!("not checked: {why} ({fix})"))
    })
}

/// Fails while a userspace tailscaled makes the loopback gateway reachable from the tailnet
/// (tailscale.md §12.1): the socket list alone would show "loopback" and look safe.
pub(super) fn loopback_check(f: Forwarding, port: u16) -> Check {
    const NAME: &str = "loopback forwarding";
    match f {
        Forwarding::Userspace => fail(
            NAME,
            format!("tailscaled uses userspace networking: every tailnet peer reaches 127.0.0.1:{port} (plain ws); {}", loopback::CONSEQUENCE),
            loopback::FIX,
        ),
        Forwarding::Unknown => pass(NAME, "tailscaled has not said whether it uses userspace networking; loopback clients are verified with whois"),
        Forwarding::None => pass(NAME, "loopback is not reachable from the tailnet (kernel TUN or sidecar)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_lines_and_classes() {
        let v4 = "   0: 0100007F:4965 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0";
        assert_eq!(
            listen_entry(v4, false),
            Some("127.0.0.1:18789".parse().unwrap())
        );
        let est = v4.replace(" 0A ", " 01 ");
        assert_eq!(listen_entry(&est, false), None);
        let v6 = "   0: 00000000000000000000000001000000:4965 00000000000000000000000000000000:0000 0A 0";
        assert_eq!(listen_entry(v6, true), Some("[::1]:18789".parse().unwrap()));
        let t: Vec<IpAddr> = vec!["10.99.0.3".parse().unwrap()];
        assert_eq!(classify("10.99.0.3".parse().unwrap(), &t), "tailnet");
        assert_eq!(classify("100.64.0.9".parse().unwrap(), &t), "tailnet");
        assert_eq!(classify("192.168.1.1".parse().unwrap(), &t), "private");
        assert_eq!(classify("8.8.8.8".parse().unwrap(), &t), "public");
        assert_eq!(classify("0.0.0.0".parse().unwrap(), &t), "all-interfaces");
    }
}

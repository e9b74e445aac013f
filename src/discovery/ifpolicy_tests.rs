//! Unit tests for the interface policy.
use super::*;

fn e(name: &str, index: u32, ip: &str, prefix: u8) -> IfEntry {
    let ip: IpAddr = ip.parse().expect("literal");
    IfEntry {
        name: name.into(),
        index,
        ip,
        prefix,
        loopback: ip.is_loopback(),
        p2p: false,
        up: true,
    }
}

fn wildcard() -> Policy {
    Policy {
        listen_ips: vec!["::".parse().expect("lit")],
        ..Policy::default()
    }
}

fn names(s: &Selection) -> Vec<String> {
    s.interfaces().into_iter().collect()
}

#[test]
fn loopback_only_listener_selects_nothing() {
    let snap = vec![e("eth0", 2, "192.168.1.5", 24)];
    let p = Policy {
        listen_ips: vec!["127.0.0.1".parse().expect("lit")],
        ..Policy::default()
    };
    assert!(select(&snap, &p).selected.is_empty());
    assert!(!lan_reachable(&["::1".parse().expect("lit")]));
    assert!(lan_reachable(&["0.0.0.0".parse().expect("lit")]));
}

#[test]
fn private_lan_selected_tailnet_p2p_container_public_not() {
    let mut ts = e("tailscale0", 5, "100.101.1.2", 32);
    ts.p2p = true;
    let snap = vec![
        e("lo", 1, "127.0.0.1", 8),
        e("eth0", 2, "192.168.1.5", 24),
        e("eth0", 2, "fe80::1", 64),
        e("docker0", 3, "172.17.0.1", 16),
        e("wan0", 4, "10.0.0.2", 8),
        e("wan0", 4, "2001:db8:1::2", 64),
        ts,
        e("wg0", 6, "10.9.0.1", 24),
    ];
    let s = select(&snap, &wildcard());
    assert_eq!(names(&s), ["eth0"]);
    assert!(s.allows("eth0", "fe80::1".parse().expect("lit")));
    assert_eq!(s.skipped.get("wan0"), Some(&"has a public address"));
    assert!(s
        .skipped
        .get("docker0")
        .is_some_and(|r| r.contains("container")));
    assert!(s.skipped.contains_key("tailscale0") && s.skipped.contains_key("wg0"));
}

#[test]
fn tailnet_address_never_selected_even_on_lan_interface() {
    let snap = vec![
        e("eth0", 2, "100.70.0.1", 10),
        e("eth0", 2, "fd7a:115c:a1e0::9", 48),
    ];
    assert!(select(&snap, &wildcard()).selected.is_empty());
}

#[test]
fn pinning_allows_container_but_never_public() {
    let snap = vec![
        e("eth0", 2, "192.168.1.5", 24),
        e("veth9", 3, "10.88.0.1", 24),
        e("pub0", 4, "203.0.113.7", 24),
    ];
    let mut p = wildcard();
    p.pinned = vec!["veth9".into(), "pub0".into()];
    let s = select(&snap, &p);
    assert_eq!(names(&s), ["veth9"]);
    assert_eq!(
        s.skipped.get("eth0"),
        Some(&"not in discovery.mdns.interfaces")
    );
    assert_eq!(s.skipped.get("pub0"), Some(&"has a public address"));
}

#[test]
fn one_interface_per_subnet() {
    let snap = vec![
        e("wlan0", 3, "192.168.1.6", 24),
        e("wlan0", 3, "fe80::6", 64),
        e("eth0", 2, "192.168.1.5", 24),
        e("eth0", 2, "fe80::5", 64),
    ];
    let s = select(&snap, &wildcard());
    assert_eq!(names(&s), ["eth0"]);
    assert!(!s.allows("wlan0", "fe80::6".parse().expect("lit")));
}

#[test]
fn specific_bind_limits_to_that_address_and_v4_wildcard_to_v4() {
    let snap = vec![
        e("eth0", 2, "192.168.1.5", 24),
        e("eth0", 2, "fe80::5", 64),
        e("eth1", 3, "10.1.0.5", 24),
    ];
    let p = Policy {
        listen_ips: vec!["10.1.0.5".parse().expect("lit")],
        ..Policy::default()
    };
    let s = select(&snap, &p);
    assert_eq!(s.selected.len(), 1);
    assert!(s.allows("eth1", "10.1.0.5".parse().expect("lit")));
    let v4 = Policy {
        listen_ips: vec!["0.0.0.0".parse().expect("lit")],
        ..Policy::default()
    };
    let s = select(&snap, &v4);
    assert!(s.selected.iter().all(|(_, ip)| ip.is_ipv4()));
    assert_eq!(s.selected.len(), 2);
}

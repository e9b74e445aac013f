//! Fault injection (threats.md MD-1): no multicast, IPv6 disabled, no usable interface at start.
//! The gateway must keep serving throughout, never restart, and exit cleanly on SIGTERM.
//! Requires root + `make deps-discovery`.

#[path = "discovery/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::*;
use serde_json::Value;

/// Probe the listener from the peer namespace every 250 ms for `span`; every probe must succeed
/// and the gateway process must stay the same live PID.
fn assert_keeps_serving(net: &Netns, p: &mut Proc, gw: &Gw, span: Duration) -> usize {
    let pid = p.pid();
    let deadline = Instant::now() + span;
    let mut probes = 0;
    while Instant::now() < deadline {
        assert!(p.alive(), "gateway died:\n{}", gw.log());
        assert!(
            tcp_reachable(net, 1, "10.77.0.1", gw.port),
            "listener unreachable:\n{}",
            gw.log()
        );
        probes += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(p.pid(), pid);
    probes
}

fn finish(p: &mut Proc, gw: &Gw) {
    assert_eq!(
        p.stop(Duration::from_secs(6)),
        Some(0),
        "clean exit:\n{}",
        gw.log()
    );
    assert!(!gw.log().contains("panicked"), "{}", gw.log());
}

#[test]
fn no_multicast_and_ipv6_disabled_gateway_keeps_serving() {
    let mut net = Netns::new(2);
    for ns in [0usize, 1] {
        for key in [
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ] {
            net.run(ns, &["sysctl", "-qw", key]);
        }
    }
    let (ia, _) = net.link(0, 1, "lan", &["10.77.0.1/24"], &["10.77.0.2/24"]);
    net.run(0, &["ip", "link", "set", &ia, "multicast", "off"]);
    net.run(0, &["ip", "route", "add", "unreachable", "224.0.0.0/4"]);
    let gw = Gw::new("lan");
    let mut p = start_gateway(&net, 0, &gw);
    let probes = assert_keeps_serving(&net, &mut p, &gw, Duration::from_secs(8));
    assert!(probes >= 10, "too few probes: {probes}");
    let st: Value = gw.status();
    assert_ne!(
        st["mdns"]["state"],
        Value::Null,
        "status must be reported: {st}"
    );
    finish(&mut p, &gw);
}

#[test]
fn interface_appearing_later_is_followed() {
    let mut net = Netns::new(2);
    let (ia, _) = net.link(0, 1, "lan", &["10.77.0.1/24"], &["10.77.0.2/24"]);
    net.run(0, &["ip", "link", "set", &ia, "down"]);
    let gw = Gw::new("lan");
    let mut p = start_gateway(&net, 0, &gw);
    std::thread::sleep(Duration::from_secs(2));
    assert!(p.alive(), "{}", gw.log());
    net.run(0, &["ip", "link", "set", &ia, "up"]);
    net.settle();
    // mdns-sd polls interfaces every 5 s; allow two polls plus probing.
    let r = zc_browse(&net, 1, &["--timeout", "14", "--want-v4"]);
    assert_eq!(
        r["services"].as_array().map(Vec::len),
        Some(1),
        "{r}\n{}",
        gw.log()
    );
    assert_keeps_serving(&net, &mut p, &gw, Duration::from_secs(1));
    finish(&mut p, &gw);
}

#[test]
fn dns_port_taken_leaves_zone_file_and_gateway_serving() {
    let mut net = Netns::new(2);
    net.link(
        0,
        1,
        "lan",
        &["10.77.0.1/24", "100.64.0.1/10"],
        &["10.77.0.2/24", "100.64.0.2/10"],
    );
    net.settle();
    // Another process owns 100.64.0.1:53/udp (e.g. an external DNS server).
    let squat = "import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); \
                 s.bind(('100.64.0.1', 53)); print('bound', flush=True); time.sleep(60)";
    let mut c = net.cmd(0, &["python3", "-c", squat]);
    c.stdout(std::process::Stdio::null());
    let _squatter = Proc::spawn(c, "udp-53-squatter");
    std::thread::sleep(Duration::from_millis(500));
    let mut gw = Gw::new("lan");
    gw.config =
        Some(r#"{ "discovery": { "wideArea": { "domain": "openclaw.internal" } } }"#.into());
    gw.tailnet_ips = vec!["100.64.0.1".into()];
    let mut p = start_gateway(&net, 0, &gw);
    let st = wait_status(&gw, "wide-area failed", Duration::from_secs(15), |s| {
        s["wideArea"]["state"] == "failed"
    });
    assert!(
        gw.state.path().join("dns/openclaw.internal.db").exists(),
        "{st}"
    );
    assert_eq!(
        gw.log().matches("wide-area DNS server off").count(),
        1,
        "one warning:\n{}",
        gw.log()
    );
    assert_keeps_serving(&net, &mut p, &gw, Duration::from_secs(2));
    finish(&mut p, &gw);
}

#[test]
fn ipv6_disabled_host_still_announces_over_ipv4() {
    let mut net = Netns::new(2);
    for key in [
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
    ] {
        net.run(0, &["sysctl", "-qw", key]);
    }
    net.link(0, 1, "lan", &["10.77.0.1/24"], &["10.77.0.2/24"]);
    net.settle();
    let gw = Gw::new("lan");
    let mut p = start_gateway(&net, 0, &gw);
    let r = zc_browse(&net, 1, &["--timeout", "8", "--want-v4"]);
    assert_eq!(
        r["services"][0]["addresses"],
        serde_json::json!(["10.77.0.1"]),
        "{r}\n{}",
        gw.log()
    );
    finish(&mut p, &gw);
}

//! Wide-area DNS-SD: clawgate's embedded server (namespace 0, "tailnet" 100.64.0.1) queried by
//! independent tools from namespace 1: BIND's `dig` for exact records and access control,
//! `named-checkzone` for the zone file, then clawgate's own `discover --domain` and `dns-setup`
//! through the system resolver. (avahi's wide-area browse runs in discovery_avahi.rs.)
//! Requires root + `make deps-discovery`.

#[path = "discovery/harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;
use serde_json::Value;

const DOMAIN: &str = "openclaw.internal";

fn setup() -> (Netns, Gw, Proc) {
    let mut net = Netns::new(2);
    net.link(
        0,
        1,
        "ts",
        &["100.64.0.1/10", "192.168.77.1/24"],
        &["100.64.0.2/10", "192.168.77.2/24"],
    );
    net.run(
        0,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "fd7a:115c:a1e0::1/48",
            "dev",
            "lo",
            "nodad",
        ],
    );
    net.settle();
    net.resolv_conf(0, "100.64.0.1");
    net.resolv_conf(1, "100.64.0.1");
    let mut gw = Gw::new("lan");
    gw.config = Some(format!(
        r#"{{ "discovery": {{ "wideArea": {{ "domain": "{DOMAIN}" }} }} }}"#
    ));
    gw.env = vec![
        ("OPENCLAW_DISABLE_BONJOUR".into(), "1".into()),
        ("OPENCLAW_MDNS_HOSTNAME".into(), "gw-test".into()),
    ];
    gw.tailnet_ips = vec!["100.64.0.1".into(), "fd7a:115c:a1e0::1".into()];
    let p = start_gateway(&net, 0, &gw);
    wait_status(&gw, "wide-area running", Duration::from_secs(10), |s| {
        s["wideArea"]["state"] == "running"
    });
    (net, gw, p)
}

fn dig(net: &Netns, extra: &[&str]) -> String {
    let mut argv = vec!["dig", "+time=2", "+tries=1", "@100.64.0.1"];
    argv.extend_from_slice(extra);
    net.run(1, &argv)
}

#[test]
fn embedded_server_serves_exact_records_to_dig_and_refuses_outsiders() {
    let (net, gw, _p) = setup();
    let svc = format!("_openclaw-gw._tcp.{DOMAIN}");
    let ptr = dig(&net, &[&svc, "PTR", "+short"]);
    let inst = ptr.trim().to_string();
    assert!(inst.ends_with(&format!("-gateway.{svc}.")), "PTR: {ptr:?}");
    assert_eq!(
        dig(&net, &[&inst, "SRV", "+short"]).trim(),
        format!("0 0 {} gw-test.{DOMAIN}.", gw.port)
    );
    let txt = dig(&net, &[&inst, "TXT", "+short"]);
    assert_eq!(
        txt.trim(),
        format!("\"displayName=Studio\" \"role=gateway\" \"transport=gateway\" \"gatewayPort={}\" \"gatewayDirectReachable=1\"", gw.port)
    );
    assert_eq!(
        dig(&net, &[&format!("gw-test.{DOMAIN}"), "A", "+short"]).trim(),
        "100.64.0.1"
    );
    assert_eq!(
        dig(&net, &[&format!("gw-test.{DOMAIN}"), "AAAA", "+short"]).trim(),
        "fd7a:115c:a1e0::1"
    );
    assert!(dig(&net, &[DOMAIN, "SOA", "+short"])
        .starts_with(&format!("ns1.{DOMAIN}. hostmaster.{DOMAIN}. ")));
    // Also over TCP.
    assert_eq!(dig(&net, &["+tcp", &svc, "PTR", "+short"]).trim(), inst);
    // A source outside the tailnet ranges is refused; zone transfers are denied.
    let outsider = dig(&net, &["-b", "192.168.77.2", &svc, "PTR"]);
    assert!(outsider.contains("status: REFUSED"), "{outsider}");
    let axfr = dig(&net, &[DOMAIN, "AXFR"]);
    assert!(!axfr.contains("IN\tSRV"), "AXFR must be denied: {axfr}");

    // The zone file: OpenClaw's layout, valid for BIND.
    let zone = gw.state.path().join(format!("dns/{DOMAIN}.db"));
    let text = std::fs::read_to_string(&zone).expect("zone file");
    assert!(text.starts_with("; openclaw-content-hash: "), "{text}");
    assert!(text.contains("gw-test IN AAAA fd7a:115c:a1e0::1"), "{text}");
    let check = net.run(
        0,
        &["named-checkzone", DOMAIN, zone.to_str().expect("utf8")],
    );
    assert!(check.contains("OK"), "{check}");
    assert_eq!(gw.status()["zoneFile"], zone.display().to_string());
}

#[test]
fn clawgate_discover_and_dns_setup_through_the_system_resolver() {
    let (net, gw, _p) = setup();
    let bin = env!("CARGO_BIN_EXE_clawgate-discovery-dev");
    let out = net
        .cmd(
            1,
            &[
                bin,
                "discover",
                "--timeout",
                "500",
                "--domain",
                DOMAIN,
                "--json",
            ],
        )
        .output()
        .expect("discover");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let b = &v["beacons"][0];
    assert_eq!(v["count"], 1, "{v}");
    assert_eq!(b["wsUrl"], format!("ws://gw-test.{DOMAIN}:{}", gw.port));
    assert_eq!(b["domain"], format!("{DOMAIN}."));
    assert_eq!(
        b["plaintextAllowed"], false,
        "tailnet addresses never allow plaintext: {b}"
    );
    let mut addrs: Vec<String> = b["addresses"]
        .as_array()
        .expect("a")
        .iter()
        .filter_map(|a| a.as_str().map(String::from))
        .collect();
    addrs.sort();
    assert_eq!(addrs, ["100.64.0.1", "fd7a:115c:a1e0::1"]);

    let state = gw.state.path().to_str().expect("utf8");
    let setup = net
        .cmd(
            0,
            &[
                bin,
                "dns-setup",
                "--domain",
                DOMAIN,
                "--state-dir",
                state,
                "--tailnet-ip",
                "100.64.0.1",
            ],
        )
        .output()
        .expect("dns-setup");
    let text = String::from_utf8_lossy(&setup.stdout);
    assert!(
        text.contains("Nameserver: 100.64.0.1") && text.contains(&format!("enter: {DOMAIN}")),
        "{text}"
    );
    assert_eq!(
        setup.status.code(),
        Some(0),
        "all checks should pass:\n{text}"
    );
    assert!(!text.contains("[!!]"), "{text}");
}

#[test]
fn tailnet_address_learned_after_start_brings_the_server_up() {
    let mut net = Netns::new(2);
    net.link(0, 1, "ts", &["100.64.0.1/10"], &["100.64.0.2/10"]);
    net.settle();
    let mut gw = Gw::new("lan");
    gw.config = Some(format!(
        r#"{{ "discovery": {{ "wideArea": {{ "domain": "{DOMAIN}" }} }} }}"#
    ));
    gw.env = vec![("OPENCLAW_DISABLE_BONJOUR".into(), "1".into())];
    gw.dynamic = Some("{}".into());
    let p = start_gateway(&net, 0, &gw);
    wait_disabled(&gw, "wideArea", "waiting");
    std::fs::write(gw.dynamic_path(), r#"{"tailnetIps": ["100.64.0.1"]}"#).expect("write");
    p.signal("HUP");
    wait_status(&gw, "running", Duration::from_secs(10), |s| {
        s["wideArea"]["state"] == "running"
    });
    let ptr = dig(
        &net,
        &[&format!("_openclaw-gw._tcp.{DOMAIN}"), "PTR", "+short"],
    );
    assert!(
        ptr.trim()
            .ends_with(&format!("._openclaw-gw._tcp.{DOMAIN}.")),
        "{ptr:?}"
    );
}

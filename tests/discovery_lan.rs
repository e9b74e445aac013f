//! LAN beacon interop: clawgate in namespace 0, independent peers (python-zeroconf 0.154.0) in
//! namespace 1, joined by a veth pair (spec discovery.md §8). Requires root + `make deps-discovery`.

#[path = "discovery/harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;
use serde_json::{json, Value};

const FP: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn pair() -> Netns {
    let mut net = Netns::new(2);
    net.link(0, 1, "lan", &["10.77.0.1/24"], &["10.77.0.2/24"]);
    net.settle();
    net
}

fn services(v: &Value) -> Vec<Value> {
    v["services"].as_array().cloned().unwrap_or_default()
}

#[test]
fn zeroconf_resolves_exact_txt_reachable_address_update_and_goodbye() {
    let net = pair();
    let mut gw = Gw::new("lan");
    gw.env
        .push(("OPENCLAW_MDNS_HOSTNAME".into(), "gw-test".into()));
    gw.dynamic = Some(json!({"tls": true, "tlsSha256": FP}).to_string());
    let mut p = start_gateway(&net, 0, &gw);

    let r = zc_browse(&net, 1, &["--timeout", "8", "--want-v4"]);
    let s = services(&r);
    assert_eq!(s.len(), 1, "{r}");
    let svc = &s[0];
    assert_eq!(svc["name"], "Studio (OpenClaw)._openclaw-gw._tcp.local.");
    assert_eq!(svc["server"], "gw-test.local.");
    assert_eq!(svc["port"], gw.port);
    let expected = json!({
        "role": "gateway", "gatewayPort": gw.port.to_string(), "lanHost": "gw-test.local",
        "displayName": "Studio", "transport": "gateway", "gatewayTls": "1",
        "gatewayTlsSha256": FP, "gatewayDirectReachable": "1"
    });
    assert_eq!(
        svc["properties"], expected,
        "TXT must be exactly the minimal key set"
    );
    let addrs: Vec<&str> = svc["addresses"]
        .as_array()
        .expect("addrs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(addrs, ["10.77.0.1"], "only the veth address (no loopback)");
    assert!(
        tcp_reachable(&net, 1, "10.77.0.1", gw.port),
        "advertised address must reach the listener"
    );

    // TXT change (fingerprint rotation) ⇒ re-registration visible to peers.
    let fp2 = "f".repeat(64);
    std::fs::write(
        gw.dynamic_path(),
        json!({"tls": true, "tlsSha256": fp2}).to_string(),
    )
    .expect("write");
    p.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = zc_browse(&net, 1, &["--timeout", "3", "--want-v4"]);
        if services(&r)
            .first()
            .is_some_and(|s| s["properties"]["gatewayTlsSha256"] == fp2.as_str())
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rotated fingerprint never seen: {r}"
        );
    }

    // Goodbye on SIGTERM: a running browser sees the removal immediately (not at TTL expiry).
    let watcher = zc_browse_spawn(
        &net,
        1,
        &["--timeout", "10", "--want-v4", "--watch-removal"],
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        p.stop(Duration::from_secs(6)),
        Some(0),
        "clean exit:\n{}",
        gw.log()
    );
    let w = zc_browse_collect(watcher);
    assert_eq!(
        w["removed"],
        json!(["Studio (OpenClaw)._openclaw-gw._tcp.local."]),
        "{w}"
    );
    assert!(gw.log().contains("goodbye sent"));
}

#[test]
fn full_mode_adds_recon_keys_from_env() {
    let net = pair();
    let mut gw = Gw::new("10.77.0.1");
    gw.config = Some(r#"{ discovery: { mdns: { mode: "full" } } }"#.into());
    gw.env.extend([
        ("OPENCLAW_SSH_PORT".into(), "2222".into()),
        (
            "OPENCLAW_CLI_PATH".into(),
            "/opt/clawgate/bin/clawgate".into(),
        ),
        (
            "OPENCLAW_TAILNET_DNS".into(),
            "studio.tail1234.ts.net".into(),
        ),
    ]);
    let _p = start_gateway(&net, 0, &gw);
    let r = zc_browse(&net, 1, &["--timeout", "8", "--want-v4"]);
    let props = &services(&r)[0]["properties"];
    assert_eq!(props["sshPort"], "2222");
    assert_eq!(props["cliPath"], "/opt/clawgate/bin/clawgate");
    assert_eq!(props["tailnetDns"], "studio.tail1234.ts.net");
    assert!(
        props.get("gatewayTls").is_none(),
        "no TLS ⇒ no TLS keys: {props}"
    );
}

#[test]
fn loopback_only_bind_publishes_nothing() {
    let net = pair();
    let gw = Gw::new("loopback");
    let _p = start_gateway(&net, 0, &gw);
    wait_disabled(&gw, "mdns", "loopback");
    // Neither a peer on the link nor a browser in the gateway's own namespace sees anything.
    for ns in [1, 0] {
        let r = zc_browse(&net, ns, &["--timeout", "3"]);
        assert_eq!(r["seen"], json!([]), "ns{ns}: {r}");
    }
}

#[test]
fn public_address_interface_never_answers_private_one_does() {
    let mut net = Netns::new(3);
    net.link(0, 1, "lan", &["10.77.0.1/24"], &["10.77.0.2/24"]);
    // 11.0.0.0/8 is globally routable (not RFC 1918, not documentation space).
    net.link(0, 2, "pub", &["11.1.0.1/24"], &["11.1.0.2/24"]);
    net.settle();
    let gw = Gw::new("lan");
    let _p = start_gateway(&net, 0, &gw);
    let on_private = zc_browse(&net, 1, &["--timeout", "8", "--want-v4"]);
    assert_eq!(
        services(&on_private).len(),
        1,
        "private link must see the beacon: {on_private}"
    );
    let on_public = zc_browse(&net, 2, &["--timeout", "4"]);
    assert_eq!(
        on_public["seen"],
        json!([]),
        "public link must get no answers: {on_public}"
    );
}

#[test]
fn container_veth_only_when_pinned() {
    for pinned in [false, true] {
        let mut net = Netns::new(2);
        let (ia, _) = net.link(0, 1, "veth", &["10.88.0.1/24"], &["10.88.0.2/24"]);
        net.settle();
        let mut gw = Gw::new("lan");
        if pinned {
            gw.config = Some(json!({"discovery": {"mdns": {"interfaces": [ia]}}}).to_string());
        }
        let _p = start_gateway(&net, 0, &gw);
        let r = zc_browse(
            &net,
            1,
            &["--timeout", if pinned { "8" } else { "4" }, "--want-v4"],
        );
        assert_eq!(
            services(&r).len(),
            usize::from(pinned),
            "pinned={pinned}: {r}"
        );
    }
}

#[test]
fn clawgate_discover_finds_zeroconf_gateway_without_trusting_its_fingerprint() {
    let net = pair();
    let (_peer, name) = zc_publish(
        &net,
        1,
        &[
            "--name",
            "Peer Gateway",
            "--server",
            "peer-gw.local.",
            "--address",
            "10.77.0.2",
            "--port",
            "19999",
            "--txt",
            "role=gateway",
            "--txt",
            "gatewayPort=19999",
            "--txt",
            "transport=gateway",
            "--txt",
            "gatewayTls=1",
            "--txt",
            &format!("gatewayTlsSha256={FP}"),
            "--txt",
            "lanHost=-oProxyCommand=evil",
        ],
    );
    assert_eq!(name, "Peer Gateway._openclaw-gw._tcp.local.");
    let bin = env!("CARGO_BIN_EXE_clawgate-discovery-dev");
    let out = net
        .cmd(0, &[bin, "discover", "--timeout", "3000", "--json"])
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
    assert_eq!(b["wsUrl"], "wss://peer-gw.local:19999");
    assert_eq!(b["instanceName"], "Peer Gateway");
    assert_eq!(b["addresses"], json!(["10.77.0.2"]));
    assert_eq!(
        b["tlsFingerprintHint"], FP,
        "advertised value is reported only as a hint"
    );
    assert!(b.get("tlsFingerprint").is_none() && b.get("pin").is_none());
    assert!(
        b["txt"].get("lanHost").is_none(),
        "values with a leading '-' are dropped: {b}"
    );
}

#[test]
fn name_conflict_is_resolved_once_without_a_storm() {
    let net = pair();
    let (_peer, name) = zc_publish(
        &net,
        1,
        &[
            "--name",
            "Studio (OpenClaw)",
            "--server",
            "squatter.local.",
            "--address",
            "10.77.0.2",
            "--port",
            "1",
            "--txt",
            "role=gateway",
        ],
    );
    assert_eq!(name, "Studio (OpenClaw)._openclaw-gw._tcp.local.");
    let gw = Gw::new("lan");
    let _p = start_gateway(&net, 0, &gw);
    wait_status(&gw, "rename", Duration::from_secs(10), |s| {
        s["renames"].as_u64() >= Some(1)
    });
    // Let several announcement rounds pass; the counter must not grow.
    std::thread::sleep(Duration::from_secs(6));
    let st = gw.status();
    assert_eq!(st["renames"], 1, "{st}\n{}", gw.log());
    assert_eq!(st["instance"], "Studio (OpenClaw) (2)", "{st}");
    let r = zc_browse(&net, 1, &["--timeout", "6", "--want-v4", "--settle", "2"]);
    let mut seen: Vec<&str> = r["seen"]
        .as_array()
        .expect("seen")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            "Studio (OpenClaw) (2)._openclaw-gw._tcp.local.",
            "Studio (OpenClaw)._openclaw-gw._tcp.local."
        ],
        "{r}"
    );
}

#[test]
fn disable_bonjour_tristate_with_container_detection() {
    let net = pair();
    // Unset (auto) inside a detected container ⇒ off, naming the signal.
    let mut auto = Gw::new("lan");
    auto.env.clear();
    auto.fake_container = true;
    let _a = start_gateway(&net, 0, &auto);
    wait_disabled(&auto, "mdns", "/run/systemd/container");
    drop(_a);
    // Truthy ⇒ off even with an explicit full mode.
    let mut off = Gw::new("lan");
    off.env = vec![("OPENCLAW_DISABLE_BONJOUR".into(), "yes".into())];
    off.config = Some(r#"{ "discovery": { "mdns": { "mode": "full" } } }"#.into());
    let _o = start_gateway(&net, 0, &off);
    wait_disabled(&off, "mdns", "OPENCLAW_DISABLE_BONJOUR");
    drop(_o);
    // "0" ⇒ forced on inside the same container; peers see it.
    let mut forced = Gw::new("lan");
    forced.env = vec![("OPENCLAW_DISABLE_BONJOUR".into(), "0".into())];
    forced.fake_container = true;
    let _f = start_gateway(&net, 0, &forced);
    let r = zc_browse(&net, 1, &["--timeout", "8", "--want-v4"]);
    assert_eq!(services(&r).len(), 1, "{r}\n{}", forced.log());
}

use std::collections::BTreeMap;

use super::*;

fn beacon(addrs: &[&str], tls: bool, fp: Option<&str>) -> Beacon {
    let mut txt = BTreeMap::new();
    // A lying TXT: routing must ignore it.
    txt.insert("lanHost".to_string(), "evil.example".to_string());
    txt.insert("gatewayPort".to_string(), "1".to_string());
    Beacon {
        instance_name: "vienna".into(),
        domain: "local.".into(),
        host: "vienna-gw.local".into(),
        port: 18789,
        addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        ws_url: "ws://vienna-gw.local:18789".into(),
        tls_hint: tls,
        tls_fingerprint_hint: fp.map(str::to_string),
        plaintext_allowed: false,
        txt,
    }
}

#[test]
fn a_lan_beacon_routes_by_srv_and_address_never_txt() {
    let c = from_beacon(&beacon(&["192.168.1.20"], false, None));
    assert_eq!(c.url, "ws://192.168.1.20:18789");
    assert!(c.unusable.is_none());
    assert!(c.server_name.is_none());
}

#[test]
fn a_tls_beacon_keeps_the_srv_host_as_tls_name_and_the_fingerprint_only_as_a_hint() {
    let fp = "ab".repeat(32);
    let c = from_beacon(&beacon(&["100.64.0.7"], true, Some(&fp)));
    assert_eq!(c.url, "wss://100.64.0.7:18789");
    assert_eq!(c.server_name.as_deref(), Some("vienna-gw.local"));
    assert_eq!(c.hint.as_deref(), Some(fp.as_str()));
    assert!(
        c.fingerprint.is_none(),
        "an advertised fingerprint is never a pin"
    );
    let t = c.tls_opts(&TlsOpts::default());
    assert!(t.fingerprint.is_none(), "the hint never becomes the pin");
    assert_eq!(t.server_name.as_deref(), Some("vienna-gw.local"));
}

#[test]
fn a_plaintext_beacon_on_a_tailnet_or_public_address_is_listed_but_unusable() {
    for a in ["100.64.0.7", "fd7a:115c:a1e0::7", "8.8.8.8"] {
        let c = from_beacon(&beacon(&[a], false, None));
        assert!(c.unusable.is_some(), "{a}");
    }
    // The LAN address of a dual-homed beacon is chosen over its tailnet one.
    let c = from_beacon(&beacon(&["100.64.0.7", "10.1.2.3"], false, None));
    assert_eq!(c.url, "ws://10.1.2.3:18789");
}

#[test]
fn tailnet_candidates_are_secure_only() {
    let c = tailnet("vienna.tail1234.ts.net", 18789);
    let urls: Vec<&str> = c.iter().map(|c| c.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "wss://vienna.tail1234.ts.net",
            "wss://vienna.tail1234.ts.net:18789"
        ]
    );
    let v6 = tailnet("fd7a:115c:a1e0::7", 18789);
    assert_eq!(v6[1].url, "wss://[fd7a:115c:a1e0::7]:18789");
}

#[test]
fn host_port_parses_every_form() {
    assert_eq!(host_port("ws://1.2.3.4:5"), Some(("1.2.3.4".into(), 5)));
    assert_eq!(host_port("wss://n.ts.net"), Some(("n.ts.net".into(), 443)));
    assert_eq!(host_port("wss://[::1]:9/x"), Some(("::1".into(), 9)));
    assert_eq!(host_port("ws://[::1]"), Some(("::1".into(), 80)));
    assert_eq!(host_port("http://x"), None);
}

#[tokio::test]
async fn the_plaintext_rule_judges_the_effective_url() {
    assert!(vet("ws://127.0.0.1:18789").await.is_ok());
    assert!(vet("ws://[::1]:18789").await.is_ok());
    assert!(vet("ws://192.168.1.5:18789").await.is_ok());
    assert!(vet("wss://100.64.0.1").await.is_ok());
    let e = vet("ws://100.64.0.1:18789").await.unwrap_err();
    assert!(e.contains("wss://"), "{e}");
    assert!(vet("ws://8.8.8.8:18789").await.is_err());
    assert!(vet("ws://[fd7a:115c:a1e0::1]:1").await.is_err());
}

#[tokio::test]
async fn a_vetted_name_is_dialled_by_the_address_that_was_checked() {
    let u = vet("ws://localhost:18789/x").await.unwrap();
    assert!(
        u == "ws://127.0.0.1:18789/x" || u == "ws://[::1]:18789/x",
        "{u}"
    );
    assert_eq!(vet("ws://10.0.0.1:1").await.unwrap(), "ws://10.0.0.1:1");
    assert_eq!(vet("wss://n.ts.net").await.unwrap(), "wss://n.ts.net");
}

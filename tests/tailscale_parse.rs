//! Parsing real-shaped LocalAPI JSON. The `testnet_*.json` fixtures were captured from a tsnet
//! node of the offline testnet (tailscale.com v1.102.3, testcontrol); the lenient cases mutate
//! them the way newer or older tailscaled versions differ (unknown fields and states, `null`
//! slices, omitted `omitzero` fields).

use clawgate::tailscale::{BackendState, Notify, Prefs, Status, WhoIs};
use serde_json::{json, Value};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/tailscale/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("fixture is JSON")
}

#[test]
fn testnet_status_yields_identity_and_capabilities() {
    let st: Status = serde_json::from_value(fixture("testnet_status.json")).unwrap();
    assert_eq!(st.backend_state, BackendState::Running);
    assert_eq!(st.fqdn(), Some("london.tail-scale.ts.net"));
    assert_eq!(st.short_host(), Some("london"));
    assert!(st.magic_dns_enabled());
    assert_eq!(st.tailscale_ips.len(), 2);
    let me = st.self_node.as_ref().unwrap();
    assert_eq!(me.dns_name, "london.tail-scale.ts.net.");
    assert_eq!(me.tailscale_ips, st.tailscale_ips);
    assert!(me.has_cap("https") && me.has_cap("funnel"));
    assert!(me.has_cap("https://tailscale.com/cap/funnel-ports"));
    assert_eq!(me.funnel_ports(), vec![8080, 443]);
    assert!(!st.peer.is_empty());
    assert!(st
        .user
        .values()
        .any(|u| u.login_name.starts_with("user-1@")));
}

#[test]
fn status_tolerates_unknown_states_fields_nulls_and_omissions() {
    let mut v = fixture("testnet_status.json");
    v["BackendState"] = json!("SomeFutureState");
    v["BrandNewTopLevel"] = json!({"x": [1, 2, 3]});
    v["Health"] = Value::Null;
    v["Peer"] = Value::Null;
    v["CertDomains"] = Value::Null;
    v["Self"]["NewSelfField"] = json!(true);
    v["Self"]["CapMap"] = Value::Null;
    let obj = v["Self"].as_object_mut().unwrap();
    for omitted in [
        "Created",
        "LastSeen",
        "KeyExpiry",
        "Tags",
        "PeerAPIURL",
        "OS",
    ] {
        obj.remove(omitted);
    }
    let st: Status = serde_json::from_value(v).unwrap();
    assert_eq!(
        st.backend_state,
        BackendState::Other("SomeFutureState".into())
    );
    assert!(st.peer.is_empty() && st.health.is_empty() && st.cert_domains.is_empty());
    // Without CertDomains the FQDN falls back to Self.DNSName minus the dot.
    assert_eq!(st.fqdn(), Some("london.tail-scale.ts.net"));
    assert!(!st.self_node.unwrap().has_cap("https"));
    let empty: Status = serde_json::from_str("{}").unwrap();
    assert_eq!(empty.fqdn(), None);
    assert_eq!(empty.backend_state, BackendState::NoState);
}

#[test]
fn whois_of_a_user_node_gives_its_login() {
    let w: WhoIs = serde_json::from_value(fixture("testnet_whois_vienna.json")).unwrap();
    assert!(!w.is_tagged());
    let node = w.node.as_ref().unwrap();
    assert_eq!(node.name, "vienna.tail-scale.ts.net.");
    assert!(node.addresses.iter().any(|a| a.starts_with("100.")));
    assert!(w
        .user()
        .unwrap()
        .login_name
        .ends_with("@fake-control.example.net"));
}

#[test]
fn whois_of_a_tagged_node_gives_no_user() {
    let v = fixture("testnet_whois_tagged.json");
    // testcontrol attaches a per-node user profile even to tagged nodes; it is not an identity.
    assert!(v["UserProfile"]["LoginName"].is_string());
    let w: WhoIs = serde_json::from_value(v).unwrap();
    assert!(w.is_tagged());
    assert_eq!(w.node.as_ref().unwrap().tags, vec!["tag:testnet"]);
    assert!(w.user().is_none());
    assert!(w.cap_map.contains_key("https://tailscale.com/cap/ingress"));
}

#[test]
fn whois_without_omitzero_fields_parses() {
    let mut v = fixture("testnet_whois_vienna.json");
    let node = v["Node"].as_object_mut().unwrap();
    for omitted in [
        "Created",
        "ComputedName",
        "ComputedNameWithHost",
        "Hostinfo",
        "Machine",
    ] {
        node.remove(omitted);
    }
    v["CapMap"] = Value::Null;
    v["Node"]["Tags"] = Value::Null;
    let w: WhoIs = serde_json::from_value(v).unwrap();
    assert!(w.node.as_ref().unwrap().hostinfo.is_none());
    assert!(w.user().is_some());
    let bare: WhoIs = serde_json::from_str(r#"{"UserProfile":{"LoginName":"a@b"}}"#).unwrap();
    assert_eq!(bare.user().unwrap().login_name, "a@b");
}

#[test]
fn prefs_and_notify_parse() {
    let p: Prefs = serde_json::from_value(fixture("testnet_prefs.json")).unwrap();
    assert_eq!(p.hostname, "london");
    assert!(p.want_running && p.corp_dns && !p.shields_up);
    let n: Notify = serde_json::from_str(
        r#"{"Version":"1.102.3","SessionID":"abc","State":2,"BrowseToURL":"http://x","Unknown":1}"#,
    )
    .unwrap();
    assert_eq!(n.state, Some(BackendState::NeedsLogin));
    assert_eq!(n.session_id.as_deref(), Some("abc"));
    assert!(n.wants_status_refresh());
    let quiet: Notify = serde_json::from_str(r#"{"Engine":{"RBytes":1}}"#).unwrap();
    assert!(!quiet.wants_status_refresh());
}

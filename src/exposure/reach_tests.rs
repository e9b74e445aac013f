//! Unit tests of [`super::evaluate`]: every branch of the tailnet/public split on captured-shape
//! LocalAPI JSON.

use super::*;

const FQDN: &str = "gw.ts.net";
const PORTS: &str = "https://tailscale.com/cap/funnel-ports?ports=443,8443";

fn status(caps: &[&str], health: &[&str]) -> Status {
    let caps: serde_json::Map<_, _> = caps.iter().map(|c| (c.to_string(), Value::Null)).collect();
    serde_json::from_value(json!({
        "BackendState": "Running",
        "Health": health,
        "Self": {"DNSName": "gw.ts.net.", "CapMap": caps},
    }))
    .unwrap()
}

fn serve_with_funnel(on: bool) -> ServeConfig {
    let mut fg = ServeConfig::default();
    fg.allow_funnel.insert(format!("{FQDN}:443"), on);
    let mut cfg = ServeConfig::default();
    cfg.foreground.insert("sess-1".into(), fg);
    cfg
}

/// A node where Funnel works on 443.
fn healthy() -> Observed {
    Observed {
        status: status(&["https", "funnel", PORTS], &[]),
        prefs: Some(Prefs::default()),
        serve: serve_with_funnel(true),
        fqdn: FQDN.into(),
        port: FunnelPort::P443,
    }
}

fn route_ok() -> Line {
    Line::ok("route 443 → 127.0.0.1:4000 held")
}

fn public(o: &Observed) -> Line {
    evaluate(TailscaleMode::Funnel, &route_ok(), Ok(o)).public
}

fn remedy(l: &Line) -> &str {
    l.remedy.as_deref().unwrap_or("")
}

#[test]
fn off_turns_both_lines_off_whatever_the_route_says() {
    let r = evaluate(
        TailscaleMode::Off,
        &Line::degraded("x", "y"),
        Ok(&healthy()),
    );
    assert_eq!(
        (r.tailnet.state, r.public.state),
        (Health::Off, Health::Off)
    );
    assert_eq!(r.overall().state, Health::Off);
}

#[test]
fn serve_reports_public_off_and_tailnet_from_the_route() {
    let r = evaluate(TailscaleMode::Serve, &route_ok(), Err("unused"));
    assert_eq!(r.tailnet, route_ok());
    assert_eq!(r.public.state, Health::Off);
    assert!(r
        .public
        .reason
        .as_deref()
        .unwrap()
        .contains("Funnel not enabled"));
    assert_eq!(r.overall(), &route_ok());
    let conflict = Line::degraded("route conflict: port 443", "remove the other handler");
    let r = evaluate(TailscaleMode::Serve, &conflict, Err("unused"));
    assert_eq!(r.overall(), &conflict);
}

#[test]
fn funnel_ok_when_everything_holds_and_overall_reports_the_route() {
    let r = evaluate(TailscaleMode::Funnel, &route_ok(), Ok(&healthy()));
    assert_eq!(r.tailnet, route_ok());
    assert_eq!(r.public.state, Health::Ok, "{:?}", r.public);
    assert_eq!(r.public.remedy, None);
    assert_eq!(r.overall(), &route_ok());
}

#[test]
fn no_route_means_no_funnel_with_the_route_remedy() {
    let route = Line::degraded("preflight: HttpsOff", "enable HTTPS certificates");
    let r = evaluate(TailscaleMode::Funnel, &route, Ok(&healthy()));
    assert_eq!(r.public.state, Health::Degraded);
    assert!(r.public.reason.as_deref().unwrap().contains("HttpsOff"));
    assert_eq!(remedy(&r.public), "enable HTTPS certificates");
    assert_eq!(r.overall(), &route, "tailnet wins ties");
}

#[test]
fn unreadable_live_data_is_degraded_not_ok() {
    let p = evaluate(TailscaleMode::Funnel, &route_ok(), Err("status: timed out")).public;
    assert_eq!(p.state, Health::Degraded);
    assert!(p.reason.as_deref().unwrap().contains("timed out"));
    assert!(remedy(&p).contains("LocalAPI"));
    let start = Reachability::starting(TailscaleMode::Funnel);
    assert_eq!(
        (start.tailnet.state, start.public.state),
        (Health::Degraded, Health::Degraded)
    );
}

#[test]
fn a_revoked_funnel_cap_degrades_public_only_with_the_policy_remedy() {
    let mut o = healthy();
    o.status = status(&["https", PORTS], &[]);
    let r = evaluate(TailscaleMode::Funnel, &route_ok(), Ok(&o));
    assert_eq!(r.tailnet.state, Health::Ok);
    assert_eq!(r.public.state, Health::Degraded);
    assert!(r
        .public
        .reason
        .as_deref()
        .unwrap()
        .contains("not permitted"));
    assert!(remedy(&r.public).contains("funnel nodeAttr"));
    assert_eq!(r.overall(), &r.public, "overall is the worst line");
}

#[test]
fn a_port_outside_funnel_ports_names_the_port() {
    let mut o = healthy();
    o.port = FunnelPort::P10000;
    let p = public(&o);
    assert_eq!(p.state, Health::Degraded);
    assert!(p.reason.as_deref().unwrap().contains("10000"), "{p:?}");
    assert!(remedy(&p).contains("funnel-ports"));
    // Without funnel-ports at all the port is not allowed either.
    o.status = status(&["https", "funnel"], &[]);
    o.port = FunnelPort::P443;
    assert!(public(&o)
        .reason
        .as_deref()
        .unwrap()
        .contains("funnel-ports"));
}

#[test]
fn allow_funnel_must_still_be_true_in_the_live_config() {
    let mut o = healthy();
    o.serve = serve_with_funnel(false);
    let p = public(&o);
    assert_eq!(p.state, Health::Degraded);
    assert!(p.reason.as_deref().unwrap().contains("AllowFunnel"));
    o.serve = ServeConfig::default();
    assert_eq!(public(&o).state, Health::Degraded);
    // Background AllowFunnel counts as tailscaled counts it.
    o.serve.allow_funnel.insert(format!("{FQDN}:443"), true);
    assert_eq!(public(&o).state, Health::Ok);
}

#[test]
fn shields_up_degrades_public_with_the_command_to_fix_it() {
    let mut o = healthy();
    o.prefs = Some(Prefs {
        shields_up: true,
        ..Prefs::default()
    });
    let p = public(&o);
    assert_eq!(p.state, Health::Degraded);
    assert!(remedy(&p).contains("--shields-up=false"));
    o.prefs = None; // unreadable prefs alone never degrade
    assert_eq!(public(&o).state, Health::Ok);
}

#[test]
fn only_known_funnel_relevant_health_warnings_count() {
    let mut o = healthy();
    let noise = [
        "This is an unstable version of Tailscale meant for testing and development purposes.",
        "Subnet routing is enabled, but IP forwarding is disabled.",
    ];
    o.status = status(&["https", "funnel", PORTS], &noise);
    assert_eq!(public(&o).state, Health::Ok, "unrelated warnings ignored");
    for w in [
        "Tailscale could not connect to any relay server. Check your Internet connection.",
        "Tailscale hasn't heard from the 'fra' relay server in 5m0s.",
        "Tailscale cannot connect because the network is down. Check your Internet connection.",
        "Funnel is temporarily unavailable for this tailnet.",
    ] {
        o.status = status(&["https", "funnel", PORTS], &[w]);
        let p = public(&o);
        assert_eq!(p.state, Health::Degraded, "{w}");
        assert!(p.reason.as_deref().unwrap().contains(w));
        assert!(remedy(&p).contains("relays"));
    }
}

#[test]
fn several_problems_are_all_reported() {
    let mut o = healthy();
    o.status = status(
        &["https"],
        &["Tailscale could not connect to any relay server."],
    );
    o.serve = ServeConfig::default();
    let p = public(&o);
    let reason = p.reason.as_deref().unwrap();
    assert!(
        reason.contains("not permitted")
            && reason.contains("AllowFunnel")
            && reason.contains("relay")
    );
    assert_eq!(remedy(&p).matches("; ").count(), 2);
}

#[test]
fn only_funnel_permission_leaves_the_route_alone() {
    assert!(!blocks_route(&PreflightIssue::FunnelNotPermitted));
    assert!(!blocks_route(&PreflightIssue::FunnelPortNotAllowed {
        port: 443,
        allowed: vec![]
    }));
    for i in [
        PreflightIssue::MagicDnsOff,
        PreflightIssue::HttpsOff,
        PreflightIssue::ShieldsUp,
        PreflightIssue::NotRunning(crate::tailscale::BackendState::Stopped),
    ] {
        assert!(blocks_route(&i), "{i:?}");
    }
}

#[test]
fn lines_serialize_with_wire_names() {
    let v = Line::degraded("why", "fix").to_json();
    assert_eq!(
        v,
        json!({"state": "degraded", "reason": "why", "remedy": "fix"})
    );
    assert_eq!(Line::off("x").to_json()["remedy"], Value::Null);
}

//! SL-10 on the offline tailnet: exposure health distinguishes tailnet reachability (Serve) from
//! public reachability (Funnel). The real `clawgate` binary runs in `mode = funnel` on london;
//! revoking london's `funnel` node capability through the harness control API degrades only the
//! public line (with the policy remedy), vienna keeps reaching the gateway over `wss://`, doctor
//! shows both lines and exits 1, and restoring the cap brings the public line back.

mod common;

use std::time::Duration;

use common::doctor;
use common::testnet::{self, Testnet};
use common::{call, connect_params, handshake, Device};
use serde_json::{json, Value};

/// Bound on the whole test.
const BOUND: Duration = Duration::from_secs(150);
/// How long the route may take to be claimed after start.
const CLAIM: Duration = Duration::from_secs(20);
/// How long a cap change may take to show (netmap push + the 5 s re-check, with slack for a
/// loaded 2-core machine).
const NOTICE: Duration = Duration::from_secs(20);

/// POST /caps on london (`null` removes a cap).
async fn set_funnel_cap(net: &Testnet, value: Value) {
    let body = json!({"node": "london", "caps": {"funnel": value}});
    let code = testnet::control_post(net, "/caps", &body).await;
    assert_eq!(code, 204, "POST /caps {body}");
}

/// Vienna connects over `wss://london.<magicdns>` and (paired) gets hello-ok and a health answer.
async fn vienna_reaches_hello_ok(net: &Testnet, d: &Device) {
    let (mut ws, _) = testnet::wss_from(net, "vienna", "london", &[], &[])
        .await
        .unwrap();
    let res =
        common::signed_operator(&mut ws, d, json!({"password": common::FUNNEL_PASSWORD})).await;
    assert_eq!(res["ok"], true, "{res}");
    let h = call(&mut ws, "h1", "health", json!({})).await;
    assert_eq!(h["ok"], true, "{h}");
}

/// A loopback operator authenticated by the password (admin + pairing scopes).
async fn admin(gw: &common::Gateway) -> common::Ws {
    let mut ws = common::open(&gw.url(), &[]).await;
    let scopes = ["operator.admin", "operator.pairing"];
    let auth = json!({"password": common::FUNNEL_PASSWORD});
    let (_, ok) = handshake(&mut ws, connect_params(auth, &scopes)).await;
    assert_eq!(ok["ok"], true, "{ok}");
    ws
}

/// Pairs `d` from vienna: first contact asks for pairing, a loopback admin approves.
async fn pair_from_vienna(net: &Testnet, gw: &common::Gateway, d: &Device) {
    let (mut ws, _) = testnet::wss_from(net, "vienna", "london", &[], &[])
        .await
        .unwrap();
    let res =
        common::signed_operator(&mut ws, d, json!({"password": common::FUNNEL_PASSWORD})).await;
    let rid = res["error"]["details"]["requestId"]
        .as_str()
        .unwrap_or_else(|| panic!("pairing request expected: {res}"))
        .to_owned();
    let mut admin = admin(gw).await;
    let params = json!({"requestId": rid});
    let r = call(&mut admin, "a1", "device.pair.approve", params).await;
    assert_eq!(r["ok"], true, "{r}");
}

#[tokio::test]
async fn a_revoked_funnel_cap_degrades_public_only_and_the_tailnet_keeps_working() {
    common::bounded(BOUND, async {
        let Some(net) = Testnet::start(&[]).await else {
            return;
        };
        let auth = json!({"auth": {"mode": "password", "password": common::FUNNEL_PASSWORD}});
        let gw = common::attached_gateway(&net, "funnel", auth.clone(), &[]);
        let exp = testnet::wait_exposure(gw.port, "ok", CLAIM).await;
        let reach = &exp["reachability"];
        assert_eq!(reach["tailnet"]["state"], "ok", "{exp}");
        assert_eq!(reach["public"]["state"], "ok", "{exp}");
        assert!(reach["public"].get("lastFunnelConnectionMs").is_none());

        // A public client through the Funnel entry is noted as the last Funnel connection.
        let (mut ws, _) = testnet::wss_funnel(&net, "london", &[]).await.unwrap();
        assert_eq!(common::next(&mut ws).await["event"], "connect.challenge");
        let exp = testnet::readyz(gw.port).await["exposure"].clone();
        let last = &exp["reachability"]["public"]["lastFunnelConnectionMs"];
        assert!(last.as_i64().is_some_and(|ms| ms > 0), "{exp}");
        let d = Device::new();
        pair_from_vienna(&net, &gw, &d).await;

        // Revoke Funnel: public degrades with the policy remedy, the tailnet stays ok.
        set_funnel_cap(&net, Value::Null).await;
        let exp = testnet::wait_reach(gw.port, "public", "degraded", NOTICE).await;
        let public = &exp["reachability"]["public"];
        assert!(
            public["reason"].as_str().unwrap().contains("not permitted"),
            "{exp}"
        );
        assert!(
            public["remedy"]
                .as_str()
                .unwrap()
                .contains("funnel nodeAttr"),
            "{exp}"
        );
        assert_eq!(exp["reachability"]["tailnet"]["state"], "ok", "{exp}");
        assert_eq!(
            exp["tailscale"], "degraded",
            "top level is the worst line: {exp}"
        );
        vienna_reaches_hello_ok(&net, &d).await;
        let st = call(&mut admin(&gw).await, "s1", "status", json!({})).await;
        let lines = &st["payload"]["exposure"]["reachability"];
        assert_eq!(
            (
                lines["tailnet"]["state"].as_str(),
                lines["public"]["state"].as_str()
            ),
            (Some("ok"), Some("degraded")),
            "status carries both lines: {st}"
        );

        // Doctor (reading this gateway's /readyz) shows both lines with the fix and exits 1.
        let home = tempfile::tempdir().unwrap();
        let mut cfg = json!({"gateway": {"port": gw.port, "tailscale": {"mode": "funnel",
            "sidecar": {"attach": net.handshake_file("london")}}}});
        cfg["gateway"]["auth"] = auth["auth"].clone();
        let cfg_path = home.path().join("openclaw.json");
        std::fs::write(&cfg_path, cfg.to_string()).unwrap();
        let (code, report) = doctor::run_json(&cfg_path, home.path(), &[]);
        assert_eq!(code, 1, "{report}");
        let check = |name| doctor::check(&report, name);
        assert_eq!(check("tailnet reachability")["ok"], true, "{report}");
        let public = check("public reachability");
        assert_eq!(public["ok"], false, "{report}");
        assert!(public["fix"].as_str().unwrap().contains("funnel nodeAttr"));
        assert!(public["detail"]
            .as_str()
            .unwrap()
            .contains("last Funnel connection"));
        let (code, text) = doctor::run(&cfg_path, home.path(), &[], false);
        assert_eq!(code, 1, "{text}");
        assert!(text.contains("ok   tailnet reachability: ok"), "{text}");
        assert!(
            text.contains("FAIL public reachability: degraded"),
            "{text}"
        );
        assert!(text.contains("fix: add the funnel nodeAttr"), "{text}");

        // Restore: public comes back without dropping the tailnet.
        set_funnel_cap(&net, json!([])).await;
        let exp = testnet::wait_reach(gw.port, "public", "ok", NOTICE).await;
        assert_eq!(exp["reachability"]["tailnet"]["state"], "ok", "{exp}");
        assert_eq!(exp["tailscale"], "ok", "{exp}");
        let (code, text) = doctor::run(&cfg_path, home.path(), &[], false);
        assert!(text.contains("ok   public reachability: ok"), "{text}");
        assert_eq!(code, 0, "{text}");
        drop(gw);
        net.stop().await;
    })
    .await;
}

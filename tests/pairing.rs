//! Pairing lifecycle, device tokens and node routing against the real binary.

mod common;

use common::*;
use serde_json::{json, Value};

/// Headers that make a loopback connection count as proxied, hence remote.
const PROXIED: &[(&str, &str)] = &[("x-forwarded-for", "203.0.113.9")];

async fn admin(gw: &Gateway) -> Ws {
    operator(
        gw,
        &[
            "operator.admin",
            "operator.pairing",
            "operator.read",
            "operator.write",
        ],
    )
    .await
}

/// Waits for an event named `name`, skipping others.
async fn event(ws: &mut Ws, name: &str) -> Value {
    loop {
        let f = next(ws).await;
        if f["event"] == name {
            return f;
        }
        assert!(f.get("close").is_none() && f.get("error").is_none(), "{f}");
    }
}

#[tokio::test]
async fn local_node_is_silently_paired_and_reuses_its_device_token() {
    let gw = Gateway::start(&[]);
    let d = Device::new();
    let (_ws, res) = node(&gw, &d, &[], &["system.which"]).await;
    assert_eq!(res["ok"], true, "{res}");
    let auth = &res["payload"]["auth"];
    assert_eq!(
        (auth["role"].as_str(), auth["method"].as_str()),
        (Some("node"), Some("token"))
    );
    let token = auth["deviceToken"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 43);
    // Reconnect with only the device token.
    let (_ws2, res) = d
        .connect(
            &gw.url(),
            PROXIED,
            "node",
            ("node-host", "node"),
            &[],
            json!({"deviceToken": token}),
            json!({}),
        )
        .await;
    assert_eq!(res["payload"]["auth"]["method"], "device-token", "{res}");
    assert_eq!(
        res["payload"]["auth"]["deviceToken"],
        token.as_str(),
        "token confirmed, not rotated"
    );
    // A wrong device token is refused with its own code.
    let (_ws3, res) = d
        .connect(
            &gw.url(),
            PROXIED,
            "node",
            ("node-host", "node"),
            &[],
            json!({"deviceToken": "x".repeat(43)}),
            json!({}),
        )
        .await;
    assert_eq!(
        res["error"]["details"]["code"],
        "AUTH_DEVICE_TOKEN_MISMATCH"
    );
}

#[tokio::test]
async fn remote_device_waits_for_approval_with_one_request() {
    let gw = Gateway::start(&[]);
    let mut adm = admin(&gw).await;
    let d = Device::new();
    let (mut ws, res) = node(&gw, &d, PROXIED, &[]).await;
    assert_eq!(res["error"]["code"], "NOT_PAIRED", "{res}");
    let det = &res["error"]["details"];
    assert_eq!(det["code"], "PAIRING_REQUIRED");
    assert_eq!(det["reason"], "not-paired");
    assert_eq!(det["requestedRole"], "node");
    assert_eq!(det["requestedScopes"], json!([]));
    let rid = det["requestId"].as_str().unwrap().to_string();
    assert_eq!(
        det["remediationHint"],
        format!("clawgate devices approve {rid}")
    );
    assert_eq!(
        next(&mut ws).await,
        json!({"close": 1008, "reason": format!("pairing required (requestId: {rid})")})
    );
    let ev = event(&mut adm, "device.pair.requested").await;
    assert_eq!(ev["payload"]["requestId"], rid.as_str());
    // Retries reuse the one live request.
    for _ in 0..5 {
        let (_w, r) = node(&gw, &d, PROXIED, &[]).await;
        assert_eq!(r["error"]["details"]["requestId"], rid.as_str());
    }
    let list = call(&mut adm, "l", "device.pair.list", json!({})).await;
    assert_eq!(list["payload"]["pending"].as_array().unwrap().len(), 1);
    let ok = call(
        &mut adm,
        "a",
        "device.pair.approve",
        json!({"requestId": rid}),
    )
    .await;
    assert_eq!(ok["ok"], true, "{ok}");
    assert!(
        ok["payload"]["device"]["tokens"][0].get("token").is_none(),
        "tokens are redacted"
    );
    let (_ws, res) = node(&gw, &d, PROXIED, &[]).await;
    assert_eq!(res["ok"], true, "{res}");
    assert!(res["payload"]["auth"]["deviceToken"].is_string());
}

#[tokio::test]
async fn approval_and_rotation_are_bounded_by_the_callers_scopes() {
    let gw = Gateway::start(&[]);
    let d = Device::new();
    let (_w, res) = d
        .connect(
            &gw.url(),
            PROXIED,
            "operator",
            ("cli", "cli"),
            &["operator.admin"],
            json!({"token": TOKEN}),
            json!({}),
        )
        .await;
    let rid = res["error"]["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_string();
    let mut pairing_only = operator(&gw, &["operator.pairing"]).await;
    let r = call(
        &mut pairing_only,
        "1",
        "device.pair.approve",
        json!({"requestId": rid}),
    )
    .await;
    assert_eq!(
        r["error"]["details"]["reason"], "caller-missing-scope",
        "{r}"
    );
    let mut adm = admin(&gw).await;
    assert_eq!(
        call(
            &mut adm,
            "2",
            "device.pair.approve",
            json!({"requestId": rid})
        )
        .await["ok"],
        true
    );
    let r = call(
        &mut pairing_only,
        "3",
        "device.token.rotate",
        json!({"deviceId": d.id, "role": "operator", "scopes": ["operator.admin"]}),
    )
    .await;
    assert_eq!(
        r["error"]["details"]["reason"], "caller-missing-scope",
        "GHSA-4jpw-hj22-2xmc: {r}"
    );
    let r = call(
        &mut adm,
        "4",
        "device.token.rotate",
        json!({"deviceId": d.id, "role": "node"}),
    )
    .await;
    assert_eq!(r["error"]["details"]["reason"], "role-not-approved");
    let r = call(
        &mut adm,
        "5",
        "device.token.rotate",
        json!({"deviceId": d.id, "role": "operator", "scopes": ["operator.read"]}),
    )
    .await;
    assert_eq!(
        (
            r["payload"]["tokenDelivery"].as_str(),
            r["payload"].get("token")
        ),
        (Some("withheld-cross-device"), None)
    );
}

#[tokio::test]
async fn removal_and_revocation_close_the_devices_sockets() {
    let gw = Gateway::start(&[]);
    let d = Device::new();
    let (mut ws, res) = node(&gw, &d, &[], &[]).await;
    assert_eq!(res["ok"], true);
    let mut adm = admin(&gw).await;
    let r = call(
        &mut adm,
        "1",
        "device.token.revoke",
        json!({"deviceId": d.id, "role": "node"}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    loop {
        let f = next(&mut ws).await;
        if f.get("close").is_some() {
            assert_eq!(f, json!({"close": 1008, "reason": "device token revoked"}));
            break;
        }
    }
    let (mut ws, _) = node(&gw, &d, &[], &[]).await;
    let r = call(
        &mut adm,
        "2",
        "device.pair.remove",
        json!({"deviceId": d.id}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    loop {
        let f = next(&mut ws).await;
        if f.get("close").is_some() {
            assert_eq!(f["reason"], "device removed");
            break;
        }
    }
}

#[tokio::test]
async fn node_invoke_routes_through_the_gateway() {
    let gw = Gateway::start(&[]);
    let d = Device::new();
    let (mut nws, res) = node(&gw, &d, &[], &["system.which", "echo.slow"]).await;
    assert_eq!(res["ok"], true);
    let mut adm = admin(&gw).await;
    let invoke = json!({"nodeId": d.id, "command": "system.which", "params": {"bins": ["git"]}, "idempotencyKey": "k1"});
    let r = call(&mut adm, "i0", "node.invoke", invoke.clone()).await;
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not approved"),
        "commands wait for approval: {r}"
    );
    let pending = call(&mut adm, "p", "node.pair.list", json!({})).await;
    let rid = pending["payload"]["pending"][0]["requestId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        pending["payload"]["pending"][0]["requiredApproveScopes"],
        json!(["operator.pairing", "operator.admin"])
    );
    assert_eq!(
        call(
            &mut adm,
            "pa",
            "node.pair.approve",
            json!({"requestId": rid})
        )
        .await["ok"],
        true
    );
    send(
        &mut adm,
        json!({"type": "req", "id": "i1", "method": "node.invoke", "params": invoke}),
    )
    .await;
    let req = event(&mut nws, "node.invoke.request").await;
    let p = &req["payload"];
    assert_eq!(
        (p["command"].as_str(), p["paramsJSON"].as_str()),
        (Some("system.which"), Some(r#"{"bins":["git"]}"#))
    );
    let id = p["id"].as_str().unwrap();
    let ack = call(
        &mut nws,
        "n1",
        "node.invoke.result",
        json!({"id": id, "nodeId": d.id, "ok": true, "payloadJSON": "{\"git\":\"/usr/bin/git\"}"}),
    )
    .await;
    assert_eq!(ack["payload"], json!({"ok": true}));
    let r = next_res(&mut adm).await;
    assert_eq!(r["id"], "i1");
    assert_eq!(r["payload"]["payloadJSON"], "{\"git\":\"/usr/bin/git\"}");
    // Same idempotency key: answered from the first result, the node sees nothing new.
    let again = call(
        &mut adm,
        "i2",
        "node.invoke",
        json!({"nodeId": d.id, "command": "system.which", "idempotencyKey": "k1"}),
    )
    .await;
    assert_eq!(
        again["payload"]["payloadJSON"],
        "{\"git\":\"/usr/bin/git\"}"
    );
    // Late results are acknowledged and ignored.
    let late = call(
        &mut nws,
        "n2",
        "node.invoke.result",
        json!({"id": id, "nodeId": d.id, "ok": true}),
    )
    .await;
    assert_eq!(late["payload"], json!({"ok": true, "ignored": true}));
    // Operators cannot call node-role methods.
    let r = call(
        &mut adm,
        "x",
        "node.invoke.result",
        json!({"id": id, "nodeId": d.id, "ok": true}),
    )
    .await;
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("unauthorized role"));
    // A node disconnect fails its pending invokes.
    send(&mut adm, json!({"type": "req", "id": "i3", "method": "node.invoke", "params": {"nodeId": d.id, "command": "echo.slow", "idempotencyKey": "k3"}})).await;
    let _ = event(&mut nws, "node.invoke.request").await;
    drop(nws);
    let r = next_res(&mut adm).await;
    assert_eq!(
        (r["id"].as_str(), r["error"]["code"].as_str()),
        (Some("i3"), Some("UNAVAILABLE")),
        "{r}"
    );
    let r = call(
        &mut adm,
        "i4",
        "node.invoke",
        json!({"nodeId": d.id, "command": "system.which", "idempotencyKey": "k4"}),
    )
    .await;
    assert_eq!(r["error"]["details"]["code"], "NOT_CONNECTED");
}

#[tokio::test]
async fn node_invoke_times_out() {
    let gw = Gateway::start(&[]);
    let d = Device::new();
    let (mut nws, _) = node(&gw, &d, &[], &["echo.slow"]).await;
    let mut adm = admin(&gw).await;
    let rid = call(&mut adm, "p", "node.pair.list", json!({})).await["payload"]["pending"][0]
        ["requestId"]
        .as_str()
        .unwrap()
        .to_string();
    call(
        &mut adm,
        "a",
        "node.pair.approve",
        json!({"requestId": rid}),
    )
    .await;
    send(&mut adm, json!({"type": "req", "id": "t", "method": "node.invoke", "params": {"nodeId": d.id, "command": "echo.slow", "idempotencyKey": "kt", "timeoutMs": 200}})).await;
    let _ = event(&mut nws, "node.invoke.request").await;
    let r = next_res(&mut adm).await;
    assert_eq!(r["error"]["message"], "TIMEOUT: node invoke timed out");
}

async fn try_node(gw: &Gateway, d: &Device) -> Option<(Ws, Value)> {
    let client = ("node-host", "node");
    d.try_connect(
        &gw.url(),
        PROXIED,
        "node",
        client,
        &[],
        json!({"token": TOKEN}),
        json!({}),
    )
    .await
}

/// kill -9 in the middle of a loop of approvals loses no completed approval and
/// leaves nothing corrupt.
#[tokio::test]
async fn approvals_survive_kill_9() {
    let mut gw = Gateway::start(&[]);
    let mut approved: Vec<(Device, String)> = Vec::new();
    for round in 0..3 {
        let pid = gw.child.id();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(150 + 70 * round));
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        });
        let mut adm = admin(&gw).await;
        for _ in 0..200 {
            let d = Device::new();
            let Some((_w, res)) = try_node(&gw, &d).await else {
                break;
            };
            let Some(rid) = res["error"]["details"]["requestId"].as_str() else {
                break;
            };
            let approve = call(
                &mut adm,
                "a",
                "device.pair.approve",
                json!({"requestId": rid}),
            );
            match tokio::time::timeout(std::time::Duration::from_secs(2), approve).await {
                Ok(v) if v["ok"] == true => {
                    assert_eq!(v["payload"]["device"]["deviceId"], d.id.as_str())
                }
                _ => break,
            }
            let Some((_w, res)) = try_node(&gw, &d).await else {
                break;
            };
            match res["payload"]["auth"]["deviceToken"].as_str() {
                Some(t) => approved.push((d, t.to_string())),
                None => break,
            }
        }
        killer.join().unwrap();
        gw = gw.kill9_and_restart();
    }
    assert!(
        approved.len() >= 3,
        "the loop made progress ({})",
        approved.len()
    );
    for (d, token) in &approved {
        let client = ("node-host", "node");
        let (_w, res) = d
            .connect(
                &gw.url(),
                PROXIED,
                "node",
                client,
                &[],
                json!({"deviceToken": token}),
                json!({}),
            )
            .await;
        assert_eq!(res["ok"], true, "approved device {} lost: {res}", d.id);
    }
}

#[tokio::test]
async fn setup_code_bootstraps_a_node_once() {
    let gw = Gateway::start(&[]);
    let mut adm = admin(&gw).await;
    let r = call(&mut adm, "q0", "device.pair.setupCode", json!({})).await;
    assert_eq!(
        r["error"]["details"]["reason"], "no-url",
        "loopback-only gateway has no URL to hand out: {r}"
    );
    let r = call(
        &mut adm,
        "q1",
        "device.pair.setupCode",
        json!({"publicUrl": "ws://100.101.102.103:18789"}),
    )
    .await;
    assert_eq!(
        r["error"]["details"]["reason"], "url-not-allowed",
        "never ws:// to a tailnet address"
    );
    let r = call(
        &mut adm,
        "q2",
        "device.pair.setupCode",
        json!({"publicUrl": format!("ws://127.0.0.1:{}", gw.port), "bootstrapProfile": "full"}),
    )
    .await;
    let p = &r["payload"];
    assert_eq!(
        (p["access"].as_str(), p["accessDowngraded"].as_bool()),
        (Some("limited"), Some(true)),
        "{r}"
    );
    let payload = clawgate::pairing::setup_code::decode(p["setupCode"].as_str().unwrap()).unwrap();
    assert!(payload.expires_at_ms.unwrap() > 0);
    let d = Device::new();
    let auth = json!({"bootstrapToken": payload.bootstrap_token});
    let (_ws, res) = d
        .connect(
            &payload.url,
            PROXIED,
            "node",
            ("openclaw-android", "node"),
            &[],
            auth.clone(),
            json!({}),
        )
        .await;
    assert_eq!(res["ok"], true, "{res}");
    let a = &res["payload"]["auth"];
    assert_eq!(a["method"], "bootstrap-token");
    assert!(a["deviceToken"].is_string());
    let op = &a["deviceTokens"][0];
    assert_eq!(op["role"], "operator");
    assert!(
        !op["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "operator.admin" || s == "operator.pairing"),
        "{op}"
    );
    // Single use: a second device (or the same one) cannot reuse it.
    let (_ws, res) = Device::new()
        .connect(
            &payload.url,
            PROXIED,
            "node",
            ("openclaw-android", "node"),
            &[],
            auth,
            json!({}),
        )
        .await;
    assert_eq!(
        res["error"]["details"]["code"],
        "AUTH_BOOTSTRAP_TOKEN_INVALID"
    );
}

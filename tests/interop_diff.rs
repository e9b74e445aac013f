//! Differential wire test: the reference OpenClaw 2026.9.6 gateway (`openclaw gateway run`) and
//! clawgate, side by side on loopback with the same token, get the same sequence of requests —
//! every method clawgate implements, with a real `openclaw node run` node host behind the node
//! methods, plus bad inputs (unknown method, missing scope, bad params, oversized frame, wrong
//! token, wrong role) — and must answer alike ([`common::wirediff`]). Every accepted difference
//! is listed with its reason in `tests/fixtures/reference/diff-allow.json`; an entry that no
//! longer matches anything fails the test too, so the list stays true.
//!
//! With CLAWGATE_REQUIRE_INTEROP=1 (make test) a missing OpenClaw install fails the suite.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::openclaw::{json_of, kill_group, node_host, oc, peer_dir};
use common::reference::Reference;
use common::wirediff::{self, Allowed, Diff};
use common::{bounded, call, handshake, next, open, send, Device, Gateway, Ws, TOKEN};
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Answers of one gateway, by case name.
type Answers = BTreeMap<String, Value>;

/// Whole-test bound: the reference's cold start (≤ 150 s) plus two node-host runs.
const TEST_LIMIT: Duration = Duration::from_secs(420);
/// A pre-auth frame just above the 64 KiB pre-auth limit (threats.md RL-2).
const OVERSIZED_FRAME: usize = 65 * 1024 + 1;
/// Scopes of the admin operator session (everything the implemented methods need).
const ALL_SCOPES: &[&str] = &[
    "operator.admin",
    "operator.read",
    "operator.write",
    "operator.pairing",
];

fn allow_list_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference/diff-allow.json")
}

/// Device-less shared-token connect params (what `openclaw gateway call` sends).
fn cli_connect(token: &str, scopes: &[&str]) -> Value {
    common::connect_params(json!({ "token": token }), scopes)
}

/// Records `frame` under `case`, with the per-request id removed.
fn put(a: &mut Answers, case: &str, mut frame: Value) {
    if let Some(o) = frame.as_object_mut() {
        o.remove("id");
    }
    a.insert(case.to_string(), frame);
}

/// Connect cases that end the socket: the answer and the close frame.
async fn preauth_cases(url: &str, a: &mut Answers) {
    let mut ws = open(url, &[]).await;
    let (ch, res) = handshake(&mut ws, cli_connect("wrong-token-0123456789abcdef", &[])).await;
    put(a, "connect.challenge", ch);
    put(a, "connect.wrong-token", res);
    put(a, "connect.wrong-token.close", close_of(&mut ws).await);

    let mut ws = open(url, &[]).await;
    let mut p = cli_connect(TOKEN, &["operator.read"]);
    p["minProtocol"] = json!(2);
    p["maxProtocol"] = json!(2);
    let (_, res) = handshake(&mut ws, p).await;
    put(a, "connect.protocol-mismatch", res);
    put(
        a,
        "connect.protocol-mismatch.close",
        close_of(&mut ws).await,
    );

    let mut ws = open(url, &[]).await;
    let _ = next(&mut ws).await;
    let _ = ws.send(Message::text("x".repeat(OVERSIZED_FRAME))).await;
    put(a, "preauth.oversized.close", close_of(&mut ws).await);

    let mut ws = open(url, &[]).await;
    let _ = next(&mut ws).await;
    send(
        &mut ws,
        json!({"type": "req", "id": "h1", "method": "health", "params": {}}),
    )
    .await;
    let res = next(&mut ws).await;
    put(a, "preauth.not-connect", res);
}

/// The close frame (or end of stream) that follows, skipping any further frames.
async fn close_of(ws: &mut Ws) -> Value {
    for _ in 0..5 {
        let f = next(ws).await;
        if f.get("close").is_some() || f.get("error").is_some() {
            return json!({"close": f["close"], "reason": f["reason"]});
        }
    }
    json!({"close": "no close within 5 frames"})
}

/// An operator session over a device-less token connect; records its `hello-ok` as `case`.
async fn operator(url: &str, scopes: &[&str], case: &str, a: &mut Answers) -> Ws {
    let mut ws = open(url, &[]).await;
    let (_, res) = handshake(&mut ws, cli_connect(TOKEN, scopes)).await;
    assert_eq!(res["ok"], true, "{url} {case}: {res}");
    put(a, case, res);
    ws
}

/// Calls `method` and records the answer as `case`.
async fn rec(ws: &mut Ws, a: &mut Answers, case: &str, method: &str, params: Value) -> Value {
    let res = call(ws, case, method, params).await;
    put(a, case, res.clone());
    res
}

/// Every operator method with an empty or unknown target, bad params and a wrong role.
async fn admin_cases(url: &str, a: &mut Answers) {
    let mut ws = operator(url, ALL_SCOPES, "connect.hello.admin", a).await;
    let none = json!({});
    for m in [
        "health",
        "status",
        "system-presence",
        "gateway.identity.get",
        "config.get",
        "device.pair.list",
        "node.pair.list",
        "node.list",
    ] {
        rec(&mut ws, a, m, m, none.clone()).await;
    }
    let cases: &[(&str, &str, Value)] = &[
        ("system-event", "system-event", json!({"text": "diff"})),
        ("system-event.bad-params", "system-event", json!({})),
        ("node.describe.bad-params", "node.describe", json!({})),
        (
            "node.describe.unknown",
            "node.describe",
            json!({"nodeId": "nope"}),
        ),
        (
            "device.pair.approve.unknown",
            "device.pair.approve",
            json!({"requestId": "nope"}),
        ),
        (
            "device.pair.reject.unknown",
            "device.pair.reject",
            json!({"requestId": "nope"}),
        ),
        (
            "device.pair.remove.unknown",
            "device.pair.remove",
            json!({"deviceId": "nope"}),
        ),
        (
            "device.pair.rename.unknown",
            "device.pair.rename",
            json!({"deviceId": "nope", "label": "x"}),
        ),
        (
            "device.token.rotate.unknown",
            "device.token.rotate",
            json!({"deviceId": "nope", "role": "operator"}),
        ),
        (
            "device.token.revoke.unknown",
            "device.token.revoke",
            json!({"deviceId": "nope", "role": "operator"}),
        ),
        (
            "device.pair.setupCode.loopback",
            "device.pair.setupCode",
            json!({}),
        ),
        (
            "node.pair.approve.unknown",
            "node.pair.approve",
            json!({"requestId": "nope"}),
        ),
        (
            "node.pair.reject.unknown",
            "node.pair.reject",
            json!({"requestId": "nope"}),
        ),
        (
            "node.pair.remove.unknown",
            "node.pair.remove",
            json!({"nodeId": "nope"}),
        ),
        (
            "node.rename.unknown",
            "node.rename",
            json!({"nodeId": "nope", "displayName": "x"}),
        ),
        (
            "node.invoke.bad-params",
            "node.invoke",
            json!({"nodeId": "nope", "command": "system.which"}),
        ),
        (
            "node.invoke.exec-approvals",
            "node.invoke",
            json!({"nodeId": "nope", "command": "system.execApprovals.get", "idempotencyKey": "k0"}),
        ),
        (
            "node.invoke.result.wrong-role",
            "node.invoke.result",
            json!({"id": "x", "nodeId": "x", "ok": true}),
        ),
        (
            "node.invoke.progress.wrong-role",
            "node.invoke.progress",
            json!({}),
        ),
        ("node.event.wrong-role", "node.event", json!({"event": "x"})),
        ("unknown-method", "no.such.method", json!({})),
    ];
    for (case, m, p) in cases {
        rec(&mut ws, a, case, m, p.clone()).await;
    }
}

/// A read-only session calling methods that need more (missing scope).
async fn read_only_cases(url: &str, a: &mut Answers) {
    let mut ws = operator(url, &["operator.read"], "connect.hello.read", a).await;
    let cases: &[(&str, &str, Value)] = &[
        ("scope.device.pair.list", "device.pair.list", json!({})),
        ("scope.node.pair.list", "node.pair.list", json!({})),
        ("scope.system-event", "system-event", json!({"text": "x"})),
        (
            "scope.node.invoke",
            "node.invoke",
            json!({"nodeId": "x", "command": "a", "idempotencyKey": "k"}),
        ),
        (
            "scope.device.pair.setupCode",
            "device.pair.setupCode",
            json!({}),
        ),
        ("scope.config.get", "config.get", json!({})),
    ];
    for (case, m, p) in cases {
        rec(&mut ws, a, case, m, p.clone()).await;
    }
}

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
async fn node_host_cases(dir: &Path, url: &str, port: u16, a: &mut Answers) -> Value {
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
    let args = [
        "nodes",
        "invoke",
        "--node",
        node_id,
        "--command",
        "system.which",
        "--params",
        r#"{"bins":["sh"]}"#,
        "--url",
        url,
        "--token",
        TOKEN,
        "--json",
    ];
    let o = oc(dir, home.path(), &args);
    assert!(
        o.status.success(),
        "{url}: openclaw nodes invoke: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    json_of(&o)
}

/// Node-role methods from our own signed node device (silently paired on loopback).
async fn node_role_cases(url: &str, a: &mut Answers) {
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

/// The whole sequence against one gateway; returns its answers and the CLI's invoke payload.
async fn script(dir: &Path, url: String, port: u16) -> (Answers, Value) {
    let mut a = Answers::new();
    preauth_cases(&url, &mut a).await;
    admin_cases(&url, &mut a).await;
    read_only_cases(&url, &mut a).await;
    node_role_cases(&url, &mut a).await;
    let payload = node_host_cases(dir, &url, port, &mut a).await;
    (a, payload)
}

/// Both answer sets as pretty JSON under the target's temp dir, for reading a failure.
fn save_answers(reference: &Answers, ours: &Answers) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop-diff");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, a) in [("reference", reference), ("clawgate", ours)] {
        let text = serde_json::to_string_pretty(a).unwrap();
        std::fs::write(dir.join(format!("{name}.json")), text).unwrap();
    }
    dir.display().to_string()
}

fn report(diffs: &[Diff], unallowed: &[Diff], stale: &[&Allowed]) -> String {
    let mut s = format!(
        "{} differences, {} not allowed:\n",
        diffs.len(),
        unallowed.len()
    );
    for d in unallowed {
        s += &format!("  NOT ALLOWED {d}\n");
    }
    for a in stale {
        s += &format!(
            "  STALE allow-list entry {} {} ({})\n",
            a.case, a.path, a.reason
        );
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clawgate_answers_like_the_reference_gateway() {
    let Some(dir) = peer_dir() else { return };
    let mut reference = Reference::spawn(&dir, TOKEN);
    let gw = Gateway::start(&[]);
    let reference = tokio::task::spawn_blocking(move || {
        reference.wait_ready();
        reference
    })
    .await
    .unwrap();
    bounded(TEST_LIMIT, reference.wait_rpc(TOKEN)).await;
    let (ours, theirs) = bounded(TEST_LIMIT, async {
        tokio::join!(
            script(&dir, gw.url(), gw.port),
            script(&dir, reference.url(), reference.port)
        )
    })
    .await;
    // The real CLI prints the same result object from both gateways.
    assert_eq!(ours.1, theirs.1, "openclaw nodes invoke --json payload");
    assert!(
        ours.1["bins"]["sh"]
            .as_str()
            .is_some_and(|p| p.ends_with("/sh")),
        "{}",
        ours.1
    );
    let saved = save_answers(&theirs.0, &ours.0);
    let diffs = wirediff::diff_all(&theirs.0, &ours.0);
    let allow = wirediff::load_allow(&allow_list_path());
    let (unallowed, stale) = wirediff::judge(&diffs, &allow);
    eprintln!(
        "answers saved in {saved}\n{}",
        report(&diffs, &unallowed, &stale)
    );
    for d in &diffs {
        eprintln!("  {d}");
    }
    assert!(
        unallowed.is_empty() && stale.is_empty(),
        "{}",
        report(&diffs, &unallowed, &stale)
    );
}

/// The comparator itself catches what the differential test relies on.
#[test]
fn comparator_flags_codes_keys_and_types() {
    let r = json!({"ok": false, "error": {"code": "FORBIDDEN", "details": {"code": "MISSING_SCOPE"}}, "n": 1, "a": [{"x": 1}]});
    let same = json!({"ok": false, "error": {"code": "FORBIDDEN", "details": {"code": "MISSING_SCOPE"}}, "n": 7, "a": [{"x": 2}, {}]});
    assert!(wirediff::diff("c", &r, &same).is_empty());
    let o = json!({"ok": true, "error": {"code": "INVALID_REQUEST", "details": {}}, "n": "1", "a": [{"y": 1}], "extra": null});
    let mut paths: Vec<String> = wirediff::diff("c", &r, &o)
        .into_iter()
        .map(|d| d.path)
        .collect();
    paths.sort();
    let want = [
        "$.a[].x",
        "$.a[].y",
        "$.error.code",
        "$.error.details.code",
        "$.extra",
        "$.n",
        "$.ok",
    ];
    assert_eq!(paths, want);
    let allow = vec![Allowed {
        case: "c*".into(),
        path: "$.a".into(),
        reason: "arrays differ on purpose".into(),
    }];
    let d = wirediff::diff("c1", &r, &o);
    let (unallowed, stale) = wirediff::judge(&d, &allow);
    assert_eq!(unallowed.len(), 5);
    assert!(stale.is_empty());
    let (_, stale) = wirediff::judge(&[], &allow);
    assert_eq!(stale.len(), 1);
}

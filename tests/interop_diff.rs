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
use std::time::Duration;

use common::openclaw::peer_dir;
use common::reference::Reference;
use common::wirediff::{self, Allowed, Diff};
use common::{bounded, call, handshake, next, open, send, Gateway, Ws, TOKEN};
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

/// Admin-session cases, one per line: `case method params-json`.
const ADMIN_CASES: &[&str] = &[
    r#"health health {}"#,
    r#"status status {}"#,
    r#"system-presence system-presence {}"#,
    r#"gateway.identity.get gateway.identity.get {}"#,
    r#"config.get config.get {}"#,
    r#"device.pair.list device.pair.list {}"#,
    r#"node.pair.list node.pair.list {}"#,
    r#"node.list node.list {}"#,
    r#"system-event system-event {"text":"diff"}"#,
    r#"system-event.bad-params system-event {}"#,
    r#"node.describe.bad-params node.describe {}"#,
    r#"node.describe.unknown node.describe {"nodeId":"nope"}"#,
    r#"device.pair.approve.unknown device.pair.approve {"requestId":"nope"}"#,
    r#"device.pair.reject.unknown device.pair.reject {"requestId":"nope"}"#,
    r#"device.pair.remove.unknown device.pair.remove {"deviceId":"nope"}"#,
    r#"device.pair.rename.unknown device.pair.rename {"deviceId":"nope","label":"x"}"#,
    r#"device.token.rotate.unknown device.token.rotate {"deviceId":"nope","role":"operator"}"#,
    r#"device.token.revoke.unknown device.token.revoke {"deviceId":"nope","role":"operator"}"#,
    r#"device.pair.setupCode.loopback device.pair.setupCode {}"#,
    r#"node.pair.approve.unknown node.pair.approve {"requestId":"nope"}"#,
    r#"node.pair.reject.unknown node.pair.reject {"requestId":"nope"}"#,
    r#"node.pair.remove.unknown node.pair.remove {"nodeId":"nope"}"#,
    r#"node.rename.unknown node.rename {"nodeId":"nope","displayName":"x"}"#,
    r#"node.invoke.bad-params node.invoke {"nodeId":"nope","command":"system.which"}"#,
    r#"node.invoke.exec-approvals node.invoke {"nodeId":"nope","command":"system.execApprovals.get","idempotencyKey":"k0"}"#,
    r#"node.invoke.result.wrong-role node.invoke.result {"id":"x","nodeId":"x","ok":true}"#,
    r#"node.invoke.progress.wrong-role node.invoke.progress {}"#,
    r#"node.event.wrong-role node.event {"event":"x"}"#,
    r#"unknown-method no.such.method {}"#,
];

/// Read-only-session cases calling methods that need more (missing scope).
const READ_ONLY_CASES: &[&str] = &[
    r#"scope.device.pair.list device.pair.list {}"#,
    r#"scope.node.pair.list node.pair.list {}"#,
    r#"scope.system-event system-event {"text":"x"}"#,
    r#"scope.node.invoke node.invoke {"nodeId":"x","command":"a","idempotencyKey":"k"}"#,
    r#"scope.device.pair.setupCode device.pair.setupCode {}"#,
    r#"scope.config.get config.get {}"#,
];

/// Runs `case method params` lines on one session.
async fn run_cases(ws: &mut Ws, a: &mut Answers, cases: &[&str]) {
    for line in cases {
        let mut it = line.splitn(3, ' ');
        let (case, method) = (it.next().unwrap(), it.next().unwrap());
        let params: Value = serde_json::from_str(it.next().unwrap()).unwrap();
        rec(ws, a, case, method, params).await;
    }
}

#[path = "interop_diff/nodes.rs"]
mod nodes;

/// The whole sequence against one gateway; returns its answers and the CLI's invoke payload.
async fn script(dir: &Path, url: String, port: u16) -> (Answers, Value) {
    let mut a = Answers::new();
    preauth_cases(&url, &mut a).await;
    let mut ws = operator(&url, ALL_SCOPES, "connect.hello.admin", &mut a).await;
    run_cases(&mut ws, &mut a, ADMIN_CASES).await;
    let mut ws = operator(&url, &["operator.read"], "connect.hello.read", &mut a).await;
    run_cases(&mut ws, &mut a, READ_ONLY_CASES).await;
    nodes::node_role_cases(&url, &mut a).await;
    let payload = nodes::node_host_cases(dir, &url, port, &mut a).await;
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
        sometimes: false,
    }];
    let d = wirediff::diff("c1", &r, &o);
    let (unallowed, stale) = wirediff::judge(&d, &allow);
    assert_eq!(unallowed.len(), 5);
    assert!(stale.is_empty());
    let (_, stale) = wirediff::judge(&[], &allow);
    assert_eq!(stale.len(), 1);
    let sometimes = vec![Allowed {
        sometimes: true,
        ..allow[0].clone()
    }];
    let (_, stale) = wirediff::judge(&[], &sometimes);
    assert!(stale.is_empty(), "a `sometimes` entry is never stale");
}

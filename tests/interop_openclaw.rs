//! Interop: the real OpenClaw 2026.9.6 CLI (installed by `make deps-openclaw`)
//! against clawgate. With CLAWGATE_REQUIRE_INTEROP=1 (make interop / CI) a missing
//! peer fails the suite; otherwise these tests say they skipped.

mod common;

use common::openclaw::{json_of, oc, peer_dir};
use common::{Gateway, TOKEN};

#[test]
fn openclaw_gateway_health_call_probe() {
    let Some(dir) = peer_dir() else { return };
    let gw = Gateway::start(&[]);
    let home = tempfile::tempdir().unwrap();
    let url = gw.url();
    let o = oc(
        &dir,
        home.path(),
        &["gateway", "health", "--url", &url, "--token", TOKEN],
    );
    assert!(
        o.status.success(),
        "health failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("OK"));

    let o = oc(
        &dir,
        home.path(),
        &[
            "gateway", "call", "status", "--json", "--url", &url, "--token", TOKEN,
        ],
    );
    assert!(
        o.status.success(),
        "call status failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json_of(&o);
    assert_eq!(v["ok"], true);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));

    let o = oc(
        &dir,
        home.path(),
        &[
            "gateway", "probe", "--url", &url, "--token", TOKEN, "--json",
        ],
    );
    assert!(
        o.status.success(),
        "probe failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json_of(&o);
    let t = v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "explicit")
        .expect("explicit target")
        .clone();
    assert_eq!(t["connect"]["ok"], true, "{t}");
    assert_eq!(t["connect"]["rpcOk"], true, "{t}");
    assert_eq!(t["server"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(t["auth"]["capability"], "read_only");
}

#[test]
fn openclaw_wrong_token_is_auth_token_mismatch() {
    let Some(dir) = peer_dir() else { return };
    let gw = Gateway::start(&[]);
    let home = tempfile::tempdir().unwrap();
    let o = oc(
        &dir,
        home.path(),
        &[
            "gateway",
            "call",
            "health",
            "--json",
            "--url",
            &gw.url(),
            "--token",
            "definitely-wrong",
        ],
    );
    assert!(!o.status.success());
    let v = json_of(&o);
    assert_eq!(v["error"]["code"], "INVALID_REQUEST");
    assert_eq!(v["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
}

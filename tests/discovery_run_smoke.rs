//! Smoke test of the real `clawgate run` with discovery wired in: a LAN bind is discovered by
//! python-zeroconf in another namespace and says goodbye on shutdown.

#[path = "discovery/harness.rs"]
mod harness;

use std::process::Stdio;
use std::time::Duration;

use harness::*;

#[test]
fn clawgate_run_with_lan_bind_is_discovered_and_says_goodbye() {
    let mut net = Netns::new(2);
    net.link(0, 1, "lan", &["10.77.0.1/24"], &["10.77.0.2/24"]);
    net.settle();
    let state = tempfile::tempdir().expect("state");
    let port = "18789";
    let cfg = state.path().join("openclaw.json");
    std::fs::write(
        &cfg,
        r#"{ "discovery": { "mdns": { "mode": "minimal" } } }"#,
    )
    .expect("cfg");
    let bin = env!("CARGO_BIN_EXE_clawgate");
    let mut c = net.cmd(
        0,
        &[
            bin,
            "run",
            "--bind",
            "lan",
            "--port",
            port,
            "--config",
            cfg.to_str().expect("utf8"),
        ],
    );
    c.env("OPENCLAW_STATE_DIR", state.path())
        .env("HOME", state.path())
        .env("OPENCLAW_DISABLE_BONJOUR", "0")
        .env("OPENCLAW_MDNS_HOSTNAME", "gw-test")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut p = Proc::spawn(c, "clawgate run");
    let r = zc_browse(&net, 1, &["--timeout", "10", "--want-v4"]);
    let s = &r["services"][0];
    assert_eq!(s["server"], "gw-test.local.", "{r}");
    assert_eq!(s["port"], 18789);
    assert_eq!(s["properties"]["role"], "gateway");
    assert_eq!(s["addresses"], serde_json::json!(["10.77.0.1"]));
    let watcher = zc_browse_spawn(
        &net,
        1,
        &["--timeout", "10", "--want-v4", "--watch-removal"],
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(p.stop(Duration::from_secs(10)), Some(0));
    let w = zc_browse_collect(watcher);
    assert_eq!(
        w["removed"].as_array().map(Vec::len),
        Some(1),
        "goodbye expected: {w}"
    );
}

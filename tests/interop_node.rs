//! Interop with the real OpenClaw node host (`openclaw node run`) and CLI:
//! silent local pairing, command-surface approval, `nodes list`, and
//! `system.which` through clawgate — over loopback, and from another network
//! namespace where pairing needs an explicit approval.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use common::openclaw::{invoke_which_sh, json_of, node_host, oc, peer_dir};
use common::{wait_for, Gateway, TOKEN};
use serde_json::Value;

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        common::openclaw::kill_group(&mut self.0);
    }
}

/// `clawgate <args> --url … --token … --json`, optionally inside a netns.
fn cg(netns: Option<&str>, url: &str, args: &[&str]) -> Value {
    let bin = env!("CARGO_BIN_EXE_clawgate");
    let mut c = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, bin]);
            c
        }
        None => Command::new(bin),
    };
    let o = c
        .args(args)
        .args(["--url", url, "--token", TOKEN, "--json"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "clawgate {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn connected_node(netns: Option<&str>, url: &str) -> Option<String> {
    let v = cg(netns, url, &["nodes", "list"]);
    v["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["connected"] == true)
        .and_then(|n| n["nodeId"].as_str().map(str::to_string))
}

fn pending_surface(netns: Option<&str>, url: &str) -> Option<String> {
    let v = cg(netns, url, &["nodes", "pending"]);
    v["pending"]
        .as_array()?
        .first()
        .and_then(|r| r["requestId"].as_str().map(str::to_string))
}

#[test]
fn node_host_over_loopback_is_paired_approved_and_invocable() {
    let Some(dir) = peer_dir() else { return };
    let gw = Gateway::start(&[]);
    let url = gw.url();
    let home = tempfile::tempdir().unwrap();
    let _node = Killed(node_host(
        &dir,
        home.path(),
        None,
        "127.0.0.1",
        gw.port,
        TOKEN,
    ));
    let node_id = wait_for("node host to connect", 60, || connected_node(None, &url));
    let devices = cg(None, &url, &["devices", "list"]);
    let paired = devices["paired"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["deviceId"] == node_id.as_str())
        .expect("node device paired");
    assert_eq!(paired["approvedBy"], "silent-local");
    // The command surface waits for approval; approve it with the real CLI.
    let rid = wait_for("node surface request", 30, || pending_surface(None, &url));
    let ocl = tempfile::tempdir().unwrap();
    let o = oc(
        &dir,
        ocl.path(),
        &["nodes", "approve", &rid, "--url", &url, "--token", TOKEN],
    );
    assert!(
        o.status.success(),
        "openclaw nodes approve: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = oc(
        &dir,
        ocl.path(),
        &["nodes", "list", "--url", &url, "--token", TOKEN],
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("interop-node"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let args = [
        invoke_which_sh(&node_id),
        vec!["--url", &url, "--token", TOKEN],
    ]
    .concat();
    let o = oc(&dir, ocl.path(), &args);
    let v = json_of(&o);
    let which: Value = serde_json::from_str(v["payloadJSON"].as_str().unwrap()).unwrap();
    // The printed result object is the parsed payloadJSON, as the reference gateway answers.
    assert_eq!(v["payload"], which, "{v}");
    assert!(
        which["bins"]["sh"].as_str().unwrap().ends_with("/sh"),
        "{v}"
    );
    let v = cg(
        None,
        &url,
        &[
            "nodes",
            "invoke",
            "--node",
            "interop-node",
            "--command",
            "system.which",
            "--params",
            r#"{"bins":["sh"]}"#,
        ],
    );
    assert!(v["payloadJSON"].as_str().unwrap().contains("/sh"), "{v}");
}

/// Runs a command, asserting success.
fn sh(args: &[&str]) {
    let s = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(s.success(), "{args:?}");
}

/// Two namespaces joined by a veth pair; removed on drop.
struct Netns {
    a: String,
    b: String,
}

impl Netns {
    fn new(tag: &str, net: u8) -> Option<Netns> {
        if Command::new("ip")
            .args(["netns", "list"])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            assert!(
                std::env::var("CLAWGATE_REQUIRE_NETNS").is_err(),
                "network namespaces unavailable"
            );
            eprintln!("skipped: no network namespaces (needs root and iproute2)");
            return None;
        }
        let n = Netns {
            a: format!("cg{tag}a"),
            b: format!("cg{tag}b"),
        };
        let (va, vb) = (format!("v{tag}a"), format!("v{tag}b"));
        let _ = Command::new("ip").args(["netns", "del", &n.a]).status();
        let _ = Command::new("ip").args(["netns", "del", &n.b]).status();
        sh(&["ip", "netns", "add", &n.a]);
        sh(&["ip", "netns", "add", &n.b]);
        sh(&[
            "ip", "link", "add", &va, "type", "veth", "peer", "name", &vb,
        ]);
        sh(&["ip", "link", "set", &va, "netns", &n.a]);
        sh(&["ip", "link", "set", &vb, "netns", &n.b]);
        for (ns, dev, ip) in [
            (&n.a, &va, format!("10.{net}.0.1/24")),
            (&n.b, &vb, format!("10.{net}.0.2/24")),
        ] {
            sh(&["ip", "-n", ns, "addr", "add", &ip, "dev", dev]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        Some(n)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.a]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).status();
    }
}

#[test]
fn remote_node_host_needs_approval_then_reconnects() {
    let Some(dir) = peer_dir() else { return };
    let Some(ns) = Netns::new("pr", 77) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("openclaw.json");
    std::fs::write(
        &cfg,
        r#"{ gateway: { bind: "custom", customBindHost: "10.77.0.1" } }"#,
    )
    .unwrap();
    let port = 18000 + (std::process::id() % 1000) as u16;
    let gw = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.a,
            env!("CARGO_BIN_EXE_clawgate"),
            "run",
            "--port",
            &port.to_string(),
            "--token",
            TOKEN,
            "--config",
        ])
        .arg(&cfg)
        .env("HOME", tmp.path())
        .env("OPENCLAW_STATE_DIR", tmp.path().join("state"))
        .env("OPENCLAW_DISABLE_BONJOUR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let _gw = Killed(gw);
    let local = format!("ws://127.0.0.1:{port}");
    wait_for("gateway in ns a", 20, || {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.a,
                env!("CARGO_BIN_EXE_clawgate"),
                "health",
                "--url",
                &local,
                "--token",
                TOKEN,
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
    });
    let home = tempfile::tempdir().unwrap();
    let _node = Killed(node_host(
        &dir,
        home.path(),
        Some(&ns.b),
        "10.77.0.1",
        port,
        TOKEN,
    ));
    // Remote first contact: a pairing request, not a connection.
    let request = wait_for("device pairing request", 60, || {
        let v = cg(Some(&ns.a), &local, &["devices", "list"]);
        v["pending"].as_array()?.first().cloned()
    });
    assert_eq!(request["remoteIp"], "10.77.0.2");
    assert_eq!(request["role"], "node");
    assert!(connected_node(Some(&ns.a), &local).is_none());
    let rid = request["requestId"].as_str().unwrap();
    // Approve with the real OpenClaw CLI (inside ns a, over loopback).
    let ocl = tempfile::tempdir().unwrap();
    let o = common::openclaw::command(
        &dir,
        ocl.path(),
        Some(&ns.a),
        &["devices", "approve", rid, "--url", &local, "--token", TOKEN],
    )
    .output()
    .unwrap();
    assert!(
        o.status.success(),
        "openclaw devices approve: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let node_id = wait_for("node reconnect after approval", 45, || {
        connected_node(Some(&ns.a), &local)
    });
    let rid = wait_for("node surface request", 30, || {
        pending_surface(Some(&ns.a), &local)
    });
    cg(Some(&ns.a), &local, &["nodes", "approve", &rid]);
    let v = cg(
        Some(&ns.a),
        &local,
        &[
            "nodes",
            "invoke",
            "--node",
            &node_id,
            "--command",
            "system.which",
            "--params",
            r#"{"bins":["sh"]}"#,
        ],
    );
    assert!(v["payloadJSON"].as_str().unwrap().contains("/sh"), "{v}");
}

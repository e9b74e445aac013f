//! `gateway.bind = tailnet` against a real tailscaled (the testnet's `daemon` node, LocalAPI over
//! its Unix socket): the gateway runs in network namespace A where the node's tailnet address is
//! not configured yet, serves loopback only, then binds the address once it appears on A's veth;
//! a client in namespace B is refused plain `ws` to that tailnet address with a reason naming the
//! `wss://` URL. Needs root + iproute2 (skipped otherwise, unless `CLAWGATE_REQUIRE_NETNS` is set)
//! and `tailscaled` (`CLAWGATE_TAILSCALED_BIN`, else `sidecar/bin/tailscaled`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::testnet::Testnet;
use common::TOKEN;
use serde_json::json;

/// Fixed gateway port inside namespace A (the namespace is private, so it is always free).
const PORT: u16 = 18789;

fn sh(args: &[&str]) {
    let s = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(s.success(), "{args:?}");
}

/// Namespaces A (gateway) and B (client) joined by a veth pair (10.77.9.0/24); removed on drop.
struct Pair {
    a: String,
    b: String,
    va: String,
}

impl Pair {
    fn new() -> Option<Pair> {
        let ok = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            assert!(
                std::env::var("CLAWGATE_REQUIRE_NETNS").is_err(),
                "network namespaces unavailable"
            );
            eprintln!("SKIPPED: no network namespaces (needs root and iproute2)");
            return None;
        }
        let p = Pair {
            a: "cgxtna".into(),
            b: "cgxtnb".into(),
            va: "vxtna".into(),
        };
        let vb = "vxtnb";
        drop(Pair {
            a: p.a.clone(),
            b: p.b.clone(),
            va: p.va.clone(),
        }); // clear leftovers
        sh(&["ip", "netns", "add", &p.a]);
        sh(&["ip", "netns", "add", &p.b]);
        sh(&[
            "ip", "link", "add", &p.va, "type", "veth", "peer", "name", vb,
        ]);
        sh(&["ip", "link", "set", &p.va, "netns", &p.a]);
        sh(&["ip", "link", "set", vb, "netns", &p.b]);
        for (ns, dev, ip) in [
            (&p.a, p.va.as_str(), "10.77.9.1/24"),
            (&p.b, vb, "10.77.9.2/24"),
        ] {
            sh(&["ip", "-n", ns, "addr", "add", ip, "dev", dev]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        Some(p)
    }

    /// Local addresses of the TCP listeners in namespace A, space separated.
    fn listeners(&self) -> String {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.a, "ss", "-Hltn"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let locals: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_whitespace().nth(3))
            .collect();
        format!(" {} ", locals.join(" "))
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.a])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.b])
            .stderr(Stdio::null())
            .status();
    }
}

fn tailscaled_bin() -> Option<PathBuf> {
    let p = std::env::var_os("CLAWGATE_TAILSCALED_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("sidecar/bin/tailscaled"));
    p.is_file().then_some(p)
}

/// The gateway process inside namespace A; killed on drop.
struct InNs(std::process::Child);

impl Drop for InNs {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until(what: &str, bound: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + bound;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test]
async fn tailnet_bind_waits_on_loopback_then_binds_and_refuses_plaintext() {
    let Some(tailscaled) = tailscaled_bin() else {
        eprintln!("SKIPPED: tailscaled not found (CLAWGATE_TAILSCALED_BIN or make sidecar)");
        return;
    };
    let Some(pair) = Pair::new() else { return };
    let ts = tailscaled.to_str().unwrap();
    let Some(net) = Testnet::start(&["--tailscaled", ts]).await else {
        return;
    };
    let node = net.node("daemon");
    let sock = node.localapi["address"].as_str().unwrap().to_owned();
    let ip = node.ips.iter().find(|i| i.is_ipv4()).unwrap().to_string();
    let fqdn = node.fqdn.clone();

    let dir = tempfile::tempdir().unwrap();
    let cfg = json!({"gateway": {"bind": "tailnet", "tailscale": {"mode": "off", "socket": sock}}});
    let path = dir.path().join("openclaw.json");
    std::fs::write(&path, cfg.to_string()).unwrap();
    let port = PORT.to_string();
    let bin = env!("CARGO_BIN_EXE_clawgate");
    let gw = Command::new("ip")
        .args([
            "netns", "exec", &pair.a, bin, "run", "--port", &port, "--token", TOKEN,
        ])
        .args(["--config", path.to_str().unwrap()])
        .env("HOME", dir.path())
        .env("OPENCLAW_STATE_DIR", dir.path().join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _gw = InNs(gw);
    let lo = format!("127.0.0.1:{PORT}");
    wait_until("loopback listener", Duration::from_secs(20), || {
        pair.listeners().contains(&lo)
    });
    tokio::time::sleep(Duration::from_secs(2)).await; // several retries while the address is absent
    let before = pair.listeners();
    assert!(!before.contains(&format!("{ip}:{PORT}")), "{before}");
    assert!(
        !before.contains(" 0.0.0.0:") && !before.contains(" [::]:") && !before.contains(" *:"),
        "never widened: {before}"
    );

    sh(&[
        "ip",
        "-n",
        &pair.a,
        "addr",
        "add",
        &format!("{ip}/32"),
        "dev",
        &pair.va,
    ]);
    sh(&[
        "ip",
        "-n",
        &pair.b,
        "route",
        "add",
        &format!("{ip}/32"),
        "via",
        "10.77.9.1",
    ]);
    let tailnet = format!("{ip}:{PORT}");
    wait_until("tailnet listener", Duration::from_secs(15), || {
        pair.listeners().contains(&tailnet)
    });

    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &pair.b,
            bin,
            "health",
            "--url",
            &format!("ws://{tailnet}"),
            "--token",
            TOKEN,
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "plaintext ws to a tailnet address must fail"
    );
    assert!(
        err.contains("plaintext ws refused on a tailnet address"),
        "{err}"
    );
    assert!(
        err.contains(&format!("wss://{fqdn}")),
        "reason names the wss URL: {err}"
    );
    drop(_gw);
    drop(pair);
    net.stop().await;
}

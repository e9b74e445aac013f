//! `gateway.bind = tailnet` against a real tailscaled (the testnet's `daemon` node, LocalAPI over
//! its Unix socket): the gateway runs in network namespace A where the node's tailnet address is
//! not configured yet, serves loopback only, then binds the address once it appears on A's veth;
//! a client in namespace B is refused plain `ws` to that tailnet address with a reason naming the
//! `wss://` URL. Then the address is taken away for real (`tailscale down` through the real CLI):
//! the tailnet socket disappears while loopback keeps serving `health`; `tailscale up` brings it
//! back and the gateway listens and answers on it again. Needs root + iproute2 (skipped otherwise, unless `CLAWGATE_REQUIRE_NETNS` is set)
//! and `tailscaled` (`CLAWGATE_TAILSCALED_BIN`, else `sidecar/bin/tailscaled`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon;
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

/// What the phases of the test share.
struct Ctx {
    pair: Pair,
    net: Testnet,
    cli: PathBuf,
    sock: String,
    fqdn: String,
    /// `127.0.0.1:PORT`, the tailnet `v4:PORT` and `[v6]:PORT`.
    lo: String,
    v4: String,
    v6: String,
    dir: tempfile::TempDir,
}

impl Ctx {
    fn client(&self) -> PathBuf {
        self.dir.path().join("client")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap()
    }

    /// Starts `clawgate run` with bind=tailnet inside namespace A (stderr to `gateway.log`).
    fn spawn_gateway(&self) -> InNs {
        let d = self.dir.path();
        let cfg = json!({"gateway": {"bind": "tailnet", "tailscale": {"mode": "off", "socket": self.sock}}});
        let path = d.join("openclaw.json");
        std::fs::write(&path, cfg.to_string()).unwrap();
        let port = PORT.to_string();
        let bin = env!("CARGO_BIN_EXE_clawgate");
        let ns = ["netns", "exec", &self.pair.a, bin, "run", "--port", &port];
        let gw = Command::new("ip")
            .args(ns)
            .args(["--token", TOKEN, "--config", path.to_str().unwrap()])
            .env("HOME", d)
            .env("OPENCLAW_STATE_DIR", d.join("state"))
            .env("CLAWGATE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("gateway.log")).unwrap())
            .spawn()
            .unwrap();
        InNs(gw)
    }

    /// Puts the node's tailnet addresses on A's veth (as a TUN would) and routes B to them.
    fn give_addresses(&self, v4: &str, v6: &str) {
        let (a, b, va) = (&self.pair.a, &self.pair.b, &self.pair.va);
        let (v4h, v6h) = (format!("{v4}/32"), format!("{v6}/128"));
        sh(&["ip", "-n", a, "addr", "add", &v4h, "dev", va]);
        sh(&["ip", "-n", a, "-6", "addr", "add", &v6h, "dev", va, "nodad"]);
        sh(&["ip", "-n", b, "route", "add", &v4h, "via", "10.77.9.1"]);
    }

    /// Listeners in A, asserting nothing was ever widened to a wildcard.
    fn listeners(&self) -> String {
        let l = self.pair.listeners();
        assert!(
            !l.contains(" 0.0.0.0:") && !l.contains(" [::]:") && !l.contains(" *:"),
            "never widened: {l}"
        );
        l
    }

    fn tailnet_listening(&self) -> (bool, bool) {
        let l = self.listeners();
        (
            l.contains(&format!(" {} ", self.v4)),
            l.contains(&format!(" {} ", self.v6)),
        )
    }

    fn tailscale(&self, args: &[&str]) {
        daemon::tailscale(&self.net.manifest, &self.cli, &self.sock, args);
    }
}

#[tokio::test]
async fn tailnet_bind_waits_binds_follows_down_and_up_and_refuses_plaintext() {
    let Some(tailscaled) = daemon::tailscaled_bin() else {
        return;
    };
    let Some(pair) = Pair::new() else { return };
    let ts = tailscaled.to_str().unwrap();
    let Some(net) = Testnet::start(&["--tailscaled", ts]).await else {
        return;
    };
    let node = net.node("daemon");
    let v4 = node.ips.iter().find(|i| i.is_ipv4()).unwrap().to_string();
    let v6 = node.ips.iter().find(|i| i.is_ipv6()).unwrap().to_string();
    let c = Ctx {
        sock: node.localapi["address"].as_str().unwrap().to_owned(),
        fqdn: node.fqdn.clone(),
        lo: format!("127.0.0.1:{PORT}"),
        v4: format!("{v4}:{PORT}"),
        v6: format!("[{v6}]:{PORT}"),
        cli: daemon::cli(&tailscaled),
        dir: tempfile::tempdir().unwrap(),
        pair,
        net,
    };
    let gw = c.spawn_gateway();
    waits_on_loopback_then_binds(&c, &v4, &v6).await;
    down_closes_tailnet_listeners(&c);
    up_binds_again(&c);
    drop(gw);
    let Ctx { pair, net, .. } = c;
    drop(pair);
    net.stop().await;
}

/// Tailscale is up but the addresses are not on an interface yet: loopback only, then both bound.
async fn waits_on_loopback_then_binds(c: &Ctx, v4: &str, v6: &str) {
    wait_until("loopback listener", Duration::from_secs(20), || {
        c.listeners().contains(&c.lo)
    });
    tokio::time::sleep(Duration::from_secs(2)).await; // several retries while the address is absent
    assert_eq!(c.tailnet_listening(), (false, false), "{}", c.listeners());
    c.give_addresses(v4, v6);
    wait_until("tailnet listeners", Duration::from_secs(15), || {
        c.tailnet_listening() == (true, true)
    });
    assert_refused_plaintext(&c.pair.b, &c.v4, &c.fqdn, &c.client());
    assert_health(&c.pair.a, &c.lo, &c.client());
}

/// `tailscale down` for real: both tailnet sockets close (logged), loopback keeps serving.
fn down_closes_tailnet_listeners(c: &Ctx) {
    c.tailscale(&["down"]);
    wait_until("tailnet listeners closed", Duration::from_secs(15), || {
        c.tailnet_listening() == (false, false)
    });
    assert!(c.listeners().contains(&c.lo), "loopback untouched");
    assert_health(&c.pair.a, &c.lo, &c.client());
    let refused = health(&c.pair.b, &c.v4, &c.client());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && !err.contains("plaintext ws refused"),
        "nothing answers on {} any more: {err}",
        c.v4
    );
    let log = c.log();
    assert!(
        log.contains("stopped listening on tailnet address") && log.contains("Stopped"),
        "the close is logged with its reason: {log}"
    );
}

/// `tailscale up` with the harness's own login flags: bound and answering again.
fn up_binds_again(c: &Ctx) {
    daemon::login(&c.net.manifest, &c.cli, &c.sock);
    wait_until("tailnet listeners again", Duration::from_secs(15), || {
        c.tailnet_listening() == (true, true)
    });
    assert_refused_plaintext(&c.pair.b, &c.v4, &c.fqdn, &c.client());
    assert_health(&c.pair.a, &c.lo, &c.client());
}

/// `clawgate health --url ws://<addr>` run inside namespace `ns` (client state in `home`).
fn health(ns: &str, addr: &str, home: &Path) -> std::process::Output {
    let bin = env!("CARGO_BIN_EXE_clawgate");
    let url = format!("ws://{addr}");
    Command::new("ip")
        .args([
            "netns", "exec", ns, bin, "health", "--url", &url, "--token", TOKEN,
        ])
        .env("HOME", home)
        .env("OPENCLAW_STATE_DIR", home.join("state"))
        .output()
        .unwrap()
}

fn assert_health(ns: &str, addr: &str, home: &Path) {
    let out = health(ns, addr, home);
    assert!(
        out.status.success(),
        "health over {addr}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The gateway answers on the tailnet address — and refuses plaintext there, naming `wss://`.
fn assert_refused_plaintext(ns: &str, addr: &str, fqdn: &str, home: &Path) {
    let out = health(ns, addr, home);
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
}

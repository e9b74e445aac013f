//! "vienna" for real programs (issue 13 §1): a network namespace made by the test ([`Netns`],
//! veth to the root namespace) running the pinned kernel-TUN `tailscaled` joined to the offline
//! tailnet as node `vienna-tun` (the harness's `--listen-addr <veth host end> --vienna-netns`), with
//! MagicDNS answering inside the namespace: tailscaled's DNS manager writes the namespace's own
//! `/etc/netns/<ns>/resolv.conf` (`nameserver 100.100.100.100`), so unmodified programs started
//! with `ip netns exec` resolve `london-gw.<suffix>` and reach it over the kernel TUN. The harness CA
//! is trusted through `NODE_EXTRA_CA_CERTS`; nothing else (no proxy, no hosts file) is involved.
//!
//! Invariants: [`ViennaNet`] stops the harness (and so tailscaled) before the namespace is
//! deleted, on drop too; every spawned program is killed with its process group ([`Killed`]) and
//! anything left in the namespace is stopped by [`Netns`]'s drop.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::netns::Netns;
use super::openclaw::{command, json_of, kill_group};
use super::testnet::Testnet;
use super::TOKEN;

/// The harness's name for the kernel-TUN node (sidecar/testnet/vienna.go `NodeVienna`).
pub const NODE: &str = "vienna-tun";

/// The offline tailnet with vienna in its namespace. Fields drop in order: the harness first.
pub struct ViennaNet {
    pub net: Testnet,
    pub ns: Netns,
}

impl ViennaNet {
    /// Starts a namespace and the harness (`extra` flags) with vienna in it, and checks that
    /// MagicDNS answers there. `None`: skipped (no root, harness or tailscaled; panics when
    /// `CLAWGATE_REQUIRE_TESTNET=1`).
    pub async fn start(extra: &[&str]) -> Option<ViennaNet> {
        if !super::netns::available() {
            return None;
        }
        let tailscaled = super::daemon::tailscaled_bin()?;
        let ns = Netns::new();
        let host = ns.host_ip.to_string();
        let flags = [
            "--listen-addr",
            &host,
            "--vienna-netns",
            &ns.name,
            "--vienna-tailscaled",
            tailscaled.to_str()?,
        ];
        let net = Testnet::start(&[&flags[..], extra].concat()).await?;
        let v = ViennaNet { net, ns };
        let london = v.net.node("london");
        assert_eq!(
            v.resolve(&london.fqdn),
            Some(london.ips[0]),
            "MagicDNS in the namespace"
        );
        Some(v)
    }

    /// vienna's node (its tailnet login, addresses, namespace).
    pub fn node(&self) -> &super::testnet::NodeInfo {
        self.net.node(NODE)
    }

    /// What `name` resolves to for a program in the namespace (`getent ahostsv4`, i.e. the
    /// namespace's resolv.conf — 100.100.100.100 once tailscaled configured it).
    pub fn resolve(&self, name: &str) -> Option<std::net::IpAddr> {
        let rc = std::fs::read_to_string(self.ns.etc().join("resolv.conf")).unwrap_or_default();
        assert!(
            rc.lines().any(|l| l.trim() == "nameserver 100.100.100.100"),
            "tailscaled's MagicDNS resolver in the namespace's resolv.conf:\n{rc}"
        );
        let o = self
            .ns
            .exec("getent")
            .args(["ahostsv4", name])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        out.split_whitespace().next()?.parse().ok()
    }

    /// Real programs on vienna: the OpenClaw install `dir`, one HOME for the CLI.
    pub fn programs(&self, dir: PathBuf, fqdn: &str) -> Vienna {
        Vienna {
            dir,
            home: tempfile::tempdir().unwrap(),
            ca: self.net.manifest.ca_cert_path.clone(),
            fqdn: fqdn.to_string(),
            netns: self.ns.name.clone(),
        }
    }

    /// Stops the harness (tailscaled with it), then deletes the namespace.
    pub async fn stop(self) {
        let ViennaNet { net, ns } = self;
        net.stop().await;
        drop(ns);
    }
}

/// vienna with sidecar node `name` pre-authorised, and the `clawgate-tsnet` binary; `None` (the
/// caller skips) when something is missing, a panic for a missing sidecar binary when
/// `CLAWGATE_REQUIRE_TESTNET=1`.
pub async fn tailnet_with_sidecar(name: &str) -> Option<(ViennaNet, PathBuf)> {
    let Some(tsnet) = super::testnet::tsnet_bin() else {
        let required = std::env::var(super::testnet::ENV_REQUIRE).as_deref() == Ok("1");
        assert!(!required, "clawgate-tsnet missing: run make sidecar");
        eprintln!("SKIPPED: clawgate-tsnet not found");
        return None;
    };
    let v = ViennaNet::start(&["--sidecar-node", name]).await?;
    Some((v, tsnet))
}

/// Where the real programs run: vienna's namespace, a HOME, the harness CA.
pub struct Vienna {
    pub dir: PathBuf,
    pub home: tempfile::TempDir,
    pub ca: PathBuf,
    pub fqdn: String,
    pub netns: String,
}

impl Vienna {
    pub fn url(&self) -> String {
        format!("wss://{}", self.fqdn)
    }

    /// `openclaw <args>` in vienna's namespace with its state in `home` (the CLI and the node
    /// host are separate installs).
    pub fn cmd(&self, home: &Path, args: &[&str]) -> std::process::Command {
        let mut c = command(&self.dir, home, Some(&self.netns), args);
        c.env("NODE_EXTRA_CA_CERTS", &self.ca);
        c
    }

    /// A CLI command over wss with the shared token (blocking; run under `block_in_place`).
    pub fn oc(&self, args: &[&str]) -> Output {
        let url = self.url();
        let all = [args, &["--url", url.as_str(), "--token", TOKEN]].concat();
        tokio::task::block_in_place(|| {
            self.cmd(self.home.path(), &all)
                .output()
                .expect("run openclaw")
        })
    }

    /// `args --json`; when the CLI's own device (created on its first signed connect) gets
    /// `PAIRING_REQUIRED`, it is approved on london — as a user would — and the command retried.
    pub fn json(&self, gw: &super::Gateway, args: &[&str]) -> Value {
        let args = [args, &["--json"]].concat();
        let mut o = self.oc(&args);
        let out = text(&o);
        if let Some(rid) = out
            .split("requestId: ")
            .nth(1)
            .and_then(|r| r.split(')').next())
        {
            approve_on_london(gw, rid);
            o = self.oc(&args);
        }
        assert!(o.status.success(), "openclaw {args:?}: {}", text(&o));
        // Some commands print a bare array (`nodes status`).
        serde_json::from_slice(&o.stdout).unwrap_or_else(|_| json_of(&o))
    }

    /// `openclaw node run --host <fqdn> --port 443 --tls` (shared token in its environment).
    pub fn node_host(&self, home: &Path, log: &Path) -> Child {
        let args = [
            "node",
            "run",
            "--host",
            &self.fqdn,
            "--port",
            "443",
            "--tls",
            "--display-name",
            "vienna-node",
        ];
        let log = std::fs::File::create(log).unwrap();
        self.cmd(home, &args)
            .env("OPENCLAW_GATEWAY_TOKEN", TOKEN)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .process_group(0)
            .spawn()
            .expect("spawn node host")
    }
}

/// `clawgate devices approve <rid>` on the gateway host, over its loopback port.
pub fn approve_on_london(gw: &super::Gateway, rid: &str) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .args([
            "devices",
            "approve",
            rid,
            "--url",
            &gw.url(),
            "--token",
            TOKEN,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "clawgate devices approve: {}", text(&o));
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub async fn until<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Prints the node host's log when the test fails while it runs.
pub struct LogOnPanic(pub PathBuf);
impl Drop for LogOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.0).unwrap_or_default();
            eprintln!("node host log:\n{log}");
        }
    }
}

pub struct Killed(pub Child);
impl Drop for Killed {
    fn drop(&mut self) {
        kill_group(&mut self.0);
    }
}

//! The real OpenClaw 2026.9.6 node host and CLI on the headline path (issue 13 §2, §4): clawgate
//! runs `--tailscale serve` with its own tsnet sidecar (`london-gw`) in the offline tailnet, and the
//! real programs reach `wss://london-gw.<suffix>` *as the tailnet peer vienna*: a loopback forwarder
//! carries each TCP connection through vienna's SOCKS5 into the tailnet (TLS stays end to end;
//! Serve terminates it with the harness CA's certificate), the name resolves to that forwarder
//! through a private `/etc/hosts`, and the CA is trusted through `NODE_EXTRA_CA_CERTS`.
//!
//! Pinned: `openclaw gateway health` / `gateway probe --json` over wss; `openclaw node run --tls`
//! gets `PAIRING_REQUIRED` (a tailnet peer is remote), is approved with the real `openclaw devices
//! approve` over wss, reconnects, has its command surface approved (`openclaw nodes approve`), and
//! `system.which` round-trips through the real `openclaw nodes invoke` over wss.
//!
//! Not a kernel-TUN netns: vienna is the harness's tsnet node, reached through its SOCKS5 proxy.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::openclaw::{
    command, invoke_which_sh, json_of, kill_group, peer_dir, with_hosts_and_ca,
};
use common::testnet::{self, Testnet};
use common::TOKEN;
use serde_json::{json, Value};

const BOUND: Duration = Duration::from_secs(300);
const SIDECAR: &str = "london-gw";
/// What `gateway.auth.identityScopes` grants vienna's login.
const OPERATOR: &[&str] = &[
    "operator.read",
    "operator.write",
    "operator.pairing",
    "operator.admin",
];

/// Accepts on 127.0.0.1:<random> and pipes each connection through `via`'s SOCKS5 to `host:443`.
async fn forwarder(net: &Testnet, via: &str, host: &str) -> u16 {
    let s = net.node(via).socks5.as_ref().expect("SOCKS5");
    let proxy: std::net::SocketAddr = s.address.parse().unwrap();
    let auth = s.username.clone().zip(s.password.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let host = host.to_string();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = l.accept().await {
            let (auth, host) = (auth.clone(), host.clone());
            tokio::spawn(async move {
                let target = (host.as_str(), 443);
                let up = match &auth {
                    Some((u, p)) => {
                        tokio_socks::tcp::Socks5Stream::connect_with_password(proxy, target, u, p)
                            .await
                    }
                    None => tokio_socks::tcp::Socks5Stream::connect(proxy, target).await,
                };
                if let Ok(mut up) = up {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut up).await;
                }
            });
        }
    });
    port
}

/// Where the real programs run: a HOME with a hosts file mapping the gateway's name to loopback.
struct Vienna {
    dir: PathBuf,
    home: tempfile::TempDir,
    ca: PathBuf,
    fqdn: String,
    port: u16,
}

impl Vienna {
    fn url(&self) -> String {
        format!("wss://{}:{}", self.fqdn, self.port)
    }

    /// `openclaw <args>` with its state in `home` (the CLI and the node host are separate installs).
    fn cmd(&self, home: &Path, args: &[&str]) -> std::process::Command {
        let hosts = home.join("hosts");
        let map = format!("127.0.0.1 localhost\n127.0.0.1 {}\n", self.fqdn);
        std::fs::write(&hosts, map).unwrap();
        with_hosts_and_ca(&command(&self.dir, home, None, args), &hosts, &self.ca)
    }

    /// A CLI command over wss with the shared token (blocking; run under `block_in_place`).
    fn oc(&self, args: &[&str]) -> Output {
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
    fn json(&self, gw: &common::Gateway, args: &[&str]) -> Value {
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

    fn node_host(&self, home: &Path, log: &Path) -> Child {
        let port = self.port.to_string();
        let args = [
            "node",
            "run",
            "--host",
            &self.fqdn,
            "--port",
            &port,
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
fn approve_on_london(gw: &common::Gateway, rid: &str) {
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

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn until<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
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
struct LogOnPanic(PathBuf);
impl Drop for LogOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.0).unwrap_or_default();
            eprintln!("node host log:\n{log}");
        }
    }
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        kill_group(&mut self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_node_host_and_cli_over_serve_from_a_tailnet_peer() {
    let Some(dir) = peer_dir() else { return };
    common::bounded(BOUND, async {
        let Some(tsnet) = testnet::tsnet_bin() else {
            assert!(
                std::env::var(testnet::ENV_REQUIRE).as_deref() != Ok("1"),
                "clawgate-tsnet missing"
            );
            return eprintln!("SKIPPED: clawgate-tsnet not found");
        };
        let Some(net) = Testnet::start(&["--sidecar-node", SIDECAR]).await else {
            return;
        };
        // vienna's verified login gets the operator scopes it asks for (connection-only): the
        // device-less real CLI has none otherwise as a remote client.
        let login = net.node("vienna").login.clone();
        let auth = json!({"auth": {"allowTailscale": true, "identityScopes": {login: OPERATOR}}});
        let gw = common::own_sidecar_gateway(&net, SIDECAR, &tsnet, auth);
        testnet::wait_exposure(gw.port, "ok", Duration::from_secs(60)).await;
        let fqdn = net.manifest.sidecars[SIDECAR].fqdn.clone();
        let port = forwarder(&net, "vienna", &fqdn).await;
        let v = Vienna {
            dir,
            home: tempfile::tempdir().unwrap(),
            ca: net.manifest.ca_cert_path.clone(),
            fqdn,
            port,
        };

        let o = v.oc(&["gateway", "health"]);
        assert!(
            o.status.success() && text(&o).contains("OK"),
            "gateway health over wss: {}",
            text(&o)
        );
        let probe = v.json(&gw, &["gateway", "probe"]);
        let t = probe["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == "explicit")
            .cloned();
        let t = t.unwrap_or_else(|| panic!("explicit target: {probe}"));
        assert_eq!(
            (
                t["connect"]["ok"].as_bool(),
                t["connect"]["rpcOk"].as_bool()
            ),
            (Some(true), Some(true)),
            "{t}"
        );
        assert_eq!(t["server"]["version"], env!("CARGO_PKG_VERSION"), "{t}");
        // Recognised by its tailnet login: the probe's operator.read came from identityScopes.
        assert_eq!(t["auth"]["capability"], "read_only", "{t}");

        // The node host from vienna: remote, so a pairing request first.
        let node_home = tempfile::tempdir().unwrap();
        let log = node_home.path().join("node-host.log");
        let _node = Killed(v.node_host(node_home.path(), &log));
        let _log = LogOnPanic(log.clone());
        let request = until("device pairing request", 90, || {
            let l = v.json(&gw, &["devices", "list"]);
            l["pending"]
                .as_array()?
                .iter()
                .find(|r| r["role"] == "node")
                .cloned()
        })
        .await;
        let rid = request["requestId"].as_str().unwrap().to_string();
        let o = v.oc(&["devices", "approve", &rid]);
        assert!(
            o.status.success(),
            "openclaw devices approve over wss: {}",
            text(&o)
        );
        let node_id = until("node reconnect after approval", 90, || {
            let l = v.json(&gw, &["nodes", "status"]);
            let rows = l.as_array().or(l["nodes"].as_array())?;
            let n = rows.iter().find(|n| n["connected"] == true)?.clone();
            n["nodeId"].as_str().map(str::to_string)
        })
        .await;
        let surface = until("node surface request", 60, || {
            let l = v.json(&gw, &["nodes", "pending"]);
            let rows = l.as_array().or(l["pending"].as_array())?;
            rows.first()?["requestId"].as_str().map(str::to_string)
        })
        .await;
        let o = v.oc(&["nodes", "approve", &surface]);
        assert!(
            o.status.success(),
            "openclaw nodes approve over wss: {}",
            text(&o)
        );
        let which = until("system.which over wss", 30, || {
            let args = [invoke_which_sh(&node_id), vec!["--json"]].concat();
            let o = v.oc(&args);
            o.status.success().then(|| json_of(&o))
        })
        .await;
        let sh = which["payload"]["bins"]["sh"].as_str().unwrap_or_default();
        assert!(
            sh.ends_with("/sh"),
            "{which}\nnode host log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        drop(gw);
        net.stop().await;
    })
    .await;
}

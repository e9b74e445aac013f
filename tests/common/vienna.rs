//! "vienna" for real programs: the OpenClaw CLI and node host reach a gateway's MagicDNS name as
//! the offline tailnet's peer vienna. A loopback forwarder carries each TCP connection through
//! vienna's SOCKS5 into the tailnet (TLS stays end to end), the name resolves to that forwarder
//! through a private `/etc/hosts` (`unshare -m`), and the harness CA is trusted through
//! `NODE_EXTRA_CA_CERTS`. Invariants: nothing outside the test's own mount namespace and loopback
//! addresses is touched; every spawned program is killed with its process group ([`Killed`]).

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::openclaw::{command, json_of, kill_group, with_hosts_and_ca};
use super::testnet::Testnet;
use super::TOKEN;

/// The offline tailnet with sidecar node `name` pre-authorised, and the `clawgate-tsnet` binary;
/// `None` (the caller skips) when either is missing, a panic for a missing sidecar binary when
/// `CLAWGATE_REQUIRE_TESTNET=1`.
pub async fn tailnet_with_sidecar(name: &str) -> Option<(Testnet, PathBuf)> {
    let Some(tsnet) = super::testnet::tsnet_bin() else {
        let required = std::env::var(super::testnet::ENV_REQUIRE).as_deref() == Ok("1");
        assert!(!required, "clawgate-tsnet missing: run make sidecar");
        eprintln!("SKIPPED: clawgate-tsnet not found");
        return None;
    };
    let net = Testnet::start(&["--sidecar-node", name]).await?;
    Some((net, tsnet))
}

/// Accepts on `bind` and pipes each connection through `via`'s SOCKS5 to `host:443`; returns the
/// bound address (`bind` may carry port 0).
pub async fn forwarder(net: &Testnet, via: &str, host: &str, bind: SocketAddr) -> SocketAddr {
    let s = net.node(via).socks5.as_ref().expect("SOCKS5");
    let proxy: std::net::SocketAddr = s.address.parse().unwrap();
    let auth = s.username.clone().zip(s.password.clone());
    let l = tokio::net::TcpListener::bind(bind).await.unwrap();
    let bound = l.local_addr().unwrap();
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
    bound
}

/// Where the real programs run: a HOME with a hosts file mapping the gateway's name to loopback.
pub struct Vienna {
    pub dir: PathBuf,
    pub home: tempfile::TempDir,
    pub ca: PathBuf,
    pub fqdn: String,
    /// The forwarder vienna's programs dial for `fqdn`.
    pub at: SocketAddr,
}

impl Vienna {
    pub fn url(&self) -> String {
        match self.at.port() {
            443 => format!("wss://{}", self.fqdn),
            p => format!("wss://{}:{p}", self.fqdn),
        }
    }

    /// `openclaw <args>` with its state in `home` (the CLI and the node host are separate installs).
    pub fn cmd(&self, home: &Path, args: &[&str]) -> std::process::Command {
        let hosts = home.join("hosts");
        let map = format!("127.0.0.1 localhost\n{} {}\n", self.at.ip(), self.fqdn);
        std::fs::write(&hosts, map).unwrap();
        with_hosts_and_ca(&command(&self.dir, home, None, args), &hosts, &self.ca)
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

    pub fn node_host(&self, home: &Path, log: &Path) -> Child {
        let port = self.at.port().to_string();
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

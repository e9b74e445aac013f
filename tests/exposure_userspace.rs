//! Issue 11: with a userspace-networking tailscaled, tailnet peers arrive on host loopback
//! (tailscale.md §12.1). On the offline tailnet with the real `tailscaled` v1.102.3 in
//! `--tun=userspace-networking` mode (node "daemon") and `clawgate run` in serve mode bound to
//! loopback, a tailnet peer (`vienna`, through its SOCKS5) dialling `<daemon IP>:<gateway port>`
//! reaches `127.0.0.1:<port>`. These tests pin threats.md PR-9, PX-2, PX-9 and RL-3 on that path:
//! - the real `openclaw node run` from vienna gets a pending pairing request attributed to
//!   vienna's tailnet address, never silent pairing;
//! - device-less token calls from that path get no local-only scopes, and wrong credentials lock
//!   that peer out (its own bucket: the local CLI is unaffected);
//! - a forged PROXY v2 header from vienna reaches neither the Serve ingress nor an identity, and
//!   the gateway port gives it no answer at all;
//! - the clawgate CLI, the real `openclaw gateway health` and the real node host on the gateway
//!   host keep working (whois proves them local: the node host is paired silently, as opted into
//!   with `autoApproveLocal: true`); `/readyz` and `doctor` say loopback is forwarded, with the fix;
//! - the tsnet sidecar forwards nothing to host loopback.
//!
//! Needs the testnet, `tailscaled` and the OpenClaw peer; skipped without them unless
//! `CLAWGATE_REQUIRE_TESTNET=1` / `CLAWGATE_REQUIRE_INTEROP=1`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::openclaw::{kill_group, node_host, oc, peer_dir};
use common::testnet::{self, Testnet};
use common::{connect_params, Gateway, TOKEN};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on each whole test.
const BOUND: Duration = Duration::from_secs(170);

/// `clawgate <args> --url <loopback> --token … --json` on the gateway host.
fn cg(gw: &Gateway, args: &[&str]) -> (bool, Value) {
    let o = Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .args(args)
        .args(["--url", &gw.url(), "--token", TOKEN, "--json"])
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| {
        json!({"stdout": String::from_utf8_lossy(&o.stdout), "stderr": String::from_utf8_lossy(&o.stderr)})
    });
    (o.status.success(), v)
}

/// A gateway in serve mode on the real userspace tailscaled of `net`, exposure ok. Silent local
/// pairing is opted into explicitly (required while exposed, PR-9), so only locality decides it.
async fn serve_on_daemon(net: &Testnet) -> Gateway {
    let sock = net.node("daemon").localapi["address"].as_str().unwrap();
    let cfg = json!({"gateway": {"tailscale": {"mode": "serve", "socket": sock},
        "nodes": {"pairing": {"autoApproveLocal": true}}}});
    let gw = Gateway::with_config(&cfg, &["--port", "0", "--token", TOKEN], &[]);
    testnet::wait_exposure(gw.port, "ok", Duration::from_secs(30)).await;
    gw
}

/// A plain `ws://` connect from `via` to `host:port` in the tailnet with `auth`; returns the
/// `connect` response. Like the finding, it claims `Host: 127.0.0.1` (the allow-list would
/// refuse the tailnet address itself).
async fn connect_from(net: &Testnet, via: &str, host: &str, port: u16, auth: Value) -> Value {
    let tcp = testnet::socks_dial(net, via, host, port).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://127.0.0.1:{port}/"), tcp)
        .await
        .expect("plain ws through the userspace forward");
    let (_, res) = common::handshake(&mut ws, connect_params(auth, &["operator.read"])).await;
    res
}

fn code(res: &Value) -> String {
    res["error"]["details"]["code"]
        .as_str()
        .or(res["error"]["code"].as_str())
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn forwarded_tailnet_peers_are_remote_and_local_clients_still_work() {
    common::bounded(BOUND, async {
        let Some(dir) = peer_dir() else { return };
        let Some(net) = Testnet::with_daemon().await else {
            return;
        };
        let gw = serve_on_daemon(&net).await;
        let daemon_ip = net.node("daemon").ips[0].to_string();
        let vienna_ips: Vec<String> = net
            .node("vienna")
            .ips
            .iter()
            .map(|i| i.to_string())
            .collect();

        // The real node host from vienna, through tailscaled's userspace forward.
        let (relay, relay_task) = testnet::socks_relay(&net, "vienna", &daemon_ip, gw.port).await;
        let home = tempfile::tempdir().unwrap();
        let mut node = node_host(&dir, home.path(), None, "127.0.0.1", relay.port(), TOKEN);
        let pending = wait_pending(&gw, Duration::from_secs(60)).await;
        let log = std::fs::read_to_string(home.path().join("node-host.log")).unwrap_or_default();
        kill_group(&mut node);
        assert!(
            vienna_ips.contains(&pending["remoteIp"].as_str().unwrap_or("").to_owned()),
            "the request is attributed to vienna's tailnet address: {pending}\n{log}"
        );
        let (_, devices) = cg(&gw, &["devices", "list"]);
        let paired = devices["paired"].as_array().cloned().unwrap_or_default();
        assert!(
            paired.iter().all(|d| d["approvedBy"] != "silent-local"),
            "no silent pairing for a forwarded peer: {devices}"
        );
        // The real node host on the gateway host itself is proven local and paired silently.
        let local_home = tempfile::tempdir().unwrap();
        let mut local = node_host(&dir, local_home.path(), None, "127.0.0.1", gw.port, TOKEN);
        let silent = wait_silent(&gw, Duration::from_secs(60)).await;
        kill_group(&mut local);
        assert_eq!(silent["remoteIp"], "127.0.0.1", "{silent}");

        // Device-less token connect from vienna: authenticated, but no local-only scopes.
        let res = connect_from(&net, "vienna", &daemon_ip, gw.port, json!({"token": TOKEN})).await;
        assert_eq!(res["ok"], true, "{res}");
        assert_eq!(res["payload"]["auth"]["scopes"], json!([]), "{res}");

        // Wrong passwords from that path lock vienna out (RL-3: no loopback exemption) …
        let mut last = Value::Null;
        for _ in 0..11 {
            last = connect_from(
                &net,
                "vienna",
                &daemon_ip,
                gw.port,
                json!({"token": "wrong-token-xyz"}),
            )
            .await;
        }
        assert_eq!(code(&last), "AUTH_RATE_LIMITED", "{last}");
        let res = connect_from(&net, "vienna", &daemon_ip, gw.port, json!({"token": TOKEN})).await;
        assert_eq!(
            code(&res),
            "AUTH_RATE_LIMITED",
            "locked out even with the right token: {res}"
        );

        // … while local clients, proven local by whois, keep working: our CLI and the real one.
        let (ok, health) = cg(&gw, &["health"]);
        assert!(ok, "clawgate health on the gateway host: {health}");
        let ocl = tempfile::tempdir().unwrap();
        let o = oc(
            &dir,
            ocl.path(),
            &["gateway", "health", "--url", &gw.url(), "--token", TOKEN],
        );
        assert!(
            o.status.success(),
            "openclaw gateway health on the gateway host: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );

        // /readyz (local) reports the forwarding with its fix, and doctor fails with it.
        let exp =
            testnet::wait_readyz_loopback(gw.port, "forwarded", Duration::from_secs(20)).await;
        assert!(exp["fix"].as_str().unwrap().contains("TUN"), "{exp}");
        let (code, report) = common::doctor::run_json(&gw.config_path(), gw.dir.path(), &[]);
        let check = common::doctor::check(&report, "loopback forwarding");
        assert_eq!(code, 1, "{report}");
        assert_eq!(check["ok"], false, "{check}");
        assert!(
            check["fix"].as_str().unwrap().contains("sidecar"),
            "{check}"
        );

        relay_task.abort();
        drop(gw);
        net.stop().await;
    })
    .await;
}

/// Waits (bounded) for a device paired silently as local.
async fn wait_silent(gw: &Gateway, bound: Duration) -> Value {
    let end = tokio::time::Instant::now() + bound;
    loop {
        let (_, v) = cg(gw, &["devices", "list"]);
        let paired = v["paired"].as_array().cloned().unwrap_or_default();
        if let Some(d) = paired
            .into_iter()
            .find(|d| d["approvedBy"] == "silent-local")
        {
            return d;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "no silent local pairing: {v}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits (bounded) for the first pending device pairing request.
async fn wait_pending(gw: &Gateway, bound: Duration) -> Value {
    let end = tokio::time::Instant::now() + bound;
    loop {
        let (ok, v) = cg(gw, &["devices", "list"]);
        assert!(ok, "devices list on the gateway host: {v}");
        if let Some(p) = v["pending"].as_array().and_then(|a| a.first()) {
            return p.clone();
        }
        assert!(tokio::time::Instant::now() < end, "no pending request: {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A PROXY v2 header (TCP over IPv4) claiming `src` as the client.
fn proxy_v2(src: std::net::Ipv4Addr, dst: std::net::Ipv4Addr) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(&40000u16.to_be_bytes());
    h.extend_from_slice(&443u16.to_be_bytes());
    h
}

/// Sends a forged PROXY header and an upgrade request from `via` to `host:port`; returns what
/// came back (empty when the connection was refused or closed without an answer).
async fn forge(
    net: &Testnet,
    via: &str,
    host: &str,
    port: u16,
    claim: std::net::Ipv4Addr,
) -> String {
    let Ok(mut s) = testnet::socks_dial(net, via, host, port).await else {
        return String::new();
    };
    let mut req = proxy_v2(claim, "100.64.0.1".parse().unwrap());
    req.extend_from_slice(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let _ = s.write_all(&req).await;
    read_some(&mut s).await
}

async fn read_some(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn forged_proxy_header_from_a_tailnet_peer_gets_no_answer_and_no_identity() {
    common::bounded(BOUND, async {
        let Some(net) = Testnet::with_daemon().await else {
            return;
        };
        let gw = serve_on_daemon(&net).await;
        let exp = testnet::readyz(gw.port).await["exposure"].clone();
        let ingress: std::net::SocketAddr = exp["ingress"].as_str().unwrap().parse().unwrap();
        let daemon_ip = net.node("daemon").ips[0].to_string();
        let london: std::net::Ipv4Addr = net.node("london").ips[0].to_string().parse().unwrap();

        // The ingress port through the userspace forward: nothing answers.
        let got = forge(&net, "vienna", &daemon_ip, ingress.port(), london).await;
        assert!(
            !got.contains("HTTP/1.1"),
            "the ingress answered a forged PROXY header: {got}"
        );
        // The gateway port never parses PROXY and gives it no answer at all.
        let got = forge(&net, "vienna", &daemon_ip, gw.port, london).await;
        assert!(
            got.is_empty(),
            "the gateway port answered a PROXY header: {got}"
        );

        assert_ne!(
            ingress.ip().to_string(),
            "127.0.0.1",
            "the ingress is off the forwarded address"
        );

        // The genuine Serve hop still works end to end.
        common::assert_challenge(&net, "vienna", &net.node("daemon").fqdn, &["http/1.1"]).await;
        drop(gw);
        net.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_sidecar_forwards_nothing_to_host_loopback() {
    common::bounded(BOUND, async {
        let Some(tsnet) = testnet::tsnet_bin() else {
            eprintln!("SKIPPED: clawgate-tsnet not found (CLAWGATE_TSNET_BIN or make sidecar)");
            return;
        };
        let Some(net) = Testnet::start(&["--sidecar-node", "gw"]).await else {
            return;
        };
        let fqdn = net.manifest.sidecars["gw"].fqdn.clone();
        let gw = common::own_sidecar_gateway(&net, "gw", &tsnet, json!({}));
        let exp = testnet::wait_exposure(gw.port, "ok", Duration::from_secs(60)).await;
        assert_eq!(exp["loopback"]["state"], "local-only", "{exp}");
        let ingress: std::net::SocketAddr = exp["ingress"].as_str().unwrap().parse().unwrap();
        // Any host loopback listener: the gateway, the ingress, and an unrelated one.
        let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let other_port = other.local_addr().unwrap().port();
        let accepted = tokio::spawn(async move { other.accept().await.is_ok() });
        for port in [gw.port, ingress.port(), other_port] {
            let got = match testnet::socks_dial(&net, "vienna", &fqdn, port).await {
                Err(_) => String::new(),
                Ok(mut s) => {
                    let _ = s
                        .write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                        .await;
                    read_some(&mut s).await
                }
            };
            assert!(
                got.is_empty(),
                "port {port} answered through the sidecar: {got}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !accepted.is_finished(),
            "a tailnet peer reached a host loopback listener"
        );
        accepted.abort();
        // The Serve route itself works.
        common::assert_challenge(&net, "vienna", &fqdn, &[]).await;
        drop(gw);
        net.stop().await;
    })
    .await;
}

//! Setup code redeemed by the real program (issue 13 §3): `clawgate qr` on a `--tailscale serve`
//! gateway (own sidecar `london-gw`) issues a code carrying `wss://london-gw.<suffix>` (port 443);
//! the real `openclaw node run --pair <code>` on vienna ([`common::vienna`], the forwarder on a
//! private loopback address's port 443) redeems it and pairs in one step with the bounded profile
//! (node role plus bounded operator scopes, never `operator.admin`, threats.md PR-6); a second
//! redemption of the same code by another device fails (PR-4); `--pair-if-needed` on a restart
//! reuses the saved device token.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use common::openclaw::peer_dir;
use common::testnet;
use common::vienna::{forwarder, tailnet_with_sidecar, text, until, Killed, LogOnPanic, Vienna};
use common::{call, Gateway, TOKEN};
use serde_json::{json, Value};

const BOUND: Duration = Duration::from_secs(300);
const SIDECAR: &str = "london-gw";

/// `clawgate qr --json` against this gateway (its HOME, config and port).
fn clawgate_qr(gw: &Gateway) -> Value {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .args(["qr", "--json", "--token", TOKEN, "--config"])
        .arg(gw.config_path())
        .env("HOME", gw.dir.path())
        .env("OPENCLAW_STATE_DIR", gw.dir.path().join("state"))
        .env("OPENCLAW_GATEWAY_PORT", gw.port.to_string())
        .output()
        .unwrap();
    assert!(o.status.success(), "clawgate qr: {}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
}

/// A loopback address of this test's own (127.20-219.x.y), so port 443 is free for the forwarder.
fn private_loopback() -> IpAddr {
    let p = std::process::id();
    IpAddr::V4(Ipv4Addr::new(
        127,
        20 + (p % 200) as u8,
        (p >> 8) as u8,
        1 + (p % 250) as u8,
    ))
}

/// Paired devices holding the node role, from clawgate over loopback.
async fn node_devices(gw: &Gateway) -> Vec<Value> {
    let mut op = common::operator(gw, &["operator.admin", "operator.pairing"]).await;
    let v = call(&mut op, "l", "device.pair.list", json!({})).await;
    let paired = v["payload"]["paired"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    paired
        .into_iter()
        .filter(|d| {
            d["roles"]
                .as_array()
                .is_some_and(|r| r.contains(&json!("node")))
        })
        .collect()
}

async fn connected(gw: &Gateway) -> bool {
    let mut op = common::operator(gw, &["operator.read"]).await;
    let v = call(&mut op, "n", "node.list", json!({})).await;
    v["payload"]["nodes"]
        .as_array()
        .is_some_and(|n| n.iter().any(|n| n["connected"] == true))
}

fn spawn_pair(v: &Vienna, home: &Path, flag: &str, code: &str) -> (Killed, LogOnPanic) {
    let log = home.join("node-host.log");
    let f = std::fs::File::create(&log).unwrap();
    let child = std::os::unix::process::CommandExt::process_group(
        v.cmd(
            home,
            &["node", "run", flag, code, "--display-name", "vienna-phone"],
        )
        .stdout(std::process::Stdio::from(f.try_clone().unwrap()))
        .stderr(std::process::Stdio::from(f)),
        0,
    )
    .spawn()
    .expect("spawn node host");
    (Killed(child), LogOnPanic(log))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_node_host_redeems_a_setup_code_over_serve_once() {
    let Some(dir) = peer_dir() else { return };
    common::bounded(BOUND, async {
        let Some((net, tsnet)) = tailnet_with_sidecar(SIDECAR).await else {
            return;
        };
        let gw = common::own_sidecar_gateway(&net, SIDECAR, &tsnet, json!({}));
        testnet::wait_exposure(gw.port, "ok", Duration::from_secs(60)).await;
        let fqdn = net.manifest.sidecars[SIDECAR].fqdn.clone();
        let at = forwarder(
            &net,
            "vienna",
            &fqdn,
            SocketAddr::new(private_loopback(), 443),
        )
        .await;
        let ca = net.manifest.ca_cert_path.clone();
        let v = Vienna {
            dir,
            home: tempfile::tempdir().unwrap(),
            ca,
            fqdn: fqdn.clone(),
            at,
        };

        let qr = clawgate_qr(&gw);
        let code = qr["setupCode"]
            .as_str()
            .unwrap_or_else(|| panic!("{qr}"))
            .to_string();
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&code)
            .unwrap();
        let payload: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(payload["url"], format!("wss://{fqdn}"), "{payload}");

        let phone = tempfile::tempdir().unwrap();
        let first = spawn_pair(&v, phone.path(), "--pair", &code);
        let dev = until("one-step pairing through the setup code", 90, || {
            let d = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(node_devices(&gw))
            });
            d.into_iter().next()
        })
        .await;
        let scopes: Vec<&str> = dev["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            !scopes.contains(&"operator.admin") && !scopes.is_empty(),
            "bounded profile: {dev}"
        );
        assert_eq!(dev["approvedBy"], "bootstrap", "{dev}");

        // The same code on another device: refused, no second pairing.
        let other = tempfile::tempdir().unwrap();
        let second = spawn_pair(&v, other.path(), "--pair", &code);
        let log = other.path().join("node-host.log");
        let refused = until("second redemption refused", 60, || {
            let l = std::fs::read_to_string(&log).unwrap_or_default();
            l.contains("AUTH_BOOTSTRAP_TOKEN_INVALID").then_some(l)
        })
        .await;
        let devices = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(node_devices(&gw))
        });
        assert_eq!(
            devices.len(),
            1,
            "a consumed code pairs nobody else: {refused}"
        );
        eprintln!("paired through the code: {dev}\nsecond redemption: {refused}");
        drop(second);

        // Restart with --pair-if-needed: the saved device token is used, the spent code is not.
        drop(first);
        until("node host gone", 30, || {
            let c = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(connected(&gw))
            });
            (!c).then_some(())
        })
        .await;
        let _again = spawn_pair(&v, phone.path(), "--pair-if-needed", &code);
        until("reconnect on the saved device token", 90, || {
            let c = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(connected(&gw))
            });
            c.then_some(())
        })
        .await;
        let devices = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(node_devices(&gw))
        });
        assert_eq!(devices.len(), 1, "same device, no new pairing: {devices:?}");
        assert_eq!(devices[0]["deviceId"], dev["deviceId"]);
        drop(gw);
        net.stop().await;
    })
    .await;
}

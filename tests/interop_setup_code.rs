//! Setup code redeemed by the real program (issue 13 §3): `clawgate qr` on a `--tailscale serve`
//! gateway (own sidecar `london-gw`) issues a code carrying `wss://london-gw.<suffix>` (port 443);
//! the real `openclaw node run --pair <code>` on vienna ([`common::vienna`]: a network namespace
//! with the kernel-TUN tailscaled, the code's URL resolved by MagicDNS) redeems it and pairs in one
//! step with the bounded profile
//! (node role plus bounded operator scopes, never `operator.admin`, threats.md PR-6); a second
//! redemption of the same code by another device fails (PR-4); the node's first declared command
//! surface is approved with the code, so `system.which` runs without `nodes approve` (protocol.md
//! §16); `--pair-if-needed` on a restart reuses the saved device token.

mod common;

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use common::openclaw::peer_dir;
use common::testnet;
use common::vienna::{tailnet_with_sidecar, text, until, Killed, LogOnPanic, Vienna};
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

/// With the node connected: no node surface request is pending and `system.which` runs at once —
/// a setup code's first surface needs no `nodes approve` (protocol.md §16).
async fn first_surface_invocable(gw: &Gateway, node: &str) -> Value {
    let mut op = common::operator(gw, &["operator.admin", "operator.pairing"]).await;
    let list = call(&mut op, "p", "node.pair.list", json!({})).await;
    assert_eq!(list["payload"]["pending"], json!([]), "{list}");
    let params = json!({"nodeId": node, "command": "system.which", "params": {"bins": ["sh"]},
        "idempotencyKey": "first-surface"});
    call(&mut op, "w", "node.invoke", params).await
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
        let Some((vn, tsnet)) = tailnet_with_sidecar(SIDECAR).await else {
            return;
        };
        let gw = common::own_sidecar_gateway(&vn.net, SIDECAR, &tsnet, json!({}));
        testnet::wait_exposure(gw.port, "ok", Duration::from_secs(60)).await;
        let fqdn = vn.net.manifest.sidecars[SIDECAR].fqdn.clone();
        until("london-gw in MagicDNS on vienna", 30, || vn.resolve(&fqdn)).await;
        let v = vn.programs(dir, &fqdn);

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
        until("node host connected", 60, || {
            let c = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(connected(&gw))
            });
            c.then_some(())
        })
        .await;
        let node = dev["deviceId"].as_str().unwrap();
        let which = first_surface_invocable(&gw, node).await;
        let sh = which["payload"]["payload"]["bins"]["sh"].as_str();
        assert!(sh.is_some_and(|p| p.ends_with("/sh")), "{which}");

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
        vn.stop().await;
    })
    .await;
}

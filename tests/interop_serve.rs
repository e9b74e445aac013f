//! The real OpenClaw 2026.9.6 node host and CLI on the headline path (issue 13 §2, §4): clawgate
//! runs `--tailscale serve` with its own tsnet sidecar (`london-gw`) in the offline tailnet, and the
//! real programs run on vienna ([`common::vienna`]: a network namespace with the kernel-TUN
//! `tailscaled` as node `vienna-tun`): `london-gw.<suffix>` resolves through MagicDNS
//! (100.100.100.100) inside the namespace, TCP goes over the TUN to Serve, which terminates TLS with
//! the harness CA's certificate (trusted through `NODE_EXTRA_CA_CERTS`).
//!
//! Pinned: `openclaw gateway health` / `gateway probe --json` over wss; `openclaw node run --tls`
//! gets `PAIRING_REQUIRED` (a tailnet peer is remote), is approved with the real `openclaw devices
//! approve` over wss, reconnects, has its command surface approved (`openclaw nodes approve`), and
//! `system.which` round-trips through the real `openclaw nodes invoke` over wss.

mod common;

use std::time::Duration;

use common::openclaw::{invoke_which_sh, json_of, peer_dir};
use common::testnet;
use common::vienna::{tailnet_with_sidecar, text, until, Killed, LogOnPanic};
use serde_json::json;

const BOUND: Duration = Duration::from_secs(300);
const SIDECAR: &str = "london-gw";
/// What `gateway.auth.identityScopes` grants vienna's login.
const OPERATOR: &[&str] = &[
    "operator.read",
    "operator.write",
    "operator.pairing",
    "operator.admin",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_node_host_and_cli_over_serve_from_a_tailnet_peer() {
    let Some(dir) = peer_dir() else { return };
    common::bounded(BOUND, async {
        let Some((vn, tsnet)) = tailnet_with_sidecar(SIDECAR).await else {
            return;
        };
        let net = &vn.net;
        // vienna's verified login gets the operator scopes it asks for (connection-only): the
        // device-less real CLI has none otherwise as a remote client.
        let login = vn.node().login.clone();
        let auth = json!({"auth": {"allowTailscale": true, "identityScopes": {login: OPERATOR}}});
        let gw = common::own_sidecar_gateway(net, SIDECAR, &tsnet, auth);
        testnet::wait_exposure(gw.port, "ok", Duration::from_secs(60)).await;
        let fqdn = net.manifest.sidecars[SIDECAR].fqdn.clone();
        let sidecar_ip = until("london-gw in MagicDNS on vienna", 30, || vn.resolve(&fqdn)).await;
        assert!(sidecar_ip.to_string().starts_with("100."), "{sidecar_ip}");
        let v = vn.programs(dir, &fqdn);

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
        vn.stop().await;
    })
    .await;
}

//! The beacon tells the truth in serve mode (issue 16 item 1): clawgate runs `--tailscale serve`
//! with its own tsnet sidecar (`london-gw`) in the offline tailnet and publishes a wide-area zone.
//! Its SRV must point at the Serve endpoint — the MagicDNS name on 443 with `gatewayTls=1` and no
//! fingerprint of a certificate Serve does not present — never at the loopback-only gateway port.
//! From vienna (another tailnet host, kernel-TUN tailscaled in a namespace) the endpoint built
//! from exactly that SRV is reached by clawgate's `connect` (verified by name against the harness
//! CA, no pin) and by the real `openclaw gateway health`.
//!
//! Not covered here: browsing the zone over DNS from vienna (the sidecar's tailnet addresses are
//! not host addresses, so the embedded DNS server cannot bind them; the zone file is what a
//! CoreDNS/BIND on the tailnet would serve). `tests/discovery_widearea.rs` covers browsing.

mod common;

use std::time::Duration;

use common::openclaw::peer_dir;
use common::testnet;
use common::vienna::{tailnet_with_sidecar, text, until, LogOnPanic};
use common::{Gateway, TOKEN};
use serde_json::{json, Value};

const BOUND: Duration = Duration::from_secs(300);
const SIDECAR: &str = "london-gw";
const DOMAIN: &str = "openclaw.internal";

/// The SRV record's `(port, target)` in the zone file text.
fn srv(zone: &str) -> Option<(u16, String)> {
    let line = zone.lines().find(|l| l.contains(" IN SRV "))?;
    let f: Vec<&str> = line.split_whitespace().collect();
    Some((f.get(5)?.parse().ok()?, f.get(6)?.to_string()))
}

/// `clawgate connect <args> --ca-file <harness CA> --json` in vienna's namespace, with its own
/// client state in `home` and `config` as its config file (none: no config).
fn connect_on_vienna(
    v: &common::vienna::Vienna,
    home: &std::path::Path,
    args: &[&str],
    config: Option<&std::path::Path>,
) -> std::process::Output {
    let mut c = std::process::Command::new("ip");
    c.args([
        "netns",
        "exec",
        &v.netns,
        env!("CARGO_BIN_EXE_clawgate"),
        "connect",
    ])
    .args(args)
    .arg("--ca-file")
    .arg(&v.ca)
    .arg("--json")
    .env("HOME", home)
    .env("OPENCLAW_STATE_DIR", home.join("state"));
    match config {
        Some(p) => c.env("OPENCLAW_CONFIG_PATH", p),
        None => c.env_remove("OPENCLAW_CONFIG_PATH"),
    };
    tokio::task::block_in_place(|| c.output().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_mode_srv_points_at_the_serve_endpoint_and_it_is_reachable_from_the_tailnet() {
    let Some(dir) = peer_dir() else { return };
    common::bounded(BOUND, async {
        let Some((vn, tsnet)) = tailnet_with_sidecar(SIDECAR).await else {
            return;
        };
        let net = &vn.net;
        // vienna's tailnet login may read (the device-less real CLI has no scopes otherwise).
        let login = vn.node().login.clone();
        let cfg = json!({
            "gateway": {
                "tailscale": testnet::own_sidecar_config(net, SIDECAR, &tsnet),
                "auth": {"allowTailscale": true, "identityScopes": {login: ["operator.read"]}},
            },
            "discovery": {"wideArea": {"domain": DOMAIN}},
        });
        let env = common::testnet_env(net);
        let gw = Gateway::with_config(&cfg, &["--port", "0", "--token", TOKEN], &env);
        testnet::wait_exposure(gw.port, "ok", Duration::from_secs(60)).await;
        let fqdn = net.manifest.sidecars[SIDECAR].fqdn.clone();
        let zone_path = gw.dir.path().join(format!("state/dns/{DOMAIN}.db"));
        let want = format!("{}.", fqdn.trim_end_matches('.'));
        let _show = LogOnPanic(zone_path.clone());
        let zone = until("zone with the Serve SRV", 30, || {
            let z = std::fs::read_to_string(&zone_path).ok()?;
            (srv(&z)?.1 == want).then_some(z)
        })
        .await;
        let (port, target) = srv(&zone).unwrap();
        assert_eq!(port, 443, "{zone}");
        assert!(
            !zone.contains(&format!(" {} ", gw.port)),
            "loopback port leaked: {zone}"
        );
        let txt = zone.lines().find(|l| l.contains(" IN TXT ")).unwrap();
        for want in ["\"gatewayTls=1\"", "\"gatewayPort=443\""] {
            assert!(txt.contains(want), "{want}: {txt}");
        }
        assert!(!txt.contains("gatewayTlsSha256"), "{txt}");

        // Exactly the SRV's endpoint, from another tailnet host.
        let url = format!("wss://{}:{port}", target.trim_end_matches('.'));
        let v = vn.programs(dir, &fqdn);
        let me = tempfile::tempdir().unwrap();
        let o = connect_on_vienna(&v, me.path(), &["--url", &url], None);
        let c: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        assert_eq!(c["ok"], true, "clawgate connect {url}: {c} {}", text(&o));
        assert!(
            !me.path().join("state/clawgate/client/pins.json").exists(),
            "a publicly verifiable Serve certificate is not pinned"
        );
        let o = tokio::task::block_in_place(|| {
            v.cmd(
                v.home.path(),
                &["gateway", "health", "--url", &url, "--token", TOKEN],
            )
            .output()
            .unwrap()
        });
        assert!(
            o.status.success() && text(&o).contains("OK"),
            "openclaw gateway health {url}: {}",
            text(&o)
        );
        // The selection matrix on the tailnet: a dead configured endpoint (step 1) and no
        // beacon on vienna's LAN (step 2) give way to the tailnet name, secure only (step 3).
        let cfg = me.path().join("client.json");
        let dead = format!("ws://127.0.0.1:{}", common::free_port());
        std::fs::write(
            &cfg,
            json!({"gateway": {"remote": {"url": dead}}}).to_string(),
        )
        .unwrap();
        let o = connect_on_vienna(&v, me.path(), &["--tailnet", &fqdn], Some(&cfg));
        let c: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        assert_eq!(c["step"], 3, "{c} {}", text(&o));
        let outcomes: Vec<&str> = c["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(outcomes, ["failed", "skipped", "chosen"], "{c}");
        assert_eq!(
            c["url"],
            format!("wss://{}", fqdn.trim_end_matches('.')),
            "{c}"
        );
        drop(gw);
        vn.stop().await;
    })
    .await;
}

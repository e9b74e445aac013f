//! The real OpenClaw 2026.9.6 CLI as a public client through the offline tailnet's Funnel entry
//! (issue 13 §4): clawgate runs `mode = funnel` on london with password auth *and*
//! `allowTailscale`; the CLI runs on vienna ([`common::vienna`], itself a tailnet member with the
//! kernel-TUN tailscaled) and reaches `wss://london.<suffix>:<entry port>` the way a public client
//! does: the namespace's `/etc/hosts` maps the name to the Funnel entry on the veth host end (public
//! DNS would name the Funnel relay), the harness CA is trusted via `NODE_EXTRA_CA_CERTS`. It must
//! need the password — a wrong one or a token is refused — because
//! Funnel traffic never carries tailnet identity (threats.md PX-10); with the password the
//! device-less CLI is admitted without operator scopes (`gateway probe`:
//! `connected_no_operator_scope`), as any remote client without a paired device.

mod common;

use std::process::Output;
use std::time::Duration;

use common::openclaw::{json_of, peer_dir};
use common::testnet;
use common::vienna::{Vienna, ViennaNet};
use serde_json::{json, Value};

const BOUND: Duration = Duration::from_secs(240);

/// `openclaw gateway <args…> --json --url <url>` on vienna, a fresh HOME each time.
fn cli(v: &Vienna, url: &str, args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let args = [&["gateway"], args, &["--json", "--url", url]].concat();
    v.cmd(home.path(), &args).output().expect("run openclaw")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn code(v: &Value) -> &str {
    v["error"]["details"]["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_cli_through_funnel_needs_the_password_and_gets_no_tailnet_identity() {
    let Some(dir) = peer_dir() else { return };
    common::bounded(BOUND, async {
        let Some(vn) = ViennaNet::start(&[]).await else { return };
        let net = &vn.net;
        let auth = json!({"auth": {"mode": "password", "password": common::FUNNEL_PASSWORD, "allowTailscale": true}});
        let gw = common::attached_gateway(net, "funnel", auth, &[]);
        testnet::wait_exposure(gw.port, "ok", Duration::from_secs(60)).await;
        let fqdn = net.node("london").fqdn.clone();
        let entry: std::net::SocketAddr = net.manifest.funnel["london"].address.parse().unwrap();
        assert_eq!(entry.ip(), vn.ns.host_ip, "the Funnel entry listens on the veth host end");
        vn.ns.write_etc("hosts", &format!("127.0.0.1 localhost\n{} {fqdn}\n", entry.ip()));
        let url = format!("wss://{fqdn}:{}", entry.port());
        let v = vn.programs(dir, &fqdn);
        let run = |args: &[&str]| tokio::task::block_in_place(|| cli(&v, &url, args));
        let pw = common::FUNNEL_PASSWORD;
        // With the password the CLI is admitted, but as a device-less remote client it holds no
        // operator scope (only a paired device would): identity is the password alone.
        let probe = run(&["probe", "--password", pw]);
        let v = json_of(&probe);
        let t = v["targets"].as_array().unwrap().iter().find(|t| t["id"] == "explicit");
        let t = t.unwrap_or_else(|| panic!("explicit target: {}", text(&probe)));
        assert_eq!(t["connect"]["ok"], true, "{t}");
        assert_eq!(t["server"]["version"], env!("CARGO_PKG_VERSION"), "{t}");
        assert_eq!(t["auth"]["capability"], "connected_no_operator_scope", "{t}");
        let health = run(&["call", "health", "--password", pw]);
        let v = json_of(&health);
        assert_eq!((v["error"]["code"].as_str(), code(&v)), (Some("FORBIDDEN"), "MISSING_SCOPE"), "{v}");
        let wrong = run(&["call", "health", "--password", "not-the-funnel-password-123"]);
        assert!(!wrong.status.success(), "{}", text(&wrong));
        assert_eq!(code(&json_of(&wrong)), "AUTH_PASSWORD_MISMATCH", "{}", text(&wrong));
        // A token is no substitute, and nothing tailnet-like is granted. (The real CLI never opens a
        // socket without a credential, so the no-credential Funnel path is covered with our own
        // client: exposure_tailnet::funnel_needs_the_password_and_never_gets_tailnet_identity.)
        let token = run(&["call", "health", "--token", "some-token-0123456789abcdef"]);
        assert!(!token.status.success(), "{}", text(&token));
        let c = code(&json_of(&token)).to_string();
        assert!(c.starts_with("AUTH_PASSWORD"), "{c}: {}", text(&token));
        drop(gw);
        vn.stop().await;
    })
    .await;
}

//! The clawgate CLI as a real device against a gateway on another host (issue 16 items 2 and 7):
//! a remote `--url --token` command signs `connect` with the CLI's Ed25519 identity, is asked to
//! pair like any device (the real OpenClaw CLI lists the request), keeps its scopes once
//! approved, stores the device token for that gateway only, and then works without the shared
//! token — `devices approve` of the real `openclaw node run`'s request included, and through
//! `gateway.mode: "remote"` (the same route as `clawgate connect`).
//!
//! The gateway runs in a network namespace made by the test; the CLI in the root namespace
//! reaches it over the veth, so the gateway sees a private LAN peer (locality `remote`).

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::netns::{self, Netns};
use common::openclaw::{self, kill_group, node_host, peer_dir};
use common::{free_port, wait_for, TOKEN};
use serde_json::Value;

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        kill_group(&mut self.0);
    }
}

/// clawgate's CLI with its own client state dir `state`.
fn clawgate(state: &Path, args: &[&str]) -> (bool, Value, String) {
    let o = Command::new("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_clawgate"))
        .args(args)
        .arg("--json")
        .env("HOME", state)
        .env("OPENCLAW_STATE_DIR", state.join("state"))
        .env_remove("OPENCLAW_CONFIG_PATH")
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .env_remove("OPENCLAW_GATEWAY_URL")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (
        o.status.success(),
        v,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A gateway in `net` bound to its veth address (and loopback inside the namespace).
fn gateway(net: &Netns, home: &Path, port: u16) -> Killed {
    let cfg = home.join("openclaw.json");
    let bind = format!(
        r#"{{ gateway: {{ bind: "custom", customBindHost: "{}" }} }}"#,
        net.ns_ip
    );
    std::fs::write(&cfg, bind).unwrap();
    let log = std::fs::File::create(home.join("gateway.log")).unwrap();
    let child = net
        .exec(env!("CARGO_BIN_EXE_clawgate"))
        .args([
            "run",
            "--port",
            &port.to_string(),
            "--token",
            TOKEN,
            "--config",
        ])
        .arg(&cfg)
        .env("HOME", home)
        .env("OPENCLAW_STATE_DIR", home.join("state"))
        .env("OPENCLAW_DISABLE_BONJOUR", "1")
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap();
    child.into()
}

impl From<Child> for Killed {
    fn from(c: Child) -> Killed {
        Killed(c)
    }
}

/// `clawgate <args> --url ws://127.0.0.1:<port> --token … --json` on the gateway host.
fn on_gateway_host(net: &Netns, home: &Path, port: u16, args: &[&str]) -> Value {
    let url = format!("ws://127.0.0.1:{port}");
    let o = net
        .exec(env!("CARGO_BIN_EXE_clawgate"))
        .args(args)
        .args(["--url", &url, "--token", TOKEN, "--json"])
        .env("HOME", home)
        .env("OPENCLAW_STATE_DIR", home.join("state"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn remote_cli_pairs_as_a_device_keeps_its_scopes_and_approves_a_node() {
    let Some(dir) = peer_dir() else { return };
    if !netns::available() {
        return;
    }
    let net = Netns::new();
    let gw_home = tempfile::tempdir().unwrap();
    let port = free_port();
    let _gw = gateway(&net, gw_home.path(), port);
    let url = format!("ws://{}:{port}", net.ns_ip);
    let me = tempfile::tempdir().unwrap();
    wait_for("gateway on the veth", 30, || {
        std::net::TcpStream::connect((net.ns_ip, port)).ok()
    });

    // First remote contact: a signed device connect, answered with a pairing request.
    let (ok, v, err) = clawgate(me.path(), &["health", "--url", &url, "--token", TOKEN]);
    assert!(!ok, "an unpaired remote device must not get a session: {v}");
    assert_eq!(v["error"]["details"]["code"], "PAIRING_REQUIRED", "{v}");
    let rid = v["error"]["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        err.contains(&format!("clawgate devices approve {rid}")),
        "{err}"
    );
    let device_id = v["error"]["details"]["deviceId"]
        .as_str()
        .unwrap()
        .to_string();
    let identity =
        std::fs::read_to_string(me.path().join("state/clawgate/client/device.json")).unwrap();
    assert!(
        identity.contains(&device_id),
        "the request is for the CLI's stored identity"
    );

    // The real OpenClaw CLI sees it as an ordinary device request and approves it.
    let oc_home = tempfile::tempdir().unwrap();
    let local = format!("ws://127.0.0.1:{port}");
    let o = openclaw::command(
        &dir,
        oc_home.path(),
        Some(&net.name),
        &[
            "devices", "list", "--json", "--url", &local, "--token", TOKEN,
        ],
    )
    .output()
    .unwrap();
    let listed = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && listed.contains(&rid),
        "openclaw devices list: {listed}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = openclaw::command(
        &dir,
        oc_home.path(),
        Some(&net.name),
        &[
            "devices", "approve", &rid, "--url", &local, "--token", TOKEN,
        ],
    )
    .output()
    .unwrap();
    assert!(
        o.status.success(),
        "openclaw devices approve: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    // Approved: the same command now has a session with its scopes, and a device token is stored.
    let (ok, v, err) = clawgate(me.path(), &["health", "--url", &url, "--token", TOKEN]);
    assert!(ok, "health after approval: {v} {err}");
    let tokens =
        std::fs::read_to_string(me.path().join("state/clawgate/client/device-auth.json")).unwrap();
    let tokens: Value = serde_json::from_str(&tokens).unwrap();
    let key = format!("ws://{}:{port}", net.ns_ip);
    assert!(
        tokens["gateways"][&key]["operator"]["token"].is_string(),
        "{tokens}"
    );
    assert!(
        !tokens.to_string().contains(TOKEN),
        "the shared token is never stored"
    );

    // Without the shared token: the device token (for this gateway only) is enough.
    let (ok, v, err) = clawgate(me.path(), &["status", "--url", &url]);
    assert!(ok, "status with the device token only: {v} {err}");
    let other = format!("ws://{}:{port}", net.host_ip);
    let (ok, _, err) = clawgate(me.path(), &["status", "--url", &other]);
    assert!(
        !ok && err.contains("--token"),
        "another gateway gets no stored token: {err}"
    );

    // The real node host asks to pair; the remote CLI approves it with its device token.
    let node_home = tempfile::tempdir().unwrap();
    let _node = Killed(node_host(
        &dir,
        node_home.path(),
        None,
        &net.ns_ip.to_string(),
        port,
        TOKEN,
    ));
    let node_rid = wait_for("the node host's pairing request", 90, || {
        let (ok, v, _) = clawgate(me.path(), &["devices", "list", "--url", &url]);
        let pending = v["pending"]
            .as_array()?
            .iter()
            .find(|r| r["role"] == "node")?
            .clone();
        ok.then(|| pending["requestId"].as_str().map(str::to_string))
            .flatten()
    });
    let (ok, v, err) = clawgate(me.path(), &["devices", "approve", &node_rid, "--url", &url]);
    assert!(ok, "remote devices approve: {v} {err}");
    wait_for("the approved node connected", 90, || {
        let v = on_gateway_host(&net, gw_home.path(), port, &["nodes", "list"]);
        v["nodes"]
            .as_array()?
            .iter()
            .any(|n| n["connected"] == true)
            .then_some(())
    });

    // gateway.mode "remote": plain `clawgate status` takes the configured endpoint (step 1).
    let cfg = me.path().join("client.json");
    std::fs::write(&cfg, format!(r#"{{ gateway: {{ mode: "remote", remote: {{ url: "{url}", transport: "direct" }} }} }}"#)).unwrap();
    let cfg_s = cfg.to_str().unwrap();
    let (ok, v, err) = clawgate(me.path(), &["status", "--config", cfg_s]);
    assert!(ok, "status through gateway.mode remote: {v} {err}");

    // A removed device's token is refused and dropped, so the next connect pairs again.
    on_gateway_host(
        &net,
        gw_home.path(),
        port,
        &["devices", "remove", &device_id],
    );
    let (ok, v, _) = clawgate(me.path(), &["status", "--url", &url]);
    assert!(!ok, "a removed device's token must not work: {v}");
    let tokens =
        std::fs::read_to_string(me.path().join("state/clawgate/client/device-auth.json")).unwrap();
    assert!(
        !tokens.contains(&key),
        "the refused token was dropped: {tokens}"
    );
}

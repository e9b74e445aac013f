//! Policy step 4, the managed SSH transport (issue 16 item 5, threats.md SSH-1/SSH-2), against a
//! real OpenSSH server in a network namespace made by the test. The gateway there listens on
//! the namespace's loopback only, so the tunnel is the only way in.
//!
//! Proven: `clawgate connect` reports steps 1–3 skipped and step 4 chosen with ssh's exact
//! options; the real OpenClaw CLI and `openclaw node run` reach `hello-ok` through
//! `clawgate connect --forward` and the node is invocable (the gateway sees loopback, as with
//! any SSH tunnel); the tunnel comes back after its ssh process is killed and after a keepalive
//! loss (sshd's session frozen); a changed host key ends the forward and is never retried; an
//! unknown host key or a refused login fails closed; an option-shaped target never reaches ssh;
//! a busy local port moves the tunnel to an ephemeral one.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use common::netns::{self, Netns};
use common::openclaw::{invoke_which_sh, json_of, kill_group, node_host, oc, peer_dir};
use common::sshd::{self, SshClient, Sshd};
use common::{free_port, wait_for, TOKEN};
use serde_json::{json, Value};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        kill_group(&mut self.0);
    }
}

/// A gateway host: namespace, sshd, and a clawgate gateway on its loopback `port`.
struct Host {
    sshd: Sshd,
    port: u16,
    _gw: Killed,
    _dir: tempfile::TempDir,
    net: Netns,
}

fn host() -> Option<Host> {
    host_with(json!({}))
}

/// [`host`] with the gateway's config file.
fn host_with(config: Value) -> Option<Host> {
    if !netns::available() || !sshd::available() {
        return None;
    }
    let net = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&net, dir.path());
    let port = free_port();
    let home = dir.path().join("gw");
    std::fs::create_dir_all(home.join("state")).unwrap();
    std::fs::write(home.join("state/openclaw.json"), config.to_string()).unwrap();
    let log = std::fs::File::create(home.join("gateway.log")).unwrap();
    let gw = net
        .exec(env!("CARGO_BIN_EXE_clawgate"))
        .args(["run", "--port", &port.to_string(), "--token", TOKEN])
        .env("HOME", &home)
        .env("OPENCLAW_STATE_DIR", home.join("state"))
        .env_remove("OPENCLAW_CONFIG_PATH")
        .env("OPENCLAW_DISABLE_BONJOUR", "1")
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap();
    let h = Host {
        sshd,
        port,
        _gw: Killed(gw),
        _dir: dir,
        net,
    };
    wait_for("gateway in the namespace", 30, || {
        let o = h
            .net
            .exec("bash")
            .args(["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{port}")])
            .output()
            .ok()?;
        o.status.success().then_some(())
    });
    Some(h)
}

impl Host {
    /// `clawgate <args> --json` on the gateway host (its state dir).
    fn on_gateway(&self, args: &[&str]) -> Value {
        let home = self._dir.path().join("gw");
        let o = self
            .net
            .exec(env!("CARGO_BIN_EXE_clawgate"))
            .args(args)
            .arg("--json")
            .env("HOME", &home)
            .env("OPENCLAW_STATE_DIR", home.join("state"))
            .env_remove("OPENCLAW_CONFIG_PATH")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }
}

/// A client machine: its own HOME/state dir, config and ssh wrapper.
struct Client {
    home: tempfile::TempDir,
    ssh: SshClient,
}

impl Client {
    fn new(h: &Host, config: Value) -> Client {
        Client::with_keys(h, config, "known_hosts", "client_key")
    }

    fn with_keys(h: &Host, config: Value, known: &str, key: &str) -> Client {
        let home = tempfile::tempdir().unwrap();
        let ssh = SshClient::new(
            &home.path().join("ssh"),
            &h.sshd.dir.join(known),
            &h.sshd.dir.join(key),
        );
        std::fs::write(home.path().join("openclaw.json"), config.to_string()).unwrap();
        Client { home, ssh }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("timeout");
        c.arg("90")
            .arg(env!("CARGO_BIN_EXE_clawgate"))
            .args(args)
            .env("PATH", self.ssh.path_env())
            .env("HOME", self.home.path())
            .env("OPENCLAW_STATE_DIR", self.home.path().join("state"))
            .env(
                "OPENCLAW_CONFIG_PATH",
                self.home.path().join("openclaw.json"),
            )
            .env_remove("OPENCLAW_GATEWAY_TOKEN")
            .env_remove("OPENCLAW_GATEWAY_URL")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> (i32, Value, String) {
        let o: Output = self.command(args).output().unwrap();
        let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        (o.status.code().unwrap_or(-1), v, err)
    }

    /// `connect --forward 127.0.0.1:<port> --json`, with its first stdout line.
    fn forward(&self, port: u16) -> (Killed, Value) {
        let addr = format!("127.0.0.1:{port}");
        let mut child = self
            .command(&["connect", "--no-discover", "--forward", &addr, "--json"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(self.home.path().join("forward.log")).unwrap())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("forward said {line:?}: {}", self.log()));
        (Killed(child), v)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("forward.log")).unwrap_or_default()
    }
}

fn remote(h: &Host) -> Value {
    json!({"gateway": {"remote": {"sshTarget": h.sshd.target(), "remotePort": h.port}}})
}

/// The real `openclaw gateway health` against the forward.
fn oc_health(dir: &Path, home: &Path, port: u16) -> Option<Value> {
    let url = format!("ws://127.0.0.1:{port}");
    let o = oc(
        dir,
        home,
        &[
            "gateway", "health", "--url", &url, "--token", TOKEN, "--json",
        ],
    );
    o.status.success().then(|| json_of(&o))
}

/// The connected node's id, via clawgate's CLI through the forward.
fn connected_node(c: &Client, url: &str) -> Option<String> {
    let (code, v, _) = c.run(&["nodes", "list", "--url", url, "--token", TOKEN, "--json"]);
    (code == 0).then_some(())?;
    v["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["connected"] == true)
        .and_then(|n| n["nodeId"].as_str().map(str::to_string))
}

#[test]
fn connect_reports_step_four_with_the_reference_ssh_options() {
    let Some(h) = host() else { return };
    let c = Client::new(&h, remote(&h));
    let (code, v, err) = c.run(&["connect", "--no-discover", "--json"]);
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["step"], 4, "{v}");
    let steps = v["steps"].as_array().unwrap();
    assert!(steps[..3].iter().all(|s| s["outcome"] == "skipped"), "{v}");
    assert_eq!(steps[3]["outcome"], "chosen", "{v}");
    assert!(
        v["url"].as_str().unwrap().starts_with("ws://127.0.0.1:"),
        "{v}"
    );
    let argv = c.ssh.argv();
    assert_eq!(argv.len(), 1, "{argv:?}");
    for want in [
        "-N ",
        &format!("127.0.0.1:{}", h.port),
        "-o ExitOnForwardFailure=yes",
        "-o BatchMode=yes",
        "-o StrictHostKeyChecking=yes",
        "-o ServerAliveInterval=15",
        "-o ServerAliveCountMax=3",
        "-p 2222",
    ] {
        assert!(argv[0].contains(want), "{want} missing: {}", argv[0]);
    }
    assert!(
        argv[0].ends_with(&format!("-- root@{}", h.net.ns_ip)),
        "{}",
        argv[0]
    );
    // The tunnel ends with the command.
    wait_for("tunnel process gone", 10, || {
        let pid = c.ssh.pids()[0];
        (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
    // The matrix's last row: a dead configured endpoint and an unreachable tailnet name fail
    // (steps 1 and 3), and the tunnel is taken.
    let mut cfg = remote(&h);
    cfg["gateway"]["remote"]["url"] = json!(format!("ws://127.0.0.1:{}", free_port()));
    let c3 = Client::new(&h, cfg);
    let (code, v, err) = c3.run(&[
        "connect",
        "--no-discover",
        "--tailnet",
        "127.0.0.1",
        "--json",
    ]);
    assert_eq!(code, 0, "{v} {err}");
    let got: Vec<(u64, &str)> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_u64().unwrap(), s["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (1, "failed"),
            (2, "skipped"),
            (3, "failed"),
            (3, "failed"),
            (4, "chosen")
        ],
        "{v}"
    );
    // gateway.mode "remote" + transport "ssh": client commands take the same route.
    let mut cfg = remote(&h);
    cfg["gateway"]["mode"] = json!("remote");
    cfg["gateway"]["remote"]["transport"] = json!("ssh");
    cfg["gateway"]["remote"]["token"] = json!(TOKEN);
    let c = Client::new(&h, cfg);
    let (code, v, err) = c.run(&["health", "--json"]);
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["ok"], true, "{v}");
}

#[test]
fn real_openclaw_clients_use_the_forward_and_it_survives_kills_keepalive_loss_but_not_a_new_host_key(
) {
    let Some(dir) = peer_dir() else { return };
    let Some(mut h) = host() else { return };
    let c = Client::new(&h, remote(&h));
    let fport = free_port();
    let (mut fwd, v) = c.forward(fport);
    assert_eq!(v["step"], 4, "{v} {}", c.log());
    let url = format!("ws://127.0.0.1:{fport}");
    let oc_home = tempfile::tempdir().unwrap();
    let health = oc_health(&dir, oc_home.path(), fport).expect("openclaw gateway health");
    assert_eq!(health["ok"], true, "{health}");

    // The real node host through the forward: local to the gateway, so paired silently.
    let node_home = tempfile::tempdir().unwrap();
    let _node = Killed(node_host(
        &dir,
        node_home.path(),
        None,
        "127.0.0.1",
        fport,
        TOKEN,
    ));
    let node = wait_for("node host through the tunnel", 90, || {
        connected_node(&c, &url)
    });
    let rid = wait_for("node surface request", 30, || {
        let (_, v, _) = c.run(&[
            "nodes", "pending", "--url", &url, "--token", TOKEN, "--json",
        ]);
        v["pending"][0]["requestId"].as_str().map(str::to_string)
    });
    let o = oc(
        &dir,
        oc_home.path(),
        &["nodes", "approve", &rid, "--url", &url, "--token", TOKEN],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let invoke = |home: &Path| {
        let args = [
            invoke_which_sh(&node),
            vec!["--url", &url, "--token", TOKEN],
        ]
        .concat();
        let o = oc(&dir, home, &args);
        o.status.success().then(|| json_of(&o))
    };
    let v = invoke(oc_home.path()).expect("nodes invoke through the tunnel");
    assert!(v["payloadJSON"].as_str().unwrap().contains("/sh"), "{v}");

    // Kill the tunnel's ssh: a new one comes up and the node host is back.
    let first = c.ssh.pids();
    let _ = Command::new("kill")
        .args(["-KILL", &first[0].to_string()])
        .status();
    wait_for("tunnel restarted", 30, || {
        (c.ssh.pids().len() > first.len()).then_some(())
    });
    wait_for("node back after the kill", 90, || invoke(oc_home.path()));

    // Freeze sshd's session: only ssh's keepalive can notice; then the tunnel reconnects.
    let before = c.ssh.pids().len();
    h.sshd.signal_sessions("-STOP");
    wait_for("reconnect after keepalive loss", 30, || {
        (c.ssh.pids().len() > before).then_some(())
    });
    wait_for("gateway reachable again", 60, || {
        oc_health(&dir, oc_home.path(), fport)
    });
    assert!(c.log().contains("SSH tunnel down"), "{}", c.log());

    // A new host key: the next reconnect is refused and the forward ends, never retrying.
    h.sshd.restart_with_new_host_key();
    let n = c.ssh.pids();
    let _ = Command::new("kill")
        .args(["-KILL", &n[n.len() - 1].to_string()])
        .status();
    let status = wait_for("forward to stop", 30, || fwd.0.try_wait().unwrap());
    assert_eq!(status.code(), Some(1), "{}", c.log());
    assert!(c.log().contains("has CHANGED"), "{}", c.log());
    assert_eq!(
        c.ssh.pids().len(),
        n.len() + 1,
        "a changed host key was retried"
    );
    assert!(oc_health(&dir, oc_home.path(), fport).is_none());
}

#[test]
fn bad_targets_unknown_host_keys_and_refused_logins_fail_closed() {
    let Some(h) = host() else { return };
    // An option-shaped target never reaches ssh (flag and config).
    let c = Client::new(&h, json!({}));
    let pwned = c.home.path().join("pwned");
    let evil = format!("-oProxyCommand=touch {}", pwned.display());
    let (code, v, err) = c.run(&["connect", "--no-discover", "--ssh", &evil, "--json"]);
    assert_eq!(code, 2, "{v} {err}");
    let glued = format!("--ssh={evil}");
    let (code, v, err) = c.run(&["connect", "--no-discover", &glued, "--json"]);
    assert_eq!(code, 2, "{v} {err}");
    assert!(
        err.contains("--ssh: ") && err.contains("start with '-'"),
        "{err}"
    );
    let c2 = Client::new(&h, json!({"gateway": {"remote": {"sshTarget": evil}}}));
    let (code, _, err) = c2.run(&["connect", "--no-discover", "--json"]);
    assert_ne!(code, 0);
    assert!(err.contains("gateway.remote.sshTarget"), "{err}");
    assert!(c.ssh.pids().is_empty() && c2.ssh.pids().is_empty());
    assert!(!pwned.exists());

    // Unknown host key (nothing in known_hosts): refused once, reported as a trust failure.
    std::fs::write(h.sshd.dir.join("empty_known_hosts"), "").unwrap();
    let c = Client::with_keys(&h, remote(&h), "empty_known_hosts", "client_key");
    let (code, v, err) = c.run(&["connect", "--no-discover", "--json"]);
    assert_eq!(code, 1, "{v} {err}");
    assert_eq!(v["error"]["code"], "UNTRUSTED", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not known"),
        "{v}"
    );
    assert_eq!(c.ssh.pids().len(), 1);

    // A key the server does not accept.
    let other = h.sshd.dir.join("other_key");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(st.success());
    let c = Client::with_keys(&h, remote(&h), "known_hosts", "other_key");
    let (code, v, _) = c.run(&["connect", "--no-discover", "--json"]);
    assert_eq!(code, 1, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("login"),
        "{v}"
    );

    // --url means no fallback: step 4 is skipped, ssh never runs.
    let c = Client::new(&h, remote(&h));
    let dead = format!("ws://127.0.0.1:{}", free_port());
    let (code, v, _) = c.run(&["connect", "--url", &dead, "--json"]);
    assert_eq!(code, 1, "{v}");
    assert!(c.ssh.pids().is_empty(), "{v}");

    // The default local port is busy: the tunnel moves to an ephemeral one.
    let _busy = std::net::TcpListener::bind(("127.0.0.1", h.port)).unwrap();
    let (code, v, err) = c.run(&["connect", "--no-discover", "--json"]);
    assert_eq!(code, 0, "{v} {err}");
    let url = v["url"].as_str().unwrap();
    assert!(
        url.starts_with("ws://127.0.0.1:") && !url.ends_with(&format!(":{}", h.port)),
        "{v}"
    );
}

#[test]
fn a_tls_gateway_stays_wss_through_the_tunnel_and_its_pin_keys_the_real_endpoint() {
    let Some(h) = host_with(json!({"gateway": {"tls": {"enabled": true}}})) else {
        return;
    };
    let fp = h.on_gateway(&["tls", "fingerprint"])["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let real = format!("{}:{}", h.net.ns_ip, h.port);
    let mut cfg = remote(&h);
    cfg["gateway"]["remote"]["url"] = json!(format!("wss://{real}"));
    let c = Client::new(&h, cfg);
    // Step 1 (the configured URL, loopback-bound there) fails; through the tunnel the
    // certificate is still judged: unconfirmed first use stops the selection.
    let (code, v, err) = c.run(&["connect", "--no-discover", "--json"]);
    assert_eq!(code, 1, "{v} {err}");
    assert_eq!(v["error"]["code"], "UNTRUSTED", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains(&fp), "{v}");
    assert_eq!(v["steps"][0]["outcome"], "failed", "{v}");
    // Confirmed: wss:// to the tunnel's end, pinned under the gateway's own host:port.
    let (code, v, err) = c.run(&[
        "connect",
        "--no-discover",
        "--trust-fingerprint",
        &fp,
        "--json",
    ]);
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["step"], 4, "{v}");
    assert!(
        v["url"].as_str().unwrap().starts_with("wss://127.0.0.1:"),
        "{v}"
    );
    let (_, pins, _) = c.run(&["pins", "list", "--json"]);
    let keys: Vec<&str> = pins["pins"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, [real.as_str()], "{pins}");
    // The stored pin carries the next run, whatever local port the tunnel gets.
    let _busy = std::net::TcpListener::bind(("127.0.0.1", h.port));
    let (code, v, err) = c.run(&["connect", "--no-discover", "--json"]);
    assert_eq!(code, 0, "{v} {err}");
}

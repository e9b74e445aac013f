//! Trusted-proxy auth and client attribution behind a real reverse proxy (Debian's nginx), in
//! network namespaces made by the test (threats.md PX-1…PX-8, config.md §7).
//!
//! Topology: the test (root namespace, 10.79.1.1) → nginx in `cgtpx` (10.79.1.2:8080, basic
//! auth, sets the user and marker headers, appends `X-Forwarded-For`) → clawgate in `cgtgw`
//! (10.79.2.2, `bind = lan`, `trustedProxies = [10.79.2.1]`). The proxy namespace also routes, so
//! the test can bypass nginx and forge the headers itself.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{connect_params, handshake, try_open, Device};
use serde_json::{json, Value};

const PASSWORD: &str = "internal-callers-password-7f3a91c2";
const GW_PORT: u16 = 18791;
const LIMIT: Duration = Duration::from_secs(60);

/// Best-effort cleanup command: absent links and namespaces are fine.
fn quiet(args: &[&str]) {
    let _ = Command::new(args[0])
        .args(&args[1..])
        .stderr(Stdio::null())
        .status();
}

fn sh(args: &[&str]) {
    let s = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(s.success(), "{args:?}");
}

fn nginx_bin() -> Option<&'static str> {
    let found = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    if found.is_none() {
        assert!(
            std::env::var("CLAWGATE_REQUIRE_INTEROP").is_err(),
            "nginx is required (make deps installs nginx-light)"
        );
        eprintln!("skipped: no nginx");
    }
    found
}

/// A process killed (and reaped) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The two namespaces and their links; removed on drop (which also ends what runs inside).
struct Net;

impl Net {
    fn new() -> Net {
        let _ = Net::teardown();
        for ns in ["cgtpx", "cgtgw"] {
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        sh(&[
            "ip", "link", "add", "vtp0", "type", "veth", "peer", "name", "vtp1",
        ]);
        sh(&["ip", "link", "set", "vtp1", "netns", "cgtpx"]);
        sh(&[
            "ip", "-n", "cgtpx", "link", "add", "vtp2", "type", "veth", "peer", "name", "vtp3",
        ]);
        sh(&["ip", "-n", "cgtpx", "link", "set", "vtp3", "netns", "cgtgw"]);
        for (ns, dev, addr) in [
            (None, "vtp0", "10.79.1.1/24"),
            (Some("cgtpx"), "vtp1", "10.79.1.2/24"),
            (Some("cgtpx"), "vtp2", "10.79.2.1/24"),
            (Some("cgtgw"), "vtp3", "10.79.2.2/24"),
        ] {
            let mut ip = vec!["ip"];
            if let Some(ns) = ns {
                ip.extend(["-n", ns]);
            }
            sh(&[&ip[..], &["addr", "add", addr, "dev", dev]].concat());
            sh(&[&ip[..], &["link", "set", dev, "up"]].concat());
        }
        sh(&["ip", "route", "add", "10.79.2.0/24", "via", "10.79.1.2"]);
        sh(&[
            "ip",
            "-n",
            "cgtgw",
            "route",
            "add",
            "default",
            "via",
            "10.79.2.1",
        ]);
        sh(&[
            "ip",
            "netns",
            "exec",
            "cgtpx",
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        Net
    }

    fn teardown() -> std::io::Result<()> {
        quiet(&["ip", "link", "del", "vtp0"]);
        for ns in ["cgtpx", "cgtgw"] {
            quiet(&["ip", "netns", "del", ns]);
        }
        Ok(())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = Net::teardown();
    }
}

/// nginx's config: `/` is the correct setup; `/noreq/` forgets the marker header; `/badxff/`
/// overwrites the client address with garbage.
fn nginx_conf(dir: &Path, listen: &str, upstream: &str) -> String {
    let d = dir.display();
    let loc = |path: &str, extra: &str| {
        format!(
            "location {path} {{ proxy_pass http://{upstream}; proxy_http_version 1.1;
              proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection upgrade;
              proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
              proxy_set_header X-Forwarded-User $remote_user; {extra} }}\n"
        )
    };
    format!(
        "user root; worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/error.log info;
         events {{ worker_connections 64; }}
         http {{ access_log {d}/access.log; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
           fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
           server {{ listen {listen}; auth_basic clawgate; auth_basic_user_file {d}/htpasswd;
             {}{}{} }} }}\n",
        loc("/", "proxy_set_header X-Proxy-Auth nginx;"),
        loc("/noreq/", "proxy_set_header X-Proxy-Auth \"\";"),
        loc("/badxff/", "proxy_set_header X-Proxy-Auth nginx; proxy_set_header X-Forwarded-For unknown;"),
    )
}

fn start_nginx(bin: &str, dir: &Path, netns: Option<&str>, listen: &str, upstream: &str) -> Proc {
    std::fs::write(
        dir.join("htpasswd"),
        "alice:{PLAIN}wonderland\nbob:{PLAIN}builder\n",
    )
    .unwrap();
    std::fs::write(dir.join("nginx.conf"), nginx_conf(dir, listen, upstream)).unwrap();
    let mut c = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, bin]);
            c
        }
        None => Command::new(bin),
    };
    c.arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Proc(c.spawn().expect("spawn nginx"))
}

/// Waits until something listens on TCP `port` (inside `netns` when given).
fn wait_listening(netns: Option<&str>, port: u16) {
    for _ in 0..100 {
        let mut c = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "ss"]);
                c
            }
            None => Command::new("ss"),
        };
        let out = c.arg("-Hltn").output().unwrap();
        if String::from_utf8_lossy(&out.stdout).contains(&format!(":{port} ")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on port {port}");
}

fn start_gateway(dir: &Path, cfg: &Value) -> Proc {
    std::fs::write(dir.join("openclaw.json"), cfg.to_string()).unwrap();
    let mut c = Command::new("ip");
    c.args([
        "netns",
        "exec",
        "cgtgw",
        env!("CARGO_BIN_EXE_clawgate"),
        "run",
    ])
    .args(["--port", &GW_PORT.to_string(), "--config"])
    .arg(dir.join("openclaw.json"))
    .env("HOME", dir)
    .env("OPENCLAW_STATE_DIR", dir.join("state"))
    .env_remove("OPENCLAW_GATEWAY_TOKEN")
    .env_remove("OPENCLAW_GATEWAY_PASSWORD")
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut child = c.spawn().expect("spawn clawgate");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let banner = lines.next().expect("banner").unwrap();
    assert!(banner.contains(&GW_PORT.to_string()), "{banner}");
    std::thread::spawn(move || for _ in lines {});
    Proc(child)
}

/// `clawgate <args> --json` on the gateway host over loopback with the internal password (PX-8).
fn local_cli(args: &[&str]) -> Value {
    let url = format!("ws://127.0.0.1:{GW_PORT}");
    let out = Command::new("ip")
        .args(["netns", "exec", "cgtgw", env!("CARGO_BIN_EXE_clawgate")])
        .args(args)
        .args(["--url", &url, "--password", PASSWORD, "--json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{args:?}: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
}

fn basic(user: &str, pw: &str) -> String {
    use base64::Engine;
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
    format!("Basic {b}")
}

/// A device-less CLI connect through `url` with `headers`: the `connect` response.
async fn cli_connect(url: &str, headers: &[(&str, &str)]) -> Value {
    cli_connect_auth(url, headers, json!({})).await
}

async fn cli_connect_auth(url: &str, headers: &[(&str, &str)], auth: Value) -> Value {
    let mut ws = try_open(url, headers)
        .await
        .expect("upgrade through the proxy");
    handshake(&mut ws, connect_params(auth, &["operator.read"]))
        .await
        .1
}

fn reason(res: &Value) -> &str {
    res["error"]["details"]["authReason"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_in_front_authenticates_users_and_attributes_clients() {
    let Some(bin) = nginx_bin() else { return };
    let _net = Net::new();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = json!({"gateway": {
        "bind": "lan",
        "trustedProxies": ["10.79.2.1"],
        "auth": {"mode": "trusted-proxy", "password": PASSWORD, "trustedProxy": {
            "userHeader": "x-forwarded-user", "requiredHeaders": ["x-proxy-auth"], "allowUsers": ["alice"]}},
    }});
    let _gw = start_gateway(tmp.path(), &cfg);
    let ng_dir = tempfile::tempdir().unwrap();
    let upstream = format!("10.79.2.2:{GW_PORT}");
    let _nginx = start_nginx(
        bin,
        ng_dir.path(),
        Some("cgtpx"),
        "10.79.1.2:8080",
        &upstream,
    );
    wait_listening(Some("cgtpx"), 8080);
    common::bounded(LIMIT, async {
        let alice = basic("alice", "wonderland");
        // The client tries to inject an address and forge the identity and marker headers:
        // nginx overwrites the user/marker and appends the real peer to XFF.
        let forged = [
            ("authorization", alice.as_str()),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-user", "mallory"),
        ];
        let res = cli_connect("ws://10.79.1.2:8080/", &forged).await;
        assert_eq!(res["ok"], true, "{res}");
        assert_eq!(res["payload"]["auth"]["method"], "trusted-proxy", "{res}");
        // A proxied connection is remote: a device-less CLI keeps no scopes (PX-6, §8.3).
        assert_eq!(res["payload"]["auth"]["scopes"], json!([]), "{res}");

        // A device pairs like any remote device; the request names the real client (PX-3).
        let d = Device::new();
        let (_ws, res) = d
            .connect(
                "ws://10.79.1.2:8080/",
                &forged,
                "operator",
                ("cli", "cli"),
                &["operator.read"],
                json!({}),
                json!({}),
            )
            .await;
        assert_eq!(res["error"]["code"], "NOT_PAIRED", "{res}");
        let list = local_cli(&["devices", "list"]);
        let pending = list["pending"].as_array().expect("pending list");
        let req = pending
            .iter()
            .find(|p| p["deviceId"] == d.id.as_str())
            .expect("request");
        assert_eq!(req["remoteIp"], "10.79.1.1", "{req}");

        // bob authenticates to nginx but is not in allowUsers.
        let bob = basic("bob", "builder");
        let res = cli_connect("ws://10.79.1.2:8080/", &[("authorization", bob.as_str())]).await;
        assert_eq!(reason(&res), "trusted_proxy_user_not_allowed", "{res}");
        assert_eq!(
            res["error"]["details"]["code"], "AUTH_UNAUTHORIZED",
            "{res}"
        );

        // A proxy route that does not set the required header (the client's own is cleared).
        let with_marker = [("authorization", alice.as_str()), ("x-proxy-auth", "nginx")];
        let res = cli_connect("ws://10.79.1.2:8080/noreq/", &with_marker).await;
        assert_eq!(
            reason(&res),
            "trusted_proxy_missing_header_x-proxy-auth",
            "{res}"
        );
        assert_eq!(
            res["error"]["details"]["code"], "AUTH_IDENTITY_HEADER_REQUIRED",
            "{res}"
        );

        // The proxy sends an unusable client address: fail closed, never the proxy's (PX-5).
        let res = cli_connect(
            "ws://10.79.1.2:8080/badxff/",
            &[("authorization", alice.as_str())],
        )
        .await;
        assert_eq!(reason(&res), "proxy_attribution_required", "{res}");
        let msg = res["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("gateway.trustedProxies"),
            "the fix is named: {res}"
        );

        // Bypassing nginx with every header forged: not a trusted source (PX-1, CVE-2026-53832).
        let bypass = [
            ("x-forwarded-user", "alice"),
            ("x-proxy-auth", "nginx"),
            ("x-forwarded-for", "10.79.1.1"),
        ];
        let res = cli_connect(&format!("ws://10.79.2.2:{GW_PORT}/"), &bypass).await;
        assert_eq!(reason(&res), "trusted_proxy_untrusted_source", "{res}");
    })
    .await;
    // Internal callers keep the password path on direct loopback (PX-8).
    let health = local_cli(&["health"]);
    assert_eq!(health["ok"], true, "{health}");
}

fn loopback_proxy_gateway(allow_loopback: bool) -> common::Gateway {
    let cfg = json!({"gateway": {
        "trustedProxies": ["127.0.0.1"],
        "auth": {"mode": "trusted-proxy", "password": PASSWORD, "trustedProxy": {
            "userHeader": "x-forwarded-user", "allowUsers": ["alice"], "allowLoopback": allow_loopback}},
    }});
    common::Gateway::with_config(&cfg, &["--port", "0"], &[])
}

/// A host address on a local veth (this kernel has no dummy links), so a same-host nginx sees a client that is not
/// loopback (a loopback client is never attributable, PX-6); removed on drop.
struct Dummy;

impl Dummy {
    fn new() -> Dummy {
        quiet(&["ip", "link", "del", "cgtdum0"]);
        sh(&[
            "ip", "link", "add", "cgtdum0", "type", "veth", "peer", "name", "cgtdum1",
        ]);
        sh(&["ip", "addr", "add", "10.79.3.1/32", "dev", "cgtdum0"]);
        sh(&["ip", "link", "set", "cgtdum0", "up"]);
        sh(&["ip", "link", "set", "cgtdum1", "up"]);
        Dummy
    }
}

impl Drop for Dummy {
    fn drop(&mut self) {
        quiet(&["ip", "link", "del", "cgtdum0"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_same_host_proxy_needs_the_explicit_loopback_opt_in() {
    let Some(bin) = nginx_bin() else { return };
    let _dummy = Dummy::new();
    for allow in [false, true] {
        let gw = loopback_proxy_gateway(allow);
        let dir = tempfile::tempdir().unwrap();
        let port = common::free_port();
        let listen = format!("10.79.3.1:{port}");
        let _nginx = start_nginx(
            bin,
            dir.path(),
            None,
            &listen,
            &format!("127.0.0.1:{}", gw.port),
        );
        wait_listening(None, port);
        common::bounded(LIMIT, async {
            let alice = basic("alice", "wonderland");
            let url = format!("ws://{listen}/");
            let res = cli_connect(&url, &[("authorization", alice.as_str())]).await;
            if allow {
                assert_eq!(res["payload"]["auth"]["method"], "trusted-proxy", "{res}");
                let bob = basic("bob", "builder");
                let res = cli_connect(&url, &[("authorization", bob.as_str())]).await;
                assert_eq!(reason(&res), "trusted_proxy_user_not_allowed", "{res}");
            } else {
                assert_eq!(reason(&res), "trusted_proxy_loopback_source", "{res}");
            }
            // Any local process forging the header straight to the port gets nothing (PX-7).
            let forged = cli_connect(&gw.url(), &[("x-forwarded-user", "alice")]).await;
            assert_ne!(forged["ok"], true, "{forged}");
            // Without a credential a direct local caller is refused by the proxy rules...
            let none = cli_connect(&gw.url(), &[]).await;
            assert!(reason(&none).starts_with("trusted_proxy_"), "{none}");
            // ...and the password path stays open to it (PX-8).
            let pw = cli_connect_auth(&gw.url(), &[], json!({"password": PASSWORD})).await;
            assert_eq!(pw["payload"]["auth"]["method"], "password", "{pw}");
        })
        .await;
        let status = Command::new(env!("CARGO_BIN_EXE_clawgate"))
            .args([
                "status",
                "--json",
                "--url",
                &gw.url(),
                "--password",
                PASSWORD,
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&status.stdout);
        assert!(status.status.success(), "{text}");
        assert_eq!(
            text.contains("trusted-proxy-allow-loopback"),
            allow,
            "the loopback opt-in is an audit finding (PX-7): {text}"
        );
    }
}

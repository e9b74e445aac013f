//! threats.md rows that had no test when `docs/security.md` was written (issue 12 item 9), each
//! against the real `clawgate` binary: WS-3 and SE-1 (no credentials
//! from URLs), SE-4 (no paths for non-admins, no secret for anyone), SE-2 and PR-4 (setup codes),
//! PR-3 (a token mismatch keeps the record), SL-5/SL-6 (serve without tailscaled, no sudo), TN-5
//! (both loopback families), PX-1/PX-2/PX-8 (forwarded values never pick the bucket) and SSH-3 (the
//! CLI fails on bad auth). The config-only rows are in `threat_rows_config.rs`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bound of every test body.
const LIMIT: Duration = Duration::from_secs(60);
/// Headers that make a loopback connection count as proxied, hence remote.
const PROXIED: &[(&str, &str)] = &[("x-forwarded-for", "203.0.113.9")];
/// A strong secret that is not the gateway's.
const WRONG: &str = "a-wrong-but-strong-token-9876543210";

/// `clawgate <args>` with no credentials in the environment.
fn clawgate(args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .args(args)
        .env("HOME", home.path())
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .env_remove("OPENCLAW_GATEWAY_PASSWORD")
        .output()
        .expect("run clawgate")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn credentials_in_the_websocket_url_are_never_used() {
    bounded(LIMIT, async {
        let gw = Gateway::start(&[]);
        let url = format!("{}/?token={TOKEN}&password={TOKEN}", gw.url());
        let mut ws = open(&url, &[]).await;
        let (_, res) = handshake(&mut ws, connect_params(json!({}), &["operator.read"])).await;
        assert_eq!(
            res["error"]["details"]["code"], "AUTH_TOKEN_MISSING",
            "{res}"
        );
        let out = clawgate(&["health", "--url", &url, "--token", TOKEN]);
        assert!(!out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("query or fragment"), "{}", text(&out));
    })
    .await
}

#[tokio::test]
async fn non_admins_get_no_paths_and_no_one_gets_a_secret() {
    bounded(LIMIT, async {
        let gw = Gateway::with_config(
            &json!({"gateway": {"auth": {"token": TOKEN}}}),
            &["--port", "0"],
            &[],
        );
        let mut ws = open(&gw.url(), &[]).await;
        let (_, hello) = handshake(
            &mut ws,
            connect_params(json!({"token": TOKEN}), &["operator.read"]),
        )
        .await;
        assert_eq!(hello["ok"], true, "{hello}");
        let cfg = call(&mut ws, "c", "config.get", json!({})).await;
        assert_eq!(cfg["payload"]["path"], Value::Null, "{cfg}");
        for key in ["configPath", "stateDir", "authMode"] {
            assert!(
                hello["payload"]["snapshot"].get(key).is_none(),
                "hello-ok has {key}: {hello}"
            );
            assert!(
                cfg["payload"]["config"].get(key).is_none(),
                "config.get has {key}: {cfg}"
            );
        }
        let status = call(&mut ws, "s", "status", json!({})).await;
        assert_eq!(status["ok"], true, "{status}");
        let mut adm = operator(&gw, &["operator.admin"]).await;
        let admin_cfg = call(&mut adm, "c", "config.get", json!({})).await;
        assert!(
            admin_cfg["payload"]["path"].is_string(),
            "admins see the path: {admin_cfg}"
        );
        for v in [&hello, &cfg, &status, &admin_cfg] {
            assert!(!v.to_string().contains(TOKEN), "the token leaked: {v}");
        }
    })
    .await
}

/// A setup code for `ws://127.0.0.1:<port>` from an admin connection: (answer, decoded payload).
async fn setup_code(gw: &Gateway) -> (Value, clawgate::pairing::setup_code::SetupPayload) {
    let mut adm = operator(gw, &["operator.admin", "operator.pairing"]).await;
    let url = format!("ws://127.0.0.1:{}", gw.port);
    let r = call(
        &mut adm,
        "q",
        "device.pair.setupCode",
        json!({"publicUrl": url}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    let code = r["payload"]["setupCode"].as_str().unwrap();
    let payload = clawgate::pairing::setup_code::decode(code).expect("a setup code");
    (r, payload)
}

#[tokio::test]
async fn setup_codes_never_carry_the_gateway_token() {
    bounded(LIMIT, async {
        let gw = Gateway::start(&[]);
        let (answer, payload) = setup_code(&gw).await;
        let decoded = serde_json::to_string(&payload).unwrap();
        for (what, text) in [("answer", answer.to_string()), ("payload", decoded)] {
            assert!(
                !text.contains(TOKEN),
                "the gateway token is in the {what}: {text}"
            );
        }
        assert!(payload.bootstrap_token.len() >= 43, "{payload:?}");
    })
    .await
}

/// Redeems setup code `p` as a fresh node `d` (proxied, so never silently paired): the answer.
async fn redeem(d: &Device, p: &clawgate::pairing::setup_code::SetupPayload) -> Value {
    let auth = json!({"bootstrapToken": p.bootstrap_token});
    let client = ("openclaw-android", "node");
    let (_ws, res) = d
        .connect(&p.url, PROXIED, "node", client, &[], auth, json!({}))
        .await;
    res
}

#[tokio::test]
async fn concurrent_bootstrap_redemption_has_one_winner() {
    bounded(LIMIT, async {
        let gw = Gateway::start(&[]);
        let (_, payload) = setup_code(&gw).await;
        let (a, b) = (Device::new(), Device::new());
        let (ra, rb) = tokio::join!(redeem(&a, &payload), redeem(&b, &payload));
        let winners = [&ra, &rb].iter().filter(|r| r["ok"] == true).count();
        assert_eq!(winners, 1, "exactly one winner:\n{ra}\n{rb}");
        let loser = if ra["ok"] == true { &rb } else { &ra };
        assert_eq!(
            loser["error"]["details"]["code"], "AUTH_BOOTSTRAP_TOKEN_INVALID",
            "{loser}"
        );
    })
    .await
}

#[tokio::test]
async fn a_device_token_mismatch_keeps_the_pairing_record() {
    bounded(LIMIT, async {
        let gw = Gateway::start(&[]);
        let d = Device::new();
        let (_ws, res) = node(&gw, &d, &[], &[]).await;
        let token = res["payload"]["auth"]["deviceToken"]
            .as_str()
            .expect("paired")
            .to_string();
        let url = gw.url();
        let with = |t: String| {
            let auth = json!({"deviceToken": t});
            d.connect(
                &url,
                PROXIED,
                "node",
                ("node-host", "node"),
                &[],
                auth,
                json!({}),
            )
        };
        let (_w, bad) = with("x".repeat(43)).await;
        assert_eq!(
            bad["error"]["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH",
            "{bad}"
        );
        let mut adm = operator(&gw, &["operator.admin", "operator.pairing"]).await;
        let list = call(&mut adm, "l", "device.pair.list", json!({})).await;
        let paired = list["payload"]["paired"].as_array().expect("paired list");
        assert!(
            paired.iter().any(|p| p["deviceId"] == d.id.as_str()),
            "record deleted: {list}"
        );
        let (_w, good) = with(token).await;
        assert_eq!(
            good["ok"], true,
            "the right device token still works: {good}"
        );
    })
    .await
}

/// Writes executable `sudo`/`tailscale`/`tailscaled` shims that log each run to `ran.log`.
fn recording_shims(dir: &std::path::Path) -> std::path::PathBuf {
    let log = dir.join("ran.log");
    for name in ["sudo", "tailscale", "tailscaled"] {
        let p = dir.join(name);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\necho {name} \"$@\" >> '{}'\nexit 1\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    log
}

#[tokio::test]
async fn serve_without_tailscaled_degrades_serves_loopback_and_never_runs_sudo() {
    bounded(LIMIT, async {
        let shims = tempfile::tempdir().unwrap();
        let log = recording_shims(shims.path());
        let path = format!(
            "{}:{}",
            shims.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let missing = shims.path().join("no-tailscaled.sock");
        let cfg = json!({"gateway": {"tailscale": {"mode": "serve", "socket": missing}}});
        let gw = Gateway::with_config(&cfg, &["--port", "0", "--token", TOKEN], &[("PATH", &path)]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let ready = loop {
            let r = testnet::readyz(gw.port).await;
            if r["exposure"]["remedy"]
                .as_str()
                .is_some_and(|m| m.contains("tailscaled"))
            {
                break r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no remedy naming tailscaled: {r}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(
            (
                ready["ready"].as_bool(),
                ready["exposure"]["tailscale"].as_str()
            ),
            (Some(true), Some("degraded")),
            "{ready}"
        );
        let mut ws = operator(&gw, &["operator.read"]).await;
        assert_eq!(call(&mut ws, "h", "health", json!({})).await["ok"], true);
        // The route loop keeps retrying in the background (fast backoff ≤ 1 s) meanwhile.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            !log.exists(),
            "ran: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        assert_eq!(
            testnet::readyz(gw.port).await["ready"],
            true,
            "still ready after the retries"
        );
    })
    .await
}

/// `GET /healthz` on `addr` (an `ip:port` literal, also used as `Host`): the status line.
async fn healthz(addr: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{addr}: {e}"));
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// A port free on `127.0.0.1` and, when the host has IPv6 loopback, on `[::1]` too.
fn port_free_on_both() -> (u16, bool) {
    for _ in 0..20 {
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        match std::net::TcpListener::bind(("::1", port)) {
            Ok(_) => return (port, true),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue, // try another
            Err(_) => return (port, false), // no IPv6 loopback on this host
        }
    }
    panic!("no port free on both loopback addresses");
}

#[tokio::test]
async fn loopback_answers_on_ipv4_and_ipv6() {
    bounded(LIMIT, async {
        let (port, v6) = port_free_on_both();
        let p = port.to_string();
        let _gw = Gateway::start_with(&["--port", &p, "--token", TOKEN], &[]);
        assert_eq!(
            healthz(&format!("127.0.0.1:{port}")).await,
            "HTTP/1.1 200 OK"
        );
        if v6 {
            assert_eq!(healthz(&format!("[::1]:{port}")).await, "HTTP/1.1 200 OK");
        } else {
            eprintln!("note: this host has no IPv6 loopback; only 127.0.0.1 was checked");
        }
    })
    .await
}

/// TN-5, the client side: when this host's IPv4 loopback does not answer (here: 127.0.0.1 removed
/// from `lo` in a namespace after the gateway bound it), `clawgate health` without `--url` finds the
/// gateway on `[::1]`.
#[test]
fn the_cli_falls_back_to_the_ipv6_loopback() {
    if !common::netns::available() {
        return;
    }
    let net = common::netns::Netns::new();
    let home = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let cfg = home.path().join("openclaw.json");
    std::fs::write(&cfg, json!({"gateway": {"port": port}}).to_string()).unwrap();
    let cmd = |args: &[&str]| {
        let mut c = net.exec(env!("CARGO_BIN_EXE_clawgate"));
        c.args(args)
            .arg("--config")
            .arg(&cfg)
            .env("HOME", home.path())
            .env("OPENCLAW_STATE_DIR", home.path().join("state"))
            .env("OPENCLAW_DISABLE_BONJOUR", "1")
            .env("OPENCLAW_GATEWAY_TOKEN", TOKEN)
            .env_remove("OPENCLAW_GATEWAY_URL");
        c
    };
    let mut gw = cmd(&["run"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(gw.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    if !first.contains("[::1]") {
        let _ = gw.kill();
        let _ = gw.wait();
        eprintln!("note: no IPv6 loopback here; skipped ({first})");
        return;
    }
    let st = net
        .exec("ip")
        .args(["addr", "del", "127.0.0.1/8", "dev", "lo"])
        .status()
        .unwrap();
    assert!(st.success());
    let o = cmd(&["health", "--json"]).output().unwrap();
    let _ = gw.kill();
    let _ = gw.wait();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    assert!(
        o.status.success() && v["ok"] == true,
        "{v} {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[tokio::test]
async fn forwarded_values_never_choose_the_rate_limit_bucket() {
    bounded(LIMIT, async {
        let gw = Gateway::start(&[]);
        // PX-8: a same-host proxy authenticating with the token is admitted, as a remote client.
        let mut ws = open(&gw.url(), PROXIED).await;
        let (_, ok) = handshake(
            &mut ws,
            connect_params(json!({"token": TOKEN}), &["operator.read"]),
        )
        .await;
        assert_eq!(ok["ok"], true, "{ok}");
        assert_eq!(
            ok["payload"]["auth"]["scopes"],
            json!([]),
            "proxied is remote: {ok}"
        );
        for i in 0..10 {
            let xff = format!("198.51.100.{i}");
            let mut ws = open(&gw.url(), &[("x-forwarded-for", xff.as_str())]).await;
            let (_, r) = handshake(&mut ws, connect_params(json!({"token": WRONG}), &[])).await;
            assert_eq!(r["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH", "{r}");
        }
        let mut ws = open(&gw.url(), &[("x-forwarded-for", "192.0.2.77")]).await;
        let (_, r) = handshake(&mut ws, connect_params(json!({"token": TOKEN}), &[])).await;
        assert_eq!(
            r["error"]["details"]["code"], "AUTH_RATE_LIMITED",
            "one bucket, no exemption: {r}"
        );
    })
    .await
}

#[test]
fn the_cli_exits_non_zero_when_gateway_auth_fails() {
    let gw = Gateway::start(&[]);
    let url = gw.url();
    let ok = clawgate(&["health", "--url", &url, "--token", TOKEN]);
    assert!(ok.status.success(), "the right token works: {}", text(&ok));
    for cmd in [&["health"][..], &["call", "health"][..]] {
        let out = clawgate(&[cmd, &["--url", &url, "--token", WRONG]].concat());
        assert!(!out.status.success(), "{cmd:?} exited 0: {}", text(&out));
        assert!(
            text(&out).contains("AUTH_TOKEN_MISMATCH") || text(&out).contains("unauthorized"),
            "{cmd:?}: {}",
            text(&out)
        );
    }
}

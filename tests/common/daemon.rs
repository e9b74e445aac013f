//! Restarting the offline tailnet's real `tailscaled` (the `daemon` node the harness starts with
//! `--tailscaled`) the way an operator's `systemctl restart tailscaled` or a crash does: the running
//! process is found by its LocalAPI socket, SIGKILLed, and started again with the exact argv and
//! environment it had (same state dir, so the same node key and addresses).
//!
//! Edge of the harness, not of clawgate: the in-process `testcontrol` answers a restarted node's
//! re-registration with "invalid authkey" (it checks the pre-auth key on every RegisterReq, where
//! real control recognises the node key), so [`login`] repeats the harness's own `tailscale up`.
//!
//! The relaunched process belongs to the caller: [`Relaunched`] kills and reaps it on drop. The
//! original was the harness's child; the harness reaps it and ignores it at shutdown.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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

/// `tailscale up` against the harness control with the harness's flags for the `daemon` node.
pub fn login(
    cli: &Path,
    sock: &str,
    control_url: &str,
    auth_key: &str,
    env: &HashMap<String, String>,
) {
    let out = Command::new(cli)
        .arg(format!("--socket={sock}"))
        .args(["up", &format!("--login-server={control_url}")])
        .arg(format!("--auth-key={auth_key}"))
        .args(["--hostname=daemon", "--accept-dns=false", "--timeout=10s"])
        .envs(env)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tailscale up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

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

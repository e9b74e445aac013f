//! The reference OpenClaw 2026.9.6 gateway (`openclaw gateway run`, spec/peers.md §2.4) as a
//! side-by-side peer for differential tests.
//!
//! Owns one reference process per [`Reference`]: its own temporary HOME, state dir and TMPDIR (so
//! its log file lands there too), loopback only, token auth, Bonjour and background subsystems
//! off. Invariants: the process leads its own process group and is stopped by that group id on
//! drop (SIGTERM, then SIGKILL after [`STOP_GRACE`]); start-up is bounded by [`START_LIMIT`].

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::openclaw::command_limited;

/// Observed 7–9 s warm and ≈ 28 s cold on 2 vCPUs (peers.md §2.4); other suites share the cores.
pub const START_LIMIT: Duration = Duration::from_secs(150);
/// Upper bound on the reference's whole life, enforced by `timeout` in case the test hangs.
pub const LIFE_LIMIT_SECS: u64 = 600;
/// How long SIGTERM gets before SIGKILL (it drains clients and closes them with 1012).
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// Background subsystems the reference does not need for wire tests (config.md §10).
const SKIP_KNOBS: &[&str] = &[
    "OPENCLAW_SKIP_CHANNELS",
    "OPENCLAW_SKIP_GMAIL_WATCHER",
    "OPENCLAW_SKIP_CRON",
    "OPENCLAW_SKIP_CANVAS_HOST",
    "OPENCLAW_SKIP_BROWSER_CONTROL_SERVER",
];

/// A running reference gateway on `127.0.0.1:port`.
pub struct Reference {
    child: Child,
    pub port: u16,
    pub home: tempfile::TempDir,
}

impl Reference {
    /// Spawns `openclaw gateway run` with token auth; call [`Reference::wait_ready`] next.
    pub fn spawn(dir: &Path, token: &str) -> Reference {
        let home = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let log = std::fs::File::create(home.path().join("reference.log")).unwrap();
        let port_s = port.to_string();
        let args = [
            "gateway",
            "run",
            "--allow-unconfigured",
            "--bind",
            "loopback",
            "--auth",
            "token",
            "--token",
            token,
            "--port",
            &port_s,
        ];
        let mut cmd = command_limited(dir, home.path(), None, LIFE_LIMIT_SECS, &args);
        for k in SKIP_KNOBS {
            cmd.env(k, "1");
        }
        let child = cmd
            .env("TMPDIR", home.path())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .process_group(0)
            .spawn()
            .expect("spawn reference gateway");
        Reference { child, port, home }
    }

    /// Polls `GET /healthz` until it answers 200; panics with the log tail after [`START_LIMIT`].
    pub fn wait_ready(&mut self) {
        let end = Instant::now() + START_LIMIT;
        while Instant::now() < end {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("reference gateway exited ({st}):\n{}", self.log_tail());
            }
            if healthz_ok(self.port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!(
            "reference gateway not ready in {START_LIMIT:?}:\n{}",
            self.log_tail()
        );
    }

    /// Retries a read-only connect until it succeeds: `/healthz` answers before the reference's
    /// sidecars are up, and until then `connect` gets `UNAVAILABLE` `startup-sidecars`.
    pub async fn wait_rpc(&self, token: &str) {
        let end = Instant::now() + START_LIMIT;
        let mut last = serde_json::Value::Null;
        while Instant::now() < end {
            if let Some(mut ws) = super::try_open(&self.url(), &[]).await {
                let p = super::connect_params(
                    serde_json::json!({ "token": token }),
                    &["operator.read"],
                );
                let (_, res) = super::handshake(&mut ws, p).await;
                if res["ok"] == true {
                    return;
                }
                last = res;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!(
            "reference gateway refused connects for {START_LIMIT:?}: {last}\n{}",
            self.log_tail()
        );
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// The last lines of the reference's own log, for failure messages.
    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(self.home.path().join("reference.log")).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// One bounded `GET /healthz` over plain HTTP/1.1.
fn healthz_ok(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req =
        format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 16];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

impl Drop for Reference {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let end = Instant::now() + STOP_GRACE;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

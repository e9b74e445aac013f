//! Shared by the Tailscale benches: runs the real `clawgate` binary (`CLAWGATE_BIN`, default
//! `target/release/clawgate`) with a config in a fresh HOME and reads its loopback port from the
//! banner. The process is killed and reaped on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The gateway token every bench connection presents.
pub const TOKEN: &str = "bench-token-0123456789abcdefXYZ";

type Error = Box<dyn std::error::Error>;

/// A running gateway.
pub struct Gateway {
    pub child: Child,
    /// Its loopback port (from the banner).
    pub port: u16,
    _home: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    /// Starts `clawgate run --port 0 --token TOKEN --config <cfg>` with `env` added
    /// (`CLAWGATE_LOG` defaults to `warn`).
    pub fn start(cfg: &Value, env: &[(&str, &str)]) -> Result<Self, Error> {
        let bin =
            std::env::var("CLAWGATE_BIN").unwrap_or_else(|_| "target/release/clawgate".into());
        let home = tempfile::tempdir()?;
        let path = home.path().join("openclaw.json");
        std::fs::write(&path, cfg.to_string())?;
        let log = std::env::var("CLAWGATE_LOG").unwrap_or_else(|_| "warn".into());
        let mut child = Command::new(&bin)
            .args(["run", "--port", "0", "--token", TOKEN, "--config"])
            .arg(&path)
            .env("HOME", home.path())
            .env("OPENCLAW_STATE_DIR", home.path().join("state"))
            .env("CLAWGATE_LOG", log)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().ok_or("stdout")?).lines();
        let first = lines.next().ok_or("banner")??;
        std::thread::spawn(move || lines.for_each(drop)); // keep draining: the banner continues
        let port = first
            .split("ws://127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split([',', ' ']).next())
            .and_then(|p| p.parse().ok())
            .ok_or("port in banner")?;
        Ok(Self {
            child,
            port,
            _home: home,
        })
    }
}

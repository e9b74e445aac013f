//! The `run` subcommand: all scenarios against one gateway, producing one JSON `RunResult`.
//!
//! With `--spawn` the runner starts the server itself and measures the time from process start to
//! the first successful `health` RPC (full handshake + `health`, retried every 1 ms while the port
//! refuses connections and every 10 ms after a rejected attempt, e.g. the reference's 1013
//! `gateway starting`). Idle RSS is read after a settle pause with no bench connection open. The
//! spawned server is stopped by PID before `run` returns, whatever happened.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tracing::{info, warn};

use crate::client::{ClientError, Conn, Target};
use crate::procinfo::{self, ProcError, ServerProcess};
use crate::scenarios::{self, Ctx};
use crate::stats::{Better, Metric};

/// Poll interval while nothing listens on the port yet.
const POLL_REFUSED: Duration = Duration::from_millis(1);
/// Poll interval after an attempt the server answered but rejected (still starting).
const POLL_REJECTED: Duration = Duration::from_millis(10);

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Proc(#[from] ProcError),
    #[error("server exited before answering `health` (see its log)")]
    ServerExited,
    #[error("no successful `health` within {0:?}; last error: {1}")]
    StartDeadline(Duration, String),
}

/// Parameters of one run.
pub struct RunSpec {
    pub name: String,
    pub target: Target,
    pub spawn: Option<String>,
    /// Shown in the report instead of `spawn` (which may hold long temp paths).
    pub describe: Option<String>,
    pub server_pid: Option<u32>,
    pub server_log: Option<PathBuf>,
    pub start_deadline: Duration,
    pub settle: Duration,
    pub warmup: Duration,
    pub duration: Duration,
    pub idle_conns: usize,
    pub handshake_clients: usize,
    pub methods: Vec<String>,
    pub rpc_conns: Vec<usize>,
    /// Run only scenarios whose name starts with one of these (empty: all).
    pub only: Vec<String>,
    pub client_threads: usize,
}

/// Result of one run, as written with `--json-out`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunResult {
    pub name: String,
    pub url: String,
    pub command: Option<String>,
    pub client_threads: usize,
    pub nofile_limit: u64,
    /// `/proc/loadavg` (1, 5, 15 min) when this run started: the machine may be shared.
    #[serde(default)]
    pub loadavg: String,
    pub metrics: Vec<Metric>,
    /// Scenario failures and other remarks, shown under the table.
    pub notes: Vec<String>,
}

pub async fn run(spec: RunSpec) -> Result<RunResult, RunError> {
    let nofile_limit = procinfo::raise_nofile_limit();
    let mut result = RunResult {
        name: spec.name.clone(),
        url: spec.target.url.clone(),
        command: spec.describe.clone().or_else(|| spec.spawn.clone()),
        client_threads: spec.client_threads,
        nofile_limit,
        loadavg: loadavg(),
        metrics: Vec::new(),
        notes: Vec::new(),
    };
    let mut server = None;
    let mut pid = spec.server_pid;
    if let Some(cmd) = &spec.spawn {
        let started = Instant::now();
        let mut proc = ServerProcess::spawn(cmd, spec.server_log.as_deref())?;
        pid = Some(proc.pid());
        let ms = wait_first_health(&spec.target, &mut proc, started, spec.start_deadline).await?;
        info!(name = %spec.name, ms, "first successful health");
        result.metrics.push(Metric::new(
            "startup.first_health_ms",
            "process start → first successful `health`",
            ms,
            "ms",
            Better::Lower,
        ));
        server = Some(proc);
    }
    if let Some(pid) = pid {
        tokio::time::sleep(spec.settle).await;
        match procinfo::rss_tree_kib(pid) {
            Ok(kib) => result.metrics.push(Metric::new(
                "memory.idle_rss_mb",
                "server idle RSS (no connections)",
                kib as f64 * 1024.0 / 1e6,
                "MB",
                Better::Lower,
            )),
            Err(e) => result.notes.push(format!("idle RSS: {e}")),
        }
    }
    let ctx = Ctx {
        target: spec.target.clone(),
        server_pid: pid,
        warmup: spec.warmup,
        duration: spec.duration,
        settle: spec.settle,
    };
    for scenario in scenarios::plan(
        spec.idle_conns,
        spec.handshake_clients,
        &spec.methods,
        &spec.rpc_conns,
    ) {
        let name = scenario.name();
        if !spec.only.is_empty() && !spec.only.iter().any(|p| name.starts_with(p.as_str())) {
            continue;
        }
        info!(target_name = %spec.name, scenario = %name, "running");
        match scenario.run(&ctx).await {
            Ok(metrics) => result.metrics.extend(metrics),
            Err(e) => {
                warn!(scenario = %name, error = %e, "scenario failed");
                result.notes.push(format!("{name}: {e}"));
            }
        }
    }
    if let Some(mut proc) = server {
        tokio::task::spawn_blocking(move || proc.stop()).await.ok();
    }
    Ok(result)
}

/// Polls connect + `health` until it succeeds; returns milliseconds since `started`.
async fn wait_first_health(
    target: &Target,
    proc: &mut ServerProcess,
    started: Instant,
    deadline: Duration,
) -> Result<f64, RunError> {
    let mut last = String::from("none");
    while started.elapsed() < deadline {
        match probe_health(target).await {
            Ok(()) => return Ok(started.elapsed().as_secs_f64() * 1e3),
            Err(e) => {
                let refused = matches!(&e, ClientError::Ws(tokio_tungstenite::tungstenite::Error::Io(io))
                    if io.kind() == std::io::ErrorKind::ConnectionRefused);
                last = e.to_string();
                if !proc.running() {
                    return Err(RunError::ServerExited);
                }
                tokio::time::sleep(if refused { POLL_REFUSED } else { POLL_REJECTED }).await;
            }
        }
    }
    Err(RunError::StartDeadline(deadline, last))
}

async fn probe_health(target: &Target) -> Result<(), ClientError> {
    let mut conn = Conn::open(target).await?;
    let r = conn.call("health").await;
    conn.close().await;
    r
}

fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

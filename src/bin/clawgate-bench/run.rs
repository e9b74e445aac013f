//! The `run` subcommand: every scenario against one or more gateways, one JSON `RunResult` each.
//!
//! Servers given with `--spawn` are started by the runner, one after another, and the time from
//! process start to the first successful `health` RPC is measured (full handshake + `health`,
//! retried every 1 ms while the port refuses connections and every 10 ms after a rejected attempt,
//! e.g. the reference's 1013 `gateway starting`). Idle RSS is read after a settle pause with no
//! bench connection open. Then the scenarios run **interleaved**: for each round, each scenario runs
//! against each server in turn, so servers are compared under the same (shared-machine) conditions;
//! each metric is the best round (errors: the worst), with the per-round values kept in `samples`. Spawned servers are stopped by PID before `run` returns, whatever happened.

use std::collections::BTreeMap;
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
    #[error("{0}: server exited before answering `health` (see its log)")]
    ServerExited(String),
    #[error("{0}: no successful `health` within {1:?}; last error: {2}")]
    StartDeadline(String, Duration, String),
}

/// One server under test.
pub struct ServerSpec {
    pub name: String,
    pub url: String,
    /// Command to start it (`sh -c 'exec …'`); `None` for a server started elsewhere.
    pub spawn: Option<String>,
    /// Shown in the report instead of `spawn` (which may hold long temp paths).
    pub describe: Option<String>,
    pub pid: Option<u32>,
    pub log: Option<PathBuf>,
}

/// Parameters of one run.
pub struct RunSpec {
    pub servers: Vec<ServerSpec>,
    pub token: String,
    pub io_timeout: Duration,
    pub start_deadline: Duration,
    pub settle: Duration,
    pub warmup: Duration,
    pub duration: Duration,
    pub rounds: usize,
    pub idle_conns: usize,
    pub handshake_clients: usize,
    pub methods: Vec<String>,
    pub rpc_conns: Vec<usize>,
    /// Run only scenarios whose name starts with one of these (empty: all).
    pub only: Vec<String>,
    /// Servers that get the scenarios needing nodes and pairing (`Scenario::needs_nodes`).
    pub node_servers: Vec<String>,
    /// Servers that get the scenarios needing remote pairing (`Scenario::needs_remote_pairing`).
    pub pairing_servers: Vec<String>,
    pub client_threads: usize,
}

/// Result for one server, as written with `--json-out` / `--out-dir`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunResult {
    pub name: String,
    pub url: String,
    pub command: Option<String>,
    pub client_threads: usize,
    pub nofile_limit: u64,
    /// `/proc/loadavg` (1, 5, 15 min) when this server was started: the machine may be shared.
    #[serde(default)]
    pub loadavg: String,
    #[serde(default)]
    pub rounds: usize,
    pub metrics: Vec<Metric>,
    /// Scenario failures and other remarks, shown under the table.
    pub notes: Vec<String>,
    /// Set when the server could not be started or never answered `health`; no scenario ran.
    #[serde(default)]
    pub start_error: Option<String>,
}

/// A server being measured: its result so far, per-round samples, and the process if spawned.
struct Live {
    result: RunResult,
    ctx: Ctx,
    samples: BTreeMap<String, (Metric, Vec<f64>)>,
    order: Vec<String>,
    process: Option<ServerProcess>,
}

pub async fn run(spec: RunSpec) -> Vec<RunResult> {
    let nofile_limit = procinfo::raise_nofile_limit();
    let mut live = Vec::new();
    for server in &spec.servers {
        let mut l = Live::new(server, &spec, nofile_limit);
        if let Err(e) = l.start(server, &spec).await {
            warn!(server = %server.name, error = %e, "server did not start; skipping it");
            l.result.start_error = Some(e.to_string());
            l.process = None; // dropping stops it
        }
        live.push(l);
    }
    let plan = scenarios::plan(
        spec.idle_conns,
        spec.handshake_clients,
        &spec.methods,
        &spec.rpc_conns,
    );
    let wanted =
        |name: &str| spec.only.is_empty() || spec.only.iter().any(|p| name.starts_with(p.as_str()));
    for round in 0..spec.rounds.max(1) {
        for scenario in plan.iter().filter(|s| wanted(&s.name())) {
            if round > 0 && !scenario.repeatable() {
                continue;
            }
            let nodes_ok = |l: &Live| {
                let name = &l.result.name;
                (!scenario.needs_nodes() || spec.node_servers.contains(name))
                    && (!scenario.needs_remote_pairing() || spec.pairing_servers.contains(name))
            };
            for l in live
                .iter_mut()
                .filter(|l| l.result.start_error.is_none() && nodes_ok(l))
            {
                let name = scenario.name();
                info!(server = %l.result.name, scenario = %name, round, "running");
                match scenario.run(&l.ctx).await {
                    Ok(metrics) => l.add(metrics),
                    Err(e) => {
                        warn!(server = %l.result.name, scenario = %name, error = %e, "scenario failed");
                        l.result
                            .notes
                            .push(format!("{name} (round {}): {e}", round + 1));
                    }
                }
            }
        }
    }
    let mut results = Vec::new();
    for mut l in live {
        if let Some(mut p) = l.process.take() {
            tokio::task::spawn_blocking(move || p.stop()).await.ok();
        }
        l.finish();
        l.result.rounds = spec.rounds.max(1);
        results.push(l.result);
    }
    results
}

impl Live {
    fn new(server: &ServerSpec, spec: &RunSpec, nofile_limit: u64) -> Self {
        let target = Target {
            url: server.url.clone(),
            token: spec.token.clone(),
            io_timeout: spec.io_timeout,
        };
        Live {
            result: RunResult {
                name: server.name.clone(),
                url: server.url.clone(),
                command: server.describe.clone().or_else(|| server.spawn.clone()),
                client_threads: spec.client_threads,
                nofile_limit,
                loadavg: loadavg(),
                rounds: 0,
                metrics: Vec::new(),
                notes: Vec::new(),
                start_error: None,
            },
            ctx: Ctx {
                target,
                server_pid: server.pid,
                warmup: spec.warmup,
                duration: spec.duration,
                settle: spec.settle,
            },
            samples: BTreeMap::new(),
            order: Vec::new(),
            process: None,
        }
    }

    /// Starts the server (if asked) and measures its startup time and idle RSS.
    async fn start(&mut self, server: &ServerSpec, spec: &RunSpec) -> Result<(), RunError> {
        if let Some(cmd) = &server.spawn {
            let started = Instant::now();
            let mut proc = ServerProcess::spawn(cmd, server.log.as_deref())?;
            self.ctx.server_pid = Some(proc.pid());
            let deadline = spec.start_deadline;
            let ms =
                wait_first_health(&server.name, &self.ctx.target, &mut proc, started, deadline)
                    .await?;
            info!(server = %server.name, ms, "first successful health");
            self.process = Some(proc);
            let label = "process start → first successful `health`";
            self.add(vec![Metric::new(
                "startup.first_health_ms",
                label,
                ms,
                "ms",
                Better::Lower,
            )]);
        }
        if let Some(pid) = self.ctx.server_pid {
            tokio::time::sleep(spec.settle).await;
            match procinfo::rss_tree_kib(pid) {
                Ok(kib) => {
                    let mb = kib as f64 * 1024.0 / 1e6;
                    let label = "server idle RSS (no connections)";
                    self.add(vec![Metric::new(
                        "memory.idle_rss_mb",
                        label,
                        mb,
                        "MB",
                        Better::Lower,
                    )]);
                }
                Err(e) => self.result.notes.push(format!("idle RSS: {e}")),
            }
        }
        Ok(())
    }

    fn add(&mut self, metrics: Vec<Metric>) {
        for m in metrics {
            let entry = self.samples.entry(m.key.clone()).or_insert_with(|| {
                self.order.push(m.key.clone());
                (m.clone(), Vec::new())
            });
            entry.1.push(m.value);
        }
    }

    /// One metric per key from its per-round values (see `aggregate`).
    fn finish(&mut self) {
        for key in &self.order {
            let Some((m, values)) = self.samples.get_mut(key) else {
                continue;
            };
            // Samples stay in round order in the JSON; `aggregate` gets a sorted copy.
            let samples = if values.len() > 1 {
                values.clone()
            } else {
                Vec::new()
            };
            values.sort_by(f64::total_cmp);
            let value = aggregate(key, m.better, values);
            self.result.metrics.push(Metric {
                value,
                samples,
                ..m.clone()
            });
        }
    }
}

/// Combines per-round values (sorted ascending, non-empty): error counts take the worst round;
/// every other metric the best round (highest rate, lowest latency or CPU). Interference from other
/// work on the machine only ever makes a round worse, so the best round is the closest to what the
/// server can do, and comparing best with best keeps ratios stable (the reasoning behind Python's
/// `timeit` reporting the minimum). All values stay in `samples`.
fn aggregate(key: &str, better: Better, sorted: &[f64]) -> f64 {
    let (lowest, highest) = (sorted[0], sorted[sorted.len() - 1]);
    if key.ends_with(".errors") {
        return highest;
    }
    match better {
        Better::Higher => highest,
        Better::Lower => lowest,
    }
}

/// Polls connect + `health` until it succeeds; returns milliseconds since `started`.
pub(crate) async fn wait_first_health(
    name: &str,
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
                    return Err(RunError::ServerExited(name.to_owned()));
                }
                tokio::time::sleep(if refused { POLL_REFUSED } else { POLL_REJECTED }).await;
            }
        }
    }
    Err(RunError::StartDeadline(name.to_owned(), deadline, last))
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

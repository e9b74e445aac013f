//! The `clawgate-bench soak` command line: flags, starting the server, writing and judging the
//! result of [`crate::soak::run`]. Invariant: a server it spawned is stopped before it returns.

use std::time::{Duration, Instant};

use anyhow::Context;
use tracing::info;

use crate::client::Target;
use crate::procinfo;
use crate::soak::{self, SoakSpec};

/// `clawgate-bench soak` flags.
#[derive(clap::Args)]
pub struct SoakArgs {
    /// Gateway URL.
    #[arg(long)]
    url: String,
    #[arg(long, env = "CLAWGATE_BENCH_TOKEN", default_value = "bench-token")]
    token: String,
    /// Start the server with `sh -c 'exec CMD'` (it inherits the raised fd limit).
    #[arg(long)]
    spawn: Option<String>,
    /// PID of an already running server (when not using --spawn).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Append the spawned server's stdout/stderr here.
    #[arg(long)]
    server_log: Option<std::path::PathBuf>,
    /// Authenticated connections held open.
    #[arg(long, default_value_t = 10_000)]
    conns: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, env = "SOAK_SECS", default_value_t = 600.0)]
    secs: f64,
    /// Unmeasured seconds of churn and RPC load before the start sample.
    #[arg(long, default_value_t = 10.0)]
    warmup: f64,
    #[arg(long, default_value_t = 100.0)]
    churn_per_sec: f64,
    #[arg(long, default_value_t = 8)]
    churn_workers: usize,
    #[arg(long, default_value_t = 8)]
    rpc_conns: usize,
    /// Paced `health` calls per second per RPC connection.
    #[arg(long, default_value_t = 250.0)]
    rpc_rate: f64,
    #[arg(long, default_value_t = 5.0)]
    sample_every: f64,
    #[arg(long, default_value_t = 10.0)]
    io_timeout: f64,
    /// Write the JSON result here (default: stdout).
    #[arg(long)]
    json_out: Option<std::path::PathBuf>,
}

/// Runs `clawgate-bench soak`: fails (non-zero exit) when a target is missed.
pub async fn command(a: SoakArgs) -> anyhow::Result<()> {
    let nofile = procinfo::raise_nofile_limit();
    let secs = Duration::from_secs_f64;
    let target = Target {
        url: a.url,
        token: a.token,
        io_timeout: secs(a.io_timeout),
    };
    let mut proc = None;
    let pid = match (&a.spawn, a.server_pid) {
        (Some(cmd), _) => {
            let started = Instant::now();
            let mut p = procinfo::ServerProcess::spawn(cmd, a.server_log.as_deref())?;
            let limit = Duration::from_secs(120);
            crate::run::wait_first_health("soak", &target, &mut p, started, limit).await?;
            let pid = p.pid();
            proc = Some(p);
            pid
        }
        (None, Some(pid)) => pid,
        (None, None) => anyhow::bail!("give --spawn or --server-pid (RSS and fds are measured)"),
    };
    info!(nofile, pid, conns = a.conns, secs = a.secs, "soak starting");
    let result = soak::run(SoakSpec {
        target,
        server_pid: pid,
        conns: a.conns,
        duration: secs(a.secs),
        churn_per_sec: a.churn_per_sec,
        churn_workers: a.churn_workers,
        rpc_conns: a.rpc_conns,
        rpc_rate: a.rpc_rate,
        sample_every: secs(a.sample_every),
        warmup: secs(a.warmup),
    })
    .await;
    if let Some(mut p) = proc {
        tokio::task::spawn_blocking(move || p.stop()).await.ok();
    }
    let result = result?;
    let json = serde_json::to_string_pretty(&result)? + "\n";
    match &a.json_out {
        Some(path) => {
            std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{json}"),
    }
    eprintln!(
        "soak: {} conns, {:.0} s, churned {}, {} calls p50 {:.2} ms p99 {:.2} ms, RSS {} → {} KiB ({:+.2} %, second half {:+.2} %), fds {} → {} (leak {})",
        result.conns, result.duration_s, result.churned, result.rpc_calls, result.p50_ms,
        result.p99_ms, result.rss_start_kib, result.rss_end_kib, result.rss_drift_pct,
        result.rss_drift_second_half_pct,
        result.fds_before, result.fds_after_close, result.fd_leak
    );
    anyhow::ensure!(
        result.failures.is_empty(),
        "soak targets missed: {}",
        result.failures.join("; ")
    );
    Ok(())
}

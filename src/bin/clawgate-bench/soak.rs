//! `clawgate-bench soak`: many authenticated connections held for a long time while a share of
//! them is closed and reopened (churn) and a few connections carry paced `health` calls (issue 12
//! item 10, `make bench-soak`; never part of `make test`).
//!
//! Judged against three targets: RPC p99 below [`P99_TARGET_MS`], server RSS drift (end of the
//! soak against its start, both with every connection open) below [`RSS_DRIFT_TARGET_PCT`], and no
//! leaked descriptors (server fds after every connection closed equal those before any opened).
//! Invariants: every wait is bounded by the target's `io_timeout`; all connections the soak opened
//! are closed before it returns.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinSet;
use tracing::info;

use crate::client::{Conn, Target};
use crate::procinfo;
use crate::scenarios::{close_many, open_many};
use crate::stats::Latencies;

/// RPC round-trip p99 target (issue 12: p99 < 10 ms).
pub const P99_TARGET_MS: f64 = 10.0;
/// Largest accepted RSS growth from the start to the end of the soak (issue 12: < 5 %).
pub const RSS_DRIFT_TARGET_PCT: f64 = 5.0;
/// Time after the last close before the server's fds are counted (closes finish asynchronously).
const CLOSE_SETTLE: Duration = Duration::from_secs(3);

/// What to run.
pub struct SoakSpec {
    pub target: Target,
    pub server_pid: u32,
    pub conns: usize,
    pub duration: Duration,
    /// Connections closed and reopened per second, spread over `churn_workers`.
    pub churn_per_sec: f64,
    pub churn_workers: usize,
    pub rpc_conns: usize,
    /// `health` calls per second per RPC connection (paced, closed loop).
    pub rpc_rate: f64,
    pub sample_every: Duration,
    /// Churn and RPC load before the start sample (lets allocator and buffers reach steady state).
    pub warmup: Duration,
}

/// One resource sample of the server.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub t_s: f64,
    pub rss_kib: u64,
    pub fds: usize,
    /// Connections churned so far.
    pub churned: u64,
}

/// The soak's outcome (written as JSON).
#[derive(Debug, Serialize)]
pub struct SoakResult {
    pub duration_s: f64,
    pub conns: usize,
    pub churned: u64,
    pub churn_errors: u64,
    pub rpc_calls: u64,
    pub rpc_errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub rss_start_kib: u64,
    pub rss_end_kib: u64,
    pub rss_peak_kib: u64,
    pub rss_drift_pct: f64,
    /// Drift over the second half of the window only (informational: shows whether RSS plateaued).
    pub rss_drift_second_half_pct: f64,
    pub fds_before: usize,
    pub fds_start: usize,
    pub fds_end: usize,
    pub fds_after_close: usize,
    pub fd_leak: i64,
    pub failures: Vec<String>,
    pub samples: Vec<Sample>,
}

#[derive(Default)]
struct Counters {
    churned: AtomicU64,
    churn_errors: AtomicU64,
    rpc_errors: AtomicU64,
}

fn sample(pid: u32, t0: Instant, c: &Counters) -> Sample {
    Sample {
        t_s: t0.elapsed().as_secs_f64(),
        rss_kib: procinfo::rss_tree_kib(pid).unwrap_or(0),
        fds: procinfo::fd_count(pid),
        churned: c.churned.load(Ordering::Relaxed),
    }
}

/// Runs the soak against a started server.
pub async fn run(spec: SoakSpec) -> anyhow::Result<SoakResult> {
    let pid = spec.server_pid;
    tokio::time::sleep(CLOSE_SETTLE).await; // the start-up probe's socket closes first
    let fds_before = procinfo::fd_count(pid);
    let t0 = Instant::now();
    let conns = open_many(&spec.target, spec.conns).await?;
    let rpc = open_many(&spec.target, spec.rpc_conns).await?;
    info!(conns = spec.conns, took = ?t0.elapsed(), "connections open; soaking");
    let counters = Arc::new(Counters::default());
    let deadline = Instant::now() + spec.warmup + spec.duration;
    let mut churners = JoinSet::new();
    let workers = spec.churn_workers.max(1);
    let per_worker = spec.churn_per_sec / workers as f64;
    for shard in split(conns, workers) {
        let (target, c) = (spec.target.clone(), counters.clone());
        churners.spawn(churn(shard, target, per_worker, deadline, c));
    }
    let mut callers = JoinSet::new();
    for conn in rpc {
        callers.spawn(calls(conn, spec.rpc_rate, deadline, counters.clone()));
    }
    tokio::time::sleep(spec.warmup).await;
    let start = sample(pid, t0, &counters);
    let mut samples = vec![start.clone()];
    while Instant::now() < deadline {
        tokio::time::sleep(spec.sample_every.min(deadline - Instant::now())).await;
        samples.push(sample(pid, t0, &counters));
    }
    let mut lat = Latencies::new();
    let mut calls_made = 0;
    let mut open = Vec::new();
    while let Some(r) = callers.join_next().await {
        let (conn, l) = r?;
        calls_made += l.count();
        lat.merge(&l);
        open.push(conn);
    }
    while let Some(r) = churners.join_next().await {
        open.extend(r?);
    }
    let end = sample(pid, t0, &counters);
    close_many(open).await;
    tokio::time::sleep(CLOSE_SETTLE).await;
    let fds_after_close = procinfo::fd_count(pid);
    Ok(judge(Judged {
        spec: &spec,
        counters: &counters,
        lat: &lat,
        calls: calls_made,
        start,
        end,
        samples,
        fds_before,
        fds_after_close,
    }))
}

/// Splits `v` into `n` near-equal shards.
fn split<T>(v: Vec<T>, n: usize) -> Vec<Vec<T>> {
    let mut shards: Vec<Vec<T>> = (0..n).map(|_| Vec::new()).collect();
    for (i, x) in v.into_iter().enumerate() {
        shards[i % n].push(x);
    }
    shards
}

/// Replaces the oldest connection of `shard` with a fresh one `rate` times a second until
/// `deadline`; returns the connections still open.
async fn churn(
    mut shard: Vec<Conn>,
    target: Target,
    rate: f64,
    deadline: Instant,
    c: Arc<Counters>,
) -> Vec<Conn> {
    if shard.is_empty() || rate <= 0.0 {
        return shard;
    }
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next = 0;
    while Instant::now() < deadline {
        tick.tick().await;
        match Conn::open(&target).await {
            Ok(fresh) => {
                let old = std::mem::replace(&mut shard[next], fresh);
                old.close().await;
                c.churned.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                c.churn_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        next = (next + 1) % shard.len();
    }
    shard
}

/// Paced `health` calls on one connection until `deadline`.
async fn calls(
    mut conn: Conn,
    rate: f64,
    deadline: Instant,
    c: Arc<Counters>,
) -> (Conn, Latencies) {
    let mut lat = Latencies::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.001)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Instant::now() < deadline {
        tick.tick().await;
        let t = Instant::now();
        match conn.call("health").await {
            Ok(()) => lat.record(t.elapsed()),
            Err(_) => {
                c.rpc_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    (conn, lat)
}

struct Judged<'a> {
    spec: &'a SoakSpec,
    counters: &'a Counters,
    lat: &'a Latencies,
    calls: u64,
    start: Sample,
    end: Sample,
    samples: Vec<Sample>,
    fds_before: usize,
    fds_after_close: usize,
}

/// RSS growth from `from` to `to` in percent (NaN without a reading).
fn drift_pct(from: &Sample, to: &Sample) -> f64 {
    if from.rss_kib == 0 {
        return f64::NAN;
    }
    (to.rss_kib as f64 - from.rss_kib as f64) * 100.0 / from.rss_kib as f64
}

fn judge(j: Judged<'_>) -> SoakResult {
    let drift = drift_pct(&j.start, &j.end);
    let half = (j.start.t_s + j.end.t_s) / 2.0;
    let mid = j.samples.iter().find(|s| s.t_s >= half).unwrap_or(&j.start);
    let drift_second_half = drift_pct(mid, &j.end);
    let fd_leak = j.fds_after_close as i64 - j.fds_before as i64;
    let p99 = j.lat.quantile_ms(0.99);
    let mut failures = Vec::new();
    if p99.is_nan() || p99 >= P99_TARGET_MS {
        failures.push(format!("p99 {p99:.2} ms ≥ {P99_TARGET_MS} ms"));
    }
    if drift.is_nan() || drift >= RSS_DRIFT_TARGET_PCT {
        failures.push(format!("RSS drift {drift:.2} % ≥ {RSS_DRIFT_TARGET_PCT} %"));
    }
    if fd_leak > 0 {
        failures.push(format!(
            "{fd_leak} fds not returned after closing every connection"
        ));
    }
    let errors = j.counters.rpc_errors.load(Ordering::Relaxed);
    if errors > 0 || j.calls == 0 {
        failures.push(format!("{errors} RPC errors, {} calls", j.calls));
    }
    let churn_errors = j.counters.churn_errors.load(Ordering::Relaxed);
    if churn_errors > 0 {
        failures.push(format!("{churn_errors} churn reconnects failed"));
    }
    SoakResult {
        duration_s: j.spec.duration.as_secs_f64(),
        conns: j.spec.conns,
        churned: j.counters.churned.load(Ordering::Relaxed),
        churn_errors,
        rpc_calls: j.calls,
        rpc_errors: errors,
        p50_ms: j.lat.quantile_ms(0.5),
        p99_ms: p99,
        p999_ms: j.lat.quantile_ms(0.999),
        max_ms: j.lat.quantile_ms(1.0),
        rss_start_kib: j.start.rss_kib,
        rss_end_kib: j.end.rss_kib,
        rss_peak_kib: j.samples.iter().map(|s| s.rss_kib).max().unwrap_or(0),
        rss_drift_pct: drift,
        rss_drift_second_half_pct: drift_second_half,
        fds_before: j.fds_before,
        fds_start: j.start.fds,
        fds_end: j.end.fds,
        fds_after_close: j.fds_after_close,
        fd_leak,
        failures,
        samples: j.samples,
    }
}

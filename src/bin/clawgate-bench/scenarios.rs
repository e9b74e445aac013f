//! Load scenarios run against a connected gateway. Each one implements `Scenario` and returns
//! `Metric`s under its own key prefix; adding a scenario (e.g. `node.invoke` round trips, wss://)
//! means adding a type here and listing it in `plan`, nothing else.
//!
//! Throughput scenarios are closed loops: each worker has at most one operation in flight, runs
//! for `warmup` unrecorded, then records every operation that starts inside the measuring window;
//! the rate is recorded operations / window length. Workers are owned by a `JoinSet`.

use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::{stream, StreamExt};
use thiserror::Error;
use tokio::task::JoinSet;

use crate::client::{ClientError, Conn, Target};
use crate::procinfo::{self, ProcError};
use crate::stats::{rate_metrics, Better, Latencies, Metric};

/// Concurrent handshakes while opening idle connections: below the reference gateway's budget of
/// 32 unauthenticated sockets per client IP (protocol.md §1).
const OPEN_CONCURRENCY: usize = 16;

#[derive(Debug, Error)]
pub enum ScenarioError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Proc(#[from] ProcError),
    #[error("needs the server PID (--spawn or --server-pid)")]
    NoPid,
    #[error("setup: {0}")]
    Setup(String),
    #[error("worker task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Everything a scenario may use.
pub struct Ctx {
    pub target: Target,
    pub server_pid: Option<u32>,
    pub warmup: Duration,
    pub duration: Duration,
    /// Pause before reading RSS, letting allocators and background work settle.
    pub settle: Duration,
}

pub trait Scenario: Send + Sync {
    /// Key prefix of the metrics it emits (also used by `--only`).
    fn name(&self) -> String;
    /// Whether it needs a gateway with nodes and pairing (runs only for `--node-servers`).
    fn needs_nodes(&self) -> bool {
        false
    }
    /// Whether it needs remote pairing on loopback via `X-Forwarded-For` (`--pairing-servers`).
    fn needs_remote_pairing(&self) -> bool {
        false
    }
    /// Whether it runs once per round (throughput) or only in the first round (memory).
    fn repeatable(&self) -> bool {
        true
    }
    fn run<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Result<Vec<Metric>, ScenarioError>>;
}

/// The standard scenario list for the given parameters, in run order.
pub fn plan(
    idle_conns: usize,
    handshake_clients: usize,
    methods: &[String],
    conns: &[usize],
) -> Vec<Box<dyn Scenario>> {
    let mut list: Vec<Box<dyn Scenario>> = vec![
        Box::new(IdleMemory { conns: idle_conns }),
        Box::new(Handshakes {
            clients: handshake_clients,
        }),
    ];
    for method in methods {
        for &n in conns {
            list.push(Box::new(RoundTrips {
                method: method.clone(),
                conns: n,
            }));
        }
    }
    list.extend(crate::node_scenarios::plan());
    list
}

/// The measuring window shared by a scenario's workers.
#[derive(Clone, Copy)]
pub(crate) struct Window {
    pub begin: Instant,
    pub end: Instant,
}

impl Window {
    pub fn new(ctx: &Ctx) -> Self {
        let begin = Instant::now() + ctx.warmup;
        Self {
            begin,
            end: begin + ctx.duration,
        }
    }
}

/// What one worker measured.
#[derive(Default)]
pub(crate) struct WorkerResult {
    pub lat: Latencies,
    pub errors: u64,
}

/// CPU seconds spent inside the measuring window: (server tree if its PID is known, this client).
async fn window_cpu(pid: Option<u32>, win: Window) -> (Option<f64>, f64) {
    let sample = || {
        (
            pid.and_then(|p| procinfo::cpu_secs_tree(p).ok()),
            procinfo::cpu_secs_self(),
        )
    };
    tokio::time::sleep_until(win.begin.into()).await;
    let (s0, c0) = sample();
    tokio::time::sleep_until(win.end.into()).await;
    let (s1, c1) = sample();
    (s0.zip(s1).map(|(a, b)| b - a), c1 - c0)
}

/// Waits for every worker and turns their merged results into rate, p50, p99, error and CPU
/// metrics (CPU as microseconds per operation, server and client).
pub(crate) async fn throughput_metrics(
    prefix: &str,
    label: &str,
    ctx: &Ctx,
    win: Window,
    mut set: JoinSet<WorkerResult>,
) -> Result<Vec<Metric>, ScenarioError> {
    let (server_cpu, client_cpu) = window_cpu(ctx.server_pid, win).await;
    let mut lat = Latencies::new();
    let mut errors = 0;
    while let Some(r) = set.join_next().await {
        let r = r?;
        lat.merge(&r.lat);
        errors += r.errors;
    }
    let ops = lat.count().max(1) as f64;
    let mut m = rate_metrics(prefix, label, lat.count(), ctx.duration, &lat);
    m.push(errors_metric(prefix, label, errors));
    if let Some(cpu) = server_cpu {
        let l = format!("{label}: server CPU per op");
        m.push(Metric::new(
            format!("{prefix}.server_cpu_us"),
            l,
            cpu * 1e6 / ops,
            "µs",
            Better::Lower,
        ));
    }
    let l = format!("{label}: bench client CPU per op");
    m.push(Metric::new(
        format!("{prefix}.client_cpu_us"),
        l,
        client_cpu * 1e6 / ops,
        "µs",
        Better::Lower,
    ));
    Ok(m)
}

/// connect→hello-ok handshakes per second with `clients` parallel clients.
struct Handshakes {
    clients: usize,
}

impl Scenario for Handshakes {
    fn name(&self) -> String {
        format!("handshake.c{}", self.clients)
    }

    fn run<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Result<Vec<Metric>, ScenarioError>> {
        Box::pin(async move {
            let win = Window::new(ctx);
            let mut set = JoinSet::new();
            for _ in 0..self.clients {
                let target = ctx.target.clone();
                set.spawn(handshake_worker(target, win));
            }
            let label = format!("connect→hello-ok, {} clients", self.clients);
            throughput_metrics(&self.name(), &label, ctx, win, set).await
        })
    }
}

async fn handshake_worker(target: Target, win: Window) -> WorkerResult {
    let mut r = WorkerResult::default();
    loop {
        let start = Instant::now();
        if start >= win.end {
            return r;
        }
        match Conn::open(&target).await {
            Ok(conn) => {
                if start >= win.begin {
                    r.lat.record(start.elapsed());
                }
                conn.close().await;
            }
            Err(_) => {
                r.errors += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

/// Ping-pong round trips of `method` over `conns` connections.
struct RoundTrips {
    method: String,
    conns: usize,
}

impl Scenario for RoundTrips {
    fn name(&self) -> String {
        format!("rpc.{}.c{}", self.method, self.conns)
    }

    fn run<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Result<Vec<Metric>, ScenarioError>> {
        Box::pin(async move {
            let conns = open_many(&ctx.target, self.conns).await?;
            let win = Window::new(ctx);
            let mut set = JoinSet::new();
            for conn in conns {
                set.spawn(rpc_worker(conn, self.method.clone(), win));
            }
            let label = format!("`{}` round trips, {} conn", self.method, self.conns);
            throughput_metrics(&self.name(), &label, ctx, win, set).await
        })
    }
}

async fn rpc_worker(mut conn: Conn, method: String, win: Window) -> WorkerResult {
    let mut r = WorkerResult::default();
    loop {
        let start = Instant::now();
        if start >= win.end {
            break;
        }
        match conn.call(&method).await {
            Ok(()) if start >= win.begin => r.lat.record(start.elapsed()),
            Ok(()) => {}
            Err(ClientError::Rejected(_)) => r.errors += 1,
            Err(_) => {
                r.errors += 1;
                return r; // connection unusable
            }
        }
    }
    conn.close().await;
    r
}

/// Server memory per idle authenticated connection: RSS before and after opening `conns`.
struct IdleMemory {
    conns: usize,
}

impl Scenario for IdleMemory {
    fn name(&self) -> String {
        "memory".to_owned()
    }

    fn repeatable(&self) -> bool {
        false
    }

    fn run<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Result<Vec<Metric>, ScenarioError>> {
        Box::pin(async move {
            let pid = ctx.server_pid.ok_or(ScenarioError::NoPid)?;
            let before = procinfo::rss_tree_kib(pid)?;
            let conns = open_many(&ctx.target, self.conns).await?;
            tokio::time::sleep(ctx.settle).await;
            let after = procinfo::rss_tree_kib(pid)?;
            close_many(conns).await;
            let per_conn = (after as f64 - before as f64) / self.conns.max(1) as f64;
            Ok(vec![
                Metric::new(
                    "memory.per_conn_kib",
                    format!(
                        "server RSS per idle authenticated connection ({} conns)",
                        self.conns
                    ),
                    per_conn,
                    "KiB",
                    Better::Lower,
                ),
                Metric::new(
                    "memory.loaded_rss_mb",
                    format!("server RSS with {} idle connections", self.conns),
                    after as f64 * 1024.0 / 1e6,
                    "MB",
                    Better::Lower,
                ),
            ])
        })
    }
}

pub(crate) fn errors_metric(prefix: &str, label: &str, errors: u64) -> Metric {
    Metric::new(
        format!("{prefix}.errors"),
        format!("{label}: errors"),
        errors as f64,
        "",
        Better::Lower,
    )
}

/// Opens `n` authenticated connections, `OPEN_CONCURRENCY` handshakes at a time.
pub async fn open_many(target: &Target, n: usize) -> Result<Vec<Conn>, ClientError> {
    stream::iter(0..n)
        .map(|_| Conn::open(target))
        .buffer_unordered(OPEN_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

pub async fn close_many(conns: Vec<Conn>) {
    stream::iter(conns)
        .for_each_concurrent(OPEN_CONCURRENCY * 4, Conn::close)
        .await;
}

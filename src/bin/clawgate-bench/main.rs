//! `clawgate-bench`: the load tool behind `make bench` / `make bench-peer`.
//!
//! Subcommands: `floor` (the minimal protocol-shaped server that bounds what the client can
//! measure), `run` (every scenario against one gateway URL, JSON result), `soak` (long churn and
//! RPC load: p99, RSS drift, fd leaks) and `report` (side-by-side Markdown table with ratios from
//! several `run` results). Binary-only code: nothing here is part
//! of the clawgate library. Invariant: a server `run --spawn` starts is stopped before exit.
#![forbid(unsafe_code)]

mod client;
mod floor;
mod frame;
mod node;
mod node_scenarios;
mod procinfo;
mod report;
mod run;
mod scenarios;
mod soak;
mod soak_cmd;
mod stats;

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "clawgate-bench",
    about = "Load tool for OpenClaw protocol v4 gateways"
)]
struct Cli {
    /// Runtime worker threads (default: available cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the floor: canned challenge / hello-ok / res, no auth. Prints `listening on ADDR`.
    Floor {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Serve TLS 1.3 (rustls) with this PEM certificate (the TLS floor; with --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Print a free loopback TCP port (for scripts).
    FreePort,
    /// Run all scenarios against one gateway and print (or write) a JSON result.
    Run(Box<RunArgs>),
    /// Hold many connections with churn and paced RPC load for a long time (RSS, fds, p99).
    Soak(Box<soak_cmd::SoakArgs>),
    /// Render results of one run as a Markdown table with ratios.
    Report {
        /// JSON files written by `run --json-out`, in column order.
        results: Vec<PathBuf>,
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
        #[arg(long, default_value = "floor")]
        baseline: String,
        #[arg(long, default_value = "clawgate")]
        subject: String,
        /// The command that produced the results (shown in the report).
        #[arg(long, default_value = "make bench")]
        command: String,
        #[arg(long, default_value = "unknown date")]
        date: String,
        /// Extra bullet lines for the "Servers" section (knobs, versions).
        #[arg(long)]
        note: Vec<String>,
    },
}

/// Server flags (`--name`, `--url`, and optionally `--spawn`, `--describe`, `--server-log`,
/// `--server-pid`) repeat once per server, in the same order.
#[derive(clap::Args)]
struct RunArgs {
    /// Name of each server in the report (e.g. floor, clawgate, reference).
    #[arg(long, required = true)]
    name: Vec<String>,
    #[arg(long, required = true)]
    url: Vec<String>,
    #[arg(
        long,
        env = "CLAWGATE_BENCH_TOKEN",
        default_value = "bench-token-0123456789abcdef"
    )]
    token: String,
    /// Start each server with `sh -c 'exec CMD'` and measure start → first `health`.
    #[arg(long)]
    spawn: Vec<String>,
    /// How the report shows each server command (default: the --spawn string).
    #[arg(long)]
    describe: Vec<String>,
    /// PID of each already running server (for RSS) when not using --spawn.
    #[arg(long)]
    server_pid: Vec<u32>,
    /// Append each spawned server's stdout/stderr here (default: discard).
    #[arg(long)]
    server_log: Vec<PathBuf>,
    /// Write the JSON result here (single server) instead of stdout.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Write one NAME.json per server into this directory.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Rounds of interleaved throughput scenarios; each metric is the best round.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Seconds to wait for the first successful `health`.
    #[arg(long, default_value_t = 120.0)]
    start_deadline: f64,
    /// Seconds to let the server settle before reading RSS.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// Unrecorded warm-up seconds per throughput scenario.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Measured seconds per throughput scenario and round.
    #[arg(long, default_value_t = 2.0)]
    duration: f64,
    /// Per-request / per-handshake timeout in seconds.
    #[arg(long, default_value_t = 10.0)]
    io_timeout: f64,
    #[arg(long, default_value_t = 1000)]
    idle_conns: usize,
    #[arg(long, default_value_t = 8)]
    handshake_clients: usize,
    #[arg(long, value_delimiter = ',', default_value = "health,system-presence")]
    methods: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    rpc_conns: Vec<usize>,
    /// Servers (by --name) that get the `node.invoke` scenario.
    #[arg(long, value_delimiter = ',')]
    node_servers: Vec<String>,
    /// Servers (by --name) that get `pairing.retry` (remote via `X-Forwarded-For` on loopback).
    #[arg(long, value_delimiter = ',')]
    pairing_servers: Vec<String>,
    /// Only scenarios whose name starts with one of these prefixes (memory, handshake, rpc.health …).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CLAWGATE_BENCH_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let threads = cli.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    match cli.cmd {
        Cmd::FreePort => {
            let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
            println!("{}", l.local_addr()?.port());
            Ok(())
        }
        Cmd::Floor {
            listen,
            tls_cert,
            tls_key,
        } => rt.block_on(serve_floor(&listen, floor::tls_config(tls_cert, tls_key)?)),
        Cmd::Run(args) => rt.block_on(run_cmd(*args, threads)),
        Cmd::Soak(args) => rt.block_on(soak_cmd::command(*args)),
        Cmd::Report {
            results,
            out,
            baseline,
            subject,
            command,
            date,
            note,
        } => {
            let runs = results
                .iter()
                .map(|p| {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?;
                    serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
                })
                .collect::<Result<Vec<run::RunResult>>>()?;
            let meta = report::ReportMeta {
                baseline,
                subject,
                command,
                date,
                notes: note,
            };
            std::fs::write(&out, report::render(&runs, &meta))
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
    }
}

async fn serve_floor(
    listen: &str,
    tls: Option<std::sync::Arc<tokio_rustls::rustls::ServerConfig>>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let shutdown = CancellationToken::new();
    let serve = floor::serve(listener, shutdown.clone(), tls);
    tokio::pin!(serve);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = &mut serve => return Ok(r?),
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    shutdown.cancel();
    serve.await?;
    Ok(())
}

/// Pairs the repeated per-server flags; each optional list must be empty or as long as `--name`.
fn servers(a: &mut RunArgs) -> Result<Vec<run::ServerSpec>> {
    let n = a.name.len();
    let lens = [
        a.url.len(),
        a.spawn.len(),
        a.describe.len(),
        a.server_pid.len(),
        a.server_log.len(),
    ];
    anyhow::ensure!(lens[0] == n, "give one --url per --name");
    anyhow::ensure!(
        lens[1..].iter().all(|&l| l == 0 || l == n),
        "per-server flags must repeat once per --name"
    );
    let mut spawn = std::mem::take(&mut a.spawn).into_iter();
    let mut describe = std::mem::take(&mut a.describe).into_iter();
    let mut pid = std::mem::take(&mut a.server_pid).into_iter();
    let mut log = std::mem::take(&mut a.server_log).into_iter();
    Ok(std::mem::take(&mut a.name)
        .into_iter()
        .zip(std::mem::take(&mut a.url))
        .map(|(name, url)| run::ServerSpec {
            name,
            url,
            spawn: spawn.next(),
            describe: describe.next(),
            pid: pid.next(),
            log: log.next(),
        })
        .collect())
}

async fn run_cmd(mut a: RunArgs, threads: usize) -> Result<()> {
    let secs = Duration::from_secs_f64;
    let spec = run::RunSpec {
        servers: servers(&mut a)?,
        token: a.token,
        io_timeout: secs(a.io_timeout),
        start_deadline: secs(a.start_deadline),
        settle: secs(a.settle),
        warmup: secs(a.warmup),
        duration: secs(a.duration),
        rounds: a.rounds,
        idle_conns: a.idle_conns,
        handshake_clients: a.handshake_clients,
        methods: a.methods,
        rpc_conns: a.rpc_conns,
        only: a.only,
        node_servers: a.node_servers,
        pairing_servers: a.pairing_servers,
        client_threads: threads,
    };
    let results = run::run(spec).await;
    if let Some(dir) = &a.out_dir {
        std::fs::create_dir_all(dir)?;
        for r in &results {
            let path = dir.join(format!("{}.json", r.name));
            std::fs::write(&path, serde_json::to_string_pretty(r)? + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    let json = match results.as_slice() {
        [one] => serde_json::to_string_pretty(one)?,
        many => serde_json::to_string_pretty(many)?,
    };
    match (&a.json_out, &a.out_dir) {
        (Some(path), _) => std::fs::write(path, json + "\n")
            .with_context(|| format!("writing {}", path.display()))?,
        (None, None) => println!("{json}"),
        (None, Some(_)) => {}
    }
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.start_error.clone())
        .collect();
    anyhow::ensure!(
        failed.is_empty(),
        "servers that did not start: {}",
        failed.join("; ")
    );
    Ok(())
}

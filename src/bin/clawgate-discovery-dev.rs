//! Temporary development harness for the discovery subsystem: a plain TCP listener standing in
//! for the gateway plus `discovery::spawn`, and the `discover` / `dns-setup` commands. Tests take
//! the binary path from one helper so the lead can switch them to `clawgate run` at merge time.
//!
//! Invariants: every task is owned by one `TaskTracker`; SIGTERM/SIGINT cancel, send goodbyes and
//! exit 0 within a bounded time; SIGHUP re-reads `--dynamic-file` and calls `DiscoveryHandle::update`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use clawgate::discovery::{self, BeaconSettings, DiscoveryConfig, DynamicInfo};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Grace period for tasks after cancellation.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Status file refresh period.
const STATUS_PERIOD: Duration = Duration::from_millis(200);

#[derive(Parser)]
#[command(name = "clawgate-discovery-dev")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Listen on TCP and run discovery.
    Run(RunArgs),
    /// Browse for gateways.
    Discover(discovery::cli::DiscoverArgs),
    /// Print the split-DNS setup and run checks.
    DnsSetup(discovery::cli::DnsSetupArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// `loopback`, `lan` (0.0.0.0 and ::) or an IP address.
    #[arg(long, default_value = "loopback")]
    bind: String,
    #[arg(long, default_value_t = 18789)]
    port: u16,
    /// JSON/JSON5 config file; only its `discovery` key is read.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    state_dir: PathBuf,
    #[arg(long)]
    instance_name: Option<String>,
    #[arg(long)]
    tailnet_ip: Vec<IpAddr>,
    /// JSON `{"tls":bool,"tlsSha256":..,"tailnetDns":..,"tailnetIps":[..]}` read at start and on SIGHUP.
    #[arg(long)]
    dynamic_file: Option<PathBuf>,
    /// Status JSON written here periodically.
    #[arg(long)]
    status_file: Option<PathBuf>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DynFile {
    #[serde(default)]
    tls: bool,
    tls_sha256: Option<String>,
    tailnet_dns: Option<String>,
    /// Overrides `--tailnet-ip` when present (simulates addresses learned after start).
    tailnet_ips: Option<Vec<IpAddr>>,
    /// A Serve/Funnel endpoint `host:port` the wide-area SRV should point at.
    secure_route: Option<String>,
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<DiscoveryConfig> {
    let top: serde_json::Value = match path {
        Some(p) => json5::from_str(&std::fs::read_to_string(p)?)?,
        None => serde_json::Value::Null,
    };
    let mut cfg = DiscoveryConfig::from_json(&top["discovery"])?;
    cfg.apply_env(&|k| std::env::var(k).ok());
    if let Err(errs) = cfg.validate() {
        for e in &errs {
            eprintln!("config error: {e}");
        }
        anyhow::bail!("invalid discovery config");
    }
    Ok(cfg)
}

fn dynamic(args: &RunArgs) -> DynamicInfo {
    let f: DynFile = args
        .dynamic_file
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    DynamicInfo {
        tls: f.tls,
        tls_sha256: f.tls_sha256,
        tailnet_dns: f.tailnet_dns,
        tailnet_ips: f.tailnet_ips.unwrap_or_else(|| args.tailnet_ip.clone()),
        secure_route: f.secure_route.as_deref().and_then(|r| {
            let (host, port) = r.rsplit_once(':')?;
            Some(clawgate::discovery::SecureRoute {
                host: host.to_string(),
                port: port.parse().ok()?,
            })
        }),
    }
}

fn bind_addrs(bind: &str, port: u16) -> anyhow::Result<Vec<SocketAddr>> {
    Ok(match bind {
        "loopback" => vec![SocketAddr::from(([127, 0, 0, 1], port))],
        "lan" => vec![SocketAddr::from(([0, 0, 0, 0], port))],
        ip => vec![SocketAddr::new(ip.parse()?, port)],
    })
}

async fn serve(listener: tokio::net::TcpListener, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            acc = listener.accept() => if let Ok((mut s, _)) = acc {
                let _ = s.write_all(b"clawgate-dev\n").await;
            }
        }
    }
}

async fn write_status(h: discovery::DiscoveryHandle, path: PathBuf, cancel: CancellationToken) {
    loop {
        if let Ok(j) = serde_json::to_vec(&h.status()) {
            let tmp = path.with_extension("tmp");
            if std::fs::write(&tmp, j).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(STATUS_PERIOD) => {}
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    let config = load_config(args.config.as_ref())?;
    let addrs = bind_addrs(&args.bind, args.port)?;
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let mut listen = Vec::new();
    for a in &addrs {
        let l = tokio::net::TcpListener::bind(a).await?;
        listen.push(l.local_addr()?);
        tracker.spawn(serve(l, cancel.clone()));
    }
    let settings = BeaconSettings {
        config,
        state_dir: args.state_dir.clone(),
        gateway_port: args.port,
        listen_addrs: listen,
        instance_name: args.instance_name.clone(),
        cli_path: None,
        dynamic: dynamic(&args),
    };
    let handle = discovery::spawn(settings, &tracker, cancel.clone());
    if let Some(p) = args.status_file.clone() {
        tracker.spawn(write_status(handle.clone(), p, cancel.clone()));
    }
    let (mut term, mut int, mut hup) = (
        signal(SignalKind::terminate())?,
        signal(SignalKind::interrupt())?,
        signal(SignalKind::hangup())?,
    );
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => handle.update(dynamic(&args)),
        }
    }
    cancel.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("tasks did not finish within the shutdown grace period");
    }
    if let Some(p) = &args.status_file {
        let _ = std::fs::write(p, serde_json::to_vec(&handle.status())?);
    }
    Ok(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,mdns_sd=warn,hickory_server=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match Cli::parse().cmd {
        Cmd::Run(a) => run(a).await?,
        Cmd::Discover(a) => discovery::cli::run_discover(a).await?,
        Cmd::DnsSetup(a) => discovery::cli::run_dns_setup(a).await?,
    };
    std::process::exit(code);
}

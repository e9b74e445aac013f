//! The `clawgate` command line (clap). Exit codes: 0 success, 1 failure,
//! 2 usage. Every read command takes `--json`.

pub mod cert_validity;
pub mod client_cmds;
pub mod doctor;
pub mod doctor_net;
pub mod pairing_cmds;
pub mod run;
pub mod tls_cmds;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{AuthMode, BindMode};

#[derive(Parser, Debug)]
#[command(
    name = "clawgate",
    version,
    about = "Tailscale-first gateway for the OpenClaw gateway protocol v4"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway in the foreground.
    Run(RunArgs),
    /// Validate configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Connect and call `health`.
    Health(TargetArgs),
    /// Connect and call `status`.
    Status(TargetArgs),
    /// Call any method.
    Call(CallArgs),
    /// Probe a gateway: reachability, auth, and what the credentials allow.
    Probe(TargetArgs),
    /// Show the configured gateway token (for this host's gateway).
    Token(TokenArgs),
    /// Device pairing: list, approve, reject, remove, rename, rotate, revoke.
    #[command(subcommand)]
    Devices(pairing_cmds::DevicesCmd),
    /// Browse for gateways on the LAN (mDNS) and a wide-area DNS-SD domain.
    Discover(crate::discovery::cli::DiscoverArgs),
    /// Wide-area DNS-SD over Tailscale split DNS: setup steps and checks.
    #[command(subcommand)]
    Dns(DnsCmd),
    /// Print a single-use setup code and QR for pairing a phone or node.
    Qr(pairing_cmds::QrArgs),
    /// Nodes: list, describe, pending, approve, reject, invoke.
    #[command(subcommand)]
    Nodes(pairing_cmds::NodesCmd),
    /// Check Tailscale exposure, listeners and auth; explain each problem and its fix.
    Doctor(doctor::DoctorArgs),
    /// Gateway TLS: show the certificate fingerprint, rotate the self-signed certificate.
    #[command(subcommand)]
    Tls(tls_cmds::TlsCmd),
}

#[derive(Args, Debug, Default)]
pub struct RunArgs {
    /// Port (overrides OPENCLAW_GATEWAY_PORT and gateway.port).
    #[arg(long)]
    pub port: Option<u16>,
    /// Bind mode.
    #[arg(long, value_parser = parse_bind_flag)]
    pub bind: Option<BindMode>,
    /// Auth mode.
    #[arg(long, value_parser = parse_auth_flag)]
    pub auth: Option<AuthMode>,
    /// Shared token (prefer OPENCLAW_GATEWAY_TOKEN or the config file: argv is visible to other users).
    #[arg(long)]
    pub token: Option<String>,
    /// Shared password (prefer OPENCLAW_GATEWAY_PASSWORD or the config file).
    #[arg(long)]
    pub password: Option<String>,
    /// Config file (default: $OPENCLAW_CONFIG_PATH or ~/.openclaw/openclaw.json).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Tailscale exposure (overrides gateway.tailscale.mode), as in `openclaw gateway run`.
    #[arg(long, value_enum)]
    pub tailscale: Option<crate::config::TailscaleMode>,
}

fn parse_bind_flag(s: &str) -> Result<BindMode, String> {
    crate::config::parse_bind(s, "--bind").map_err(|e| format!("{}; {}", e.problem, e.fix))
}

fn parse_auth_flag(s: &str) -> Result<AuthMode, String> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| format!("{s:?} is not an auth mode; use none, token or password"))
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Validate a config file and print the effective config (secrets redacted).
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DnsCmd {
    /// Print the Tailscale admin steps for split DNS and check what can be checked.
    Setup(crate::discovery::cli::DnsSetupArgs),
}

#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// Gateway URL (ws:// or wss://). With --url, credentials must be given explicitly.
    #[arg(long)]
    pub url: Option<String>,
    #[arg(long)]
    pub token: Option<String>,
    #[arg(long)]
    pub password: Option<String>,
    /// Timeout in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub timeout: u64,
    #[arg(long)]
    pub json: bool,
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CallArgs {
    pub method: String,
    /// Params as JSON.
    #[arg(long, default_value = "{}")]
    pub params: String,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Args, Debug)]
pub struct TokenArgs {
    #[arg(long)]
    pub json: bool,
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Run(a) => run::run(a).await,
            Command::Config(ConfigCmd::Check { config, json }) => run::config_check(config, json),
            Command::Health(t) => client_cmds::health(t).await,
            Command::Status(t) => client_cmds::status(t).await,
            Command::Call(c) => client_cmds::call(c).await,
            Command::Probe(t) => client_cmds::probe(t).await,
            Command::Token(t) => client_cmds::token(t),
            Command::Devices(c) => pairing_cmds::devices(c).await,
            Command::Nodes(c) => pairing_cmds::nodes(c).await,
            Command::Qr(q) => pairing_cmds::qr(q).await,
            Command::Discover(d) => crate::discovery::cli::run_discover(d).await,
            Command::Dns(DnsCmd::Setup(d)) => crate::discovery::cli::run_dns_setup(d).await,
            Command::Doctor(d) => doctor::run(d).await,
            Command::Tls(c) => tls_cmds::run(c),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("CLAWGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

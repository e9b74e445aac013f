//! The `clawgate` command line (clap). Exit codes: 0 success, 1 failure,
//! 2 usage. Every read command takes `--json`.

pub mod cert_validity;
pub mod client_cmds;
pub mod coexist;
pub mod connect;
pub mod doctor;
pub mod doctor_net;
pub mod doctor_report;
pub mod logging;
pub mod out;
pub mod pairing_cmds;
pub mod pins_cmd;
pub mod run;
pub mod runfile;
pub mod status_view;
pub mod target;
pub mod tls_cmds;

use std::path::PathBuf;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand};

use crate::config::{AuthMode, BindMode};

/// Examples shown under `clawgate --help`.
const EXAMPLES: &str = "Examples:
  clawgate run                         start on loopback with a generated token
  clawgate health                      ask this host's gateway (no token needed)
  clawgate status --json               the same as JSON
  clawgate devices list                pending pairing requests and paired devices
  clawgate doctor                      check exposure, listeners and auth; each problem with its fix

Logs: RUST_LOG (or --log-level) sets the filter; CLAWGATE_LOG is an alias.
Exit status: 0 success, 1 failure, 2 usage.";

#[derive(Parser, Debug)]
#[command(
    name = "clawgate",
    version,
    about = "Tailscale-first gateway for the OpenClaw gateway protocol v4",
    after_help = EXAMPLES
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log level (overrides RUST_LOG and CLAWGATE_LOG).
    #[arg(long, global = true, value_enum)]
    pub log_level: Option<logging::LogLevel>,
    /// Colour in log lines: auto uses it only on a terminal without NO_COLOR.
    #[arg(long, global = true, value_enum, default_value_t = logging::ColorChoice::Auto)]
    pub color: logging::ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

pub use logging::LogFormat;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway in the foreground.
    #[command(
        after_help = "Examples:\n  clawgate run\n  clawgate run --bind lan --port 18789\n  clawgate run --tailscale serve\n  OPENCLAW_GATEWAY_TOKEN=... clawgate run --log-format json"
    )]
    Run(RunArgs),
    /// Validate configuration.
    #[command(
        subcommand,
        after_help = "Example:\n  clawgate config check --config ~/.openclaw/openclaw.json"
    )]
    Config(ConfigCmd),
    /// Connect and call `health`.
    #[command(
        after_help = "Examples:\n  clawgate health\n  clawgate health --url ws://127.0.0.1:18789 --token \"$(clawgate token)\""
    )]
    Health(TargetArgs),
    /// Connect and call `status` (a summary; --json for everything).
    #[command(after_help = "Examples:\n  clawgate status\n  clawgate status --json")]
    Status(TargetArgs),
    /// Call any method.
    #[command(
        after_help = "Examples:\n  clawgate call system-presence\n  clawgate call config.get --json"
    )]
    Call(CallArgs),
    /// Probe a gateway: reachability, auth, and what the credentials allow.
    #[command(
        after_help = "Example:\n  clawgate probe --url ws://127.0.0.1:18789 --token \"$(clawgate token)\""
    )]
    Probe(TargetArgs),
    /// Find a reachable gateway by the four-step policy; with --forward keep it up on loopback.
    #[command(
        after_help = "Steps: (1) saved or configured endpoint, (2) discovery (local. + wide-area), (3) --tailnet name over wss://, (4) SSH tunnel (--ssh or gateway.remote.sshTarget; your ssh, strict host keys, reconnects).\n\nExamples:\n  clawgate connect --json\n  clawgate connect --pick 1\n  clawgate connect --tailnet vienna --forward\n  clawgate connect --ssh me@vienna --forward\n  clawgate connect --url wss://vienna.tail1234.ts.net --tls-fingerprint <sha256> --save"
    )]
    Connect(connect::ConnectArgs),
    /// Show the configured gateway token (for this host's gateway).
    #[command(after_help = "Examples:\n  clawgate token\n  clawgate token --json")]
    Token(TokenArgs),
    /// Device pairing: list, approve, reject, remove, rename, rotate, revoke.
    #[command(
        subcommand,
        after_help = "Examples:\n  clawgate devices list\n  clawgate devices approve --latest"
    )]
    Devices(pairing_cmds::DevicesCmd),
    /// Browse for gateways on the LAN (mDNS) and a wide-area DNS-SD domain.
    #[command(
        after_help = "Examples:\n  clawgate discover\n  clawgate discover --domain openclaw.internal --json"
    )]
    Discover(crate::discovery::cli::DiscoverArgs),
    /// Wide-area DNS-SD over Tailscale split DNS: setup steps and checks.
    #[command(
        subcommand,
        after_help = "Example:\n  clawgate dns setup --domain openclaw.internal"
    )]
    Dns(DnsCmd),
    /// Print a single-use setup code and QR for pairing a phone or node.
    #[command(
        after_help = "Examples:\n  clawgate qr --url ws://192.168.1.10:18789\n  clawgate qr --setup-code-only"
    )]
    Qr(pairing_cmds::QrArgs),
    /// Nodes: list, describe, pending, approve, reject, invoke.
    #[command(
        subcommand,
        after_help = "Examples:\n  clawgate nodes list\n  clawgate nodes invoke --node <id> --command system.which --params '{\"bins\":[\"git\"]}'"
    )]
    Nodes(pairing_cmds::NodesCmd),
    /// Check Tailscale exposure, listeners and auth; explain each problem and its fix.
    #[command(after_help = "Examples:\n  clawgate doctor\n  clawgate doctor --json")]
    Doctor(doctor::DoctorArgs),
    /// Gateway TLS: show the certificate fingerprint, rotate the self-signed certificate.
    #[command(
        subcommand,
        after_help = "Examples:\n  clawgate tls fingerprint\n  clawgate tls rotate"
    )]
    Tls(tls_cmds::TlsCmd),
    /// Stored gateway certificate pins (this machine as a client): list, forget.
    #[command(
        subcommand,
        after_help = "Examples:
  clawgate pins list
  clawgate pins forget vienna.tail1234.ts.net:443"
    )]
    Pins(pins_cmd::PinsCmd),
}

#[derive(Args, Debug, Default)]
pub struct RunArgs {
    /// Port (overrides OPENCLAW_GATEWAY_PORT and gateway.port; 0 picks a free one).
    #[arg(long)]
    pub port: Option<u16>,
    /// Bind mode (overrides OPENCLAW_GATEWAY_BIND and gateway.bind).
    #[arg(long, value_name = "MODE", value_parser = clap::builder::PossibleValuesParser::new(["loopback", "lan", "custom", "tailnet", "auto"]).try_map(|s| parse_bind_flag(&s)))]
    pub bind: Option<BindMode>,
    /// Auth mode (overrides gateway.auth.mode).
    #[arg(long, value_name = "MODE", value_parser = clap::builder::PossibleValuesParser::new(["token", "password", "none", "trusted-proxy"]).try_map(|s| parse_auth_flag(&s)))]
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
    serde_json::from_value(serde_json::Value::String(s.into())).map_err(|_| {
        format!("{s:?} is not an auth mode; use none, token, password or trusted-proxy")
    })
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Validate a config file and print the effective config (secrets redacted).
    Check {
        /// Config file (default: $OPENCLAW_CONFIG_PATH or ~/.openclaw/openclaw.json).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the effective config as JSON.
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
    /// Gateway token (default: gateway.auth.token, OPENCLAW_GATEWAY_TOKEN, or the generated one).
    #[arg(long)]
    pub token: Option<String>,
    /// Gateway password (default: gateway.auth.password or OPENCLAW_GATEWAY_PASSWORD).
    #[arg(long)]
    pub password: Option<String>,
    /// Timeout in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub timeout: u64,
    /// Machine-readable JSON on stdout (errors too: {"ok":false,"error":{"code","message"}}).
    #[arg(long)]
    pub json: bool,
    /// Config file to read the port and credentials from.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// Certificate trust for `wss://` targets.
#[derive(Args, Debug, Default, Clone)]
pub struct TlsArgs {
    /// Require this SHA-256 certificate fingerprint (wss:// only; not stored).
    #[arg(long, value_name = "SHA256")]
    pub tls_fingerprint: Option<String>,
    /// First use: trust and store the gateway certificate if it has this SHA-256 fingerprint
    /// (compare with `clawgate tls fingerprint` on the gateway host).
    #[arg(long, value_name = "SHA256")]
    pub trust_fingerprint: Option<String>,
    /// Also trust certificates issued by the CA certificates in this PEM file (with the host
    /// name checked), like the system's roots.
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct CallArgs {
    /// Method name, e.g. health, status, system-presence, config.get.
    pub method: String,
    /// Params as JSON.
    #[arg(long, default_value = "{}")]
    pub params: String,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Args, Debug)]
pub struct TokenArgs {
    /// Print {"ok":true,"token":…,"source":"generated"|"env"|"config"|"flag"}.
    #[arg(long)]
    pub json: bool,
    /// Config file to read gateway.auth.token from.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Runs the CLI and returns the process exit code (0, 1 or 2; never a panic on a closed pipe).
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(&e),
    };
    logging::init(cli.log_format, cli.log_level, cli.color);
    let json = wants_json();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return top_error(json, &format!("cannot start the async runtime: {e}")),
    };
    match rt.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => top_error(json, &chain(&e)),
    }
}

/// The error and its causes, each cause shown only when the text so far does not already say
/// it (a `thiserror` message that embeds its source would otherwise print it twice).
fn chain(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

/// `--help`/`--version` (exit 0) and usage errors (exit 2) without panicking on a closed pipe.
fn clap_exit(e: &clap::Error) -> i32 {
    let _ = e.print();
    if e.use_stderr() {
        2
    } else {
        0
    }
}

/// `--json` anywhere on the command line: errors then use the shared JSON shape.
fn wants_json() -> bool {
    std::env::args_os().skip(1).any(|a| a == "--json")
}

/// An error that reached the top: stderr always, the JSON shape too with `--json`; exit 1.
fn top_error(json: bool, message: &str) -> i32 {
    if json {
        crate::outln!("{}", out::json_error("ERROR", message, None));
    }
    crate::errln!("error: {message}");
    1
}

async fn dispatch(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Run(a) => run::run(a).await,
        Command::Config(ConfigCmd::Check { config, json }) => run::config_check(config, json),
        Command::Health(t) => client_cmds::health(t).await,
        Command::Status(t) => client_cmds::status(t).await,
        Command::Call(c) => client_cmds::call(c).await,
        Command::Probe(t) => client_cmds::probe(t).await,
        Command::Connect(c) => connect::run(c).await,
        Command::Token(t) => client_cmds::token(t),
        Command::Devices(c) => pairing_cmds::devices(c).await,
        Command::Nodes(c) => pairing_cmds::nodes(c).await,
        Command::Qr(q) => pairing_cmds::qr(q).await,
        Command::Discover(d) => crate::discovery::cli::run_discover(d).await,
        Command::Dns(DnsCmd::Setup(d)) => crate::discovery::cli::run_dns_setup(d).await,
        Command::Doctor(d) => doctor::run(d).await,
        Command::Tls(c) => tls_cmds::run(c),
        Command::Pins(c) => pins_cmd::run(c),
    }
}

#[cfg(test)]
mod help_tests;

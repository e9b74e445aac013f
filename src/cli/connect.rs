//! `clawgate connect` (issue 16 items 4 and 6): resolve the four-step route, say which step won
//! and why each earlier one was skipped, and with `--forward` keep it up as a loopback endpoint
//! for any OpenClaw client.
//!
//! Invariants: no credential travels to a probe; `--forward` listens on loopback only. The other
//! client commands take the same route when `gateway.mode` is `"remote"` ([`super::target`]).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::{client_cmds, out};
use crate::client::endpoints::{self, Origin, SavedEndpoint};
use crate::client::forward;
use crate::client::forward::Upstream;
use crate::client::remote::{validate_identity, RemoteSettings};
use crate::client::route::{self, Route, RouteError};
use crate::client::select::Inputs;
use crate::client::ssh::{SshTarget, TunnelSpec};
use crate::config;

/// Default forward address: where OpenClaw clients look for a gateway.
const DEFAULT_FORWARD: &str = "127.0.0.1:18789";
/// How long discovery browses during selection.
const DISCOVER_MS: u64 = 1500;
/// Upper bound on one reachability probe, whatever `--timeout` says.
const MAX_PROBE_MS: u64 = 10_000;

/// `clawgate connect`.
#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// Gateway URL (ws:// or wss://): the only candidate, no fallback.
    #[arg(long)]
    pub url: Option<String>,
    /// Probe timeout in milliseconds (at most 10 000).
    #[arg(long, default_value_t = 10_000)]
    pub timeout: u64,
    /// Machine-readable JSON on stdout (errors too, with the steps).
    #[arg(long)]
    pub json: bool,
    /// Config file to read gateway.remote.* from.
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub tls: super::TlsArgs,
    /// Tailnet MagicDNS name or IP of the gateway host (policy step 3; wss:// only).
    #[arg(long, value_name = "NAME")]
    pub tailnet: Option<String>,
    /// Pick the Nth discovered gateway (1-based) without asking.
    #[arg(long, value_name = "N")]
    pub pick: Option<usize>,
    /// Skip discovery (policy step 2).
    #[arg(long)]
    pub no_discover: bool,
    /// Wide-area DNS-SD domain to browse (default: discovery.wideArea.domain).
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// Keep the route up and expose it on this loopback address (default 127.0.0.1:18789).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = DEFAULT_FORWARD)]
    pub forward: Option<String>,
    /// Save --url or --tailnet as the endpoint to try first next time.
    #[arg(long)]
    pub save: bool,
    /// SSH target for policy step 4 (default gateway.remote.sshTarget), e.g. me@vienna:2222.
    #[arg(long, value_name = "[USER@]HOST[:PORT]")]
    pub ssh: Option<String>,
    /// SSH private key for step 4 (default gateway.remote.sshIdentity).
    #[arg(long, value_name = "PATH")]
    pub ssh_identity: Option<String>,
}

/// Step 4's tunnel from `--ssh`/`--ssh-identity` over the config; `Err` names the bad flag.
fn tunnel_spec(c: &ConnectArgs, rs: &RemoteSettings) -> Result<Option<TunnelSpec>, String> {
    let target = c
        .ssh
        .as_deref()
        .map(|t| SshTarget::parse(t).map_err(|e| format!("--ssh: {e}")))
        .transpose()?;
    let identity = c
        .ssh_identity
        .as_deref()
        .map(|p| validate_identity(p).map_err(|e| format!("--ssh-identity: {e}")))
        .transpose()?;
    Ok(rs.tunnel_spec(target, identity))
}

fn inputs(c: &ConnectArgs, rs: &RemoteSettings, ssh: Option<TunnelSpec>) -> anyhow::Result<Inputs> {
    Ok(Inputs {
        explicit_url: c.url.clone(),
        configured_url: rs.url.clone(),
        configured_fingerprint: rs.tls_fingerprint.clone(),
        saved: endpoints::load(&rs.state_dir)?,
        tailnet: c.tailnet.clone(),
        transport: rs.transport,
        domains: c
            .domain
            .clone()
            .or(rs.wide_area_domain.clone())
            .into_iter()
            .collect(),
        discover: !c.no_discover,
        discover_timeout: Duration::from_millis(DISCOVER_MS),
        pick: c.pick,
        interactive: client_cmds::interactive(),
        remote_port: rs.remote_port,
        ssh,
        state_dir: Some(rs.state_dir.clone()),
    })
}

/// Prints the step report on stderr.
pub fn print_report(report: &crate::client::select::Report) {
    for s in report {
        let url = s
            .url
            .as_deref()
            .map(|u| format!(" [{u}]"))
            .unwrap_or_default();
        crate::errln!(
            "step {} {}: {:?} — {}{url}",
            s.step,
            s.name,
            s.outcome,
            s.why
        );
    }
}

/// `clawgate connect`.
pub async fn run(c: ConnectArgs) -> anyhow::Result<i32> {
    let rs = RemoteSettings::load(c.config.as_deref(), &config::process_env)?;
    let ssh = match tunnel_spec(&c, &rs) {
        Ok(s) => s,
        Err(msg) => return Ok(client_cmds::usage_error(c.json, &msg)),
    };
    // The forward listener first: a busy address fails fast, and a tunnel never takes it.
    let listener = match &c.forward {
        Some(addr) => match bind_forward(c.json, addr).await {
            Ok(l) => Some(l),
            Err(code) => return Ok(code),
        },
        None => None,
    };
    let base = client_cmds::tls_opts(&c.tls, Vec::new(), &rs.state_dir);
    let timeout = Duration::from_millis(c.timeout.min(MAX_PROBE_MS));
    let route = match route::route(&inputs(&c, &rs, ssh)?, &base, timeout).await {
        Ok(r) => r,
        Err(e) => return Ok(route_failed(c.json, &e)),
    };
    if c.save {
        save_manual(&c, &rs, &route)?;
    }
    if let Some(listener) = listener {
        return forward(c.json, route, listener).await;
    }
    if c.json {
        let v = json!({"ok": true, "step": route.step, "url": route.url, "steps": route.report});
        crate::outln!("{v}");
    } else {
        print_report(&route.report);
        crate::outln!(
            "gateway: {} (step {} {})",
            route.url,
            route.step,
            crate::client::select::NAMES[usize::from(route.step - 1)]
        );
        if route.tunnel.is_some() {
            crate::errln!("note: the SSH tunnel closes when this command exits; keep it up for other clients with --forward");
        }
    }
    if let Some(t) = route.tunnel {
        t.close().await;
    }
    Ok(0)
}

/// Reports a failed route (exit 1; 2 when a pick is needed).
fn route_failed(as_json: bool, e: &RouteError) -> i32 {
    if as_json {
        let mut v = out::json_error(e.code, &e.message, None);
        v["steps"] = json!(e.report);
        crate::outln!("{v}");
    }
    print_report(&e.report);
    crate::errln!("error: {}", e.message);
    if e.code == "PICK" {
        2
    } else {
        1
    }
}

fn save_manual(c: &ConnectArgs, rs: &RemoteSettings, route: &Route) -> anyhow::Result<()> {
    let mut saved = endpoints::load(&rs.state_dir)?;
    if let Some(t) = &c.tailnet {
        saved.tailnet = Some(t.clone());
    }
    if route.step != 3 {
        let server_name = route.tls.server_name.clone();
        saved.direct = Some(SavedEndpoint::new(&route.url, server_name, Origin::Manual));
    }
    endpoints::store(&rs.state_dir, &saved)?;
    Ok(())
}

/// Binds `--forward ADDR`; `Err(exit code)` after reporting a usage error.
async fn bind_forward(json: bool, addr: &str) -> Result<tokio::net::TcpListener, i32> {
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        let msg = format!("--forward {addr}: not an address like 127.0.0.1:18789");
        return Err(client_cmds::usage_error(json, &msg));
    };
    forward::bind(addr)
        .await
        .map_err(|e| client_cmds::usage_error(json, &e.to_string()))
}

async fn forward(
    json: bool,
    route: Route,
    listener: tokio::net::TcpListener,
) -> anyhow::Result<i32> {
    let bound = listener.local_addr()?;
    if json {
        let v = json!({"ok": true, "forward": format!("ws://{bound}"), "step": route.step, "url": route.url, "steps": route.report});
        crate::outln!("{v}");
    } else {
        print_report(&route.report);
        crate::outln!(
            "forwarding ws://{bound} → {} (step {}); Ctrl-C stops",
            route.url,
            route.step
        );
    }
    let cancel = tokio_util::sync::CancellationToken::new();
    let stop = cancel.clone();
    let signals = super::run::Signals::install();
    let waiter = tokio::spawn(async move {
        signals.wait().await;
        stop.cancel();
    });
    let upstream = Upstream {
        url: route.url,
        tls: route.tls,
        tunnel: route.tunnel.as_ref().map(|t| t.watch()),
    };
    let outcome = forward::serve(listener, upstream, cancel).await;
    waiter.abort();
    if let Some(t) = route.tunnel {
        t.close().await;
    }
    match outcome {
        Ok(()) => Ok(0),
        Err(why) => {
            crate::errln!("error: {why}");
            Ok(1)
        }
    }
}

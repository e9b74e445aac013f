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
use crate::client::remote::RemoteSettings;
use crate::client::route::{self, Route, RouteError};
use crate::client::select::Inputs;
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
}

fn inputs(c: &ConnectArgs, rs: &RemoteSettings) -> anyhow::Result<Inputs> {
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
        ssh_configured: rs.ssh_target.is_some(),
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
    let base = client_cmds::tls_opts(&c.tls, Vec::new(), &rs.state_dir);
    let timeout = Duration::from_millis(c.timeout.min(MAX_PROBE_MS));
    let route = match route::route(&inputs(&c, &rs)?, &base, timeout).await {
        Ok(r) => r,
        Err(e) => return Ok(route_failed(c.json, &e)),
    };
    if c.save {
        save_manual(&c, &rs, &route)?;
    }
    if let Some(addr) = &c.forward {
        return forward(c.json, route, addr).await;
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

async fn forward(json: bool, route: Route, addr: &str) -> anyhow::Result<i32> {
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        let msg = format!("--forward {addr}: not an address like 127.0.0.1:18789");
        return Ok(client_cmds::usage_error(json, &msg));
    };
    let listener = match forward::bind(addr).await {
        Ok(l) => l,
        Err(e) => return Ok(client_cmds::usage_error(json, &e.to_string())),
    };
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
    forward::serve(listener, route.url, route.tls, cancel).await;
    waiter.abort();
    Ok(0)
}

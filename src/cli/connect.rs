//! `clawgate connect` and the remote route every client command shares (issue 16 items 4, 6, 7):
//! resolve the four-step route, say which step won and why each earlier one was skipped, and
//! with `--forward` keep it up as a loopback endpoint for any OpenClaw client.
//!
//! Invariants: a route is resolved only when the user asked for a remote gateway (`gateway.mode:
//! "remote"`, or a route flag); credentials follow config.md §8.1 and never travel to a probe;
//! `--forward` listens on loopback only.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::{client_cmds, out, TargetArgs};
use crate::client::endpoints;
use crate::client::remote::RemoteSettings;
use crate::client::route::{self, Route, RouteError, SshConfig};
use crate::client::select::Inputs;
use crate::config;

/// Default forward address: where OpenClaw clients look for a gateway.
const DEFAULT_FORWARD: &str = "127.0.0.1:18789";
/// How long discovery browses during selection.
const DISCOVER_MS: u64 = 1500;

/// Flags that steer the route (shared by every client command).
#[derive(Args, Debug, Default, Clone)]
pub struct RouteArgs {
    /// Tailnet MagicDNS name or IP of the gateway host (policy step 3; wss:// only).
    #[arg(long, value_name = "NAME")]
    pub tailnet: Option<String>,
    /// SSH target user@host[:port] (policy step 4; overrides gateway.remote.sshTarget).
    #[arg(long, value_name = "TARGET")]
    pub ssh: Option<String>,
    /// SSH identity file (overrides gateway.remote.sshIdentity).
    #[arg(long, value_name = "PATH")]
    pub ssh_identity: Option<std::path::PathBuf>,
    /// SSH known_hosts file to verify the host key against (default: ssh's own).
    #[arg(long, value_name = "PATH")]
    pub ssh_known_hosts: Option<std::path::PathBuf>,
    /// Pick the Nth discovered gateway (1-based) without asking.
    #[arg(long, value_name = "N")]
    pub pick: Option<usize>,
    /// Skip discovery (policy step 2).
    #[arg(long)]
    pub no_discover: bool,
    /// Wide-area DNS-SD domain to browse (default: discovery.wideArea.domain).
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
}

impl RouteArgs {
    fn any(&self) -> bool {
        self.tailnet.is_some() || self.ssh.is_some() || self.pick.is_some() || self.domain.is_some()
    }
}

/// `clawgate connect`.
#[derive(Args, Debug)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Keep the route up and expose it on this loopback address (default 127.0.0.1:18789).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = DEFAULT_FORWARD)]
    pub forward: Option<String>,
    /// Save --url or --tailnet as the endpoint to try first next time.
    #[arg(long)]
    pub save: bool,
}

/// The remote route for a client command, or `None` when the local gateway is meant.
pub async fn remote_route(
    a: &TargetArgs,
    force: bool,
) -> anyhow::Result<Option<Result<Route, RouteError>>> {
    let rs = RemoteSettings::load(a.config.as_deref(), &config::process_env)?;
    if !(force || rs.mode_remote || a.route.any()) {
        return Ok(None);
    }
    let (inp, ssh) = inputs(a, &rs)?;
    let base = client_cmds::tls_opts(a, Vec::new(), Some(rs.state_dir.clone()));
    let timeout = Duration::from_millis(a.timeout.min(10_000));
    Ok(Some(route::route(&inp, ssh.as_ref(), &base, timeout).await))
}

fn inputs(a: &TargetArgs, rs: &RemoteSettings) -> anyhow::Result<(Inputs, Option<SshConfig>)> {
    let r = &a.route;
    let saved = endpoints::load(&rs.state_dir)?;
    let inp = Inputs {
        explicit_url: a.url.clone(),
        configured_url: rs.url.clone(),
        configured_fingerprint: rs.tls_fingerprint.clone(),
        saved,
        tailnet: r.tailnet.clone(),
        transport: Some(rs.transport).filter(|_| r.ssh.is_none()),
        domains: r
            .domain
            .clone()
            .or(rs.wide_area_domain.clone())
            .into_iter()
            .collect(),
        discover: !r.no_discover,
        discover_timeout: Duration::from_millis(DISCOVER_MS),
        pick: r.pick,
        interactive: client_cmds::interactive(),
        remote_port: rs.remote_port,
        ssh_configured: r.ssh.is_some() || rs.ssh_target.is_some(),
    };
    let ssh = r
        .ssh
        .clone()
        .or(rs.ssh_target.clone())
        .map(|target| SshConfig {
            target,
            identity: r.ssh_identity.clone().or(rs.ssh_identity.clone()),
            remote_port: rs.remote_port,
            policy: rs.ssh_host_key_policy,
            known_hosts: r.ssh_known_hosts.clone(),
            local_port: None,
        });
    Ok((inp, ssh))
}

/// Prints the step report (stderr for humans; the JSON goes with the command's own output).
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
    let a = &c.target;
    let route = match remote_route(a, true).await? {
        Some(Ok(r)) => r,
        Some(Err(e)) => return Ok(route_failed(a.json, &e)),
        None => unreachable_none(),
    };
    if c.save {
        save_manual(a, &route)?;
    }
    if let Some(addr) = &c.forward {
        return forward(a, route, addr).await;
    }
    let v = json!({"ok": true, "step": route.step, "url": route.url, "steps": route.report});
    if a.json {
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

fn unreachable_none() -> Route {
    // remote_route(_, force = true) always resolves a route.
    Route {
        url: String::new(),
        tls: Default::default(),
        step: 1,
        report: Vec::new(),
        tunnel: None,
    }
}

/// Reports a failed route (exit 1; 2 when a pick is needed).
pub fn route_failed(as_json: bool, e: &RouteError) -> i32 {
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

fn save_manual(a: &TargetArgs, route: &Route) -> anyhow::Result<()> {
    let rs = RemoteSettings::load(a.config.as_deref(), &config::process_env)?;
    let mut saved = endpoints::load(&rs.state_dir)?;
    if let Some(t) = &a.route.tailnet {
        saved.tailnet = Some(t.clone());
    }
    if route.tunnel.is_none() && route.step != 3 {
        saved.direct = Some(endpoints::SavedEndpoint {
            url: route.url.clone(),
            server_name: route.tls.server_name.clone(),
            origin: endpoints::Origin::Manual,
            name: None,
            saved_at_ms: crate::util::now_ms(),
        });
    }
    endpoints::store(&rs.state_dir, &saved)?;
    Ok(())
}

async fn forward(a: &TargetArgs, route: Route, addr: &str) -> anyhow::Result<i32> {
    use crate::client::forward::{self, Upstream};
    let addr: SocketAddr = match addr.parse() {
        Ok(s) => s,
        Err(_) => {
            return Ok(client_cmds::usage_error(
                a.json,
                &format!("--forward {addr}: not an address like 127.0.0.1:18789"),
            ))
        }
    };
    let listener = match forward::bind(addr).await {
        Ok(l) => l,
        Err(e) => return Ok(client_cmds::usage_error(a.json, &e.to_string())),
    };
    let bound = listener.local_addr()?;
    let upstream = match &route.tunnel {
        Some(t) => Upstream::Tcp(t.to_string()),
        None if route.url.starts_with("wss://") => Upstream::Tls {
            url: route.url.clone(),
            tls: route.tls.clone(),
        },
        None => match crate::client::candidates::host_port(&route.url) {
            Some((h, p)) => Upstream::Tcp(format_host_port(&h, p)),
            None => anyhow::bail!("selected URL {} has no host", route.url),
        },
    };
    let v = json!({"ok": true, "forward": format!("ws://{bound}"), "step": route.step, "url": route.url, "steps": route.report});
    if a.json {
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
    forward::serve(listener, upstream, cancel).await;
    waiter.abort();
    drop(route);
    Ok(0)
}

fn format_host_port(h: &str, p: u16) -> String {
    if h.contains(':') {
        format!("[{h}]:{p}")
    } else {
        format!("{h}:{p}")
    }
}

//! Which gateway a client command (`health`, `status`, `call`, `probe`, `devices`, `nodes`, `qr`)
//! talks to, with which credentials, and whether as the CLI's paired device (issue 16 items 2, 7).
//!
//! Three cases, first match wins:
//! 1. `--url`: exactly that URL. Credentials must be explicit (`--token`/`--password`, config.md
//!    §8.1 rule 2) — or a device token this CLI was issued by that very gateway.
//! 2. `gateway.mode: "remote"`: the same four-step route as `clawgate connect`
//!    ([`crate::client::route`]), credentials by §8.1 (`gateway.remote.*`, then env, then the
//!    local ones).
//! 3. Otherwise this host's gateway on loopback with its own token.
//!
//! Invariants: a connect to a non-loopback address carries the CLI's signed device identity (a
//! device-less remote token connect has no scopes, protocol.md §8.3); a loopback connect
//! (this host, or an SSH tunnel's local end) stays device-less like the reference CLI's, so it
//! keeps its scopes without pairing. The route (and any tunnel it holds) lives as long as the
//! returned [`Resolved`].

use std::path::PathBuf;
use std::time::Duration;

use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::client_cmds::{interactive, own_pins, tls_opts};
use super::TargetArgs;
use crate::client::device::{gateway_key, Device};
use crate::client::endpoints;
use crate::client::remote::RemoteSettings;
use crate::client::route::{self, Route};
use crate::client::select::Inputs;
use crate::client::Target;
use crate::config::{self, secrets, Overrides, Secret};

/// How long discovery browses when a remote-mode command has to fall back to it.
const DISCOVER_MS: u64 = 1500;

/// A target and what keeps its route up.
pub struct Resolved {
    pub target: Target,
    /// The route that produced the target (remote mode); dropping it closes any tunnel.
    pub route: Option<Route>,
}

impl Resolved {
    fn direct(target: Target) -> Resolved {
        Resolved {
            target,
            route: None,
        }
    }
}

/// Whether `url`'s host is loopback by its spelling (no DNS: an unknown name counts as remote).
pub fn is_loopback_url(url: &str) -> bool {
    let Ok(req) = url.into_client_request() else {
        return false;
    };
    let Some(host) = req.uri().host() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The client state dir (`OPENCLAW_STATE_DIR`, else the default), for identity and tokens.
fn client_state_dir(a: &TargetArgs) -> anyhow::Result<PathBuf> {
    Ok(config::Paths::resolve(a.config.as_deref(), &config::process_env)?.state_dir)
}

/// The device dir for `url`: `Some` for a non-loopback gateway.
fn device_for(url: &str, state_dir: PathBuf) -> Option<PathBuf> {
    (!is_loopback_url(url)).then_some(state_dir)
}

/// Resolves the command's target; `Ok(Err(usage))` for a usage error.
pub async fn resolve(a: &TargetArgs) -> anyhow::Result<Result<Resolved, String>> {
    let timeout = Duration::from_millis(a.timeout);
    if let Some(url) = &a.url {
        return explicit(a, url, timeout);
    }
    let rs = RemoteSettings::load(a.config.as_deref(), &config::process_env)?;
    if rs.mode_remote {
        return remote(a, &rs, timeout).await;
    }
    local(a, timeout).await
}

fn explicit(
    a: &TargetArgs,
    url: &str,
    timeout: Duration,
) -> anyhow::Result<Result<Resolved, String>> {
    if url.contains('?') || url.contains('#') {
        return Ok(Err(
            "--url must not carry a query or fragment; credentials go in --token/--password".into(),
        ));
    }
    let Some(key) = gateway_key(url) else {
        return Ok(Err(format!("--url {url}: not a ws:// or wss:// URL")));
    };
    let state_dir = client_state_dir(a)?;
    let device = device_for(url, state_dir.clone());
    if a.token.is_none() && a.password.is_none() && !has_device_token(device.as_ref(), key)? {
        return Ok(Err("--url needs explicit --token or --password (credentials are never taken from config or env with --url; a device token from pairing with that gateway also counts)".into()));
    }
    Ok(Ok(Resolved::direct(Target {
        url: url.to_string(),
        token: a.token.clone().map(Secret::new),
        password: a.password.clone().map(Secret::new),
        timeout,
        tls: tls_opts(&a.tls, own_pins(a), &state_dir),
        device,
    })))
}

fn has_device_token(device: Option<&PathBuf>, key: String) -> anyhow::Result<bool> {
    let Some(dir) = device else {
        return Ok(false);
    };
    Ok(Device::open(dir, key)?.token("operator")?.is_some())
}

async fn remote(
    a: &TargetArgs,
    rs: &RemoteSettings,
    timeout: Duration,
) -> anyhow::Result<Result<Resolved, String>> {
    let inputs = Inputs {
        configured_url: rs.url.clone(),
        configured_fingerprint: rs.tls_fingerprint.clone(),
        saved: endpoints::load(&rs.state_dir)?,
        transport: rs.transport,
        domains: rs.wide_area_domain.clone().into_iter().collect(),
        discover: true,
        discover_timeout: Duration::from_millis(DISCOVER_MS),
        interactive: interactive(),
        remote_port: rs.remote_port,
        ssh: rs.tunnel_spec(None, None),
        state_dir: Some(rs.state_dir.clone()),
        ..Default::default()
    };
    let base = tls_opts(&a.tls, Vec::new(), &rs.state_dir);
    let route = match route::route(&inputs, &base, timeout).await {
        Ok(r) => r,
        Err(e) => {
            if !a.json {
                super::connect::print_report(&e.report);
            }
            return Ok(Err(format!("gateway.mode is \"remote\": {e}")));
        }
    };
    let env = config::process_env;
    let target = Target {
        url: route.url.clone(),
        token: a.token.clone().map(Secret::new).or_else(|| rs.token(&env)),
        password: a
            .password
            .clone()
            .map(Secret::new)
            .or_else(|| rs.password(&env)),
        timeout,
        tls: route.tls.clone(),
        device: device_for(&route.url, rs.state_dir.clone()),
    };
    Ok(Ok(Resolved {
        target,
        route: Some(route),
    }))
}

async fn local(a: &TargetArgs, timeout: Duration) -> anyhow::Result<Result<Resolved, String>> {
    let s = config::load(
        &Overrides {
            config: a.config.clone(),
            ..Default::default()
        },
        &config::process_env,
    )?;
    let token = a
        .token
        .clone()
        .map(Secret::new)
        .or(s.auth.token.clone())
        .or_else(|| secrets::read_generated_token(&s.paths.state_dir));
    let password = a
        .password
        .clone()
        .map(Secret::new)
        .or(s.auth.password.clone());
    let tls = crate::tls::TlsSettings::from_settings(&s);
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    let url = match config::process_env(config::env::URL) {
        Some(u) => u,
        None => loopback_url(scheme, s.port).await,
    };
    let pins = tls.iter().filter_map(super::client_cmds::own_pin).collect();
    let device = device_for(&url, s.paths.state_dir.clone());
    Ok(Ok(Resolved::direct(Target {
        url,
        token,
        password,
        timeout,
        tls: tls_opts(&a.tls, pins, &s.paths.state_dir),
        device,
    })))
}

/// How long the IPv4 loopback gets to accept before `[::1]` is tried.
const LOOPBACK_PROBE: Duration = Duration::from_millis(300);

/// This host's gateway: `127.0.0.1`, or `[::1]` when only the IPv6 loopback answers (a host or
/// namespace without a working IPv4 loopback; threats.md TN-5).
async fn loopback_url(scheme: &str, port: u16) -> String {
    use std::net::{Ipv6Addr, SocketAddr};
    let answers = |a: SocketAddr| async move {
        let c = tokio::time::timeout(LOOPBACK_PROBE, tokio::net::TcpStream::connect(a)).await;
        matches!(c, Ok(Ok(_)))
    };
    let v4 = SocketAddr::from(([127, 0, 0, 1], port));
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    if !answers(v4).await && answers(v6).await {
        return format!("{scheme}://[::1]:{port}");
    }
    format!("{scheme}://127.0.0.1:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_by_spelling_only() {
        for u in [
            "ws://127.0.0.1:1",
            "wss://localhost",
            "ws://[::1]:2",
            "ws://127.8.9.1",
        ] {
            assert!(is_loopback_url(u), "{u}");
        }
        for u in [
            "ws://10.0.0.1:1",
            "wss://gw.example.ts.net",
            "ws://localhost.evil.example",
            "nonsense",
        ] {
            assert!(!is_loopback_url(u), "{u}");
        }
    }
}

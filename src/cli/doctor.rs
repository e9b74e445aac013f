//! `clawgate doctor [--json]` (issue 5 §7): checks and explains the Tailscale backend (reachable,
//! logged in, MagicDNS, HTTPS certificates, Funnel), serve-config ownership and conflicts, every
//! listening socket of the gateway with its public/private/tailnet class, auth mode, exposure and
//! its tailnet (Serve) vs public (Funnel) reachability (SL-10).
//! Each problem carries its fix; exit status 1 when anything is wrong.
//!
//! Invariants: read-only — doctor never writes the serve config or prefs; with `tailscale.mode =
//! off` and a non-tailnet bind it makes no LocalAPI call (SL-1); it never prints secrets.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use serde_json::Value;

use crate::config::{self, AuthMode, Overrides, Settings, TailscaleMode};
use crate::exposure::start::runtime_config;
use crate::tailscale::{
    preflight, Backend, Handshake, LocalApi, LocalApiClient, ServeConfig, Status,
};

/// `clawgate doctor` arguments.
#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Config file.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub use super::doctor_report::{fail, info, pass, Check};

/// Runs the checks and prints them; exit 1 on any failure. The running gateway (its loopback
/// `/readyz`) is asked first: its bind and Tailscale mode win over the config file, which is
/// only the fallback when no gateway answers (the report says which: `source`).
pub async fn run(a: DoctorArgs) -> anyhow::Result<i32> {
    let over = Overrides {
        config: a.config.clone(),
        ..Default::default()
    };
    let mut checks = Vec::new();
    let mut settings = match config::load(&over, &config::process_env) {
        Ok(s) => s,
        Err(e) => {
            checks.push(fail("config", e.problem.clone(), e.fix.clone()));
            return Ok(super::doctor_report::print(
                &checks,
                a.json,
                "config",
                &Value::Null,
            ));
        }
    };
    checks.push(config_check(&settings));
    let tls = crate::tls::TlsSettings::from_settings(&settings);
    let configured_port = settings.port;
    let mut ready = fetch_readyz(settings.port, tls.as_ref()).await;
    if ready.is_none() {
        // A gateway on this state dir started with another --port: ask it where it said it is.
        if let Some(info) = super::runfile::read_live(&settings.paths.state_dir) {
            if info.port != settings.port {
                ready = fetch_readyz(info.port, tls.as_ref()).await;
                if ready.is_some() {
                    settings.port = info.port;
                }
            }
        }
    }
    let source = live_overrides(&mut settings, ready.as_ref());
    checks.push(auth_check(&settings));
    if let Some(c) = super::tls_cmds::doctor_check(tls.as_ref(), ready.as_ref()) {
        checks.push(c);
    }
    checks.push(match &ready {
        Some(_) if settings.port != configured_port => pass(
            "gateway",
            format!("running on 127.0.0.1:{} (its --port; the config says {configured_port}, found through {}); the checks below use its live state", settings.port, super::runfile::path(&settings.paths.state_dir).display()),
        ),
        Some(_) => pass(
            "gateway",
            format!("running: /readyz answered on 127.0.0.1:{}; the checks below use its live state", settings.port),
        ),
        None => fail(
            "gateway",
            format!("not running on 127.0.0.1:{} (no /readyz answer); the checks below use the config file only", settings.port),
            "start it: clawgate run",
        ),
    });
    let exposure = ready
        .as_ref()
        .map(|r| r["exposure"].clone())
        .unwrap_or(Value::Null);
    let mut forwarding = super::doctor_net::loopback_from_report(&exposure);
    if let Some((api, system)) = backend(&settings, &mut checks) {
        let status = tailscale_checks(&settings, (&*api, system), &exposure, &mut checks).await;
        if let (true, None, Some(st)) = (system, forwarding, status) {
            forwarding = Some(crate::exposure::Forwarding::from_status(&st));
        }
    }
    match forwarding {
        Some(f) => checks.push(super::doctor_net::loopback_check(f, settings.port)),
        None => checks.extend(super::doctor_net::loopback_unchecked(&exposure)),
    }
    exposure_check(&settings, &exposure, &mut checks);
    reach_checks(&exposure, &mut checks);
    let findings = crate::audit::live_or_settings(&settings, ready.as_ref());
    checks.extend(super::doctor_report::audit_checks(findings));
    let ingress = exposure["ingress"]
        .as_str()
        .and_then(|s| s.parse::<SocketAddr>().ok());
    let ips: Vec<IpAddr> =
        serde_json::from_value(exposure["tailnetIps"].clone()).unwrap_or_default();
    super::doctor_net::sockets(settings.port, settings.bind, ingress, &ips, &mut checks);
    Ok(super::doctor_report::print(
        &checks, a.json, source, &exposure,
    ))
}

/// `ok` for a file that parsed; `info` (not `ok`) when there is none and defaults apply.
fn config_check(s: &Settings) -> Check {
    let path = s.paths.config_path.display();
    if s.paths.config_path.exists() {
        pass("config", path.to_string())
    } else {
        info(
            "config",
            format!("no config file at {path}: built-in defaults (loopback, token auth)"),
        )
    }
}

/// The running gateway's bind and Tailscale mode (flags like `--tailscale serve` included)
/// replace the config's; returns the report's `source`.
fn live_overrides(s: &mut Settings, ready: Option<&Value>) -> &'static str {
    let Some(r) = ready else { return "config" };
    let bind = serde_json::from_value(r["gateway"]["bind"].clone()).ok();
    if let Some(b) = bind {
        s.bind = b;
    }
    s.tailscale_mode = match r["exposure"]["mode"].as_str() {
        Some("serve") => TailscaleMode::Serve,
        Some("funnel") => TailscaleMode::Funnel,
        Some("off") => TailscaleMode::Off,
        _ => s.tailscale_mode,
    };
    "gateway"
}

fn auth_check(s: &Settings) -> Check {
    let mode = serde_json::to_value(s.auth.mode).unwrap_or_default();
    let mode = mode.as_str().unwrap_or("?").to_owned();
    match (s.auth.mode, s.tailscale_mode) {
        (AuthMode::Password, TailscaleMode::Funnel)
        | (_, TailscaleMode::Off | TailscaleMode::Serve) => pass(
            "auth",
            format!("mode {mode}, allowTailscale {}", s.auth.allow_tailscale),
        ),
        _ => fail(
            "auth",
            format!("mode {mode} with Funnel"),
            "Funnel requires gateway.auth.mode = password",
        ),
    }
}

/// The LocalAPI to inspect and whether it is a system tailscaled, or `None` (mode off and no
/// tailnet bind ⇒ nothing is touched).
fn backend(s: &Settings, checks: &mut Vec<Check>) -> Option<(Arc<dyn LocalApi>, bool)> {
    let cfg = match runtime_config(s) {
        Ok(Some(cfg)) => cfg,
        Ok(None) => {
            checks.push(pass(
                "tailscale",
                "mode off and bind not tailnet: no Tailscale calls made",
            ));
            return None;
        }
        Err(e) => {
            checks.push(fail("tailscale config", e.problem, e.fix));
            return None;
        }
    };
    match cfg.backend() {
        Backend::System(ep) => Some((Arc::new(LocalApiClient::new(ep)), true)),
        Backend::AttachSidecar(path) => match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| Handshake::parse(&b).map_err(|e| e.to_string()))
        {
            Ok((_, ep)) => Some((Arc::new(LocalApiClient::new(ep)), false)),
            Err(e) => {
                checks.push(fail("tailscale backend", format!("sidecar handshake {}: {e}", path.display()), "start the sidecar (clawgate-tsnet --handshake-file …) or fix gateway.tailscale.sidecar.attach"));
                None
            }
        },
        Backend::SpawnSidecar(_) => {
            checks.push(pass(
                "tailscale backend",
                "sidecar spawned by the running gateway; its state is in /readyz exposure",
            ));
            None
        }
        Backend::None => None,
    }
}

async fn tailscale_checks(
    s: &Settings,
    (api, system): (&dyn LocalApi, bool),
    exposure: &Value,
    checks: &mut Vec<Check>,
) -> Option<Status> {
    let access_fix = if system {
        "start tailscaled; give this user access: `sudo tailscale set --operator=$USER` (or use the sidecar)"
    } else {
        "start the attached sidecar (clawgate-tsnet --handshake-file …); it needs no operator rights"
    };
    let status = match api.self_status().await {
        Ok(st) => st,
        Err(e) => {
            checks.push(fail("tailscale reachable", e.to_string(), access_fix));
            return None;
        }
    };
    checks.push(pass(
        "tailscale reachable",
        format!("backend state {}", status.backend_state.name()),
    ));
    let mode = match s.tailscale_mode {
        TailscaleMode::Funnel => crate::tailscale::TailscaleMode::Funnel,
        _ => crate::tailscale::TailscaleMode::Serve,
    };
    let port = crate::exposure::start::tailscale_config(s)
        .map(|c| c.funnel_port)
        .unwrap_or_default();
    let prefs = api.prefs().await.ok();
    let issues = preflight(&status, prefs.as_ref(), mode, port);
    for i in &issues {
        checks.push(fail("tailscale preflight", i.to_string(), i.remedy()));
    }
    if issues.is_empty() {
        checks.push(pass(
            "tailscale preflight",
            format!(
                "logged in, MagicDNS on, HTTPS certificates enabled{}",
                if mode == crate::tailscale::TailscaleMode::Funnel {
                    ", Funnel permitted"
                } else {
                    ""
                }
            ),
        ));
        cert_check(api, &status, checks).await;
    }
    if s.tailscale_mode != TailscaleMode::Off {
        match api.serve_config().await {
            Ok((cfg, _)) => checks.push(ownership(&cfg, u16::from(port), mode, exposure)),
            Err(e) => checks.push(fail("serve config", e.to_string(), access_fix)),
        }
    }
    Some(status)
}

/// The HTTPS leaf for this node: available, for the MagicDNS name, in its validity window and
/// not about to run out ([`super::cert_validity::CERT_MIN_VALIDITY`]).
async fn cert_check(api: &dyn LocalApi, status: &Status, checks: &mut Vec<Check>) {
    const NAME: &str = "https certificate";
    let Some(fqdn) = status.fqdn() else { return };
    // Clients connect to the MagicDNS name (issue 5 §6); CertDomains[0] is normally the same.
    let name = status
        .self_node
        .as_ref()
        .map(|n| n.dns_name.trim_end_matches('.'))
        .filter(|n| !n.is_empty())
        .unwrap_or(fqdn);
    let pair = match api.cert_pair(fqdn).await {
        Ok(p) => p,
        Err(e) => return checks.push(fail(NAME, format!("{fqdn}: {e}"), format!("enable HTTPS certificates in the admin console; `tailscale cert {fqdn}` shows the issuance error (an expired cached certificate is re-issued on demand; allow 30–60 s, mind rate limits)"))),
    };
    let now = std::time::SystemTime::now();
    checks.push(
        match super::cert_validity::evaluate_pem(pair.cert_pem.as_bytes(), name, now) {
            Ok(v) => pass(
                NAME,
                format!(
                    "valid for {name} until {} ({} days left)",
                    v.expires, v.days_left
                ),
            ),
            Err(problem) => fail(NAME, format!("{name}: {problem}"), problem.fix(fqdn)),
        },
    );
}

/// Who serves our public port.
fn ownership(
    cfg: &ServeConfig,
    funnel_port: u16,
    mode: crate::tailscale::TailscaleMode,
    exposure: &Value,
) -> Check {
    let port = if mode == crate::tailscale::TailscaleMode::Funnel {
        funnel_port
    } else {
        443
    };
    let ingress = exposure["ingress"].as_str().unwrap_or("");
    let key = port.to_string();
    let mine = |c: &ServeConfig| {
        c.tcp.get(&key).and_then(|h| h.tcp_forward.as_deref()) == Some(ingress)
            && !ingress.is_empty()
    };
    if cfg.foreground.values().any(mine) {
        return pass(
            "serve route",
            format!("port {port} → {ingress}: owned by this clawgate (foreground session)"),
        );
    }
    match cfg.served_ports().into_iter().find(|(p, _)| *p == key) {
        Some((_, owner)) => fail("serve route", format!("port {port} is held by {}", owner.map_or("a background serve entry".into(), |s| format!("foreground session {s}"))), format!("remove that handler (`tailscale serve --https={port} off`) or choose another Funnel port; clawgate never overwrites it")),
        None => fail("serve route", format!("nothing serves port {port}"), "start the gateway (clawgate run); if it runs, see the exposure reason"),
    }
}

fn exposure_check(s: &Settings, exposure: &Value, checks: &mut Vec<Check>) {
    if s.tailscale_mode == TailscaleMode::Off {
        checks.push(pass("exposure", "off"));
        return;
    }
    match exposure["tailscale"].as_str() {
        Some("ok") => checks.push(pass(
            "exposure",
            format!("ok: {}", exposure["publicUrl"].as_str().unwrap_or("?")),
        )),
        Some(other) => checks.push(fail(
            "exposure",
            format!("{other}: {}", exposure["reason"].as_str().unwrap_or("")),
            exposure["remedy"]
                .as_str()
                .unwrap_or("see the gateway log")
                .to_owned(),
        )),
        None => checks.push(fail(
            "exposure",
            "unknown (gateway not running)",
            "start it: clawgate run",
        )),
    }
}

/// The running gateway's tailnet (Serve) and public (Funnel) reachability lines (SL-10); an
/// enabled line that is degraded fails with its remedy. Nothing when the gateway is not running.
fn reach_checks(exposure: &Value, checks: &mut Vec<Check>) {
    let lines = [
        ("tailnet", "tailnet reachability"),
        ("public", "public reachability"),
    ];
    for (key, name) in lines {
        let line = &exposure["reachability"][key];
        let Some(state) = line["state"].as_str() else {
            continue;
        };
        let mut detail = format!("{state}: {}", line["reason"].as_str().unwrap_or(""));
        if let Some(ms) = line["lastFunnelConnectionMs"].as_i64() {
            let ago = (crate::util::now_ms() - ms).max(0) / 1000;
            detail.push_str(&format!(" (last Funnel connection {ago} s ago)"));
        }
        checks.push(match state {
            "degraded" => fail(
                name,
                detail,
                line["remedy"].as_str().unwrap_or("see the gateway log"),
            ),
            _ => pass(name, detail),
        });
    }
}

/// GET /readyz from the local gateway (HTTP/1.0, bounded).
async fn fetch_readyz(port: u16, tls: Option<&crate::tls::TlsSettings>) -> Option<Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let mut s: Box<dyn crate::tls::client::Io> = match tls {
            None => Box::new(tcp),
            Some(t) => {
                let pin = crate::tls::cert::leaf_fingerprint(&t.cert_path).ok()?;
                let cfg = crate::tls::client::pinned_config(&[pin], &[b"http/1.1"]).ok()?;
                let name =
                    tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1").ok()?;
                Box::new(
                    tokio_rustls::TlsConnector::from(cfg)
                        .connect(name, tcp)
                        .await
                        .ok()?,
                )
            }
        };
        s.write_all(b"GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.take(1 << 20).read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf);
        serde_json::from_str(text.split_once("\r\n\r\n")?.1).ok()
    };
    tokio::time::timeout(std::time::Duration::from_secs(3), io)
        .await
        .ok()?
}

//! `clawgate run` and `clawgate config check`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use super::RunArgs;
use crate::config::{self, secrets, AuthMode, Overrides, Settings, TokenSource};
use crate::identity::Identity;
use crate::server::{listen, Gateway};

/// Loads settings and, for token auth without a configured token, the generated one.
fn overrides(a: &RunArgs) -> Overrides {
    Overrides {
        config: a.config.clone(),
        port: a.port,
        bind: a.bind,
        auth: a.auth,
        token: a.token.clone(),
        password: a.password.clone(),
        tailscale: a.tailscale,
    }
}

/// Settings validated and the state dir secured (0700), nothing else written yet.
fn settings_for_run(over: &Overrides) -> anyhow::Result<Settings> {
    let s = config::load(over, &config::process_env)?;
    let root = &s.paths.state_dir;
    let loosened = crate::state::secure_root(root)
        .with_context(|| format!("cannot create the state dir {}", root.display()))?;
    if let Some(mode) = loosened {
        tracing::warn!(dir = %root.display(), "state dir was mode {mode:o}: tightened to 0700");
    }
    Ok(s)
}

/// For token auth without a configured token: the generated one (created on first use).
/// Called only once the state dir is locked and the listeners are bound, so a refused start
/// never leaves a token behind that no banner showed.
fn generated_token(s: &mut Settings) -> anyhow::Result<bool> {
    if s.auth.mode != AuthMode::Token || s.auth.token.is_some() {
        return Ok(false);
    }
    let (tok, created) =
        secrets::load_or_generate_token(&s.paths.state_dir).with_context(|| {
            format!(
                "cannot store the generated token in {}",
                s.paths.state_dir.display()
            )
        })?;
    secrets::use_generated_token(s, tok)?;
    Ok(created)
}

pub async fn run(a: RunArgs) -> anyhow::Result<i32> {
    crate::server::fdlimit::raise(); // before the budget reads it (threats.md RL-1)
    let over = overrides(&a);
    let mut settings = settings_for_run(&over)?;
    // The state-dir lock first: a second gateway on this dir must change nothing.
    let pairing = crate::pairing::store::Store::open(&settings.paths.state_dir)?;
    // After the state-dir lock: no other gateway can be writing these temp files.
    for stale in crate::state::remove_stale_temps(&settings.paths.state_dir)? {
        tracing::info!(file = %stale.display(), "removed a temp file left by an interrupted write");
    }
    for w in config::unsupported::warnings(&settings.file) {
        tracing::warn!("{w}");
    }
    let tls = start_tls(&settings)?;
    let listeners = listen::bind_all(&settings)?;
    let identity = Identity::load_or_create(&settings.paths.state_dir)?;
    let generated = generated_token(&mut settings)?;
    super::coexist::expose_token(&settings);
    let gw = Gateway::new(settings, identity, pairing);
    if let Some(t) = tls {
        let _ = gw.tls.set(Arc::new(t));
    }
    listen::serve(&gw, listeners);
    gw.spawn_tick();
    gw.spawn_discovery();
    crate::server::reload::spawn(&gw, over);
    let exposure = crate::exposure::start(&gw).await?;
    // Handlers first: the banner tells supervisors (and tests) the gateway is up, and a SIGTERM
    // right after it must drain, not kill.
    let signals = Signals::install();
    // Recorded before the banner: whoever reacts to the banner finds the record.
    if let Some(port) = loopback_port(&gw) {
        super::runfile::write(&gw.settings.paths.state_dir, port);
    }
    banner(&gw, generated);
    ready_event(&gw);
    signals.wait().await;
    tracing::info!("shutting down: notifying clients and draining");
    super::runfile::remove(&gw.settings.paths.state_dir);
    gw.shutdown().await;
    exposure.shutdown().await;
    Ok(0)
}

/// Gateway TLS when enabled: the pair loaded or generated now, so a bad pair refuses to start
/// (never a silent fallback to plaintext).
fn start_tls(s: &Settings) -> anyhow::Result<Option<crate::tls::server::TlsServer>> {
    let Some(t) = crate::tls::TlsSettings::from_settings(s) else {
        return Ok(None);
    };
    let names = crate::tls::cert::Names::discover(&crate::tls::known_dns_names(), &[]);
    let server = crate::tls::server::TlsServer::start(t, &names)
        .context("gateway.tls is enabled but no usable certificate")?;
    Ok(Some(server))
}

/// The port the gateway answers on at 127.0.0.1 (its loopback or wildcard listener).
fn loopback_port(gw: &Gateway) -> Option<u16> {
    let addrs = gw.listen_addrs.lock().ok()?.clone();
    addrs
        .iter()
        .find(|a| a.ip().is_loopback() || a.ip().is_unspecified())
        .map(|a| a.port())
}

/// The structured `ready` event (both log formats): listen URLs, version, device id.
fn ready_event(gw: &Gateway) {
    let urls: Vec<String> = gw
        .listen_addrs
        .lock()
        .map(|v| v.iter().map(|a| format!("ws://{a}")).collect())
        .unwrap_or_default();
    tracing::info!(
        event = %"ready",
        listen = %urls.join(","),
        version = %env!("CARGO_PKG_VERSION"),
        device_id = %gw.identity.device_id,
        "ready"
    );
}

/// Writes a banner line; a closed stdout (EPIPE) must not take the gateway down. With
/// `--log-format json` the line is a structured `banner` event on stderr instead.
macro_rules! out {
    ($($t:tt)*) => {{
        if super::logging::json_logs() {
            tracing::info!(event = %"banner", "{}", format_args!($($t)*));
        } else {
            crate::outln!($($t)*);
        }
    }};
}

fn banner(gw: &Gateway, generated: bool) {
    let s = &gw.settings;
    let addrs = gw
        .listen_addrs
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    let scheme = if gw.tls.get().is_some() { "wss" } else { "ws" };
    let urls: Vec<String> = addrs.iter().map(|a| format!("{scheme}://{a}")).collect();
    if super::logging::json_logs() {
        banner_fields(gw, &urls);
    }
    out!(
        "clawgate {} listening on {}",
        env!("CARGO_PKG_VERSION"),
        urls.join(", ")
    );
    if let Some(t) = gw.tls.get() {
        let made = if t.generated { ", generated now" } else { "" };
        out!(
            "tls: sha256 fingerprint {} (certificate {}{made}; show again: clawgate tls fingerprint)",
            t.fingerprint(),
            t.settings.cert_path.display()
        );
    }
    let source = match s.token_source {
        TokenSource::StateDir => format!(
            "generated, stored in {}",
            secrets::token_file(&s.paths.state_dir).display()
        ),
        TokenSource::Flag => "from --token".into(),
        TokenSource::Env => format!("from {}", config::env::TOKEN),
        TokenSource::File => format!("from {}", s.paths.config_path.display()),
        TokenSource::None => "none".into(),
    };
    match s.auth.mode {
        AuthMode::Token => out!("auth: token ({source})"),
        m => out!(
            "auth: {}",
            serde_json::to_value(m)
                .unwrap_or_default()
                .as_str()
                .unwrap_or("?")
        ),
    }
    if generated {
        generated_token_line(s);
    }
    if s.auth.mode == AuthMode::Token {
        out!("show the token again: clawgate token");
    }
    out!("browser origins: none allowed beyond loopback pages (set gateway.controlUi.allowedOrigins)");
    for f in gw.audit.list() {
        if super::logging::json_logs() {
            let severity = f.severity.as_str();
            tracing::warn!(event = %"audit", id = %f.id, severity, fix = %f.fix, "{}", f.message);
        } else {
            out!(
                "audit: {} {}: {} (fix: {})",
                f.severity.as_str(),
                f.id,
                f.message,
                f.fix
            );
        }
    }
    let mode = crate::exposure::mode_name(s.tailscale_mode);
    let bind = serde_json::to_value(s.bind).unwrap_or_default();
    let bind = bind.as_str().unwrap_or("?");
    match gw.exposure.public_url() {
        Some(url) => out!("exposure: bind={bind} tailscale={mode} public={url} (once the route is claimed; see /readyz)"),
        None if s.tailscale_mode != crate::config::TailscaleMode::Off => out!("exposure: bind={bind} tailscale={mode} public=wss://<MagicDNS name> (pending; see /readyz)"),
        None => out!("exposure: bind={bind} tailscale={mode}"),
    }
}

/// The banner's facts as one structured `banner` event (`--log-format json`): what the text
/// lines say, as fields a log pipeline can match on. Never a secret.
fn banner_fields(gw: &Gateway, urls: &[String]) {
    let s = &gw.settings;
    let name = |v: serde_json::Value| v.as_str().unwrap_or("?").to_string();
    let auth = name(serde_json::to_value(s.auth.mode).unwrap_or_default());
    let token_source = match s.token_source {
        TokenSource::StateDir => "state-dir",
        TokenSource::Flag => "flag",
        TokenSource::Env => "env",
        TokenSource::File => "config",
        TokenSource::None => "none",
    };
    let bind = name(serde_json::to_value(s.bind).unwrap_or_default());
    let tls = gw.tls.get().map(|t| t.fingerprint()).unwrap_or_default();
    tracing::info!(
        event = %"banner",
        version = %env!("CARGO_PKG_VERSION"),
        listen = %urls.join(","),
        auth = %auth,
        token_source,
        bind = %bind,
        tailscale = %crate::exposure::mode_name(s.tailscale_mode),
        public_url = %gw.exposure.public_url().unwrap_or_default(),
        tls_sha256 = %tls,
        audit_findings = gw.audit.list().len(),
        "gateway started"
    );
}

/// SE-1: the new token goes to a terminal only (never into a log event, whatever the log
/// format); a pipe or the journal gets where it is stored.
fn generated_token_line(s: &Settings) {
    use std::io::IsTerminal as _;
    match &s.auth.token {
        Some(t) if std::io::stdout().is_terminal() => crate::outln!("token: {}", t.expose()),
        _ => out!(
            "token: generated and stored in {} (not printed: stdout is not a terminal)",
            secrets::token_file(&s.paths.state_dir).display()
        ),
    }
}

/// SIGTERM and SIGINT, registered before the gateway announces itself.
pub(crate) struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    pub(crate) fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let get = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!("cannot install the {name} handler: {e}");
                None
            }
        };
        Self {
            term: get(SignalKind::terminate(), "SIGTERM"),
            int: get(SignalKind::interrupt(), "SIGINT"),
        }
    }

    pub(crate) async fn wait(mut self) {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = recv(&mut self.term) => {}
            _ = recv(&mut self.int) => {}
        }
    }
}

/// `clawgate config check`: validates and prints the effective config, redacted.
pub fn config_check(path: Option<PathBuf>, as_json: bool) -> anyhow::Result<i32> {
    let over = Overrides {
        config: path,
        ..Default::default()
    };
    let s = match config::load(&over, &config::process_env) {
        Ok(s) => s,
        Err(e) => {
            crate::errln!("{e}");
            return Ok(1);
        }
    };
    let mut v = s.redacted_json();
    let warnings = config::unsupported::warnings(&s.file);
    v["warnings"] = serde_json::json!(warnings);
    if as_json {
        crate::outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for w in &warnings {
            crate::errln!("warning: {w}");
        }
        crate::outln!("config OK: {}", s.paths.config_path.display());
        crate::outln!("{}", serde_json::to_string_pretty(&v["gateway"])?);
    }
    Ok(0)
}

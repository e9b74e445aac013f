//! Configuration: one resolved [`Settings`] built from embedded defaults, the
//! JSON5 file, `OPENCLAW_*` environment variables and command-line flags, with
//! precedence flags > environment > file > defaults.
//!
//! Invariant: loading either yields settings that passed every check in
//! [`validate`], or a [`ConfigError`] naming the key and the fix — never a
//! fallback to weaker settings.

pub mod diagnose;
pub mod docs;
pub mod docs_text;
pub mod file;
pub mod origin;
pub mod proxy;
pub mod secrets;
pub mod unsupported;
pub mod validate;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

pub use file::{AuthMode, BindMode, FileConfig};
pub use proxy::{ProxySettings, TrustedProxySettings};
pub use secrets::Secret;

/// Default gateway port (`DEFAULT_GATEWAY_PORT`).
pub const DEFAULT_PORT: u16 = 18789;
/// Default pre-auth handshake window; ≤ 15 s keeps us compatible (protocol.md §1).
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Upper bound accepted for `OPENCLAW_HANDSHAKE_TIMEOUT_MS`.
pub const MAX_HANDSHAKE_TIMEOUT_MS: u64 = 15_000;
/// Concurrent unauthenticated sockets per client IP (`OPENCLAW_MAX_PREAUTH_CONNECTIONS_PER_IP`).
pub const DEFAULT_MAX_PREAUTH_PER_IP: usize = 32;
/// Global cap on sockets still in the handshake (threats.md RL-1); excess closes 1013.
pub const MAX_PENDING_HANDSHAKES: usize = 4096;

/// Environment variable names read by clawgate.
pub mod env {
    pub const HOME: &str = "OPENCLAW_HOME";
    pub const STATE_DIR: &str = "OPENCLAW_STATE_DIR";
    pub const CONFIG_PATH: &str = "OPENCLAW_CONFIG_PATH";
    pub const PROFILE: &str = "OPENCLAW_PROFILE";
    pub const PORT: &str = "OPENCLAW_GATEWAY_PORT";
    pub const BIND: &str = "OPENCLAW_GATEWAY_BIND";
    pub const TOKEN: &str = "OPENCLAW_GATEWAY_TOKEN";
    pub const PASSWORD: &str = "OPENCLAW_GATEWAY_PASSWORD";
    pub const URL: &str = "OPENCLAW_GATEWAY_URL";
    pub const HANDSHAKE_TIMEOUT_MS: &str = "OPENCLAW_HANDSHAKE_TIMEOUT_MS";
    pub const MAX_PREAUTH_PER_IP: &str = "OPENCLAW_MAX_PREAUTH_CONNECTIONS_PER_IP";
    /// clawgate-specific: `policy.tickIntervalMs` (tests shorten it).
    pub const TICK_INTERVAL_MS: &str = "CLAWGATE_TICK_INTERVAL_MS";
}

/// A configuration problem: the key, what is wrong, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config error at `{key}`: {problem}\n  fix: {fix}")]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
    pub fix: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// Command-line overrides (`clawgate run` flags).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub port: Option<u16>,
    pub bind: Option<BindMode>,
    pub auth: Option<AuthMode>,
    pub token: Option<String>,
    pub password: Option<String>,
    /// `--tailscale off|serve|funnel`.
    pub tailscale: Option<TailscaleMode>,
}

/// Where state and config live.
#[derive(Debug, Clone, PartialEq)]
pub struct Paths {
    pub home: PathBuf,
    pub state_dir: PathBuf,
    pub config_path: PathBuf,
    /// The config path was named explicitly (flag or env): it must exist.
    pub config_explicit: bool,
}

/// Source of environment values (the process environment, or a map in tests).
pub type EnvFn<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, ignoring empty values.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Paths {
    pub fn resolve(flag_config: Option<&Path>, env: EnvFn<'_>) -> Result<Paths, ConfigError> {
        let home = env(env::HOME)
            .or_else(|| env("HOME"))
            .map(PathBuf::from)
            .ok_or_else(|| {
                ConfigError::new("HOME", "no home directory", "set HOME or OPENCLAW_HOME")
            })?;
        let state_dir = match (env(env::STATE_DIR), env(env::PROFILE)) {
            (Some(dir), _) => expand_home(&dir, &home),
            (None, Some(p)) => home.join(format!(".openclaw-{p}")),
            (None, None) => home.join(".openclaw"),
        };
        let (config_path, config_explicit) = match (flag_config, env(env::CONFIG_PATH)) {
            (Some(p), _) => (p.to_path_buf(), true),
            (None, Some(p)) => (expand_home(&p, &home), true),
            (None, None) => (state_dir.join("openclaw.json"), false),
        };
        Ok(Paths {
            home,
            state_dir,
            config_path,
            config_explicit,
        })
    }
}

fn expand_home(p: &str, home: &Path) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None if p == "~" => home.to_path_buf(),
        None => PathBuf::from(p),
    }
}

/// Resolved authentication settings.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub mode: AuthMode,
    pub token: Option<Secret>,
    pub password: Option<Secret>,
    pub rate_limit: file::RateLimitFile,
    /// `gateway.auth.allowTailscale` resolved (config.md §2 default).
    pub allow_tailscale: bool,
    /// `gateway.auth.identityScopes`: verified login → extra connection-only scopes.
    pub identity_scopes: std::collections::BTreeMap<String, Vec<String>>,
    /// Reverse-proxy attribution and trusted-proxy auth (config.md §7).
    pub proxy: ProxySettings,
}

/// The one resolved configuration the gateway runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub paths: Paths,
    pub file: FileConfig,
    pub port: u16,
    pub bind: BindMode,
    pub custom_bind_host: Option<IpAddr>,
    pub auth: AuthSettings,
    /// Where the effective shared token came from, for the banner.
    pub token_source: TokenSource,
    /// Where each secret came from, for refusals that name the source.
    pub secret_origins: secrets::SecretOrigins,
    pub allowed_origins: Vec<String>,
    pub tailscale_mode: TailscaleMode,
    pub handshake_timeout: Duration,
    pub tick_interval: Duration,
    pub max_preauth_per_ip: usize,
    /// Silent local pairing allowed: `gateway.nodes.pairing.autoApproveLocal`, whose default is
    /// on only while nothing is exposed ([`auto_approve_local`]).
    pub auto_approve_local: bool,
    /// `discovery.*` with environment overrides applied.
    pub discovery: crate::discovery::DiscoveryConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    None,
    Flag,
    Env,
    File,
    /// Generated and persisted in the state dir (filled in by the gateway at start).
    StateDir,
}

/// `gateway.tailscale.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TailscaleMode {
    Off,
    Serve,
    Funnel,
}

impl Settings {
    /// The effective configuration with every secret replaced by `<redacted>`.
    pub fn redacted_json(&self) -> Value {
        let redact = |present: bool| {
            if present {
                Value::from("<redacted>")
            } else {
                Value::Null
            }
        };
        serde_json::json!({
            "configPath": self.paths.config_path,
            "configExists": self.paths.config_path.exists(),
            "stateDir": self.paths.state_dir,
            "gateway": {
                "port": self.port,
                "bind": self.bind,
                "customBindHost": self.custom_bind_host,
                "auth": {"mode": self.auth.mode, "token": redact(self.auth.token.is_some()), "password": redact(self.auth.password.is_some()), "rateLimit": self.auth.rate_limit},
                "tailscale": {"mode": format!("{:?}", self.tailscale_mode).to_lowercase()},
                "controlUi": {"allowedOrigins": self.allowed_origins},
                "tls": {"enabled": self.file.gateway.tls.enabled, "autoGenerate": self.file.gateway.tls.auto_generate != Some(false)},
                "handshakeTimeoutMs": self.handshake_timeout.as_millis() as u64,
                "tickIntervalMs": self.tick_interval.as_millis() as u64,
            },
        })
    }
}

/// Loads and validates everything; the entry point for `run` and `config check`.
pub fn load(over: &Overrides, env: EnvFn<'_>) -> Result<Settings, ConfigError> {
    let paths = Paths::resolve(over.config.as_deref(), env)?;
    let file = read_file(&paths)?;
    let settings = resolve(paths, file, over, env)?;
    validate::check(&settings)?;
    Ok(settings)
}

/// Reads and parses the JSON5 file (missing and not explicit ⇒ empty config).
pub fn read_file(paths: &Paths) -> Result<FileConfig, ConfigError> {
    let key = paths.config_path.display().to_string();
    let text = match crate::state::read_optional(&paths.config_path) {
        Ok(Some(t)) => t,
        Ok(None) if !paths.config_explicit => return Ok(FileConfig::default()),
        Ok(None) => {
            return Err(ConfigError::new(
                key,
                "config file does not exist",
                "create it, or unset OPENCLAW_CONFIG_PATH / drop --config",
            ))
        }
        Err(e) => {
            return Err(ConfigError::new(
                key,
                format!("cannot read config file: {e}"),
                "check the path and its permissions",
            ))
        }
    };
    parse_file(&text).map_err(|mut e| {
        if e.key.is_empty() {
            e.key = key;
        }
        e
    })
}

/// Parses JSON5 text into the file schema, naming the offending key on error.
pub fn parse_file(text: &str) -> Result<FileConfig, ConfigError> {
    let value: Value = json5::from_str(text).map_err(|e| {
        ConfigError::new(
            "",
            diagnose::syntax_problem(text, &e),
            "fix the JSON5 syntax there (docs/configuration.md has a complete example)",
        )
    })?;
    if value.get("$include").is_some() {
        return Err(ConfigError::new(
            "$include",
            "`$include` directives are not supported by clawgate",
            "inline the included file",
        ));
    }
    let cfg: FileConfig = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.inner().to_string();
        match diagnose::unknown_field(&path, &msg) {
            Some((problem, fix)) => ConfigError::new(path, problem, fix),
            None => ConfigError::new(path, msg, diagnose::DOC_FIX),
        }
    })?;
    if let Some(k) = cfg
        .other
        .keys()
        .find(|k| !file::IGNORED_TOP_LEVEL.contains(&k.as_str()))
    {
        let mut known = vec!["gateway", "discovery", "plugins"];
        known.extend_from_slice(file::IGNORED_TOP_LEVEL);
        let fix = match diagnose::suggest(k, &known) {
            Some(best) => format!("did you mean `{best}`? ({})", diagnose::DOC_FIX),
            None => format!(
                "remove it or fix its spelling (clawgate reads `gateway` and `discovery`; {})",
                diagnose::DOC_FIX
            ),
        };
        return Err(ConfigError::new(k.clone(), "unknown top-level key", fix));
    }
    Ok(cfg)
}

fn resolve(
    paths: Paths,
    file: FileConfig,
    over: &Overrides,
    env: EnvFn<'_>,
) -> Result<Settings, ConfigError> {
    let g = &file.gateway;
    let port = match (over.port, env(env::PORT)) {
        (Some(p), _) => p,
        (None, Some(v)) => parse_env_port(&v)?,
        (None, None) => g.port.unwrap_or(DEFAULT_PORT),
    };
    let bind = match (over.bind, env(env::BIND)) {
        (Some(b), _) => b,
        (None, Some(v)) => parse_bind(&v, env::BIND)?,
        (None, None) => g.bind.unwrap_or(BindMode::Loopback),
    };
    let custom_bind_host = match &g.custom_bind_host {
        Some(h) => Some(h.parse::<IpAddr>().map_err(|_| {
            ConfigError::new(
                "gateway.customBindHost",
                format!("{h:?} is not an IP address"),
                "use an IPv4 literal such as 192.168.1.10",
            )
        })?),
        None => None,
    };
    let (mut auth, token_source, secret_origins) =
        secrets::resolve_auth(g, over, &paths.config_path, env)?;
    let tailscale_mode = match over.tailscale {
        Some(m) => m,
        None => tailscale_mode(&g.tailscale)?,
    };
    auth.allow_tailscale = g.auth.allow_tailscale.unwrap_or(
        tailscale_mode == TailscaleMode::Serve
            && !matches!(auth.mode, AuthMode::Password | AuthMode::TrustedProxy),
    );
    auth.identity_scopes = g.auth.identity_scopes.clone();
    auth.proxy = proxy::resolve(g)?;
    let handshake_ms =
        env_u64(env, env::HANDSHAKE_TIMEOUT_MS)?.unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT_MS);
    let tick_ms =
        env_u64(env, env::TICK_INTERVAL_MS)?.unwrap_or(crate::protocol::DEFAULT_TICK_INTERVAL_MS);
    let max_preauth = env_u64(env, env::MAX_PREAUTH_PER_IP)?.map(|v| v as usize);
    let discovery = discovery_config(&file.discovery, env)?;
    Ok(Settings {
        port,
        bind,
        custom_bind_host,
        auth,
        token_source,
        secret_origins,
        allowed_origins: g.control_ui.allowed_origins.clone(),
        tailscale_mode,
        handshake_timeout: Duration::from_millis(handshake_ms.min(MAX_HANDSHAKE_TIMEOUT_MS)),
        tick_interval: Duration::from_millis(tick_ms.max(10)),
        max_preauth_per_ip: max_preauth.unwrap_or(DEFAULT_MAX_PREAUTH_PER_IP).max(1),
        auto_approve_local: auto_approve_local(
            g.nodes.pairing.auto_approve_local,
            bind,
            custom_bind_host,
            tailscale_mode,
        ),
        discovery,
        paths,
        file,
    })
}

/// Parses `discovery`, applies `OPENCLAW_*` discovery overrides and validates.
fn discovery_config(
    v: &Value,
    env: EnvFn<'_>,
) -> Result<crate::discovery::DiscoveryConfig, ConfigError> {
    let to_err = |e: crate::discovery::config::DiscoveryConfigError| {
        ConfigError::new(e.key, e.problem, e.fix)
    };
    let mut d = crate::discovery::DiscoveryConfig::from_json(v).map_err(to_err)?;
    d.apply_env(&|k: &str| env(k));
    d.validate().map_err(|errs| {
        errs.into_iter()
            .next()
            .map(to_err)
            .unwrap_or_else(|| ConfigError::new("discovery", "invalid", "see docs/discovery.md"))
    })?;
    Ok(d)
}

fn parse_env_port(v: &str) -> Result<u16, ConfigError> {
    let port_part = v.rsplit(':').next().unwrap_or(v);
    port_part
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            ConfigError::new(
                env::PORT,
                format!("{v:?} is not a port"),
                "set a port number (1-65535) or host:port",
            )
        })
}

/// Parses a bind mode name, naming `key` on error.
pub fn parse_bind(v: &str, key: &str) -> Result<BindMode, ConfigError> {
    serde_json::from_value(Value::String(v.to_string())).map_err(|_| {
        ConfigError::new(
            key,
            format!("{v:?} is not a bind mode"),
            "use one of loopback, lan, tailnet, auto, custom (host aliases like 0.0.0.0 are not valid)",
        )
    })
}

fn env_u64(env: EnvFn<'_>, key: &str) -> Result<Option<u64>, ConfigError> {
    env(key)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                ConfigError::new(
                    key,
                    format!("{v:?} is not a number"),
                    "use milliseconds / a count",
                )
            })
        })
        .transpose()
}

fn tailscale_mode(v: &Value) -> Result<TailscaleMode, ConfigError> {
    match v.get("mode").and_then(Value::as_str) {
        None | Some("off") => Ok(TailscaleMode::Off),
        Some("serve") => Ok(TailscaleMode::Serve),
        Some("funnel") => Ok(TailscaleMode::Funnel),
        Some(other) => Err(ConfigError::new(
            "gateway.tailscale.mode",
            format!("{other:?} is not a Tailscale mode"),
            "use off, serve or funnel",
        )),
    }
}

#[cfg(test)]
mod tests;

/// threats.md PR-9 / protocol.md §13.4 project rule: while any remote exposure is configured
/// (Serve/Funnel, or a bind beyond loopback — `auto` counts, it may mean all interfaces), silent
/// local pairing needs `autoApproveLocal: true` set explicitly; without exposure it defaults on.
pub fn auto_approve_local(
    explicit: Option<bool>,
    bind: BindMode,
    custom_bind_host: Option<IpAddr>,
    tailscale_mode: TailscaleMode,
) -> bool {
    let exposed = tailscale_mode != TailscaleMode::Off
        || match bind {
            BindMode::Loopback => false,
            BindMode::Custom => custom_bind_host.is_some_and(|h| !h.is_loopback()),
            _ => true,
        };
    explicit.unwrap_or(!exposed)
}

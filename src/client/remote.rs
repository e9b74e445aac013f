//! The client's view of the config file: `gateway.mode` and the `gateway.remote.*` keys
//! (config.md §8), typed and validated once, plus the credential precedence of §8.1.
//!
//! Owns [`RemoteSettings`]. Invariants: read without the gateway's own validation (a client
//! config with `gateway.mode: "remote"` is valid here and refused only by `clawgate run`); a bad
//! value fails closed naming the key and the fix — a `tlsFingerprint` that is malformed or set
//! without a `wss://` url, an `sshTarget` starting with `-`, an unknown `transport` or
//! `sshHostKeyPolicy`; no key is parsed and ignored (`edgeAuth` and `enabled` are refused).

use std::path::PathBuf;

use super::ssh::{SshTarget, TunnelSpec};
use crate::config::file::{FileConfig, GatewayMode, RemoteFile};
use crate::config::{self, secrets, ConfigError, EnvFn, Paths, Secret, DEFAULT_PORT};

/// How the client may reach the gateway (`gateway.remote.transport`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportPolicy {
    /// Unset: the four-step policy (paired endpoint → discovery → tailnet → SSH).
    #[default]
    Auto,
    /// `direct`: steps 1–3 only, never SSH.
    Direct,
    /// `ssh`: always the SSH tunnel (the reference client's meaning).
    Ssh,
}

/// `gateway.remote.sshHostKeyPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostKeyPolicy {
    /// `StrictHostKeyChecking=yes` (default).
    Strict,
    /// Defer to the user's ssh configuration.
    Openssh,
}

/// Client-side settings from the config file and environment.
#[derive(Debug, Clone)]
pub struct RemoteSettings {
    /// `gateway.mode == "remote"`: commands target the remote gateway by default.
    pub mode_remote: bool,
    /// `gateway.remote.url` (validated `ws://`/`wss://`, no credentials, query or fragment).
    pub url: Option<String>,
    pub transport: TransportPolicy,
    /// Normalised 64-hex SHA-256 pin (`gateway.remote.tlsFingerprint`).
    pub tls_fingerprint: Option<String>,
    pub ssh_target: Option<SshTarget>,
    pub ssh_identity: Option<PathBuf>,
    /// Gateway port on the SSH host (default 18789).
    pub remote_port: u16,
    pub ssh_host_key_policy: HostKeyPolicy,
    /// `gateway.remote.token` / `password`.
    pub token: Option<Secret>,
    pub password: Option<Secret>,
    /// `gateway.auth.token` / `password` (this host's own gateway; lowest precedence in remote mode).
    pub local_token: Option<Secret>,
    pub local_password: Option<Secret>,
    /// State dir: the client identity, device tokens, pins and saved endpoints live below it.
    pub state_dir: PathBuf,
    /// The wide-area DNS-SD domain clients browse (`discovery.wideArea.domain`).
    pub wide_area_domain: Option<String>,
}

fn err(key: &str, problem: impl Into<String>, fix: impl Into<String>) -> ConfigError {
    ConfigError::new(format!("gateway.remote.{key}"), problem, fix)
}

impl RemoteSettings {
    /// Reads the config file (`--config`, `OPENCLAW_CONFIG_PATH`, default) for client use.
    pub fn load(config: Option<&std::path::Path>, env: EnvFn<'_>) -> Result<Self, ConfigError> {
        let paths = Paths::resolve(config, env)?;
        let file = config::read_file(&paths)?;
        Self::from_file(&paths, &file, env)
    }

    /// Validates the parsed file.
    pub fn from_file(paths: &Paths, f: &FileConfig, env: EnvFn<'_>) -> Result<Self, ConfigError> {
        let r = &f.gateway.remote;
        refuse_unused(r)?;
        let url = r.url.as_deref().map(validate_url).transpose()?;
        let tls_fingerprint = r
            .tls_fingerprint
            .as_deref()
            .map(|fp| validate_fingerprint(fp, url.as_deref()))
            .transpose()?;
        let secret = |input: &Option<config::file::SecretInput>, key| {
            input
                .as_ref()
                .map(|i| secrets::resolve_secret(i, key, &paths.config_path, env))
                .transpose()
        };
        let mut discovery = crate::discovery::DiscoveryConfig::from_json(&f.discovery)
            .map_err(|e| ConfigError::new(e.key, e.problem, e.fix))?;
        discovery.apply_env(&|k: &str| env(k));
        Ok(RemoteSettings {
            mode_remote: f.gateway.mode == Some(GatewayMode::Remote),
            url,
            transport: parse_transport(r.transport.as_deref())?,
            tls_fingerprint,
            ssh_target: r
                .ssh_target
                .as_deref()
                .map(validate_ssh_target)
                .transpose()?,
            ssh_identity: r
                .ssh_identity
                .as_deref()
                .map(validate_identity)
                .transpose()?,
            remote_port: r.remote_port.unwrap_or(DEFAULT_PORT),
            ssh_host_key_policy: parse_policy(r.ssh_host_key_policy.as_deref())?,
            token: secret(&r.token, "gateway.remote.token")?,
            password: secret(&r.password, "gateway.remote.password")?,
            local_token: secret(&f.gateway.auth.token, "gateway.auth.token")?,
            local_password: secret(&f.gateway.auth.password, "gateway.auth.password")?,
            state_dir: paths.state_dir.clone(),
            wide_area_domain: discovery.wide_area_domain(),
        })
    }

    /// The SSH tunnel recipe (step 4): `target`/`identity` override the config's.
    pub fn tunnel_spec(
        &self,
        target: Option<SshTarget>,
        identity: Option<PathBuf>,
    ) -> Option<TunnelSpec> {
        Some(TunnelSpec {
            target: target.or_else(|| self.ssh_target.clone())?,
            identity: identity.or_else(|| self.ssh_identity.clone()),
            policy: self.ssh_host_key_policy,
            remote_port: self.remote_port,
        })
    }

    /// Token by config.md §8.1: remote mode `remote.token → env → auth.token`, local mode
    /// `auth.token → env → remote.token`.
    pub fn token(&self, env: EnvFn<'_>) -> Option<Secret> {
        let env_tok = env(config::env::TOKEN).map(Secret::new);
        precedence(self.mode_remote, &self.token, env_tok, &self.local_token)
    }

    /// Password, analogous to [`Self::token`].
    pub fn password(&self, env: EnvFn<'_>) -> Option<Secret> {
        let env_pw = env(config::env::PASSWORD).map(Secret::new);
        precedence(
            self.mode_remote,
            &self.password,
            env_pw,
            &self.local_password,
        )
    }
}

fn precedence(
    remote_mode: bool,
    remote: &Option<Secret>,
    env: Option<Secret>,
    local: &Option<Secret>,
) -> Option<Secret> {
    let (first, last) = if remote_mode {
        (remote, local)
    } else {
        (local, remote)
    };
    first.clone().or(env).or_else(|| last.clone())
}

fn refuse_unused(r: &RemoteFile) -> Result<(), ConfigError> {
    if !r.edge_auth.is_empty() {
        return Err(err(
            "edgeAuth",
            "extra upgrade headers for an authenticating edge are not implemented by clawgate's client",
            "remove gateway.remote.edgeAuth, or use the OpenClaw CLI for edge-authenticated gateways",
        ));
    }
    if r.enabled == Some(false) {
        return Err(err(
            "enabled",
            "`enabled: false` (an April-build key) would silently disable the remote settings",
            "remove gateway.remote.enabled and the remote keys you do not want",
        ));
    }
    Ok(())
}

/// A gateway URL: `ws://` or `wss://`, a host, no user info, query or fragment.
pub fn validate_url(u: &str) -> Result<String, ConfigError> {
    let fix = "use ws://host:port or wss://host[:port] with no credentials, query or fragment";
    let bad = |why: &str| err("url", format!("{u:?} {why}"), fix);
    let rest = u
        .strip_prefix("wss://")
        .or_else(|| u.strip_prefix("ws://"))
        .ok_or_else(|| bad("is not a ws:// or wss:// URL"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.starts_with(':') {
        return Err(bad("has no host"));
    }
    if authority.contains('@') || u.contains('?') || u.contains('#') {
        return Err(bad("carries user info, a query or a fragment"));
    }
    if u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains whitespace"));
    }
    Ok(u.trim_end_matches('/').to_string())
}

fn validate_fingerprint(fp: &str, url: Option<&str>) -> Result<String, ConfigError> {
    let norm = crate::tls::client::normalize(fp).ok_or_else(|| {
        err(
            "tlsFingerprint",
            "not a SHA-256 fingerprint (64 hex digits, colons and a sha256: prefix allowed)",
            "copy the fingerprint from `clawgate tls show` on the gateway host",
        )
    })?;
    match url {
        Some(u) if u.starts_with("wss://") => Ok(norm),
        _ => Err(err(
            "tlsFingerprint",
            "a pinned fingerprint needs a wss:// gateway.remote.url",
            "set gateway.remote.url to the wss:// endpoint, or remove tlsFingerprint",
        )),
    }
}

/// `[user@]host[:port]` ([`SshTarget::parse`]: no part starting with `-`, threats.md SSH-1).
pub fn validate_ssh_target(t: &str) -> Result<SshTarget, ConfigError> {
    SshTarget::parse(t).map_err(|e| {
        err(
            "sshTarget",
            e.to_string(),
            "set it to e.g. \"me@vienna\" or \"me@100.101.102.103:2222\"",
        )
    })
}

/// `sshIdentity` (also `--ssh-identity`): a key file path, never an option.
pub fn validate_identity(p: &str) -> Result<PathBuf, ConfigError> {
    if p.is_empty() || p.starts_with('-') {
        return Err(err(
            "sshIdentity",
            format!("{p:?} is not a key file path"),
            "set it to the private key file, e.g. \"~/.ssh/id_ed25519\"",
        ));
    }
    Ok(PathBuf::from(p))
}

fn parse_transport(v: Option<&str>) -> Result<TransportPolicy, ConfigError> {
    match v {
        None => Ok(TransportPolicy::Auto),
        Some("direct") => Ok(TransportPolicy::Direct),
        Some("ssh") => Ok(TransportPolicy::Ssh),
        Some(o) => Err(err(
            "transport",
            format!("unknown transport {o:?}"),
            "use \"direct\" or \"ssh\", or remove it for the four-step policy",
        )),
    }
}

fn parse_policy(v: Option<&str>) -> Result<HostKeyPolicy, ConfigError> {
    match v {
        None | Some("strict") => Ok(HostKeyPolicy::Strict),
        Some("openssh") => Ok(HostKeyPolicy::Openssh),
        Some(o) => Err(err(
            "sshHostKeyPolicy",
            format!("unknown policy {o:?}"),
            "use \"strict\" (default) or \"openssh\"",
        )),
    }
}

#[cfg(test)]
#[path = "remote_tests.rs"]
mod tests;

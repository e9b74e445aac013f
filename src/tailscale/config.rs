//! `gateway.tailscale.*` configuration (config.md §5, tailscale.md §7) and the choice of backend
//! it implies.
//!
//! Invariants: unknown keys are rejected (`deny_unknown_fields`, config.md "fail closed"); the
//! Funnel port is one of 443, 8443, 10000 (tailscale/tailscale#10742); `mode = off` resolves to no
//! backend at all, so nothing Tailscale-related is contacted; the auth key is only ever a file
//! path here — its content is read by the supervisor and passed through the environment.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::api::{Endpoint, DEFAULT_SOCKET};

/// `gateway.tailscale.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TailscaleMode {
    /// No exposure and zero LocalAPI calls (default).
    #[default]
    Off,
    /// Tailnet-only HTTPS/WSS via Serve.
    Serve,
    /// Public HTTPS/WSS via Funnel (requires password auth).
    Funnel,
}

/// The same three modes as the gateway settings name them.
impl From<crate::config::TailscaleMode> for TailscaleMode {
    fn from(m: crate::config::TailscaleMode) -> Self {
        match m {
            crate::config::TailscaleMode::Off => Self::Off,
            crate::config::TailscaleMode::Serve => Self::Serve,
            crate::config::TailscaleMode::Funnel => Self::Funnel,
        }
    }
}

/// The public Funnel port; Tailscale only relays these three.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub enum FunnelPort {
    /// 443 (default).
    #[default]
    P443,
    /// 8443.
    P8443,
    /// 10000.
    P10000,
}

impl TryFrom<u16> for FunnelPort {
    type Error = String;
    fn try_from(p: u16) -> Result<Self, String> {
        match p {
            443 => Ok(Self::P443),
            8443 => Ok(Self::P8443),
            10000 => Ok(Self::P10000),
            _ => Err(format!(
                "gateway.tailscale.funnelPort = {p}: Funnel only works on 443, 8443 or 10000"
            )),
        }
    }
}

impl From<FunnelPort> for u16 {
    fn from(p: FunnelPort) -> u16 {
        match p {
            FunnelPort::P443 => 443,
            FunnelPort::P8443 => 8443,
            FunnelPort::P10000 => 10000,
        }
    }
}

/// `gateway.tailscale`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TailscaleConfig {
    /// Exposure mode; default `off`.
    #[serde(default)]
    pub mode: TailscaleMode,
    /// System tailscaled LocalAPI socket; default `/var/run/tailscale/tailscaled.sock`. Exclusive
    /// with `sidecar`.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// Run (or attach to) clawgate's own tsnet sidecar instead of the system tailscaled.
    #[serde(default)]
    pub sidecar: Option<SidecarConfig>,
    /// Public Funnel port (443, 8443 or 10000); default 443.
    #[serde(default)]
    pub funnel_port: FunnelPort,
    /// OpenClaw April key, accepted for compatibility and ignored: clawgate's Foreground claim
    /// vanishes on exit anyway and a global `serve reset` is never done.
    #[serde(default)]
    pub reset_on_exit: bool,
    /// Deprecated OpenClaw migration guard; accepted and ignored.
    #[serde(default)]
    pub preserve_funnel: bool,
    /// Named Tailscale Services: unsupported (as in the reference); setting it is an error.
    #[serde(default)]
    pub service_name: Option<String>,
}

/// `gateway.tailscale.sidecar`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SidecarConfig {
    /// Path of `clawgate-tsnet`; default: next to the clawgate executable, else `$PATH`.
    #[serde(default)]
    pub binary: Option<PathBuf>,
    /// Tailnet hostname; default `clawgate`.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Persistent tsnet state (node key, certificates); default `<stateDir>/tailscale`.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// File holding the auth key (passed to the sidecar as `TS_AUTHKEY`, never in argv).
    #[serde(default)]
    pub auth_key_file: Option<PathBuf>,
    /// Coordination server; default Tailscale's.
    #[serde(default)]
    pub control_url: Option<String>,
    /// Register as an ephemeral node; default false (identity and certs should persist).
    #[serde(default)]
    pub ephemeral: bool,
    /// Tags to request, e.g. `["tag:gateway"]`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Attach to an externally supervised sidecar through its handshake file instead of
    /// spawning one (exclusive with the spawn keys above).
    #[serde(default)]
    pub attach: Option<PathBuf>,
}

/// Default tailnet hostname of the sidecar.
pub const DEFAULT_SIDECAR_HOSTNAME: &str = "clawgate";
/// Default sidecar binary name.
pub const SIDECAR_BINARY: &str = "clawgate-tsnet";

/// Which LocalAPI backend a configuration selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `mode = off`: nothing.
    None,
    /// The system tailscaled at this endpoint.
    System(Endpoint),
    /// Spawn and supervise the sidecar.
    SpawnSidecar(SidecarConfig),
    /// Follow an externally run sidecar's handshake file.
    AttachSidecar(PathBuf),
}

impl TailscaleConfig {
    /// Checks contradictions and values; the message names the key and the fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.service_name.is_some() {
            return Err("gateway.tailscale.serviceName: named Tailscale Services are not supported; remove the key".into());
        }
        if self.socket.is_some() && self.sidecar.is_some() {
            return Err("gateway.tailscale.socket and gateway.tailscale.sidecar are exclusive: use the system tailscaled or the sidecar, not both".into());
        }
        if let Some(sc) = &self.sidecar {
            sc.validate()?;
        }
        Ok(())
    }

    /// The backend to use; `Backend::None` for `mode = off`.
    pub fn backend(&self) -> Backend {
        if self.mode == TailscaleMode::Off {
            return Backend::None;
        }
        match &self.sidecar {
            Some(sc) => match &sc.attach {
                Some(path) => Backend::AttachSidecar(path.clone()),
                None => Backend::SpawnSidecar(sc.clone()),
            },
            None => Backend::System(Endpoint::Unix(
                self.socket
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
            )),
        }
    }
}

impl SidecarConfig {
    fn validate(&self) -> Result<(), String> {
        let spawn_keys = self.binary.is_some()
            || self.hostname.is_some()
            || self.state_dir.is_some()
            || self.auth_key_file.is_some()
            || self.control_url.is_some()
            || self.ephemeral
            || !self.tags.is_empty();
        if self.attach.is_some() && spawn_keys {
            return Err("gateway.tailscale.sidecar.attach excludes the spawn keys (binary, hostname, stateDir, authKeyFile, controlUrl, ephemeral, tags): an attached sidecar is configured where it runs".into());
        }
        if let Some(h) = &self.hostname {
            let ok = !h.is_empty()
                && h.len() <= 63
                && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                return Err(format!("gateway.tailscale.sidecar.hostname {h:?}: want one DNS label (letters, digits, '-')"));
            }
        }
        if let Some(t) = self
            .tags
            .iter()
            .find(|t| t.len() <= 4 || !t.starts_with("tag:"))
        {
            return Err(format!(
                "gateway.tailscale.sidecar.tags: {t:?} is not a tag (tags look like \"tag:name\")"
            ));
        }
        Ok(())
    }

    /// Hostname with its default.
    pub fn hostname_or_default(&self) -> &str {
        self.hostname.as_deref().unwrap_or(DEFAULT_SIDECAR_HOSTNAME)
    }

    /// State directory with its default under `state_root`.
    pub fn state_dir_or_default(&self, state_root: &Path) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| state_root.join("tailscale"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<TailscaleConfig, String> {
        let cfg: TailscaleConfig = serde_json::from_str(json).map_err(|e| e.to_string())?;
        cfg.validate().map(|()| cfg)
    }

    #[test]
    fn defaults_are_off_443_and_no_backend() {
        let cfg = parse("{}").unwrap();
        assert_eq!(cfg.mode, TailscaleMode::Off);
        assert_eq!(u16::from(cfg.funnel_port), 443);
        assert_eq!(cfg.backend(), Backend::None);
        let cfg = parse(r#"{"mode":"serve"}"#).unwrap();
        assert_eq!(cfg.backend(), Backend::System(Endpoint::system_default()));
    }

    #[test]
    fn sidecar_keys_select_spawn_or_attach() {
        let cfg = parse(r#"{"mode":"funnel","funnelPort":8443,"sidecar":{"hostname":"gw","stateDir":"/s","authKeyFile":"/k","controlUrl":"http://127.0.0.1:1","ephemeral":true,"tags":["tag:gw"]}}"#).unwrap();
        assert!(
            matches!(cfg.backend(), Backend::SpawnSidecar(ref s) if s.hostname_or_default() == "gw")
        );
        let cfg = parse(r#"{"mode":"serve","sidecar":{"attach":"/run/hs.json"}}"#).unwrap();
        assert_eq!(cfg.backend(), Backend::AttachSidecar("/run/hs.json".into()));
    }

    #[test]
    fn invalid_values_and_contradictions_fail_with_the_key_name() {
        for (json, needle) in [
            (r#"{"funnelPort":8080}"#, "funnelPort"),
            (r#"{"mode":"public"}"#, "unknown variant"),
            (r#"{"sockett":"/x"}"#, "unknown field"),
            (r#"{"sidecar":{"authKey":"tskey-x"}}"#, "unknown field"),
            (r#"{"socket":"/x","sidecar":{}}"#, "exclusive"),
            (r#"{"sidecar":{"attach":"/a","hostname":"x"}}"#, "attach"),
            (r#"{"sidecar":{"hostname":"a.b"}}"#, "hostname"),
            (r#"{"sidecar":{"tags":["gw"]}}"#, "tags"),
            (r#"{"serviceName":"svc:x"}"#, "serviceName"),
        ] {
            let err = parse(json).unwrap_err();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }
}

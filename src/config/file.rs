//! The configuration file schema (`openclaw.json`, JSON5): the `gateway.*` and
//! `discovery.*` keys of config.md, with serde defaults. Every struct refuses
//! unknown keys; the top level tolerates only OpenClaw's other known sections.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// Top-level sections OpenClaw defines that clawgate accepts and ignores, so an
/// existing OpenClaw config file loads; anything else is a typo and refused.
pub const IGNORED_TOP_LEVEL: &[&str] = &[
    "$schema",
    "meta",
    "env",
    "wizard",
    "auth",
    "models",
    "agents",
    "channels",
    "messages",
    "commands",
    "session",
    "tools",
    "skills",
    "hooks",
    "cron",
    "browser",
    "ui",
    "logging",
    "diagnostics",
    "update",
    "web",
    "canvasHost",
    "talk",
    "memory",
    "broadcast",
    "audio",
    "approvals",
    "bindings",
    "secrets",
    "acp",
    "media",
];

#[derive(Debug, Clone, Default, Deserialize)]
pub struct FileConfig {
    #[serde(default)]
    pub gateway: GatewayFile,
    #[serde(default)]
    pub discovery: Value,
    #[serde(default)]
    pub plugins: Value,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BindMode {
    Loopback,
    Lan,
    Tailnet,
    Auto,
    Custom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    None,
    Token,
    Password,
    TrustedProxy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GatewayMode {
    Local,
    Remote,
}

/// A secret: a literal string or a reference (`{source:"env"|"file", id}`).
#[derive(Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SecretInput {
    Literal(String),
    Ref(SecretRef),
}

impl std::fmt::Debug for SecretInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretInput::Literal(_) => f.write_str("Literal(<redacted>)"),
            SecretInput::Ref(r) => write!(f, "Ref({r:?})"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub source: String,
    #[serde(default)]
    pub provider: Option<String>,
    pub id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayFile {
    pub mode: Option<GatewayMode>,
    pub port: Option<u16>,
    pub bind: Option<BindMode>,
    pub custom_bind_host: Option<String>,
    pub public_origin: Option<String>,
    #[serde(default)]
    pub auth: AuthFile,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default)]
    pub allow_real_ip_fallback: bool,
    #[serde(default)]
    pub tailscale: Value,
    #[serde(default)]
    pub tls: TlsFile,
    #[serde(default)]
    pub remote: RemoteFile,
    #[serde(default)]
    pub nodes: NodesFile,
    #[serde(default)]
    pub control_ui: ControlUiFile,
    #[serde(default)]
    pub reload: ReloadFile,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthFile {
    pub mode: Option<AuthMode>,
    pub token: Option<SecretInput>,
    pub password: Option<SecretInput>,
    pub allow_tailscale: Option<bool>,
    #[serde(default)]
    pub identity_scopes: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub rate_limit: RateLimitFile,
    pub trusted_proxy: Option<TrustedProxyFile>,
}

/// `gateway.auth.trustedProxy` (config.md §7).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrustedProxyFile {
    pub user_header: Option<String>,
    #[serde(default)]
    pub required_headers: Vec<String>,
    #[serde(default)]
    pub allow_users: Vec<String>,
    #[serde(default)]
    pub allow_loopback: bool,
    /// Refused at config time (`config::proxy`), never ignored.
    pub device_auto_approve: Option<Value>,
}

/// `gateway.auth.rateLimit` (protocol.md §21).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RateLimitFile {
    pub max_attempts: u32,
    pub window_ms: u64,
    pub lockout_ms: u64,
    pub exempt_loopback: bool,
}

impl Default for RateLimitFile {
    fn default() -> Self {
        RateLimitFile {
            max_attempts: 10,
            window_ms: 60_000,
            lockout_ms: 300_000,
            exempt_loopback: true,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsFile {
    #[serde(default)]
    pub enabled: bool,
    pub auto_generate: Option<bool>,
    pub cert_path: Option<String>,
    pub key_path: Option<String>,
    pub ca_path: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteFile {
    pub url: Option<String>,
    pub transport: Option<String>,
    pub token: Option<SecretInput>,
    pub password: Option<SecretInput>,
    pub tls_fingerprint: Option<String>,
    pub ssh_target: Option<String>,
    pub ssh_identity: Option<String>,
    pub remote_port: Option<u16>,
    pub ssh_host_key_policy: Option<String>,
    #[serde(default)]
    pub edge_auth: BTreeMap<String, String>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodesFile {
    #[serde(default)]
    pub pairing: PairingFile,
    #[serde(default)]
    pub commands: CommandsFile,
    #[serde(default)]
    pub allow_commands: Vec<String>,
    #[serde(default)]
    pub deny_commands: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PairingFile {
    pub auto_approve_local: Option<bool>,
    #[serde(default)]
    pub auto_approve_cidrs: Vec<String>,
    pub ssh_verify: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandsFile {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ControlUiFile {
    pub enabled: Option<bool>,
    pub base_path: Option<String>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default)]
    pub dangerously_allow_host_header_origin_fallback: bool,
    #[serde(default)]
    pub allow_insecure_auth: bool,
    #[serde(default)]
    pub dangerously_disable_device_auth: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadFile {
    pub mode: Option<String>,
}

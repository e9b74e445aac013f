//! The `discovery` key of `openclaw.json` and its environment overrides (spec config.md §4, §10;
//! discovery.md §1.4, §2.1, §6.1).
//!
//! Invariants: unknown keys are rejected at parse time; environment values are applied by
//! [`DiscoveryConfig::apply_env`] (the bonjour switch wins over the config file, the wide-area
//! domain env var is only a fallback); [`DiscoveryConfig::validate`] names the offending key and
//! the fix in every error.

use serde::{Deserialize, Serialize};

/// Env: tri-state LAN advertising switch (`1/true/yes/on` off, `0/false/no/off` forced on).
pub const ENV_DISABLE_BONJOUR: &str = "OPENCLAW_DISABLE_BONJOUR";
/// Env: mDNS host label (SRV target `<label>.local.`).
pub const ENV_MDNS_HOSTNAME: &str = "OPENCLAW_MDNS_HOSTNAME";
/// Env: `sshPort` TXT value (full mode only).
pub const ENV_SSH_PORT: &str = "OPENCLAW_SSH_PORT";
/// Env: `cliPath` TXT value (full mode only).
pub const ENV_CLI_PATH: &str = "OPENCLAW_CLI_PATH";
/// Env: MagicDNS name override used in `tailnetDns` hints.
pub const ENV_TAILNET_DNS: &str = "OPENCLAW_TAILNET_DNS";
/// Env: wide-area DNS-SD domain, used when `discovery.wideArea.domain` is unset.
pub const ENV_WIDE_AREA_DOMAIN: &str = "OPENCLAW_WIDE_AREA_DOMAIN";

/// Default DNS port of the embedded wide-area server (Tailscale split DNS only speaks port 53).
pub const DEFAULT_WIDE_AREA_PORT: u16 = 53;

/// `discovery.mdns.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MdnsMode {
    /// role, port, TLS flag + fingerprint hint, transport, lanHost, displayName (default).
    #[default]
    Minimal,
    /// minimal + `tailnetDns`, `sshPort`, `cliPath` (explicit opt-in).
    Full,
    /// No LAN advertising.
    Off,
}

/// `OPENCLAW_DISABLE_BONJOUR` tri-state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BonjourSwitch {
    /// Unset or unrecognised: advertise unless a container is detected.
    #[default]
    Auto,
    /// Truthy value: never advertise.
    Disabled,
    /// Falsy value: advertise even inside a container.
    ForcedOn,
}

impl BonjourSwitch {
    /// Parse the env value per discovery.md §2.1.
    pub fn parse(raw: Option<&str>) -> Self {
        match raw.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            Some("1" | "true" | "yes" | "on") => BonjourSwitch::Disabled,
            Some("0" | "false" | "no" | "off") => BonjourSwitch::ForcedOn,
            _ => BonjourSwitch::Auto,
        }
    }
}

/// `discovery.mdns`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MdnsConfig {
    /// `minimal` (default) | `full` | `off`.
    #[serde(default)]
    pub mode: MdnsMode,
    /// Interface allow list (pinning). Empty (default) = automatic policy. Naming a container
    /// bridge here is the only way to advertise on it; public-address interfaces stay excluded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
}

/// `discovery.wideArea`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WideAreaConfig {
    /// Unicast DNS-SD domain, e.g. `openclaw.internal`; setting it enables wide-area publishing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Accepted for compatibility with April builds; `false` disables, absent/`true` follow `domain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Port of the embedded DNS server (default 53).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// Values that come only from the environment (never serialized into the config file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveryEnv {
    /// `OPENCLAW_DISABLE_BONJOUR`.
    pub bonjour: BonjourSwitch,
    /// `OPENCLAW_MDNS_HOSTNAME`.
    pub mdns_hostname: Option<String>,
    /// `OPENCLAW_SSH_PORT` (validated: 1..=65535).
    pub ssh_port: Option<String>,
    /// `OPENCLAW_CLI_PATH`.
    pub cli_path: Option<String>,
    /// `OPENCLAW_TAILNET_DNS`.
    pub tailnet_dns: Option<String>,
}

/// The `discovery` key of `openclaw.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// LAN mDNS beacon settings.
    #[serde(default)]
    pub mdns: MdnsConfig,
    /// Wide-area (unicast) DNS-SD settings.
    #[serde(default)]
    pub wide_area: WideAreaConfig,
    /// Environment-only values, filled by [`DiscoveryConfig::apply_env`].
    #[serde(skip)]
    pub env: DiscoveryEnv,
}

/// A configuration error naming the key and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}; fix: {fix}")]
pub struct DiscoveryConfigError {
    /// Config key or environment variable at fault.
    pub key: &'static str,
    /// What is wrong with the value.
    pub problem: String,
    /// How to fix it.
    pub fix: &'static str,
}

impl DiscoveryConfig {
    /// Parse the `discovery` value of `openclaw.json` (absent/`null` ⇒ defaults).
    pub fn from_json(v: &serde_json::Value) -> Result<Self, DiscoveryConfigError> {
        if v.is_null() {
            return Ok(Self::default());
        }
        serde_json::from_value(v.clone()).map_err(|e| DiscoveryConfigError {
            key: "discovery",
            problem: e.to_string(),
            fix: "allowed keys: mdns.mode (minimal|full|off), mdns.interfaces, wideArea.domain, wideArea.enabled, wideArea.port",
        })
    }

    /// Apply the `OPENCLAW_*` discovery variables. `env` returns a variable's value if set.
    pub fn apply_env(&mut self, env: &impl Fn(&str) -> Option<String>) {
        let nonempty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        self.env.bonjour = BonjourSwitch::parse(env(ENV_DISABLE_BONJOUR).as_deref());
        self.env.mdns_hostname = nonempty(ENV_MDNS_HOSTNAME);
        self.env.ssh_port = nonempty(ENV_SSH_PORT);
        self.env.cli_path = nonempty(ENV_CLI_PATH);
        self.env.tailnet_dns = nonempty(ENV_TAILNET_DNS);
        if self.wide_area.domain.is_none() {
            self.wide_area.domain = nonempty(ENV_WIDE_AREA_DOMAIN);
        }
    }

    /// The effective wide-area domain (normalized, no trailing dot), if publishing is enabled.
    pub fn wide_area_domain(&self) -> Option<String> {
        if self.wide_area.enabled == Some(false) {
            return None;
        }
        let d = self
            .wide_area
            .domain
            .as_deref()?
            .trim()
            .trim_end_matches('.');
        (!d.is_empty()).then(|| d.to_ascii_lowercase())
    }

    /// Port for the embedded wide-area DNS server.
    pub fn wide_area_port(&self) -> u16 {
        self.wide_area.port.unwrap_or(DEFAULT_WIDE_AREA_PORT)
    }

    /// The `sshPort` TXT value (default 22).
    pub fn ssh_port(&self) -> u16 {
        self.env
            .ssh_port
            .as_deref()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(22)
    }

    /// Check every value; returns all problems found.
    pub fn validate(&self) -> Result<(), Vec<DiscoveryConfigError>> {
        let mut errs = Vec::new();
        if let Some(d) = &self.wide_area.domain {
            if let Err(problem) = check_domain(d) {
                errs.push(DiscoveryConfigError {
                    key: "discovery.wideArea.domain",
                    problem,
                    fix: "use a DNS name such as \"openclaw.internal\" (LDH labels, not under .local)",
                });
            }
        }
        if self.wide_area.port == Some(0) {
            errs.push(DiscoveryConfigError {
                key: "discovery.wideArea.port",
                problem: "0 is not a usable port".into(),
                fix: "remove the key (default 53) or set 1..65535",
            });
        }
        for name in &self.mdns.interfaces {
            if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
                errs.push(DiscoveryConfigError {
                    key: "discovery.mdns.interfaces",
                    problem: format!("{name:?} is not an interface name"),
                    fix: "list interface names as shown by `ip link` (e.g. \"eth0\")",
                });
            }
        }
        self.validate_env(&mut errs);
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }

    fn validate_env(&self, errs: &mut Vec<DiscoveryConfigError>) {
        if let Some(p) = &self.env.ssh_port {
            if !matches!(p.trim().parse::<u16>(), Ok(1..)) {
                errs.push(DiscoveryConfigError {
                    key: ENV_SSH_PORT,
                    problem: format!("{p:?} is not a port"),
                    fix: "set a decimal port 1..65535 or unset the variable",
                });
            }
        }
        if let Some(h) = &self.env.mdns_hostname {
            let label = h.trim_end_matches('.').trim_end_matches(".local");
            if !super::names::is_ldh_label(label) {
                errs.push(DiscoveryConfigError {
                    key: ENV_MDNS_HOSTNAME,
                    problem: format!("{h:?} is not a single DNS label"),
                    fix: "use letters, digits and '-', at most 63 characters (e.g. \"studio-openclaw\")",
                });
            }
        }
    }
}

fn check_domain(d: &str) -> Result<(), String> {
    let d = d.trim().trim_end_matches('.');
    if d.is_empty() {
        return Err("empty domain".into());
    }
    if d.len() > 200 {
        return Err("domain longer than 200 bytes".into());
    }
    let lower = d.to_ascii_lowercase();
    if lower == "local" || lower.ends_with(".local") {
        return Err("`.local` is reserved for multicast DNS".into());
    }
    match d.split('.').find(|l| !super::names::is_ldh_label(l)) {
        Some(bad) => Err(format!("label {bad:?} is not a valid DNS label")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn parses_camel_case_and_rejects_unknown() {
        let c: DiscoveryConfig = serde_json::from_str(
            r#"{"mdns":{"mode":"full","interfaces":["eth0"]},"wideArea":{"domain":"openclaw.internal","port":5353}}"#,
        )
        .expect("valid");
        assert_eq!(c.mdns.mode, MdnsMode::Full);
        assert_eq!(c.wide_area_domain().as_deref(), Some("openclaw.internal"));
        assert_eq!(c.wide_area_port(), 5353);
        assert!(serde_json::from_str::<DiscoveryConfig>(r#"{"mdns":{"mdoe":"off"}}"#).is_err());
        let err = DiscoveryConfig::from_json(&serde_json::json!({"wideArea": {"domian": "x"}}))
            .expect_err("unknown key");
        assert!(
            err.to_string()
                .starts_with("discovery: unknown field `domian`"),
            "{err}"
        );
        assert_eq!(
            DiscoveryConfig::from_json(&serde_json::Value::Null),
            Ok(DiscoveryConfig::default())
        );
        assert!(serde_json::from_str::<DiscoveryConfig>(r#"{"mdns":{"mode":"loud"}}"#).is_err());
        let d = DiscoveryConfig::default();
        assert_eq!(d.mdns.mode, MdnsMode::Minimal);
        assert_eq!(d.wide_area_domain(), None);
        assert_eq!(d.wide_area_port(), 53);
    }

    #[test]
    fn bonjour_tristate() {
        for v in ["1", "true", "YES", "on"] {
            assert_eq!(BonjourSwitch::parse(Some(v)), BonjourSwitch::Disabled);
        }
        for v in ["0", "false", "No", "off"] {
            assert_eq!(BonjourSwitch::parse(Some(v)), BonjourSwitch::ForcedOn);
        }
        assert_eq!(BonjourSwitch::parse(Some("maybe")), BonjourSwitch::Auto);
        assert_eq!(BonjourSwitch::parse(None), BonjourSwitch::Auto);
    }

    #[test]
    fn env_domain_is_fallback_and_enabled_false_disables() {
        let mut c = DiscoveryConfig::default();
        c.apply_env(&env_of(&[(ENV_WIDE_AREA_DOMAIN, "env.example")]));
        assert_eq!(c.wide_area_domain().as_deref(), Some("env.example"));
        let mut c = DiscoveryConfig::default();
        c.wide_area.domain = Some("cfg.example.".into());
        c.apply_env(&env_of(&[(ENV_WIDE_AREA_DOMAIN, "env.example")]));
        assert_eq!(c.wide_area_domain().as_deref(), Some("cfg.example"));
        c.wide_area.enabled = Some(false);
        assert_eq!(c.wide_area_domain(), None);
    }

    #[test]
    fn validate_names_key_and_fix() {
        let mut c = DiscoveryConfig::default();
        c.wide_area.domain = Some("bad_domain.local".into());
        c.apply_env(&env_of(&[
            (ENV_SSH_PORT, "99999"),
            (ENV_MDNS_HOSTNAME, "-x"),
        ]));
        let errs = c.validate().expect_err("invalid");
        let keys: Vec<_> = errs.iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            vec!["discovery.wideArea.domain", ENV_SSH_PORT, ENV_MDNS_HOSTNAME]
        );
        assert!(errs[0].to_string().contains("fix:"));
        let mut ok = DiscoveryConfig::default();
        ok.apply_env(&env_of(&[
            (ENV_SSH_PORT, "2222"),
            (ENV_MDNS_HOSTNAME, "studio-openclaw"),
        ]));
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.ssh_port(), 2222);
    }
}

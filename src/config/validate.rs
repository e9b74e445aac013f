//! Contradictions and unsafe values that refuse to start (config.md §9,
//! threats.md EX-1..EX-3, SL-7). Pure: inspects resolved settings only.

use super::file::{AuthMode, BindMode};
use super::origin::{self, SecretOrigin};
use super::{ConfigError, Settings, TailscaleMode};

/// Funnel can only publish on these ports (Tailscale limitation).
pub const FUNNEL_PORTS: &[u16] = &[443, 8443, 10000];

/// Runs every check; the first failure wins.
pub fn check(s: &Settings) -> Result<(), ConfigError> {
    check_bind(s)?;
    check_auth_mode(s)?;
    check_secrets(s)?;
    check_tailscale(s)?;
    Ok(())
}

/// Whether anything beyond this host's loopback can reach the gateway.
pub fn remotely_reachable(s: &Settings) -> bool {
    s.bind != BindMode::Loopback || s.tailscale_mode != TailscaleMode::Off
}

fn check_bind(s: &Settings) -> Result<(), ConfigError> {
    match s.bind {
        BindMode::Custom => match s.custom_bind_host {
            Some(ip) if ip.is_ipv4() && !ip.is_unspecified() => Ok(()),
            _ => Err(ConfigError::new(
                "gateway.customBindHost",
                "bind = custom needs a specific IPv4 address",
                "set gateway.customBindHost to an address of this host, e.g. 192.168.1.10",
            )),
        },
        BindMode::Tailnet => crate::exposure::start::tailscale_config(s).map(|_| ()),
        BindMode::Loopback | BindMode::Lan | BindMode::Auto => Ok(()),
    }
}

fn check_auth_mode(s: &Settings) -> Result<(), ConfigError> {
    match s.auth.mode {
        AuthMode::None if remotely_reachable(s) => Err(ConfigError::new(
            "gateway.auth.mode",
            "auth = none with a non-loopback bind or Tailscale exposure lets anyone in",
            "use auth token or password, or bind loopback with tailscale.mode off",
        )),
        AuthMode::Password if s.auth.password.is_none() => Err(ConfigError::new(
            "gateway.auth.password",
            "auth = password but no password is configured",
            "set gateway.auth.password or OPENCLAW_GATEWAY_PASSWORD",
        )),
        AuthMode::TrustedProxy => check_trusted_proxy(s),
        _ => Ok(()),
    }
}

/// Trusted-proxy auth needs its user header and a proxy list, and excludes a shared token
/// (config.md §7, the reference's `assertGatewayAuthConfigured`).
fn check_trusted_proxy(s: &Settings) -> Result<(), ConfigError> {
    if s.auth.proxy.trusted_proxy.is_none() {
        return Err(ConfigError::new(
            "gateway.auth.trustedProxy",
            "auth = trusted-proxy but no trustedProxy settings are configured",
            "set gateway.auth.trustedProxy.userHeader to the header your proxy puts the user in",
        ));
    }
    if s.auth.proxy.trusted.is_empty() {
        return Err(ConfigError::new(
            "gateway.trustedProxies",
            "auth = trusted-proxy but no trusted proxy address is configured",
            "set gateway.trustedProxies to your reverse proxy's exact address",
        ));
    }
    if s.auth.token.is_some() {
        return Err(ConfigError::new(
            "gateway.auth.token",
            "trusted-proxy and token auth are mutually exclusive",
            "remove gateway.auth.token / OPENCLAW_GATEWAY_TOKEN / --token (local callers can use gateway.auth.password)",
        ));
    }
    Ok(())
}

/// Every configured secret passes the strength check, whatever its source and the bind
/// (EX-1); token and password differ (EX-3). Also run on the generated token at start.
pub fn check_secrets(s: &Settings) -> Result<(), ConfigError> {
    for (key, secret, origin) in [
        ("gateway.auth.token", &s.auth.token, &s.secret_origins.token),
        (
            "gateway.auth.password",
            &s.auth.password,
            &s.secret_origins.password,
        ),
    ] {
        let Some(secret) = secret else { continue };
        let fallback = SecretOrigin::ConfigKey {
            key,
            file: s.paths.config_path.clone(),
        };
        origin::check(secret.expose(), origin.as_ref().unwrap_or(&fallback))?;
    }
    if let (Some(t), Some(p)) = (&s.auth.token, &s.auth.password) {
        if t == p {
            return Err(ConfigError::new(
                "gateway.auth.password",
                "the same secret is used as token and password",
                "use two different secrets",
            ));
        }
    }
    Ok(())
}

fn check_tailscale(s: &Settings) -> Result<(), ConfigError> {
    if s.tailscale_mode == TailscaleMode::Off {
        return Ok(());
    }
    if s.bind != BindMode::Loopback {
        return Err(ConfigError::new(
            "gateway.bind",
            "Tailscale serve/funnel requires bind = loopback (Serve forwards to loopback)",
            "set gateway.bind to loopback, or tailscale.mode to off",
        ));
    }
    if s.tailscale_mode == TailscaleMode::Funnel {
        if s.auth.mode != AuthMode::Password {
            return Err(ConfigError::new(
                "gateway.auth.mode",
                "Funnel exposes the gateway publicly and requires password auth",
                "set gateway.auth.mode to password and a strong gateway.auth.password",
            ));
        }
        let port = s
            .file
            .gateway
            .tailscale
            .get("funnelPort")
            .and_then(|v| v.as_u64())
            .unwrap_or(443);
        if !FUNNEL_PORTS.iter().any(|p| u64::from(*p) == port) {
            return Err(ConfigError::new(
                "gateway.tailscale.funnelPort",
                format!("Funnel cannot publish on port {port}"),
                "use 443, 8443 or 10000",
            ));
        }
    }
    crate::exposure::start::tailscale_config(s).map(|_| ())
}

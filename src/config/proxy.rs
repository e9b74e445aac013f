//! Typed reverse-proxy settings (`gateway.trustedProxies`, `gateway.allowRealIpFallback`,
//! `gateway.auth.trustedProxy`), parsed once from the file schema (config.md §7).
//!
//! Invariants: every `trustedProxies` entry is a valid IP or CIDR (a bad one refuses to start,
//! naming its index); header names are valid lower-case HTTP header names; the
//! `deviceAutoApprove` key is refused, never parsed and ignored.

use ipnet::IpNet;

use super::file::{GatewayFile, TrustedProxyFile};
use super::ConfigError;

/// `gateway.auth.trustedProxy`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxySettings {
    /// Lower-case header carrying the authenticated user (required).
    pub user_header: String,
    /// Lower-case headers that must be present and non-blank.
    pub required_headers: Vec<String>,
    /// When non-empty, only these users pass.
    pub allow_users: Vec<String>,
    /// Accept a proxy on loopback (PX-7: explicit opt-in only).
    pub allow_loopback: bool,
}

/// Everything the proxy rules need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySettings {
    /// `gateway.trustedProxies` (a bare IP is a /32 or /128).
    pub trusted: Vec<IpNet>,
    /// `gateway.allowRealIpFallback`.
    pub allow_real_ip_fallback: bool,
    /// `gateway.auth.trustedProxy`, when set.
    pub trusted_proxy: Option<TrustedProxySettings>,
}

fn entry(i: usize, s: &str) -> Result<IpNet, ConfigError> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| {
            ConfigError::new(
                format!("gateway.trustedProxies[{i}]"),
                format!("{s:?} is not an IP address or CIDR"),
                "list your reverse proxy's exact address, e.g. \"10.0.0.5\" or \"10.0.0.5/32\"",
            )
        })
}

fn header(key: &str, name: &str) -> Result<String, ConfigError> {
    let lower = name.trim().to_ascii_lowercase();
    hyper::header::HeaderName::from_bytes(lower.as_bytes())
        .map(|_| lower)
        .map_err(|_| {
            ConfigError::new(
                key,
                format!("{name:?} is not an HTTP header name"),
                "use a header name such as x-forwarded-user",
            )
        })
}

fn trusted_proxy(t: &TrustedProxyFile) -> Result<TrustedProxySettings, ConfigError> {
    const KEY: &str = "gateway.auth.trustedProxy";
    if t.device_auto_approve.is_some() {
        return Err(ConfigError::new(
            format!("{KEY}.deviceAutoApprove"),
            "automatic device approval for proxy users is not supported by clawgate",
            "remove the key and approve devices with `clawgate devices approve`",
        ));
    }
    let user = t.user_header.as_deref().unwrap_or("").trim();
    if user.is_empty() {
        return Err(ConfigError::new(
            format!("{KEY}.userHeader"),
            "trusted-proxy auth needs the header your proxy puts the authenticated user in",
            "set gateway.auth.trustedProxy.userHeader, e.g. \"x-forwarded-user\"",
        ));
    }
    let required = t
        .required_headers
        .iter()
        .enumerate()
        .map(|(i, h)| header(&format!("{KEY}.requiredHeaders[{i}]"), h))
        .collect::<Result<_, _>>()?;
    Ok(TrustedProxySettings {
        user_header: header(&format!("{KEY}.userHeader"), user)?,
        required_headers: required,
        allow_users: t.allow_users.iter().map(|u| u.trim().to_string()).collect(),
        allow_loopback: t.allow_loopback,
    })
}

/// Parses the proxy settings of `g`.
pub fn resolve(g: &GatewayFile) -> Result<ProxySettings, ConfigError> {
    let trusted = g
        .trusted_proxies
        .iter()
        .enumerate()
        .map(|(i, s)| entry(i, s))
        .collect::<Result<_, _>>()?;
    Ok(ProxySettings {
        trusted,
        allow_real_ip_fallback: g.allow_real_ip_fallback,
        trusted_proxy: g
            .auth
            .trusted_proxy
            .as_ref()
            .map(trusted_proxy)
            .transpose()?,
    })
}

//! Reverse proxies in front of the gateway (config.md §7, threats.md PX-1…PX-8): who the client
//! behind a configured trusted proxy is, and trusted-proxy identity auth.
//!
//! Owns two pure decisions, both made from the socket peer, the request headers and
//! [`ProxySettings`]:
//! - [`attribute`]: forwarding headers count only from a peer inside `gateway.trustedProxies`
//!   (PX-1); the client is the first untrusted hop of `X-Forwarded-For` scanned right to left
//!   (PX-3); `X-Real-IP` only with `allowRealIpFallback` (PX-4); anything unparsable, or a client
//!   that resolves to loopback, is unattributable and fails closed (PX-5, PX-6).
//! - [`authorize_user`]: the reference's evaluation order for `auth.mode = "trusted-proxy"`:
//!   trusted source → loopback only with `allowLoopback` (PX-7) → not one of this host's own
//!   addresses → required headers → user header → `allowUsers`.
//!
//! Invariant: neither ever makes a connection local; locality stays a property of the socket
//! (`Transport::is_direct_local`), and a proxied request always carries proxy evidence.

use std::net::{IpAddr, SocketAddr};

use hyper::header::HeaderMap;

use super::ratelimit::canonical_ip;
use crate::config::{ProxySettings, TrustedProxySettings};

/// Headers that are evidence of a proxy hop.
pub const FORWARDING_HEADERS: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
];

/// The fix named when a proxied request cannot be attributed (the reference's guidance).
pub const ATTRIBUTION_GUIDANCE: &str = "configure gateway.trustedProxies narrowly and make the \
     proxy overwrite or safely rebuild X-Forwarded-For with the client's address";

/// How a request reached the gateway, as far as proxies go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// Straight from the socket peer (forwarding headers from an untrusted peer are ignored).
    Direct,
    /// Through the configured trusted proxy `proxy` on behalf of `client`.
    Trusted { proxy: IpAddr, client: IpAddr },
    /// From the trusted proxy `proxy`, but without a usable client address: refused.
    Unattributable { proxy: IpAddr },
}

impl Hop {
    /// The address the request is charged to (rate limits, budgets, pairing records).
    pub fn client(self, peer: IpAddr) -> IpAddr {
        match self {
            Hop::Trusted { client, .. } => client,
            Hop::Direct | Hop::Unattributable { .. } => peer,
        }
    }
}

/// Why trusted-proxy auth refused a request (`authReason`, the reference's strings).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyFailure {
    #[error("the request did not come from an address in gateway.trustedProxies")]
    UntrustedSource,
    #[error("the proxy is on loopback and gateway.auth.trustedProxy.allowLoopback is not set")]
    LoopbackSource,
    #[error("the proxy address is one of this host's own interface addresses")]
    LocalInterfaceSource,
    #[error("this host's interface addresses could not be read")]
    LocalInterfaceCheckFailed,
    #[error("the proxy did not send the required header {0}")]
    MissingHeader(String),
    #[error("the proxy did not send the user header")]
    UserMissing,
    #[error("the user is not in gateway.auth.trustedProxy.allowUsers")]
    UserNotAllowed,
}

impl ProxyFailure {
    /// `authReason` on the wire.
    pub fn reason(&self) -> String {
        match self {
            ProxyFailure::UntrustedSource => "trusted_proxy_untrusted_source".into(),
            ProxyFailure::LoopbackSource => "trusted_proxy_loopback_source".into(),
            ProxyFailure::LocalInterfaceSource => "trusted_proxy_local_interface_source".into(),
            ProxyFailure::LocalInterfaceCheckFailed => {
                "trusted_proxy_local_interface_check_failed".into()
            }
            ProxyFailure::MissingHeader(h) => format!("trusted_proxy_missing_header_{h}"),
            ProxyFailure::UserMissing => "trusted_proxy_user_missing".into(),
            ProxyFailure::UserNotAllowed => "trusted_proxy_user_not_allowed".into(),
        }
    }

    /// `details.code` on the wire (`resolveAuthConnectErrorDetailCode`).
    pub fn detail_code(&self) -> &'static str {
        match self {
            ProxyFailure::MissingHeader(_) => "AUTH_IDENTITY_HEADER_REQUIRED",
            _ => "AUTH_UNAUTHORIZED",
        }
    }
}

fn trusted(ip: IpAddr, p: &ProxySettings) -> bool {
    let ip = canonical_ip(ip);
    p.trusted.iter().any(|net| net.contains(&ip))
}

/// Any forwarding header present.
pub fn has_forwarding_headers(h: &HeaderMap) -> bool {
    FORWARDING_HEADERS.iter().any(|n| h.contains_key(*n))
}

/// One `X-Forwarded-For` entry: an IP, `ip:port` or `[v6]:port`; `None` for anything else
/// (`unknown`, `1.2.3.999`, obfuscated identifiers).
fn parse_hop(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical_ip(ip));
    }
    s.parse::<SocketAddr>().ok().map(|a| canonical_ip(a.ip()))
}

/// The client behind a trusted proxy: XFF right to left, first untrusted hop; `X-Real-IP` only
/// when XFF is absent and the fallback is enabled. `None` fails closed.
fn client_from_headers(h: &HeaderMap, p: &ProxySettings) -> Option<IpAddr> {
    let mut xff = h.get_all("x-forwarded-for").iter().peekable();
    if xff.peek().is_none() {
        let real = h.get("x-real-ip").filter(|_| p.allow_real_ip_fallback)?;
        return parse_hop(real.to_str().ok()?);
    }
    let mut hops = Vec::new();
    for value in xff {
        for part in value.to_str().ok()?.split(',') {
            hops.push(parse_hop(part)?);
        }
    }
    hops.into_iter().rev().find(|ip| !trusted(*ip, p))
}

/// Where the request came from (see the module doc).
pub fn attribute(peer: IpAddr, h: &HeaderMap, p: &ProxySettings) -> Hop {
    let peer = canonical_ip(peer);
    let headers = has_forwarding_headers(h);
    if peer.is_loopback() && !headers {
        return Hop::Direct;
    }
    if !trusted(peer, p) {
        return Hop::Direct;
    }
    match client_from_headers(h, p) {
        Some(client) if !client.is_loopback() => Hop::Trusted {
            proxy: peer,
            client,
        },
        _ => Hop::Unattributable { proxy: peer },
    }
}

fn header_value<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name.trim().to_ascii_lowercase().as_str())
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Trusted-proxy identity auth (config.md §7 order). `is_local_address` answers whether an
/// address belongs to one of this host's interfaces (`None`: could not tell).
pub fn authorize_user(
    peer: IpAddr,
    h: &HeaderMap,
    p: &ProxySettings,
    cfg: &TrustedProxySettings,
    is_local_address: impl Fn(IpAddr) -> Option<bool>,
) -> Result<String, ProxyFailure> {
    let peer = canonical_ip(peer);
    if !trusted(peer, p) {
        return Err(ProxyFailure::UntrustedSource);
    }
    if peer.is_loopback() {
        if !cfg.allow_loopback {
            return Err(ProxyFailure::LoopbackSource);
        }
    } else {
        match is_local_address(peer) {
            None => return Err(ProxyFailure::LocalInterfaceCheckFailed),
            Some(true) => return Err(ProxyFailure::LocalInterfaceSource),
            Some(false) => {}
        }
    }
    if let Some(missing) = cfg
        .required_headers
        .iter()
        .find(|r| header_value(h, r).is_none())
    {
        return Err(ProxyFailure::MissingHeader(missing.clone()));
    }
    let user = header_value(h, &cfg.user_header).ok_or(ProxyFailure::UserMissing)?;
    if !cfg.allow_users.is_empty() && !cfg.allow_users.iter().any(|u| u == user) {
        return Err(ProxyFailure::UserNotAllowed);
    }
    Ok(user.to_string())
}

/// Both decisions for one request. `peer` is the socket peer as far as proxy rules may trust
/// it: the whois-attributed tailnet node for a userspace-tailscaled forward, and `None` for a
/// loopback connection that could not be proven local — which may be a forwarded tailnet peer
/// and so is never a proxy (it must not claim a user or a client address through headers).
pub fn evaluate(
    peer: Option<IpAddr>,
    h: &HeaderMap,
    p: &ProxySettings,
    trusted_proxy_mode: Option<&TrustedProxySettings>,
    is_local_address: impl Fn(IpAddr) -> Option<bool>,
) -> (Hop, Option<Result<String, ProxyFailure>>) {
    let Some(peer) = peer else {
        let refused = trusted_proxy_mode.map(|_| Err(ProxyFailure::UntrustedSource));
        return (Hop::Direct, refused);
    };
    let user = trusted_proxy_mode.map(|cfg| authorize_user(peer, h, p, cfg, is_local_address));
    (attribute(peer, h, p), user)
}

/// Whether `ip` is one of this host's interface addresses (`None` if they cannot be read).
pub fn is_host_address(ip: IpAddr) -> Option<bool> {
    let addrs = if_addrs::get_if_addrs().ok()?;
    Some(addrs.iter().any(|a| canonical_ip(a.ip()) == ip))
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;

//! The narrow LocalAPI surface the gateway uses ([`LocalApi`]), and where a LocalAPI lives
//! ([`Endpoint`]).
//!
//! Invariants: the trait is object safe (`Arc<dyn LocalApi>`), so the real client
//! ([`super::LocalApiClient`]) and the in-memory fake ([`super::FakeLocalApi`]) are interchangeable;
//! a TCP endpoint is always a loopback address, because its password travels in clear HTTP.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use futures_util::future::BoxFuture;

use super::bus::IpnBus;
use super::error::{LocalApiError, Result};
use super::serve::{ETag, ServeConfig};
use super::types::{CertPair, Prefs, Status, WhoIs};

/// Default Linux tailscaled socket (`paths.DefaultTailscaledSocket`).
pub const DEFAULT_SOCKET: &str = "/var/run/tailscale/tailscaled.sock";

/// Where a LocalAPI listens.
#[derive(Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket (system tailscaled); access control is the socket's peer credentials.
    Unix(PathBuf),
    /// Loopback TCP with a password (tsnet `Loopback()`, macOS GUI variants).
    Tcp {
        /// A loopback address.
        addr: SocketAddr,
        /// Basic-auth password (secret: never logged).
        password: String,
    },
}

impl Endpoint {
    /// A TCP endpoint; refuses non-loopback addresses (the password would leave the host).
    pub fn tcp(addr: SocketAddr, password: impl Into<String>) -> Result<Self> {
        if !addr.ip().is_loopback() {
            return Err(LocalApiError::InvalidArgument(format!(
                "LocalAPI TCP endpoint {addr} is not a loopback address"
            )));
        }
        Ok(Self::Tcp {
            addr,
            password: password.into(),
        })
    }

    /// The system tailscaled socket at its default Linux path.
    pub fn system_default() -> Self {
        Self::Unix(PathBuf::from(DEFAULT_SOCKET))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Tcp { addr, .. } => write!(f, "tcp:{addr}"),
        }
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Endpoint({self})")
    }
}

/// The peer address to identify with `whois`: a bare IP, or `ip:port` (lets tailscaled's
/// ProxyMapper resolve userspace-netstack connections forwarded to localhost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAddr {
    /// A bare address.
    Ip(IpAddr),
    /// Address and port.
    IpPort(SocketAddr),
}

impl From<IpAddr> for PeerAddr {
    fn from(ip: IpAddr) -> Self {
        Self::Ip(ip)
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(sa: SocketAddr) -> Self {
        Self::IpPort(sa)
    }
}

impl PeerAddr {
    /// The IP without port; IPv4-mapped IPv6 is unmapped (as tailscaled does).
    pub fn ip(&self) -> IpAddr {
        let ip = match self {
            Self::Ip(ip) => *ip,
            Self::IpPort(sa) => sa.ip(),
        };
        ip.to_canonical()
    }
}

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ip(ip) => write!(f, "{ip}"),
            Self::IpPort(sa) => write!(f, "{sa}"),
        }
    }
}

/// What the gateway needs from a Tailscale LocalAPI. Implemented by the real client and by
/// [`super::FakeLocalApi`].
pub trait LocalApi: Send + Sync {
    /// `GET status` (with peers).
    fn status(&self) -> BoxFuture<'_, Result<Status>>;

    /// `GET status?peers=false`: this node only (cheap; use it for re-checks on bus events).
    fn self_status(&self) -> BoxFuture<'_, Result<Status>>;

    /// `GET whois?addr=…`. Unknown peers answer 404 (`LocalApiError::Status`).
    fn whois(&self, addr: PeerAddr) -> BoxFuture<'_, Result<WhoIs>>;

    /// `GET cert/<domain>?type=pair`: certificate chain and key PEM.
    fn cert_pair<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, Result<CertPair>>;

    /// `GET serve-config`: the whole config (`null` ⇒ empty) and its ETag.
    fn serve_config(&self) -> BoxFuture<'_, Result<(ServeConfig, ETag)>>;

    /// `POST serve-config`: replaces the whole config. With `if_match`, a concurrent change
    /// yields [`LocalApiError::PreconditionFailed`].
    fn set_serve_config<'a>(
        &'a self,
        cfg: &'a ServeConfig,
        if_match: Option<&'a ETag>,
    ) -> BoxFuture<'a, Result<()>>;

    /// `GET watch-ipn-bus?mask=…`: the NDJSON notification stream. Dropping the returned
    /// [`IpnBus`] closes the watch, which deletes that session's `Foreground` serve entries.
    fn watch_ipn_bus(&self, mask: u64) -> BoxFuture<'_, Result<IpnBus>>;

    /// `GET prefs`.
    fn prefs(&self) -> BoxFuture<'_, Result<Prefs>>;
}

/// Validates a certificate domain before it becomes a URL path segment (DNS names and the
/// `*.` wildcard form only).
pub(crate) fn check_cert_domain(domain: &str) -> Result<()> {
    let name = domain.strip_prefix("*.").unwrap_or(domain);
    let ok = !name.is_empty()
        && name.len() <= 253
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(LocalApiError::InvalidArgument(format!(
            "not a certificate domain: {domain:?}"
        )))
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_endpoint_must_be_loopback_and_hides_password() {
        assert!(Endpoint::tcp("10.0.0.1:1".parse().unwrap(), "x").is_err());
        let ep = Endpoint::tcp("127.0.0.1:41112".parse().unwrap(), "s3cret").unwrap();
        assert!(!format!("{ep:?} {ep}").contains("s3cret"));
    }

    #[test]
    fn cert_domains_and_query_values_are_sanitized() {
        assert!(check_cert_domain("gw.tail-scale.ts.net").is_ok());
        assert!(check_cert_domain("*.gw.ts.net").is_ok());
        assert!(check_cert_domain("../status").is_err());
        assert!(check_cert_domain("..").is_err());
        assert!(check_cert_domain("a?type=key").is_err());
        assert_eq!(query_escape("[fd7a::1]:80"), "%5Bfd7a%3A%3A1%5D%3A80");
        let mapped: PeerAddr = "::ffff:100.64.0.1".parse::<IpAddr>().unwrap().into();
        assert_eq!(mapped.ip().to_string(), "100.64.0.1");
    }
}

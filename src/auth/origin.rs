//! Browser protections: the `Host` allowlist against DNS rebinding and the
//! `Origin` check for any client that sends one (threats.md BR-3..BR-6).
//!
//! Invariants: an IP-literal `Host` is accepted only when it is the address the
//! connection arrived on (or loopback); a name must be on the allowlist; `*.ts.net`
//! is never special. An `Origin` (including `null`) must be explicitly allowed or
//! be a loopback origin seen by a loopback `Host`.

use std::net::IpAddr;

/// Names always accepted as `Host` for a loopback listener.
const LOOPBACK_NAMES: &[&str] = &["localhost", "localhost.localdomain"];

/// Splits `host[:port]` / `[v6]:port` and returns the lower-cased host part.
pub fn host_part(host_header: &str) -> String {
    let h = host_header.trim();
    let host = if let Some(rest) = h.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else if h.matches(':').count() == 1 {
        h.split(':').next().unwrap_or("")
    } else {
        h
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether `host` (already [`host_part`]-ed) names loopback.
pub fn is_loopback_host(host: &str) -> bool {
    LOOPBACK_NAMES.contains(&host) || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The `Host` allowlist of a gateway.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    /// Extra names: MagicDNS name, public origin host, hostname(.local), allowed origins' hosts.
    pub names: Vec<String>,
}

impl HostPolicy {
    /// `Host` missing is refused: every HTTP/1.1 client sends it.
    pub fn allows(&self, host_header: Option<&str>, local_addr: IpAddr) -> bool {
        let Some(h) = host_header else { return false };
        let host = host_part(h);
        if is_loopback_host(&host) {
            return true;
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return crate::auth::ratelimit::canonical_ip(ip)
                == crate::auth::ratelimit::canonical_ip(local_addr);
        }
        self.names.iter().any(|n| n.eq_ignore_ascii_case(&host))
    }
}

/// Whether a browser `Origin` may open the WebSocket.
pub fn origin_allowed(origin: &str, host_header: Option<&str>, allowed: &[String]) -> bool {
    let o = origin.trim();
    if allowed.iter().any(|a| {
        a.trim_end_matches('/')
            .eq_ignore_ascii_case(o.trim_end_matches('/'))
    }) {
        return true;
    }
    if o.eq_ignore_ascii_case("null") {
        return false;
    }
    let origin_host = o
        .split_once("://")
        .map(|(_, rest)| host_part(rest.split('/').next().unwrap_or("")))
        .unwrap_or_default();
    let host_loopback = host_header
        .map(host_part)
        .is_some_and(|h| is_loopback_host(&h));
    is_loopback_host(&origin_host) && host_loopback
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn host_parsing() {
        assert_eq!(host_part("127.0.0.1:18789"), "127.0.0.1");
        assert_eq!(host_part("[::1]:18789"), "::1");
        assert_eq!(host_part("LocalHost"), "localhost");
        assert_eq!(host_part("gw.tail-abc.ts.net."), "gw.tail-abc.ts.net");
    }

    #[test]
    fn dns_rebinding_names_are_refused() {
        let p = HostPolicy {
            names: vec!["gw.tail-abc.ts.net".into()],
        };
        let lo = ip("127.0.0.1");
        assert!(p.allows(Some("127.0.0.1:18789"), lo));
        assert!(p.allows(Some("localhost:18789"), lo));
        assert!(p.allows(Some("[::1]:18789"), ip("::1")));
        assert!(!p.allows(Some("rebind.attacker.tld:18789"), lo));
        assert!(!p.allows(Some("other.ts.net"), lo));
        assert!(p.allows(Some("gw.tail-abc.ts.net"), lo));
        assert!(!p.allows(None, lo));
        // An IP literal must be the address the connection arrived on.
        assert!(p.allows(Some("10.77.0.1:18789"), ip("10.77.0.1")));
        assert!(!p.allows(Some("10.77.0.9:18789"), ip("10.77.0.1")));
    }

    #[test]
    fn origins() {
        let allowed = vec!["https://ui.example.com".to_string()];
        assert!(origin_allowed(
            "https://ui.example.com",
            Some("gw:1"),
            &allowed
        ));
        assert!(!origin_allowed(
            "https://evil.example.com",
            Some("127.0.0.1:1"),
            &allowed
        ));
        assert!(!origin_allowed("null", Some("127.0.0.1:1"), &allowed));
        assert!(origin_allowed(
            "http://localhost:5173",
            Some("127.0.0.1:18789"),
            &[]
        ));
        assert!(!origin_allowed(
            "http://localhost:5173",
            Some("10.0.0.1:18789"),
            &[]
        ));
    }
}

//! Client-side discovery for `clawgate discover` (spec discovery.md §7; threats.md MD-6, MD-7).
//!
//! Browses `_openclaw-gw._tcp.local.` with mdns-sd and, with a domain, unicast DNS-SD through
//! the **system resolver only** (MagicDNS on a tailnet; never peers as nameservers). Invariants:
//! routing data is the SRV target + port and the A/AAAA addresses; TXT values are hints, checked
//! (UTF-8, ≤ 255 bytes, no leading `-`) and never treated as trust anchors — an advertised
//! fingerprint is reported as `tlsFingerprintHint`, never as a pin.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use hickory_proto::rr::{RData, RecordType};
use hickory_resolver::Resolver;
use mdns_sd::{ServiceDaemon, ServiceEvent};
use serde::Serialize;

use super::beacon::SERVICE_TYPE;
use crate::net_class::{classify, AddrClass};

/// Longest TXT value accepted from the network.
const MAX_TXT_VALUE: usize = 255;

/// One discovered gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Beacon {
    /// Instance name (unescaped, display only).
    pub instance_name: String,
    /// `local.` or the wide-area domain.
    pub domain: String,
    /// SRV target host (no trailing dot).
    pub host: String,
    /// SRV port.
    pub port: u16,
    /// Resolved addresses.
    pub addresses: Vec<IpAddr>,
    /// `ws(s)://<SRV host>:<SRV port>`.
    pub ws_url: String,
    /// True when TXT says `gatewayTls=1` (hint).
    pub tls_hint: bool,
    /// `gatewayTlsSha256` as advertised — unauthenticated; never a pin.
    pub tls_fingerprint_hint: Option<String>,
    /// Whether a plaintext `ws://` to this gateway would be allowed by clawgate's policy
    /// (only LAN-class addresses; tailnet and public need `wss://`).
    pub plaintext_allowed: bool,
    /// Validated TXT pairs (hints only).
    pub txt: BTreeMap<String, String>,
}

/// Validate a host name from SRV: DNS characters only, no leading `-` (MD-7).
pub fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && !h.starts_with('-')
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Keep TXT pairs that are sane: printable key, UTF-8 value ≤ 255 bytes, no leading `-`.
pub fn sanitize_txt(
    pairs: impl IntoIterator<Item = (String, Option<Vec<u8>>)>,
) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .filter_map(|(k, v)| {
            let v = String::from_utf8(v.unwrap_or_default()).ok()?;
            let ok = !k.is_empty() && k.bytes().all(|b| b.is_ascii_graphic() && b != b'=');
            (ok && v.len() <= MAX_TXT_VALUE
                && !v.starts_with('-')
                && !v.chars().any(char::is_control))
            .then_some((k, v))
        })
        .collect()
}

fn make_beacon(
    instance: String,
    domain: &str,
    host: &str,
    port: u16,
    addrs: Vec<IpAddr>,
    txt: BTreeMap<String, String>,
) -> Option<Beacon> {
    let host = host.trim_end_matches('.').to_string();
    if !valid_host(&host) {
        tracing::debug!(%host, "ignoring beacon with an invalid SRV target");
        return None;
    }
    let tls = txt.get("gatewayTls").is_some_and(|v| v == "1");
    let fp = txt
        .get("gatewayTlsSha256")
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|v| v.to_ascii_lowercase());
    let plaintext_allowed = !addrs.is_empty()
        && addrs.iter().all(|a| {
            matches!(
                classify(*a),
                AddrClass::PrivateLan | AddrClass::LinkLocal | AddrClass::Loopback
            )
        });
    let scheme = if tls { "wss" } else { "ws" };
    let url_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    Some(Beacon {
        instance_name: instance,
        domain: domain.to_string(),
        ws_url: format!("{scheme}://{url_host}:{port}"),
        host,
        port,
        addresses: addrs,
        tls_hint: tls,
        tls_fingerprint_hint: fp,
        plaintext_allowed,
        txt,
    })
}

/// Unescape an RFC 6763 instance label (`\DDD` decimal and `\x`), lossily for display.
pub fn unescape_instance(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let n = (b[i + 1] - b'0') as u32 * 100
                + (b[i + 2] - b'0') as u32 * 10
                + (b[i + 3] - b'0') as u32;
            out.push(u8::try_from(n).unwrap_or(b'?'));
            i += 4;
        } else if b[i] == b'\\' && i + 1 < b.len() {
            out.push(b[i + 1]);
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out)
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

/// Browse mDNS for `timeout`, returning resolved gateways (deduplicated by full name).
pub async fn browse_mdns(timeout: Duration) -> Result<Vec<Beacon>, mdns_sd::Error> {
    let daemon = ServiceDaemon::new()?;
    let rx = daemon.browse(SERVICE_TYPE)?;
    let mut found: BTreeMap<String, Beacon> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while let Ok(Ok(ev)) = tokio::time::timeout_at(deadline, rx.recv_async()).await {
        if let ServiceEvent::ServiceResolved(s) = ev {
            let instance = s
                .fullname
                .strip_suffix(&format!(".{SERVICE_TYPE}"))
                .unwrap_or(&s.fullname);
            let txt = sanitize_txt(
                s.txt_properties
                    .iter()
                    .map(|p| (p.key().to_string(), p.val().map(<[u8]>::to_vec))),
            );
            let addrs: BTreeSet<IpAddr> = s.addresses.iter().map(|a| a.to_ip_addr()).collect();
            if let Some(b) = make_beacon(
                unescape_instance(instance),
                "local.",
                &s.host,
                s.port,
                addrs.into_iter().collect(),
                txt,
            ) {
                found.insert(s.fullname.clone(), b);
            }
        }
    }
    if let Ok(done) = daemon.shutdown() {
        let _ = tokio::time::timeout(Duration::from_secs(1), done.recv_async()).await;
    }
    Ok(found.into_values().collect())
}

/// Errors from the wide-area browse.
#[derive(Debug, thiserror::Error)]
pub enum WideAreaBrowseError {
    /// The system resolver could not be set up or the PTR query failed.
    #[error("DNS: {0}")]
    Dns(#[from] hickory_resolver::net::NetError),
}

/// Browse `_openclaw-gw._tcp.<domain>` through the system resolver: PTR → SRV/TXT → A/AAAA.
pub async fn browse_wide_area(domain: &str) -> Result<Vec<Beacon>, WideAreaBrowseError> {
    let resolver = Resolver::builder_tokio()?.build()?;
    let domain = domain.trim_end_matches('.');
    let ptr = resolver
        .lookup(format!("_openclaw-gw._tcp.{domain}."), RecordType::PTR)
        .await?;
    let mut out = Vec::new();
    for rec in ptr.answers() {
        let RData::PTR(target) = &rec.data else {
            continue;
        };
        if let Some(b) = resolve_instance(&resolver, domain, &target.0).await {
            out.push(b);
        }
    }
    Ok(out)
}

/// Split DNS TXT strings into `(key, value)` (value `None` for boolean keys).
fn txt_pairs(answers: &[hickory_proto::rr::Record]) -> Vec<(String, Option<Vec<u8>>)> {
    let strings = answers.iter().filter_map(|r| match &r.data {
        RData::TXT(t) => Some(t.txt_data.iter()),
        _ => None,
    });
    strings
        .flatten()
        .map(|s| match s.iter().position(|b| *b == b'=') {
            Some(i) => (
                String::from_utf8_lossy(&s[..i]).into_owned(),
                Some(s[i + 1..].to_vec()),
            ),
            None => (String::from_utf8_lossy(s).into_owned(), None),
        })
        .collect()
}

async fn resolve_instance(
    resolver: &Resolver<hickory_resolver::net::runtime::TokioRuntimeProvider>,
    domain: &str,
    inst: &hickory_proto::rr::Name,
) -> Option<Beacon> {
    let srv_l = resolver.lookup(inst.clone(), RecordType::SRV).await.ok()?;
    let srv = srv_l.answers().iter().find_map(|r| match &r.data {
        RData::SRV(s) => Some(s.clone()),
        _ => None,
    })?;
    let txt = match resolver.lookup(inst.clone(), RecordType::TXT).await {
        Ok(l) => txt_pairs(l.answers()),
        Err(_) => Vec::new(),
    };
    let addrs: Vec<IpAddr> = match resolver.lookup_ip(srv.target.clone()).await {
        Ok(ips) => ips.iter().collect(),
        Err(_) => Vec::new(),
    };
    let label = inst
        .iter()
        .next()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .unwrap_or_default();
    make_beacon(
        label,
        &format!("{domain}."),
        &srv.target.to_ascii(),
        srv.port,
        addrs,
        sanitize_txt(txt),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(valid_host("studio-openclaw.local"));
        assert!(!valid_host("-oProxyCommand=x"));
        assert!(!valid_host("a b.local"));
        let t = sanitize_txt(vec![
            ("lanHost".to_string(), Some(b"-oProxyCommand=evil".to_vec())),
            ("role".to_string(), Some(b"gateway".to_vec())),
            ("bin".to_string(), Some(vec![0xff, 0xfe])),
            ("big".to_string(), Some(vec![b'a'; 300])),
        ]);
        assert_eq!(t.keys().collect::<Vec<_>>(), ["role"]);
        assert_eq!(unescape_instance("Test\\032Gateway\\.x"), "Test Gateway.x");
    }

    #[test]
    fn ws_url_from_srv_and_tls_hint() {
        let mut txt = BTreeMap::new();
        txt.insert("gatewayTls".to_string(), "1".to_string());
        txt.insert("gatewayTlsSha256".to_string(), "AB".repeat(32));
        let b = make_beacon(
            "S".into(),
            "local.",
            "gw.local.",
            18789,
            vec!["10.0.0.2".parse().expect("lit")],
            txt,
        )
        .expect("valid");
        assert_eq!(b.ws_url, "wss://gw.local:18789");
        assert_eq!(b.tls_fingerprint_hint, Some("ab".repeat(32)));
        assert!(b.plaintext_allowed);
        let b = make_beacon(
            "S".into(),
            "x.",
            "gw.x.",
            1,
            vec!["100.64.0.1".parse().expect("lit")],
            BTreeMap::new(),
        )
        .expect("valid");
        assert_eq!(b.ws_url, "ws://gw.x:1");
        assert!(!b.plaintext_allowed);
    }
}

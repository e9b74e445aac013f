//! Candidate endpoints for transport selection and the rules that judge them: turning discovered
//! beacons into URLs (SRV port + resolved A/AAAA, TLS server name = SRV host), the tailnet
//! candidates (`wss://` only), and the plaintext rule for `ws://` URLs.
//!
//! Invariants: TXT never routes — `lanHost`, `tailnetDns`, `gatewayPort` are ignored here and an
//! advertised `gatewayTlsSha256` only becomes [`TlsOpts::hint`]; `ws://` is allowed only when
//! every address of the host is loopback or private LAN (discovery.md §5, threats.md TN-2); a
//! tailnet name never gets a plaintext candidate.

use std::io::{BufRead, IsTerminal};
use std::net::IpAddr;
use std::time::Duration;

use super::endpoints::SavedEndpoint;
use super::TlsOpts;
use crate::discovery::browse::{self, Beacon};
use crate::net_class::{classify, AddrClass};

/// One endpoint to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub url: String,
    /// TLS server name when the URL holds an address (the SRV host).
    pub server_name: Option<String>,
    /// A pin that must match (configured fingerprint).
    pub fingerprint: Option<String>,
    /// Advertised fingerprint (display only).
    pub hint: Option<String>,
    /// What to call it in the report and the pick list.
    pub label: String,
    /// Why it cannot be used (listed, never tried).
    pub unusable: Option<String>,
}

impl Candidate {
    pub fn plain(url: &str, fingerprint: Option<String>) -> Candidate {
        Candidate {
            url: url.to_string(),
            server_name: None,
            fingerprint,
            hint: None,
            label: url.to_string(),
            unusable: None,
        }
    }

    pub fn saved(s: &SavedEndpoint) -> Candidate {
        Candidate {
            url: s.url.clone(),
            server_name: s.server_name.clone(),
            fingerprint: None,
            hint: None,
            label: format!(
                "saved endpoint {}",
                s.name.as_deref().unwrap_or(s.url.as_str())
            ),
            unusable: None,
        }
    }

    /// `base` with this candidate's TLS name and pin (never its advertised hint).
    pub fn tls_opts(&self, base: &TlsOpts) -> TlsOpts {
        let mut t = base.clone();
        if self.server_name.is_some() {
            t.server_name = self.server_name.clone();
        }
        if t.fingerprint.is_none() {
            t.fingerprint = self.fingerprint.clone();
        }
        t
    }

    /// One line for the pick list.
    pub fn describe(&self) -> String {
        let mut s = format!("{} — {}", self.label, self.url);
        if let Some(n) = &self.server_name {
            s.push_str(&format!(" (TLS name {n})"));
        }
        if let Some(h) = &self.hint {
            s.push_str(&format!(" [advertised TLS sha256 {h}: a hint, not a pin]"));
        }
        s
    }
}

/// Host and port of a `ws(s)://` URL (brackets stripped).
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let (tls, rest) = match url.split_once("://")? {
        ("wss", r) => (true, r),
        ("ws", r) => (false, r),
        _ => return None,
    };
    let authority = rest.split('/').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && (h.starts_with('[') || !h.contains(':')) => {
            (h, p.parse().ok()?)
        }
        _ => (authority, if tls { 443 } else { 80 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// The plaintext rule on an effective URL, returning the URL to dial: `wss://` unchanged; `ws://`
/// only to a host whose every address is loopback or private LAN, and a host name is replaced by
/// the first vetted address, so the connection goes where the check looked (a second DNS answer
/// cannot move it to a tailnet or public address).
pub async fn vet(url: &str) -> Result<String, String> {
    if url.starts_with("wss://") {
        return Ok(url.to_string());
    }
    let Some((host, port)) = host_port(url) else {
        return Err(format!("{url} is not a ws:// or wss:// URL"));
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return judge(&[ip], &host).map(|_| url.to_string());
    }
    let addrs: Vec<IpAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .map(|a| a.ip())
        .collect();
    let ip = judge(&addrs, &host)?;
    let path = url
        .strip_prefix("ws://")
        .and_then(|r| r.find('/').map(|i| &r[i..]))
        .unwrap_or("");
    Ok(format!("ws://{}{path}", sock(ip, port)))
}

/// The first address when every one is plaintext-eligible.
fn judge(addrs: &[IpAddr], host: &str) -> Result<IpAddr, String> {
    if let Some(ip) = addrs.iter().find(|ip| !plaintext_class(**ip)) {
        return Err(format!(
            "plaintext ws:// to {ip} ({:?}) is refused: tailnet and public routes need wss:// (Serve or gateway TLS)",
            classify(*ip)
        ));
    }
    addrs
        .first()
        .copied()
        .ok_or_else(|| format!("{host} has no addresses"))
}

fn plaintext_class(ip: IpAddr) -> bool {
    let c = classify(ip);
    c == AddrClass::Loopback || c.is_lan()
}

/// Candidates for a discovered beacon: SRV port on the resolved addresses.
pub fn from_beacon(b: &Beacon) -> Candidate {
    let label = format!("{} ({})", b.instance_name, b.domain);
    let tls = b.tls_hint;
    let usable_ip = b
        .addresses
        .iter()
        .find(|ip| tls || plaintext_class(**ip))
        .copied();
    let scheme = if tls { "wss" } else { "ws" };
    let (url, unusable) = match usable_ip {
        Some(ip) => (format!("{scheme}://{}", sock(ip, b.port)), None),
        None if b.addresses.is_empty() => (
            b.ws_url.clone(),
            Some("no A/AAAA for the SRV target".to_string()),
        ),
        None => (
            b.ws_url.clone(),
            Some(
                "plaintext to a tailnet/public address is refused; the gateway advertises no TLS"
                    .to_string(),
            ),
        ),
    };
    Candidate {
        url,
        server_name: tls.then(|| b.host.clone()),
        fingerprint: None,
        hint: b.tls_fingerprint_hint.clone(),
        label,
        unusable,
    }
}

fn sock(ip: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

/// Browses `local.` and each domain; a failed browse is kept as an error, never hidden.
pub async fn discover(domains: &[String], timeout: Duration) -> (Vec<Candidate>, Vec<String>) {
    let mut errors = Vec::new();
    let mut beacons = browse::browse_mdns(timeout).await.unwrap_or_else(|e| {
        errors.push(format!("mDNS: {e}"));
        Vec::new()
    });
    for d in domains {
        match browse::browse_wide_area(d).await {
            Ok(b) => beacons.extend(b),
            Err(e) => errors.push(format!("{d}: {e}")),
        }
    }
    (beacons.iter().map(from_beacon).collect(), errors)
}

/// Why discovery gave nothing usable.
pub fn nothing_found(found: &[Candidate], errors: &[String], domains: &[String]) -> String {
    let where_ = if domains.is_empty() {
        "local.".to_string()
    } else {
        format!("local. and {}", domains.join(", "))
    };
    match found.first() {
        None if !errors.is_empty() => format!("browse failed ({})", errors.join("; ")),
        None => format!("no _openclaw-gw._tcp beacon on {where_}"),
        Some(c) => format!(
            "{} beacon(s) on {where_}, none usable ({}: {})",
            found.len(),
            c.label,
            c.unusable.as_deref().unwrap_or("?")
        ),
    }
}

/// Tailnet candidates: Serve on 443, then direct gateway TLS on `port`; never plaintext.
pub fn tailnet(name: &str, port: u16) -> Vec<Candidate> {
    let host = if name.contains(':') && !name.starts_with('[') {
        format!("[{name}]")
    } else {
        name.to_string()
    };
    let mut serve = Candidate::plain(&format!("wss://{host}"), None);
    serve.label = format!("tailnet {name} via Serve (443)");
    let mut direct = Candidate::plain(&format!("wss://{host}:{port}"), None);
    direct.label = format!("tailnet {name} direct TLS ({port})");
    vec![serve, direct]
}

/// Asks on the terminal (stderr prompt, one stdin line, read off the async runtime); empty when
/// stdin is not a terminal.
pub async fn ask(prompt: impl Into<String>) -> String {
    let prompt = prompt.into();
    tokio::task::spawn_blocking(move || {
        if !std::io::stdin().is_terminal() {
            return String::new();
        }
        eprint!("{prompt}");
        let _ = std::io::Write::flush(&mut std::io::stderr());
        let mut s = String::new();
        let _ = std::io::stdin().lock().read_line(&mut s);
        s
    })
    .await
    .unwrap_or_default()
}

#[cfg(test)]
#[path = "candidates_tests.rs"]
mod tests;

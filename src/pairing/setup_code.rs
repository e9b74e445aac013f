//! Setup codes (protocol.md §15.2–§15.5): the v3 payload
//! `{url, urls?, bootstrapToken, expiresAtMs?, tlsFingerprint?}` as compact JSON,
//! base64url without padding, and the plaintext rule for the URLs it carries.
//!
//! Invariant: a `ws://` URL whose host is a tailnet (100.64.0.0/10,
//! fd7a:115c:a1e0::/48) or public address is never emitted.

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// The setup-code payload, fields in wire order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetupPayload {
    pub url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    pub bootstrap_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_fingerprint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupUrlError {
    #[error("{0:?} is not a ws:// or wss:// URL without credentials, query or fragment")]
    Malformed(String),
    #[error("{0} would send pairing in plaintext over a tailnet or public address; use wss:// (Tailscale Serve) or an SSH tunnel")]
    PlaintextNotPrivate(String),
}

/// Whether `ip` may carry plaintext `ws://` (loopback, RFC 1918, link-local, ULA
/// other than Tailscale's range).
pub fn plaintext_ok_ip(ip: IpAddr) -> bool {
    match crate::auth::ratelimit::canonical_ip(ip) {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let ula = (s[0] & 0xfe00) == 0xfc00;
            let tailscale = s[0] == 0xfd7a && s[1] == 0x115c && s[2] == 0xa1e0;
            v6.is_loopback() || (s[0] & 0xffc0) == 0xfe80 || (ula && !tailscale)
        }
    }
}

/// Validates a URL for a setup code and returns it normalised.
pub fn check_url(url: &str) -> Result<String, SetupUrlError> {
    let bad = || SetupUrlError::Malformed(url.to_string());
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let scheme = scheme.to_ascii_lowercase();
    if !(scheme == "ws" || scheme == "wss") || rest.is_empty() || rest.contains(['?', '#', '@']) {
        return Err(bad());
    }
    let authority = rest.split('/').next().unwrap_or("");
    let host = crate::auth::origin::host_part(authority);
    if host.is_empty() {
        return Err(bad());
    }
    if scheme == "ws" {
        let named_ok = host == "localhost" || host.ends_with(".local");
        let ip_ok = host.parse::<IpAddr>().is_ok_and(plaintext_ok_ip);
        if !(named_ok || ip_ok) {
            return Err(SetupUrlError::PlaintextNotPrivate(url.to_string()));
        }
    }
    Ok(format!("{scheme}://{}", rest.trim_end_matches('/')))
}

/// Encodes the payload as a setup code.
pub fn encode(p: &SetupPayload) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(p).unwrap_or_default())
}

/// Decodes a setup code in any accepted form (bare, `oc-pair://…`, JSON with `setupCode`).
pub fn decode(input: &str) -> Option<SetupPayload> {
    let t = input.trim();
    // `get`, not indexing: byte 10 may fall inside a multi-byte character (found by fuzzing).
    let scheme = t
        .get(..10)
        .filter(|p| t.len() > 10 && p.eq_ignore_ascii_case("oc-pair://"));
    let code = if scheme.is_some() {
        t[10..].to_string()
    } else if t.starts_with('{') {
        serde_json::from_str::<serde_json::Value>(t)
            .ok()?
            .get("setupCode")?
            .as_str()?
            .to_string()
    } else {
        t.to_string()
    };
    if code.is_empty()
        || !code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(code).ok()?).ok()
}

/// A terminal rendering of `data` as a QR code (two rows per line).
pub fn qr_text(data: &str) -> Option<String> {
    let code = qrcode::QrCode::new(data.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::unicode::Dense1x2>()
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (fuzzing, tests/fuzz/seeds/setup_code/multibyte): a multi-byte character
    /// across byte 10 panicked on the `oc-pair://` prefix check.
    #[test]
    fn decoding_never_slices_inside_a_character() {
        assert_eq!(decode("oc-pair:/\u{e9}xyz"), None);
        assert_eq!(decode("\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}"), None);
    }

    #[test]
    fn matches_the_spec_vector() {
        let p = SetupPayload {
            url: "wss://gw.tailnet-abc.ts.net".into(),
            urls: vec![],
            bootstrap_token: "q8Zc3m0XbqkV9m1o2cV4yJ8a6t0Hn3rW5eL7uP1sD2A".into(),
            expires_at_ms: Some(1_790_605_809_429),
            tls_fingerprint: None,
        };
        let code = encode(&p);
        assert_eq!(code, "eyJ1cmwiOiJ3c3M6Ly9ndy50YWlsbmV0LWFiYy50cy5uZXQiLCJib290c3RyYXBUb2tlbiI6InE4WmMzbTBYYnFrVjltMW8yY1Y0eUo4YTZ0MEhuM3JXNWVMN3VQMXNEMkEiLCJleHBpcmVzQXRNcyI6MTc5MDYwNTgwOTQyOX0");
        assert_eq!(decode(&code), Some(p.clone()));
        assert_eq!(decode(&format!("OC-PAIR://{code}")), Some(p.clone()));
        assert_eq!(decode(&format!(r#"{{"setupCode":"{code}"}}"#)), Some(p));
        assert_eq!(decode("not a code!"), None);
    }

    #[test]
    fn plaintext_only_on_private_networks() {
        assert!(check_url("ws://192.168.1.10:18789").is_ok());
        assert!(check_url("ws://[fe80::1]:18789").is_ok());
        assert!(check_url("ws://gw.local:18789").is_ok());
        assert!(check_url("wss://gw.tail-abc.ts.net").is_ok());
        assert!(matches!(
            check_url("ws://100.101.102.103:18789"),
            Err(SetupUrlError::PlaintextNotPrivate(_))
        ));
        assert!(matches!(
            check_url("ws://[fd7a:115c:a1e0::1]:18789"),
            Err(SetupUrlError::PlaintextNotPrivate(_))
        ));
        assert!(matches!(
            check_url("ws://8.8.8.8:18789"),
            Err(SetupUrlError::PlaintextNotPrivate(_))
        ));
        assert!(matches!(
            check_url("ws://gw.example.com"),
            Err(SetupUrlError::PlaintextNotPrivate(_))
        ));
        assert!(matches!(
            check_url("wss://u:p@gw.example.com"),
            Err(SetupUrlError::Malformed(_))
        ));
        assert!(matches!(
            check_url("wss://gw.example.com/?token=x"),
            Err(SetupUrlError::Malformed(_))
        ));
        assert_eq!(
            check_url("WSS://gw.example.com/ctx/").unwrap(),
            "wss://gw.example.com/ctx"
        );
    }

    #[test]
    fn renders_a_qr() {
        assert!(qr_text("oc-pair://abc").unwrap().lines().count() > 10);
    }
}

//! `ipn.ServeConfig` (tailscale.md §2.3) and its ETag.
//!
//! Invariants: a config read from tailscaled and written back unchanged is semantically identical
//! JSON — every struct keeps the fields it does not model in `extra`, `Services` is kept opaque, and
//! empty/zero fields are omitted exactly as Go's `omitempty` does. The gateway edits only its own
//! entries and must never clobber foreign routes; POSTing replaces the whole config, so a lossy
//! round-trip would be a global wipe in disguise.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::types::nullable;

/// Unknown JSON fields kept verbatim for the round-trip.
pub type Extra = serde_json::Map<String, serde_json::Value>;

fn is_false(b: &bool) -> bool {
    !*b
}

/// The opaque serve-config ETag (hex SHA-256 of the JSON, compared verbatim by tailscaled).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ETag(pub String);

impl std::fmt::Display for ETag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The whole serve configuration of a node. `GET serve-config` answering `null` decodes as the
/// default (empty) value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServeConfig {
    /// Port (as a decimal string) → TCP handler.
    #[serde(
        rename = "TCP",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub tcp: BTreeMap<String, TcpPortHandler>,
    /// `"<fqdn>:<port>"` → web server.
    #[serde(
        rename = "Web",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub web: BTreeMap<String, WebServerConfig>,
    /// `"<fqdn>:<port>"` → Funnel allowed.
    #[serde(
        rename = "AllowFunnel",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub allow_funnel: BTreeMap<String, bool>,
    /// Tailscale Services (`"svc:<name>"`), never edited by the gateway: kept opaque.
    #[serde(
        rename = "Services",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "serde_json::Map::is_empty"
    )]
    pub services: serde_json::Map<String, serde_json::Value>,
    /// IPN-bus session id → that session's foreground config (vanishes when its watch closes).
    #[serde(
        rename = "Foreground",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub foreground: BTreeMap<String, ServeConfig>,
    /// Fields this build does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ServeConfig {
    /// True when nothing is configured at all.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Every TCP port served by the background config or any foreground session, with the
    /// session id that owns it (`None` = background).
    pub fn served_ports(&self) -> Vec<(String, Option<&str>)> {
        let mut out: Vec<_> = self.tcp.keys().map(|p| (p.clone(), None)).collect();
        for (sid, fg) in &self.foreground {
            out.extend(fg.tcp.keys().map(|p| (p.clone(), Some(sid.as_str()))));
        }
        out
    }
}

/// `ipn.TCPPortHandler`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TcpPortHandler {
    /// Terminate TLS and serve the matching `Web` entry.
    #[serde(rename = "HTTPS", default, skip_serializing_if = "is_false")]
    pub https: bool,
    /// Plain HTTP via `Web`.
    #[serde(rename = "HTTP", default, skip_serializing_if = "is_false")]
    pub http: bool,
    /// Raw TCP forward target, e.g. `127.0.0.1:8443`.
    #[serde(
        rename = "TCPForward",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tcp_forward: Option<String>,
    /// With `TCPForward`: terminate TLS, permitting only this SNI.
    #[serde(
        rename = "TerminateTLS",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub terminate_tls: Option<String>,
    /// PROXY protocol version (1 or 2) sent to the target (v1.92+).
    #[serde(
        rename = "ProxyProtocol",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub proxy_protocol: Option<u8>,
    /// Fields this build does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `ipn.WebServerConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebServerConfig {
    /// Mount path → handler.
    #[serde(
        rename = "Handlers",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub handlers: BTreeMap<String, HttpHandler>,
    /// Fields this build does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `ipn.HTTPHandler` — exactly one of `Proxy`, `Path`, `Text`, `Redirect`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpHandler {
    /// Reverse-proxy target, e.g. `http://127.0.0.1:3000`.
    #[serde(rename = "Proxy", default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// File or directory (local admin only).
    #[serde(rename = "Path", default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Literal body.
    #[serde(rename = "Text", default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `[3xx:]url` redirect.
    #[serde(rename = "Redirect", default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<String>,
    /// Peer capabilities forwarded as `Tailscale-App-Capabilities`.
    #[serde(
        rename = "AcceptAppCaps",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub accept_app_caps: Option<Vec<String>>,
    /// Fields this build does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config as tailscaled could return it, with fields and entries this build does not model.
    const FOREIGN: &str = r#"{
      "TCP": {"443": {"HTTPS": true}, "22": {"TCPForward": "127.0.0.1:22", "FutureKnob": 3},
              "8443": {"TCPForward": "127.0.0.1:9", "TerminateTLS": "gw.ts.net", "ProxyProtocol": 2}},
      "Web": {"gw.ts.net:443": {"Handlers": {"/": {"Proxy": "http://127.0.0.1:3000",
              "AcceptAppCaps": ["example.com/cap/x"]}, "/t": {"Text": "hi", "NewField": {"a": [1]}}}}},
      "AllowFunnel": {"gw.ts.net:443": true},
      "Services": {"svc:db": {"TCP": {"5432": {"TCPForward": "127.0.0.1:5432"}}, "Tun": false}},
      "Foreground": {"abc123": {"TCP": {"10000": {"HTTPS": true}}, "Unknown": "x"}},
      "ETagHint": "z"
    }"#;

    #[test]
    fn foreign_fields_round_trip_exactly() {
        let original: serde_json::Value = serde_json::from_str(FOREIGN).unwrap();
        let cfg: ServeConfig = serde_json::from_str(FOREIGN).unwrap();
        assert_eq!(cfg.tcp["22"].extra["FutureKnob"], 3);
        assert_eq!(cfg.tcp["8443"].proxy_protocol, Some(2));
        assert!(cfg.foreground["abc123"].tcp["10000"].https);
        let back = serde_json::to_value(&cfg).unwrap();
        assert_eq!(back, original);
    }

    #[test]
    fn null_and_empty_decode_as_empty_and_serialize_as_empty_object() {
        let cfg: ServeConfig = serde_json::from_str("null")
            .map(Option::unwrap_or_default)
            .unwrap();
        assert!(cfg.is_empty());
        let cfg: ServeConfig = serde_json::from_str(r#"{"TCP":null,"Web":{}}"#).unwrap();
        assert!(cfg.is_empty());
        assert_eq!(serde_json::to_string(&cfg).unwrap(), "{}");
    }

    #[test]
    fn served_ports_include_foreground_owners() {
        let cfg: ServeConfig = serde_json::from_str(FOREIGN).unwrap();
        let ports = cfg.served_ports();
        assert!(ports.contains(&("443".into(), None)));
        assert!(ports.contains(&("10000".into(), Some("abc123"))));
    }
}

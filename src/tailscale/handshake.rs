//! The one-line JSON handshake of `clawgate-tsnet` (and the `localapi` object it shares with the
//! testnet manifest):
//!
//! `{"v":1,"localapi":{"network":"tcp","address":"127.0.0.1:PORT","password":"…"},
//!   "dnsName":"london.<suffix>.","tailscaleIPs":["100.x.y.z","fd7a:…"],"hostname":"london"}`
//!
//! Invariants: only version [`HANDSHAKE_VERSION`] is accepted; unknown fields are ignored (the
//! sidecar may add some); a TCP LocalAPI must be loopback; the password never appears in
//! `Debug` output.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::api::Endpoint;
use super::error::LocalApiError;

/// The handshake version this build speaks.
pub const HANDSHAKE_VERSION: u32 = 1;
/// Bound on the handshake line (it is a few hundred bytes).
pub const MAX_HANDSHAKE_LINE: usize = 64 << 10;

/// The `localapi` object: `{"network":"tcp"|"unix","address":…,"password":…}`.
#[derive(Clone, Deserialize)]
pub struct EndpointSpec {
    /// `tcp` or `unix`.
    pub network: String,
    /// `127.0.0.1:PORT` or a socket path.
    pub address: String,
    /// TCP password.
    #[serde(default)]
    pub password: Option<String>,
}

impl std::fmt::Debug for EndpointSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EndpointSpec({}:{})", self.network, self.address)
    }
}

impl EndpointSpec {
    /// Converts to a client endpoint.
    pub fn to_endpoint(&self) -> Result<Endpoint, LocalApiError> {
        match self.network.as_str() {
            "unix" => Ok(Endpoint::Unix(PathBuf::from(&self.address))),
            "tcp" => {
                let addr = self.address.parse().map_err(|e| {
                    LocalApiError::InvalidArgument(format!(
                        "LocalAPI address {:?}: {e}",
                        self.address
                    ))
                })?;
                let password = self.password.clone().unwrap_or_default();
                if password.is_empty() {
                    return Err(LocalApiError::InvalidArgument(
                        "TCP LocalAPI without a password".into(),
                    ));
                }
                Endpoint::tcp(addr, password)
            }
            other => Err(LocalApiError::InvalidArgument(format!(
                "unknown LocalAPI network {other:?}"
            ))),
        }
    }
}

/// A parsed sidecar handshake.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handshake {
    /// Format version.
    pub v: u32,
    /// Where the sidecar's LocalAPI listens.
    pub localapi: EndpointSpec,
    /// MagicDNS FQDN with trailing dot.
    #[serde(default)]
    pub dns_name: String,
    /// Node addresses.
    #[serde(default, rename = "tailscaleIPs")]
    pub tailscale_ips: Vec<IpAddr>,
    /// Short hostname control assigned.
    #[serde(default)]
    pub hostname: String,
}

impl Handshake {
    /// Parses and checks one handshake line.
    pub fn parse(line: &[u8]) -> Result<(Self, Endpoint), LocalApiError> {
        let hs: Self = serde_json::from_slice(line).map_err(|source| LocalApiError::Decode {
            what: "sidecar handshake",
            source,
        })?;
        if hs.v != HANDSHAKE_VERSION {
            return Err(LocalApiError::InvalidArgument(format!(
                "sidecar handshake version {} (this clawgate speaks {HANDSHAKE_VERSION}): install matching clawgate and clawgate-tsnet builds",
                hs.v
            )));
        }
        let ep = hs.localapi.to_endpoint()?;
        Ok((hs, ep))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_and_unix_handshakes_parse() {
        let line = br#"{"v":1,"localapi":{"network":"tcp","address":"127.0.0.1:4321","password":"abc"},"dnsName":"london.tail-scale.ts.net.","tailscaleIPs":["100.64.0.1","fd7a:115c:a1e0::1"],"hostname":"london","future":1}"#;
        let (hs, ep) = Handshake::parse(line).unwrap();
        assert_eq!(hs.hostname, "london");
        assert_eq!(hs.tailscale_ips.len(), 2);
        assert_eq!(
            ep,
            Endpoint::tcp("127.0.0.1:4321".parse().unwrap(), "abc").unwrap()
        );
        assert!(!format!("{hs:?}").contains("abc"));
        let line = br#"{"v":1,"localapi":{"network":"unix","address":"/run/ts.sock"}}"#;
        assert_eq!(
            Handshake::parse(line).unwrap().1,
            Endpoint::Unix("/run/ts.sock".into())
        );
    }

    #[test]
    fn bad_handshakes_are_refused() {
        for line in [
            &br#"{"v":2,"localapi":{"network":"unix","address":"/x"}}"#[..],
            br#"{"v":1,"localapi":{"network":"tcp","address":"10.1.1.1:1","password":"p"}}"#,
            br#"{"v":1,"localapi":{"network":"tcp","address":"127.0.0.1:1"}}"#,
            br#"{"v":1,"localapi":{"network":"pipe","address":"x"}}"#,
            b"not json",
        ] {
            assert!(Handshake::parse(line).is_err());
        }
    }
}

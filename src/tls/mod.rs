//! Gateway TLS (`gateway.tls.*`, config.md §6; threats.md §4): the certificate pair on disk, its
//! fingerprint, the rustls server configuration every gateway listener serves, and the pinned
//! client configuration clawgate's own CLI uses against its own gateway.
//!
//! Owns: resolving the TLS keys to paths ([`TlsSettings`]), the fingerprint format
//! ([`fingerprint`]), and the submodules: [`cert`] (generate / load / rotate the pair),
//! [`server`] (the hot-swappable certificate behind one `ServerConfig`), [`accept`] (the
//! handshake inside the pre-auth budget, plaintext detection) and [`client`] (a verifier pinned
//! to the gateway's own leaf).
//!
//! Invariants: TLS 1.3 only, ring provider; the fingerprint is SHA-256 over the leaf DER as 64
//! lowercase hex, the same string in the banner, `status`, TXT and setup codes; a missing pair is
//! generated only when `autoGenerate` is not `false`, and an existing pair is never re-issued
//! except by `clawgate tls rotate` (pins survive address changes); TLS enabled but unusable is a
//! start failure, never a silent fallback to plaintext.

pub mod accept;
pub mod cert;
pub mod client;
pub mod server;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio_rustls::rustls;

use crate::config::Settings;

/// A TLS problem at a module boundary: which file, what went wrong, how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source} (fix: check gateway.tls.certPath/keyPath and permissions, or enable gateway.tls.autoGenerate)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source} (fix: check the state dir's permissions)")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {problem} (fix: {fix})")]
    Invalid {
        path: PathBuf,
        problem: String,
        fix: &'static str,
    },
    #[error("the certificate does not match the private key ({0}) (fix: install the key that belongs to the certificate)")]
    Mismatch(String),
    #[error("no TLS certificate at {0} and gateway.tls.autoGenerate is false (fix: install a PEM pair or set autoGenerate to true)")]
    Missing(PathBuf),
    #[error("certificate generation failed: {0}")]
    Generate(String),
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// `gateway.tls` resolved to files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// Extra chain certificates served after the leaf (`caPath`).
    pub ca_path: Option<PathBuf>,
    /// Generate a missing pair (`autoGenerate`, default true).
    pub auto_generate: bool,
}

impl TlsSettings {
    /// The TLS settings when `gateway.tls.enabled` is true.
    pub fn from_settings(s: &Settings) -> Option<TlsSettings> {
        let t = &s.file.gateway.tls;
        if !t.enabled {
            return None;
        }
        let home = &s.paths.home;
        let dir = default_dir(&s.paths.state_dir);
        let path = |p: &Option<String>, default: &str| match p.as_deref().map(str::trim) {
            Some(p) if !p.is_empty() => expand(p, home),
            _ => dir.join(default),
        };
        Some(TlsSettings {
            cert_path: path(&t.cert_path, CERT_FILE),
            key_path: path(&t.key_path, KEY_FILE),
            ca_path: t
                .ca_path
                .as_deref()
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| expand(p, home)),
            auto_generate: t.auto_generate != Some(false),
        })
    }
}

/// File name of the auto-generated certificate.
pub const CERT_FILE: &str = "gateway-cert.pem";
/// File name of the auto-generated private key.
pub const KEY_FILE: &str = "gateway-key.pem";

/// `<stateDir>/gateway/tls`, the reference's location of the generated pair.
pub fn default_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("gateway").join("tls")
}

fn expand(p: &str, home: &Path) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None => PathBuf::from(p),
    }
}

/// DNS names this host is known by beyond the host name: the MagicDNS name from
/// `OPENCLAW_TAILNET_DNS` when set (the exposure learns it later; a certificate is never
/// re-issued for it, so `clawgate tls rotate` after Tailscale is up adds it).
pub fn known_dns_names() -> Vec<String> {
    crate::config::process_env("OPENCLAW_TAILNET_DNS")
        .into_iter()
        .collect()
}

/// SHA-256 over `der`, 64 lowercase hex (config.md §6).
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// SHA-256 of a certificate's SubjectPublicKeyInfo (64 lowercase hex): stable across a re-issue
/// that keeps the key (threats.md TLS-3). `None` when the DER does not parse.
pub fn spki_fingerprint(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(hex::encode(Sha256::digest(cert.public_key().raw)))
}

/// The process-wide crypto provider (ring).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Protocol versions served and spoken: TLS 1.3 only.
pub const VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_64_lowercase_hex() {
        let f = fingerprint(b"abc");
        assert_eq!(
            f,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn defaults_follow_the_reference_locations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("openclaw.json");
        std::fs::write(&path, "{ gateway: { tls: { enabled: true } } }").unwrap();
        let over = crate::config::Overrides {
            config: Some(path),
            token: Some("q8Zc3m0XbqkV9m1o2cV4yJ8a".into()),
            ..Default::default()
        };
        let home = dir.path().to_str().unwrap().to_string();
        let mut s =
            crate::config::load(&over, &move |k| (k == "HOME").then(|| home.clone())).unwrap();
        let t = TlsSettings::from_settings(&s).unwrap();
        assert_eq!(
            t.cert_path,
            s.paths.state_dir.join("gateway/tls/gateway-cert.pem")
        );
        assert_eq!(
            t.key_path,
            s.paths.state_dir.join("gateway/tls/gateway-key.pem")
        );
        assert!(t.auto_generate);
        s.file.gateway.tls.enabled = false;
        assert!(TlsSettings::from_settings(&s).is_none());
    }
}

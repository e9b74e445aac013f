//! One rustls `ServerConfig` for every gateway listener, with a certificate that can be swapped
//! while the gateway runs (file replacement or SIGHUP, `server::reload`).
//!
//! Invariants: the `ServerConfig` is built once (TLS 1.3 only, ALPN `h2` then `http/1.1`) and
//! resolves the certificate per handshake from [`CertSlot`], so a swap affects new handshakes
//! only — open connections keep the session they negotiated; a new pair is swapped in only after
//! it loaded and its key matched its leaf, otherwise the old pair stays and the reason is
//! returned; the stamp of the files is recorded after every attempt, so a refused pair is not
//! retried until the files change again.

use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;

use super::cert::{self, Loaded, Names};
use super::{provider, TlsError, TlsSettings, VERSIONS};

/// ALPN protocols offered, in preference order (RFC 8441 WebSockets need `h2`).
pub const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// The pair currently served.
#[derive(Debug)]
struct CertSlot(RwLock<Loaded>);

impl CertSlot {
    fn get(&self) -> Loaded {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set(&self, l: Loaded) {
        match self.0.write() {
            Ok(mut g) => *g = l,
            Err(p) => *p.into_inner() = l,
        }
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get().certified)
    }
}

/// Modification times (and lengths) of the files of a pair.
type Stamp = Vec<Option<(SystemTime, u64)>>;

fn stamp(t: &TlsSettings) -> Stamp {
    let files = [Some(&t.cert_path), Some(&t.key_path), t.ca_path.as_ref()];
    files
        .iter()
        .flatten()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    Unchanged,
    Swapped { old: String, new: String },
}

/// The gateway's TLS server state.
#[derive(Debug)]
pub struct TlsServer {
    pub settings: TlsSettings,
    config: Arc<ServerConfig>,
    slot: Arc<CertSlot>,
    stamp: Mutex<Stamp>,
    /// A certificate was generated at start.
    pub generated: bool,
}

fn build(slot: Arc<CertSlot>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_no_client_auth()
        .with_cert_resolver(slot);
    cfg.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    // No TLS 1.3 session tickets: gateway clients hold one long-lived connection and do not resume
    // (OpenClaw's Node clients open a fresh session per connect), so tickets would only cost every
    // handshake two extra records and a session-cache insert.
    cfg.send_tls13_tickets = 0;
    Ok(Arc::new(cfg))
}

impl TlsServer {
    /// Loads (or generates, see [`cert::ensure`]) the pair and builds the config.
    pub fn start(settings: TlsSettings, names: &Names) -> Result<TlsServer, TlsError> {
        let (loaded, generated) = cert::ensure(&settings, names)?;
        let slot = Arc::new(CertSlot(RwLock::new(loaded)));
        Ok(TlsServer {
            config: build(slot.clone())?,
            stamp: Mutex::new(stamp(&settings)),
            settings,
            slot,
            generated,
        })
    }

    /// The config every listener hands to rustls.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    /// SHA-256 of the leaf being served now.
    pub fn fingerprint(&self) -> String {
        self.slot.get().fingerprint
    }

    /// Loads the pair again and swaps it in when it differs; `force` skips the stamp check
    /// (SIGHUP). A bad pair is an error and the served one stays.
    pub fn reload(&self, force: bool) -> Result<Reloaded, TlsError> {
        let now = stamp(&self.settings);
        {
            let mut last = match self.stamp.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if !force && *last == now {
                return Ok(Reloaded::Unchanged);
            }
            *last = now;
        }
        let next = cert::load(&self.settings)?;
        let old = self.fingerprint();
        if next.fingerprint == old {
            return Ok(Reloaded::Unchanged);
        }
        let new = next.fingerprint.clone();
        self.slot.set(next);
        Ok(Reloaded::Swapped { old, new })
    }
}

/// A config with a fresh throwaway pair (unit tests).
#[cfg(test)]
pub fn test_config() -> Arc<ServerConfig> {
    let dir = tempfile::tempdir().unwrap();
    let t = TlsSettings {
        cert_path: dir.path().join("c.pem"),
        key_path: dir.path().join("k.pem"),
        ca_path: None,
        auto_generate: true,
    };
    TlsServer::start(t, &Names::default()).unwrap().config()
}

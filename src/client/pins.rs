//! TLS trust for clawgate's client: which certificate a `wss://` endpoint may present.
//!
//! Owns [`TlsOpts`] (everything the caller knows about trusting one endpoint) and [`open`], the
//! one function every client connection goes through to get a WebSocket.
//!
//! Invariants: a `wss://` certificate must match a pin — this host's own certificate, an explicit
//! one (`--tls-fingerprint`, `gateway.remote.tlsFingerprint`) or one stored for the endpoint in the
//! pin store; no pin ⇒ refused (fail closed, threats.md TLS-4) unless the first use is confirmed
//! (`--trust-fingerprint` equal to the presented certificate, or `yes` at a terminal), which stores
//! it. A stored pin is never replaced here: a different certificate is refused showing both
//! fingerprints. An advertised fingerprint never reaches this module (TLS-6). A refused certificate
//! is [`OpenError::Untrusted`], never mistaken for an unreachable endpoint; no credential is sent
//! before the certificate is accepted (the WebSocket upgrade follows the TLS handshake).
//! Where nothing is pinned for the endpoint, a certificate that verifies against the system's roots
//! (or `--ca-file`) for the host name is accepted without a pin (public `*.ts.net` certificates
//! renew silently, threats.md TLS-2).

use std::path::PathBuf;

use tokio_rustls::rustls;

use super::pinstore::{self, Confirmed};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::tls::client::{normalize, ClientWs, Io, StreamError};

/// What the caller knows about trusting one endpoint's certificate.
#[derive(Debug, Clone, Default)]
pub struct TlsOpts {
    /// A pin the certificate must match (`--tls-fingerprint` / `gateway.remote.tlsFingerprint`).
    pub fingerprint: Option<String>,
    /// Host name for SNI and verification when the URL holds an address (a discovered SRV host)
    /// or a tunnel's loopback (threats.md SSH-2).
    pub server_name: Option<String>,
    /// The gateway's own port when the URL is a tunnel's local end: pins stay keyed by the
    /// real endpoint (`host:port`), not by an ephemeral loopback port.
    pub pin_port: Option<u16>,
    /// This host's own gateway certificate fingerprints (trusted for loopback/own-host use).
    pub local_pins: Vec<String>,
    /// State dir of the pin store (`None`: no stored pins, nothing stored).
    pub store: Option<PathBuf>,
    /// `--trust-fingerprint`: confirms a first-use certificate with this fingerprint.
    pub trust: Option<String>,
    /// Ask on the terminal before trusting an unknown certificate.
    pub prompt: bool,
    /// Accept, without a pin, certificates that verify against the system's roots for the name.
    pub system_roots: bool,
    /// `--ca-file`: more roots (PEM) accepted like the system's.
    pub ca_file: Option<PathBuf>,
}

/// Why no WebSocket could be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Nothing answered, or not a gateway: the next transport step may be tried.
    #[error("{0}")]
    Unreachable(String),
    /// The certificate was refused: a trust failure that must stop the selection.
    #[error("gateway certificate refused: {0}")]
    Untrusted(String),
    /// The WebSocket upgrade failed.
    #[error("{0}")]
    Ws(#[from] WsError),
}

impl From<StreamError> for OpenError {
    fn from(e: StreamError) -> OpenError {
        match e {
            StreamError::Untrusted { err, .. } => OpenError::Untrusted(err.to_string()),
            StreamError::Url(w) => OpenError::Ws(w),
            other => OpenError::Unreachable(other.to_string()),
        }
    }
}

impl TlsOpts {
    /// The roots to verify unpinned certificates against (`None`: none configured).
    fn roots(&self) -> Result<Option<std::sync::Arc<rustls::RootCertStore>>, String> {
        if !self.system_roots && self.ca_file.is_none() {
            return Ok(None);
        }
        crate::tls::client::roots(self.system_roots, self.ca_file.as_deref()).map(Some)
    }

    fn pins(&self) -> Vec<String> {
        let mut pins = self.local_pins.clone();
        pins.extend(self.fingerprint.iter().cloned());
        pins
    }
}

/// Opens a WebSocket to `url` under the trust rules of `opts`.
pub async fn open(url: &str, opts: &TlsOpts) -> Result<ClientWs, OpenError> {
    let req = url.into_client_request()?;
    let io = open_stream(url, opts).await?;
    let (ws, _) = tokio_tungstenite::client_async(req, io).await?;
    Ok(ws)
}

/// Opens the TLS (or TCP for `ws://`) byte stream to `url` under `opts`, without a WebSocket
/// handshake (the forwarder relays the client's own upgrade).
pub async fn open_stream(url: &str, opts: &TlsOpts) -> Result<Box<dyn Io>, OpenError> {
    let server_name = opts.server_name.as_deref();
    let Some((store, key)) = pinned_endpoint(url, opts) else {
        return Ok(crate::tls::client::open_stream(url, &opts.pins(), server_name).await?);
    };
    let untrusted = |e: String| OpenError::Untrusted(e);
    let stored = pinstore::get(&store, &key).map_err(|e| untrusted(e.to_string()))?;
    let trust = match &opts.trust {
        Some(t) => Some(normalize(t).ok_or_else(|| {
            untrusted(format!(
                "--trust-fingerprint {t}: not a SHA-256 fingerprint (64 hex digits)"
            ))
        })?),
        None => None,
    };
    let mut pins = opts.pins();
    pins.extend(stored.iter().map(|p| p.sha256.clone()));
    if stored.is_none() {
        pins.extend(trust.iter().cloned());
    }
    // A pinned endpoint is held to its pin: roots apply only where nothing is pinned.
    let roots = if stored.is_none() && opts.fingerprint.is_none() {
        opts.roots().map_err(untrusted)?
    } else {
        None
    };
    let with_roots = roots.is_some();
    let spki: Vec<String> = stored
        .iter()
        .filter_map(|p| p.spki_sha256.clone())
        .collect();
    let with = crate::tls::client::Trust {
        pins: &pins,
        spki: &spki,
        roots,
    };
    match crate::tls::client::open_stream_seen(url, &with, server_name).await {
        Ok((io, seen)) => {
            // Accepted by the --trust-fingerprint pin alone (not an explicit one): store it.
            if let (None, Some(t), Some(seen)) = (&stored, &trust, &seen) {
                if &seen.sha256 == t && !opts.pins().contains(t) {
                    pinstore::add(&store, &key, seen, Confirmed::Flag)
                        .map_err(|e| untrusted(e.to_string()))?;
                }
            }
            Ok(io)
        }
        Err(StreamError::Untrusted {
            presented: Some(cert),
            err,
        }) => {
            let fp = cert.sha256.clone();
            let why = Refusal {
                key: &key,
                presented: &fp,
                stored: stored.as_ref().map(|p| p.sha256.as_str()),
                explicit: opts.fingerprint.as_deref(),
                trust: trust.as_deref(),
            };
            if why.may_prompt() && opts.prompt && confirm(&key, &fp).await {
                pinstore::add(&store, &key, &cert, Confirmed::Prompt)
                    .map_err(|e| untrusted(e.to_string()))?;
                pins.push(fp);
                return Ok(crate::tls::client::open_stream(url, &pins, server_name).await?);
            }
            tracing::debug!(error = %err, "certificate refused");
            let mut msg = why.message();
            if with_roots && why.may_prompt() {
                msg.push_str(&format!(" (system trust: {err})"));
            }
            Err(untrusted(msg))
        }
        Err(e) => Err(e.into()),
    }
}

/// The pin store and `host:port` key for a `wss://` URL with a store configured.
fn pinned_endpoint(url: &str, opts: &TlsOpts) -> Option<(PathBuf, String)> {
    let store = opts.store.clone()?;
    let req = url.into_client_request().ok()?;
    let uri = req.uri();
    if uri.scheme_str() != Some("wss") {
        return None;
    }
    let host = opts.server_name.as_deref().or(uri.host())?;
    Some((
        store,
        pinstore::endpoint_key(host, opts.pin_port.or(uri.port_u16()).unwrap_or(443)),
    ))
}

/// Why a presented certificate was refused, and the fix.
struct Refusal<'a> {
    key: &'a str,
    presented: &'a str,
    stored: Option<&'a str>,
    explicit: Option<&'a str>,
    trust: Option<&'a str>,
}

impl Refusal<'_> {
    /// Only a certificate nothing was said about may be confirmed at a prompt.
    fn may_prompt(&self) -> bool {
        self.stored.is_none() && self.explicit.is_none() && self.trust.is_none()
    }

    fn message(&self) -> String {
        let (k, fp) = (self.key, self.presented);
        if let Some(s) = self.stored {
            return format!("certificate for {k} changed: stored {s}, presented {fp}; if you rotated it deliberately run `clawgate pins forget {k}` then connect with --trust-fingerprint {fp}");
        }
        if let Some(x) = self.explicit {
            return format!("certificate for {k} is {fp}, not the required fingerprint {x} (--tls-fingerprint / gateway.remote.tlsFingerprint)");
        }
        if let Some(t) = self.trust {
            return format!(
                "certificate for {k} is {fp}, not the --trust-fingerprint {t}; nothing was stored"
            );
        }
        format!("certificate for {k} is not trusted yet (fingerprint {fp}); compare it with `clawgate tls fingerprint` on the gateway host, then run again with --trust-fingerprint {fp}")
    }
}

/// Asks on the terminal whether to trust `fp` for `key`.
async fn confirm(key: &str, fp: &str) -> bool {
    let question = format!(
        "The gateway at {key} presents a certificate this machine has not seen:\n  sha256 {fp}\nCompare it with `clawgate tls fingerprint` on the gateway host. Trust it? [yes/no] "
    );
    super::candidates::ask(question).await.trim() == "yes"
}

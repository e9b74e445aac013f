//! TLS trust for clawgate's client: which certificate a `wss://` endpoint may present.
//!
//! Owns [`TlsOpts`] (everything the caller knows about trusting one endpoint) and [`open`], the
//! one function every client connection goes through to get a WebSocket.
//!
//! Invariants: a `wss://` certificate must match a pin — this host's own certificate or an
//! explicit one (`--tls-fingerprint`, `gateway.remote.tlsFingerprint`); no pin ⇒ refused (fail
//! closed, threats.md TLS-4). An advertised fingerprint never reaches this module (TLS-6). A
//! refused certificate is [`OpenError::Untrusted`], never mistaken for an unreachable endpoint.
//! Not yet: a pin store with first-use confirmation and system-trust verification (issue 16).

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::tls::client::{ClientWs, Io, StreamError};

/// What the caller knows about trusting one endpoint's certificate.
#[derive(Debug, Clone, Default)]
pub struct TlsOpts {
    /// A pin the certificate must match (`--tls-fingerprint` / `gateway.remote.tlsFingerprint`).
    pub fingerprint: Option<String>,
    /// Host name for SNI and verification when the URL holds an address (a discovered SRV host)
    /// or a tunnel's loopback (threats.md SSH-2).
    pub server_name: Option<String>,
    /// This host's own gateway certificate fingerprints (trusted for loopback/own-host use).
    pub local_pins: Vec<String>,
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
            StreamError::Untrusted(e) => OpenError::Untrusted(e.to_string()),
            StreamError::Url(w) => OpenError::Ws(w),
            other => OpenError::Unreachable(other.to_string()),
        }
    }
}

impl TlsOpts {
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
    Ok(crate::tls::client::open_stream(url, &opts.pins(), server_name).await?)
}

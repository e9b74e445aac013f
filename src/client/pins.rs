//! TLS trust for clawgate's client: which certificate a `wss://` endpoint may present.
//!
//! Owns [`TlsOpts`] (everything the caller knows about trusting one endpoint) and [`open`], the
//! one function every client connection goes through to get a WebSocket.
//!
//! Invariants: an explicit pin (`--tls-fingerprint`, `gateway.remote.tlsFingerprint`) or a stored
//! one is required to match; an advertised fingerprint (`hint`) is display-only and never trusted
//! (threats.md TLS-6); `ws://` carries no TLS decision at all.

use std::path::PathBuf;

use tokio_tungstenite::tungstenite::Error as WsError;

use crate::tls::client::ClientWs;

/// What the caller knows about trusting one endpoint's certificate.
#[derive(Debug, Clone, Default)]
pub struct TlsOpts {
    /// A pin the certificate must match (`--tls-fingerprint` / `gateway.remote.tlsFingerprint`).
    pub fingerprint: Option<String>,
    /// Confirms first use of exactly this fingerprint (`--trust-fingerprint`); stored on success.
    pub trust_fingerprint: Option<String>,
    /// Extra CA bundle for publicly-verified certificates (`--ca-file`).
    pub ca_file: Option<PathBuf>,
    /// An advertised `gatewayTlsSha256` (TXT): shown to the user, never trusted.
    pub hint: Option<String>,
    /// Host name for SNI and verification when the URL is a tunnel's loopback (threats.md SSH-2).
    pub server_name: Option<String>,
    /// A terminal is attached: first use may prompt.
    pub interactive: bool,
    /// Client state dir holding the pin store; `None` = no store (explicit pins only).
    pub state_dir: Option<PathBuf>,
    /// This host's own gateway certificate fingerprints (trusted for loopback/own-host use).
    pub local_pins: Vec<String>,
}

/// Why no WebSocket could be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Ws(#[from] WsError),
}

/// Opens a WebSocket to `url` under the trust rules of `opts`.
pub async fn open(url: &str, opts: &TlsOpts) -> Result<ClientWs, OpenError> {
    let mut pins = opts.local_pins.clone();
    pins.extend(opts.fingerprint.iter().cloned());
    Ok(crate::tls::client::connect(url, &pins).await?)
}

/// Opens the TLS (or TCP for `ws://`) byte stream to `url` under `opts`, without a WebSocket
/// handshake (the forwarder relays the client's own upgrade).
pub async fn open_stream(
    url: &str,
    opts: &TlsOpts,
) -> Result<Box<dyn crate::tls::client::Io>, OpenError> {
    let mut pins = opts.local_pins.clone();
    pins.extend(opts.fingerprint.iter().cloned());
    Ok(crate::tls::client::open_stream(url, &pins, opts.server_name.as_deref()).await?)
}

//! The client side clawgate's own CLI uses against its own gateway: a rustls verifier pinned to
//! leaf fingerprints (the gateway's certificate read from this host's state dir), and a
//! WebSocket connect over plain TCP or pinned TLS.
//!
//! Invariants: a `wss://` connection succeeds only when the leaf's SHA-256 is one of the pins
//! (no pins ⇒ every certificate is refused — fail closed, threats.md TLS-4); the handshake
//! signature is still verified with the provider's algorithms, so a replayed certificate without
//! its key fails; TLS 1.3 only; credentials never travel in the URL (the caller's rule).

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::WebPkiSupportedAlgorithms;
use tokio_rustls::rustls::crypto::{verify_tls12_signature, verify_tls13_signature};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::WebSocketStream;

use super::{fingerprint, provider, VERSIONS};

/// Any byte stream a client WebSocket runs over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A client WebSocket over TCP or TLS.
pub type ClientWs = WebSocketStream<Box<dyn Io>>;

/// What a server presented, recorded by [`PinnedLeaf`] (accepted or not).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenCert {
    /// Leaf SHA-256.
    pub sha256: String,
    /// SubjectPublicKeyInfo SHA-256 (`None` if the leaf does not parse).
    pub spki_sha256: Option<String>,
}

/// The slot [`PinnedLeaf`] records into.
pub type Presented = Arc<std::sync::Mutex<Option<SeenCert>>>;

/// Accepts exactly the leaves whose fingerprint is pinned — or, when given roots, a chain that
/// verifies against them with the host name (public certificates, no pin needed).
#[derive(Debug)]
pub struct PinnedLeaf {
    pins: Vec<String>,
    /// SPKI pins: a re-issued leaf with the same key is the same endpoint (threats.md TLS-3).
    spki_pins: Vec<String>,
    algs: WebPkiSupportedAlgorithms,
    presented: Presented,
    roots: Option<Arc<dyn ServerCertVerifier>>,
}

impl PinnedLeaf {
    /// Pins in any accepted spelling (`sha256:` prefix, colons, upper case).
    pub fn new(pins: &[String]) -> Self {
        Self::recording(pins, Presented::default())
    }

    /// Like [`PinnedLeaf::new`], recording the presented fingerprint in `presented`.
    pub fn recording(pins: &[String], presented: Presented) -> Self {
        PinnedLeaf {
            pins: pins.iter().filter_map(|p| normalize(p)).collect(),
            spki_pins: Vec::new(),
            algs: provider().signature_verification_algorithms,
            presented,
            roots: None,
        }
    }

    /// Also accepts leaves whose public key matches one of `spki` (SHA-256 of the SPKI).
    pub fn with_spki(mut self, spki: &[String]) -> Self {
        self.spki_pins = spki.iter().filter_map(|p| normalize(p)).collect();
        self
    }

    /// Also accepts a chain that verifies against `roots` for the server name.
    pub fn with_roots(mut self, roots: Arc<RootCertStore>) -> Result<Self, String> {
        let v = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| e.to_string())?;
        self.roots = Some(v);
        Ok(self)
    }
}

/// The system's trust roots, read once per process (a file scan: never per connection).
fn system_roots() -> &'static Arc<RootCertStore> {
    static ROOTS: std::sync::OnceLock<Arc<RootCertStore>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        let mut store = RootCertStore::empty();
        let (added, _) = store.add_parsable_certificates(found.certs);
        tracing::debug!(added, errors = found.errors.len(), "system trust roots");
        Arc::new(store)
    })
}

/// Trust roots: the system's (`system`) plus the PEM certificates in `ca_file`.
pub fn roots(
    system: bool,
    ca_file: Option<&std::path::Path>,
) -> Result<Arc<RootCertStore>, String> {
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    let Some(p) = ca_file else {
        return Ok(match system {
            true => system_roots().clone(),
            false => Arc::new(RootCertStore::empty()),
        });
    };
    let mut store = match system {
        true => RootCertStore::clone(system_roots()),
        false => RootCertStore::empty(),
    };
    let certs = CertificateDer::pem_file_iter(p)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--ca-file {}: {e}", p.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--ca-file {}: no PEM certificate in it",
            p.display()
        ));
    }
    for c in certs {
        store
            .add(c)
            .map_err(|e| format!("--ca-file {}: {e}", p.display()))?;
    }
    Ok(Arc::new(store))
}

/// A fingerprint as 64 lowercase hex, or `None` when malformed.
pub fn normalize(p: &str) -> Option<String> {
    let p = p.trim();
    let p = p.strip_prefix("sha256:").unwrap_or(p);
    let hex: String = p.chars().filter(|c| *c != ':').collect();
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

impl ServerCertVerifier for PinnedLeaf {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = fingerprint(end_entity);
        let spki = crate::tls::spki_fingerprint(end_entity);
        if let Ok(mut seen) = self.presented.lock() {
            *seen = Some(SeenCert {
                sha256: fp.clone(),
                spki_sha256: spki.clone(),
            });
        }
        let key_pinned = spki.is_some_and(|k| self.spki_pins.contains(&k));
        if self.pins.contains(&fp) || key_pinned {
            return Ok(ServerCertVerified::assertion());
        }
        if let Some(roots) = &self.roots {
            // Not pinned: the chain must verify for the name (its error says why not).
            return roots.verify_server_cert(end_entity, _intermediates, _server_name, _ocsp, _now);
        }
        Err(rustls::Error::General(format!(
            "gateway certificate fingerprint {fp} is not the pinned one ({})",
            if self.pins.is_empty() {
                "none known".to_string()
            } else {
                self.pins.join(", ")
            }
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// A TLS 1.3 client config that trusts only `pins`, offering `alpn`.
pub fn pinned_config(pins: &[String], alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, rustls::Error> {
    recording_config(PinnedLeaf::new(pins), alpn)
}

fn recording_config(
    verifier: PinnedLeaf,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// Why a client byte stream could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Not a usable `ws://`/`wss://` URL.
    #[error("{0}")]
    Url(WsError),
    /// The TCP connection failed.
    #[error("{0}")]
    Connect(std::io::Error),
    /// The TLS handshake failed for a reason other than the certificate.
    #[error("TLS handshake: {0}")]
    Handshake(std::io::Error),
    /// The certificate was refused (pin mismatch, no pin): a trust failure, not an outage.
    #[error("{err}")]
    Untrusted {
        err: std::io::Error,
        /// What the server presented.
        presented: Option<SeenCert>,
    },
}

impl From<StreamError> for WsError {
    fn from(e: StreamError) -> WsError {
        match e {
            StreamError::Url(w) => w,
            StreamError::Connect(e)
            | StreamError::Handshake(e)
            | StreamError::Untrusted { err: e, .. } => WsError::Io(e),
        }
    }
}

/// Whether a handshake error is rustls refusing the certificate.
fn is_certificate_refusal(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| {
            matches!(
                r,
                rustls::Error::InvalidCertificate(_) | rustls::Error::General(_)
            )
        })
}

/// Opens a WebSocket to `url` (`ws://` or `wss://`, the latter pinned to `pins`).
pub async fn connect(url: &str, pins: &[String]) -> Result<ClientWs, WsError> {
    let req = url.into_client_request()?;
    let io = open_stream(url, pins, None).await?;
    let (ws, _) = tokio_tungstenite::client_async(req, io).await?;
    Ok(ws)
}

/// Opens the byte stream to `url`: TCP for `ws://`, pinned TLS for `wss://` with SNI
/// `server_name` (else the URL host).
pub async fn open_stream(
    url: &str,
    pins: &[String],
    server_name: Option<&str>,
) -> Result<Box<dyn Io>, StreamError> {
    let trust = Trust {
        pins,
        ..Default::default()
    };
    Ok(open_stream_seen(url, &trust, server_name).await?.0)
}

/// What [`open_stream_seen`] accepts.
#[derive(Debug, Default)]
pub struct Trust<'a> {
    /// Leaf fingerprints.
    pub pins: &'a [String],
    /// SPKI fingerprints.
    pub spki: &'a [String],
    /// Roots a chain may verify against for the server name.
    pub roots: Option<Arc<RootCertStore>>,
}

/// [`open_stream`] under `trust`, returning what the server presented (`None` for `ws://`).
pub async fn open_stream_seen(
    url: &str,
    trust: &Trust<'_>,
    server_name: Option<&str>,
) -> Result<(Box<dyn Io>, Option<SeenCert>), StreamError> {
    use tokio_tungstenite::tungstenite::error::UrlError;
    let uri = url
        .into_client_request()
        .map_err(StreamError::Url)?
        .uri()
        .clone();
    let tls = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        _ => {
            return Err(StreamError::Url(WsError::Url(
                UrlError::UnsupportedUrlScheme,
            )))
        }
    };
    let host = uri
        .host()
        .ok_or(StreamError::Url(WsError::Url(UrlError::NoHostName)))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(StreamError::Connect)?;
    let _ = tcp.set_nodelay(true);
    if !tls {
        return Ok((Box::new(tcp), None));
    }
    let other = |e: String| StreamError::Handshake(std::io::Error::other(e));
    let seen = Presented::default();
    let mut verifier = PinnedLeaf::recording(trust.pins, seen.clone()).with_spki(trust.spki);
    if let Some(r) = trust.roots.clone() {
        verifier = verifier.with_roots(r).map_err(other)?;
    }
    let cfg = recording_config(verifier, &[b"http/1.1"]).map_err(|e| other(e.to_string()))?;
    let name = ServerName::try_from(server_name.unwrap_or(&host).to_string())
        .map_err(|e| other(e.to_string()))?;
    match tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
    {
        Ok(s) => Ok((Box::new(s), presented(&seen))),
        Err(err) if is_certificate_refusal(&err) => Err(StreamError::Untrusted {
            err,
            presented: presented(&seen),
        }),
        Err(e) => Err(StreamError::Handshake(e)),
    }
}

fn presented(seen: &Presented) -> Option<SeenCert> {
    seen.lock().ok().and_then(|s| s.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_the_accepted_spellings() {
        let hex = "ab".repeat(32);
        assert_eq!(normalize(&hex), Some(hex.clone()));
        assert_eq!(
            normalize(&format!("sha256:{}", hex.to_uppercase())),
            Some(hex.clone())
        );
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(normalize(&colons), Some(hex));
        assert_eq!(normalize("abcd"), None);
        assert_eq!(normalize(&"zz".repeat(32)), None);
    }
}

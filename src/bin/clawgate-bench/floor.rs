//! The floor: a minimal protocol-shaped WebSocket server that bounds what the bench client can
//! measure on this machine.
//!
//! It sends a canned `connect.challenge` on open, answers the first request with a canned `hello-ok`
//! and every later request with a canned `res` echoing the request id (`frame::request_id`). No
//! auth, no JSON parsing, a 4 KiB read buffer per connection, a multi-threaded tokio runtime.
//! Every connection task is owned by a `TaskTracker` and stops when the shutdown token fires.
//! The TLS floor (`--tls-cert/--tls-key`) adds only a rustls TLS 1.3 accept (ring, ALPN
//! `http/1.1`, one static certificate) in front of the same WebSocket server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::ServerConfig;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::frame;

/// Read buffer per connection (the issue's floor: ~8 KiB per idle connection with 4 KiB reads).
const FLOOR_READ_BUFFER: usize = 4 * 1024;

const CHALLENGE: &str = r#"{"type":"event","event":"connect.challenge","payload":{"nonce":"00000000-0000-4000-8000-000000000000","ts":0}}"#;

/// Canned `hello-ok` payload (protocol.md §22.2 shape); the response envelope adds the id.
const HELLO_OK: &str = r#"{"type":"hello-ok","protocol":4,"server":{"version":"floor","connId":"00000000-0000-4000-8000-000000000000"},"features":{"methods":["health","system-presence"],"events":["connect.challenge","tick"]},"snapshot":{"presence":[],"health":{},"stateVersion":{"presence":1,"health":1},"uptimeMs":0},"auth":{"role":"operator","scopes":["operator.read"]},"policy":{"maxPayload":26214400,"maxBufferedBytes":52428800,"tickIntervalMs":30000}}"#;

/// Canned RPC result payload.
const RESULT: &str = r#"{"ok":true}"#;

/// Accepts connections on `listener` until `shutdown` fires, then waits for every connection task.
/// One static certificate.
#[derive(Debug)]
struct Fixed(Arc<tokio_rustls::rustls::sign::CertifiedKey>);

impl tokio_rustls::rustls::server::ResolvesServerCert for Fixed {
    fn resolve(
        &self,
        _: tokio_rustls::rustls::server::ClientHello<'_>,
    ) -> Option<Arc<tokio_rustls::rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The TLS floor's config from a PEM pair, or `None` without one.
pub fn tls_config(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> anyhow::Result<Option<Arc<ServerConfig>>> {
    let (Some(cert_path), Some(key_path)) = (cert, key) else {
        return Ok(None);
    };
    let t = clawgate::tls::TlsSettings {
        cert_path,
        key_path,
        ca_path: None,
        auto_generate: false,
    };
    let pair = clawgate::tls::cert::load(&t)?;
    let mut cfg = ServerConfig::builder_with_provider(clawgate::tls::provider())
        .with_protocol_versions(clawgate::tls::VERSIONS)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(pair.certified)));
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(cfg)))
}

pub async fn serve(
    listener: TcpListener,
    shutdown: CancellationToken,
    tls: Option<Arc<ServerConfig>>,
) -> std::io::Result<()> {
    let tracker = TaskTracker::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => {
                let (stream, peer) = accepted?;
                let token = shutdown.clone();
                let tls = tls.clone();
                tracker.spawn(async move {
                    tokio::select! {
                        _ = token.cancelled() => {}
                        _ = accept(stream, peer, tls) => {}
                    }
                });
            }
        }
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

async fn accept(stream: TcpStream, peer: SocketAddr, tls: Option<Arc<ServerConfig>>) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => connection(stream, peer).await,
        Some(cfg) => match tokio_rustls::TlsAcceptor::from(cfg).accept(stream).await {
            Ok(s) => connection(s, peer).await,
            Err(e) => debug!(%peer, error = %e, "floor: TLS handshake failed"),
        },
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(stream: S, peer: SocketAddr) {
    let config = WebSocketConfig::default()
        .read_buffer_size(FLOOR_READ_BUFFER)
        .write_buffer_size(0);
    let mut ws = match tokio_tungstenite::accept_async_with_config(stream, Some(config)).await {
        Ok(ws) => ws,
        Err(e) => return debug!(%peer, error = %e, "floor: upgrade failed"),
    };
    if ws.send(Message::text(CHALLENGE)).await.is_err() {
        return;
    }
    let mut payload = HELLO_OK;
    while let Some(Ok(msg)) = ws.next().await {
        // Non-text frames are skipped; after a close frame the stream ends once tungstenite has
        // answered it, which ends the loop.
        let Message::Text(text) = msg else { continue };
        let id = frame::request_id(text.as_str()).unwrap_or("invalid");
        let reply = format!(r#"{{"type":"res","id":"{id}","ok":true,"payload":{payload}}}"#);
        payload = RESULT;
        if ws.send(Message::text(reply)).await.is_err() {
            break;
        }
    }
}

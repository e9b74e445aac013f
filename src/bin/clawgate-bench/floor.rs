//! The floor: a minimal protocol-shaped WebSocket server that bounds what the bench client can
//! measure on this machine.
//!
//! It sends a canned `connect.challenge` on open, answers the first request with a canned `hello-ok`
//! and every later request with a canned `res` echoing the request id (`frame::request_id`). No
//! auth, no JSON parsing, a 4 KiB read buffer per connection, a multi-threaded tokio runtime.
//! Every connection task is owned by a `TaskTracker` and stops when the shutdown token fires.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
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
pub async fn serve(listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
    let tracker = TaskTracker::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => {
                let (stream, peer) = accepted?;
                let token = shutdown.clone();
                tracker.spawn(async move {
                    tokio::select! {
                        _ = token.cancelled() => {}
                        _ = connection(stream, peer) => {}
                    }
                });
            }
        }
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

async fn connection(stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
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

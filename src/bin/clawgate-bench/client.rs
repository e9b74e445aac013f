//! The bench client: one authenticated gateway connection with minimal per-message work.
//!
//! `Conn::open` performs the full protocol handshake (WebSocket upgrade, wait for
//! `connect.challenge`, send a device-less token `connect`, wait for the `hello-ok` response), and
//! `Conn::call` does one request/response round trip, skipping interleaved events. Per message the
//! client formats one small request string and classifies each inbound text frame with
//! `frame::classify` (a prefix comparison; no JSON tree). Every wait is bounded by `io_timeout`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::frame::{self, Reply};

/// Client read buffer: responses are small, and 1,000 idle connections should not cost the bench
/// process 128 KiB each (the tungstenite default).
const CLIENT_READ_BUFFER: usize = 16 * 1024;

/// Characters of a rejected frame kept in an error message.
const ERROR_EXCERPT: usize = 300;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("server closed the connection")]
    Closed,
    #[error("server rejected the request: {0}")]
    Rejected(String),
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub token: String,
    pub io_timeout: Duration,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One authenticated connection.
pub struct Conn {
    ws: Ws,
    next_id: u64,
    buf: String,
    io_timeout: Duration,
}

impl Conn {
    /// Connects and completes the handshake up to `hello-ok`.
    pub async fn open(target: &Target) -> Result<Conn, ClientError> {
        let t = target.io_timeout;
        let config = WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER);
        let connect =
            tokio_tungstenite::connect_async_with_config(target.url.as_str(), Some(config), true);
        let (ws, _response) = bounded(t, connect).await??;
        let mut conn = Conn {
            ws,
            next_id: 2,
            buf: String::with_capacity(96),
            io_timeout: t,
        };
        conn.wait_for(|text| frame::is_challenge(text).then_some(Reply::Ok))
            .await?;
        conn.ws
            .send(Message::text(frame::connect_request(&target.token)))
            .await?;
        conn.wait_reply("1").await?;
        Ok(conn)
    }

    /// One round trip of `method` with empty params; `Ok` only for an `ok:true` response.
    pub async fn call(&mut self, method: &str) -> Result<(), ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        frame::write_request(&mut self.buf, id, method);
        self.ws.send(Message::text(self.buf.as_str())).await?;
        let id = id.to_string();
        self.wait_reply(&id).await
    }

    /// Sends a close frame without a status code (what the real CLI does) and drops the socket.
    pub async fn close(mut self) {
        let _ = bounded(self.io_timeout, self.ws.close(None)).await;
    }

    async fn wait_reply(&mut self, id: &str) -> Result<(), ClientError> {
        let mut failure = None;
        self.wait_for(|text| match frame::classify(text, id) {
            Reply::Other => None,
            Reply::Ok => Some(Reply::Ok),
            Reply::Failed => {
                failure = Some(text.chars().take(ERROR_EXCERPT).collect::<String>());
                Some(Reply::Failed)
            }
        })
        .await?;
        match failure {
            Some(text) => Err(ClientError::Rejected(text)),
            None => Ok(()),
        }
    }

    /// Reads frames until `check` returns `Some`, within `io_timeout`.
    async fn wait_for(
        &mut self,
        mut check: impl FnMut(&str) -> Option<Reply>,
    ) -> Result<Reply, ClientError> {
        let t = self.io_timeout;
        bounded(t, async {
            while let Some(msg) = self.ws.next().await {
                match msg? {
                    Message::Text(text) => {
                        if let Some(r) = check(text.as_str()) {
                            return Ok(r);
                        }
                    }
                    Message::Close(_) => return Err(ClientError::Closed),
                    _ => {}
                }
            }
            Err(ClientError::Closed)
        })
        .await?
    }
}

async fn bounded<F: std::future::Future>(t: Duration, f: F) -> Result<F::Output, ClientError> {
    tokio::time::timeout(t, f)
        .await
        .map_err(|_| ClientError::Timeout(t))
}

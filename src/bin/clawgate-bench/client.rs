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
use tokio_tungstenite::WebSocketStream;

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

pub type Ws = WebSocketStream<Box<dyn clawgate::tls::client::Io>>;

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
        let (ws, _response) = bounded(t, ws_connect(target.url.as_str())).await??;
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

    /// Connects with a token `connect` asking for `scopes` (setup connections, e.g. an admin that
    /// approves pairing requests).
    pub async fn open_scoped(target: &Target, scopes: &[&str]) -> Result<Conn, ClientError> {
        let (ws, _response) = bounded(target.io_timeout, ws_connect(target.url.as_str())).await??;
        let mut conn = Conn::from_ws(ws, target.io_timeout);
        conn.wait_for(|text| frame::is_challenge(text).then_some(Reply::Ok))
            .await?;
        let connect = frame::connect_request_scoped(&target.token, scopes);
        conn.ws.send(Message::text(connect)).await?;
        conn.wait_reply("1").await?;
        Ok(conn)
    }

    /// Wraps an already open WebSocket (no protocol handshake: e.g. to the in-process relay).
    pub fn from_ws(ws: Ws, io_timeout: Duration) -> Conn {
        Conn {
            ws,
            next_id: 2,
            buf: String::with_capacity(256),
            io_timeout,
        }
    }

    /// Sends the request that `write(buf, id)` formats and waits for its `ok:true` response.
    pub async fn call_with(
        &mut self,
        write: impl FnOnce(&mut String, u64),
    ) -> Result<(), ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.buf.clear();
        write(&mut self.buf, id);
        self.ws.send(Message::text(self.buf.as_str())).await?;
        self.wait_reply(&id.to_string()).await
    }

    /// One request with JSON `params`; returns the whole response frame (setup calls only).
    pub async fn request_json(
        &mut self,
        method: &str,
        params: &serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let req = serde_json::json!({"type": "req", "id": id.to_string(), "method": method, "params": params});
        self.ws.send(Message::text(req.to_string())).await?;
        let id = id.to_string();
        let mut found = None;
        self.wait_for(|text| {
            if frame::classify(text, &id) == Reply::Other {
                return None;
            }
            found = serde_json::from_str(text).ok();
            Some(Reply::Ok)
        })
        .await?;
        found.ok_or_else(|| ClientError::Rejected(format!("{method}: unparsable response")))
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

/// Opens a WebSocket with the bench's client buffer size (no protocol handshake).
pub async fn ws_connect<R>(
    request: R,
) -> Result<
    (
        Ws,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    ClientError,
>
where
    R: tokio_tungstenite::tungstenite::client::IntoClientRequest + Unpin,
{
    use tokio_tungstenite::tungstenite::error::UrlError;
    use tokio_tungstenite::tungstenite::Error as WsError;
    let config = WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER);
    let request = request.into_client_request()?;
    let uri = request.uri().clone();
    let tls = uri.scheme_str() == Some("wss");
    let host = uri
        .host()
        .ok_or(WsError::Url(UrlError::NoHostName))?
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(WsError::Io)?;
    tcp.set_nodelay(true).map_err(WsError::Io)?;
    let io: Box<dyn clawgate::tls::client::Io> = if tls {
        Box::new(tls_connect(tcp, host).await?)
    } else {
        Box::new(tcp)
    };
    Ok(tokio_tungstenite::client_async_with_config(request, io, Some(config)).await?)
}

/// Env var with the SHA-256 leaf fingerprint a `wss://` target must present (the bench pins it,
/// as clients of a self-signed gateway do).
pub const TLS_PIN_ENV: &str = "CLAWGATE_BENCH_TLS_FINGERPRINT";

async fn tls_connect(
    tcp: TcpStream,
    host: String,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ClientError> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let other = |e: String| ClientError::Ws(WsError::Io(std::io::Error::other(e)));
    let pins: Vec<String> = std::env::var(TLS_PIN_ENV).into_iter().collect();
    let cfg = clawgate::tls::client::pinned_config(&pins, &[b"http/1.1"])
        .map_err(|e| other(e.to_string()))?;
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host)
        .map_err(|e| other(e.to_string()))?;
    tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .map_err(|e| ClientError::Ws(WsError::Io(e)))
}

pub async fn bounded<F: std::future::Future>(t: Duration, f: F) -> Result<F::Output, ClientError> {
    tokio::time::timeout(t, f)
        .await
        .map_err(|_| ClientError::Timeout(t))
}

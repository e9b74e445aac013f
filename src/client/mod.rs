//! A minimal protocol v4 client for clawgate's own CLI commands (`health`,
//! `status`, `call`, `probe`): challenge → connect → hello-ok → requests.
//! Credentials travel only in the `connect` frame, never in the URL.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::config::Secret;

pub mod candidates;
pub mod endpoints;
pub mod forward;
pub mod pins;
pub mod probe;
pub mod remote;
pub mod route;
pub mod select;

pub use pins::{OpenError, TlsOpts};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {url}: {source}")]
    Connect { url: String, source: OpenError },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connection closed{}", .0.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Closed(Option<String>),
    #[error("{code}: {message}{}", .detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rejected {
        code: String,
        message: String,
        detail: Option<String>,
        error: Value,
    },
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// How to reach and authenticate to a gateway.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub token: Option<Secret>,
    pub password: Option<Secret>,
    pub timeout: Duration,
    /// Certificate trust for `wss://`.
    pub tls: TlsOpts,
}

/// A connected, authenticated client.
pub struct Client {
    ws: crate::tls::client::ClientWs,
    next_id: u64,
    pub hello: Value,
    timeout: Duration,
}

impl Client {
    /// Connects with `client.id=cli` and the given mode and scopes.
    pub async fn connect(t: &Target, mode: &str, scopes: &[&str]) -> Result<Client, ClientError> {
        tokio::time::timeout(t.timeout, Self::connect_inner(t, mode, scopes))
            .await
            .map_err(|_| ClientError::Timeout(t.timeout))?
    }

    async fn connect_inner(t: &Target, mode: &str, scopes: &[&str]) -> Result<Client, ClientError> {
        let ws = pins::open(&t.url, &t.tls)
            .await
            .map_err(|source| ClientError::Connect {
                url: t.url.clone(),
                source,
            })?;
        let mut c = Client {
            ws,
            next_id: 1,
            hello: Value::Null,
            timeout: t.timeout,
        };
        let challenge = c.next_frame().await?;
        if challenge["event"] != "connect.challenge" {
            return Err(ClientError::Protocol("expected connect.challenge".into()));
        }
        let mut auth = serde_json::Map::new();
        if let Some(tok) = &t.token {
            auth.insert("token".into(), json!(tok.expose()));
        }
        if let Some(pw) = &t.password {
            auth.insert("password".into(), json!(pw.expose()));
        }
        let params = json!({
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "cli", "version": env!("CARGO_PKG_VERSION"), "platform": std::env::consts::OS, "mode": mode},
            "role": "operator", "scopes": scopes, "caps": [], "auth": auth,
        });
        c.hello = c.request("connect", params).await?;
        Ok(c)
    }

    async fn next_frame(&mut self) -> Result<Value, ClientError> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(&t)
                        .map_err(|e| ClientError::Protocol(e.to_string()))
                }
                Some(Ok(Message::Close(f))) => {
                    return Err(ClientError::Closed(
                        f.map(|f| format!("{} {}", u16::from(f.code), f.reason)),
                    ))
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(ClientError::Protocol(e.to_string())),
                None => return Err(ClientError::Closed(None)),
            }
        }
    }

    /// Sends a request and waits for its response (events are skipped).
    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.next_id.to_string();
        self.next_id += 1;
        let frame = json!({"type": "req", "id": id, "method": method, "params": params});
        let timeout = self.timeout;
        let fut = async {
            self.ws
                .send(Message::text(frame.to_string()))
                .await
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            loop {
                let f = self.next_frame().await?;
                if f["type"] == "res" && f["id"] == id.as_str() {
                    return Self::result(f);
                }
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    fn result(f: Value) -> Result<Value, ClientError> {
        if f["ok"] == true {
            return Ok(f.get("payload").cloned().unwrap_or(Value::Null));
        }
        let e = f.get("error").cloned().unwrap_or_default();
        Err(ClientError::Rejected {
            code: e["code"].as_str().unwrap_or("ERROR").to_string(),
            message: e["message"]
                .as_str()
                .unwrap_or("request failed")
                .to_string(),
            detail: e["details"]["code"].as_str().map(str::to_string),
            error: e,
        })
    }

    /// Closes without a status code, as the reference CLI does.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

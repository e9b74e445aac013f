//! A minimal protocol v4 client for clawgate's own CLI commands (`health`,
//! `status`, `call`, `probe`): challenge → connect → hello-ok → requests.
//!
//! Invariants: credentials travel only in the `connect` frame, never in the URL. With
//! [`Target::device`] the connect carries the CLI's signed device identity ([`device`]) and a
//! stored device token is offered only to the gateway that issued it; a token the gateway
//! refuses (`AUTH_DEVICE_TOKEN_MISMATCH`) is dropped so the next connect pairs again.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::config::Secret;

pub mod candidates;
pub mod device;
pub mod endpoints;
pub mod forward;
pub mod pins;
pub mod pinstore;
pub mod probe;
pub mod remote;
pub mod route;
pub mod select;
pub mod ssh;
pub mod tunnel;

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
    #[error("device identity: {0}")]
    Device(#[from] device::DeviceError),
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
    /// Client state dir: connect as the CLI's paired device (identity and device tokens below
    /// it). `None`: a device-less shared-secret connect (the reference CLI's `--url` on loopback).
    pub device: Option<std::path::PathBuf>,
}

/// The role clawgate's CLI connects as.
const ROLE: &str = "operator";

/// The `connect` params: credentials by config.md §8.1 / protocol.md §8.6 (the shared token,
/// else the stored device token; the password whenever given) and, with a device, its proof
/// signed over the challenge.
pub(crate) fn connect_params(
    t: &Target,
    dev: Option<&device::Device>,
    stored: Option<&Secret>,
    challenge: &Value,
    mode: &str,
    scopes: &[&str],
) -> Value {
    let mut auth = serde_json::Map::new();
    if let Some(tok) = &t.token {
        auth.insert("token".into(), json!(tok.expose()));
    } else if let Some(tok) = stored {
        auth.insert("deviceToken".into(), json!(tok.expose()));
    }
    if let Some(pw) = &t.password {
        auth.insert("password".into(), json!(pw.expose()));
    }
    let mut client = json!({"id": "cli", "version": env!("CARGO_PKG_VERSION"), "platform": device::PLATFORM, "mode": mode});
    let mut params = json!({
        "minProtocol": 4, "maxProtocol": 4,
        "role": ROLE, "scopes": scopes, "caps": [],
    });
    if let Some(d) = dev {
        let token = t
            .token
            .as_ref()
            .or(stored)
            .map(Secret::expose)
            .unwrap_or("");
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let nonce = challenge["payload"]["nonce"].as_str().unwrap_or_default();
        let signed_at_ms = challenge["payload"]["ts"]
            .as_u64()
            .unwrap_or_else(|| crate::util::now_ms() as u64);
        client["deviceFamily"] = json!(device::Device::family());
        params["device"] = d.proof(&device::Signed {
            client_id: "cli",
            mode,
            role: ROLE,
            scopes: &scopes,
            token,
            nonce,
            signed_at_ms,
        });
    }
    params["client"] = client;
    params["auth"] = Value::Object(auth);
    params
}

/// Stores the device token `hello-ok` issued, if any.
fn remember(d: &device::Device, hello: &Value) -> Result<(), device::DeviceError> {
    let Some(token) = hello["auth"]["deviceToken"].as_str() else {
        return Ok(());
    };
    let scopes = hello["auth"]["scopes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    d.remember(ROLE, token, scopes)
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
        let dev = match &t.device {
            Some(dir) => {
                let key = device::gateway_key(&t.url).ok_or_else(|| {
                    ClientError::Protocol(format!("not a gateway URL: {}", t.url))
                })?;
                Some(device::Device::open(dir, key)?)
            }
            None => None,
        };
        let stored = match &dev {
            Some(d) if t.token.is_none() => d.token(ROLE)?,
            _ => None,
        };
        let params = connect_params(t, dev.as_ref(), stored.as_ref(), &challenge, mode, scopes);
        match c.request("connect", params).await {
            Ok(hello) => {
                if let Some(d) = &dev {
                    remember(d, &hello)?;
                }
                c.hello = hello;
                Ok(c)
            }
            Err(e) => {
                if let (Some(d), Some(_), ClientError::Rejected { detail, .. }) =
                    (&dev, &stored, &e)
                {
                    if detail.as_deref() == Some("AUTH_DEVICE_TOKEN_MISMATCH") {
                        d.forget(ROLE)?;
                    }
                }
                Err(e)
            }
        }
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

//! The node side of the `node.invoke` and pairing benchmarks, plus the in-process relay that gives
//! the "direct" round trip they are compared with.
//!
//! A bench node is a signed device connection (`role=node`, `client.id=node-host`, `mode=node`,
//! Ed25519 identity, v3 signature payload of protocol.md §6 built by the clawgate library) that
//! declares `COMMAND` and answers every `node.invoke.request` event with a `node.invoke.result`
//! request. Behind the relay the same responder answers plain requests with a `res`, so both paths
//! do the same per-frame work on the node side (one JSON parse, one formatted reply).
//! Invariants: every wait is bounded by the target's `io_timeout`; responder and relay tasks are
//! owned by a `JoinSet` and end when it is dropped.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use clawgate::protocol::signature::{device_id_for, encode_public_key, payload_v3, PayloadFields};
use ed25519_dalek::{Signer as _, SigningKey};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{bounded, ws_connect, ClientError, Target, Ws};

/// The command the bench node declares and answers: `system.which` is in the reference gateway's
/// default allowlist for linux nodes (a made-up `bench.echo` is refused there); gateways only route it.
pub const COMMAND: &str = "system.which";
/// What the node returns for every invoke (a small JSON document, as real commands return).
const RESULT_JSON: &str = r#"{\"echo\":true}"#;

/// A device identity that signs `connect` per protocol.md §6.
pub struct Identity {
    key: SigningKey,
    pub id: String,
    public_key: String,
}

impl Identity {
    pub fn generate() -> Identity {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let raw = key.verifying_key().to_bytes();
        Identity {
            id: device_id_for(&raw),
            public_key: encode_public_key(&raw),
            key,
        }
    }

    /// The signed node `connect` request for the challenge `nonce`/`ts`.
    fn connect_frame(&self, token: &str, nonce: &str, ts: u64) -> String {
        let fields = PayloadFields {
            device_id: &self.id,
            client_id: "node-host",
            client_mode: "node",
            role: "node",
            scopes: &[],
            signed_at_ms: ts,
            token,
            nonce,
            platform: Some("linux"),
            device_family: Some("Linux"),
        };
        let sig = self.key.sign(payload_v3(&fields).as_bytes());
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.to_bytes());
        json!({"type": "req", "id": "1", "method": "connect", "params": {
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "node-host", "version": "bench", "platform": "linux",
                       "deviceFamily": "Linux", "mode": "node"},
            "role": "node", "scopes": [], "caps": ["system"], "commands": [COMMAND],
            "auth": {"token": token},
            "device": {"id": self.id, "publicKey": self.public_key, "signature": sig,
                       "signedAt": ts, "nonce": nonce},
        }})
        .to_string()
    }
}

/// Outcome of a node handshake the gateway answered.
pub enum NodeConnect {
    /// `hello-ok`: the socket is a live node connection.
    Connected(Box<Ws>),
    /// The `connect` response with `ok:false` (e.g. `NOT_PAIRED` with a `requestId`).
    Rejected(Value),
}

/// Opens a node connection with extra upgrade `headers` (e.g. `X-Forwarded-For`).
pub async fn connect(
    target: &Target,
    ident: &Identity,
    headers: &[(&'static str, &str)],
) -> Result<NodeConnect, ClientError> {
    let t = target.io_timeout;
    let mut req = target.url.as_str().into_client_request()?;
    for (name, value) in headers {
        let value = HeaderValue::from_str(value)
            .map_err(|e| ClientError::Rejected(format!("header {name}: {e}")))?;
        req.headers_mut().insert(*name, value);
    }
    let (mut ws, _) = bounded(t, ws_connect(req)).await??;
    let challenge = next_json(&mut ws, target, |v| v["event"] == "connect.challenge").await?;
    let nonce = challenge["payload"]["nonce"].as_str().unwrap_or_default();
    let ts = challenge["payload"]["ts"].as_u64().unwrap_or_else(now_ms);
    let frame = ident.connect_frame(&target.token, nonce, ts);
    ws.send(Message::text(frame)).await?;
    let res = next_json(&mut ws, target, |v| v["type"] == "res" && v["id"] == "1").await?;
    if res["ok"] == true {
        Ok(NodeConnect::Connected(Box::new(ws)))
    } else {
        Ok(NodeConnect::Rejected(res))
    }
}

/// Reads frames until one parses to JSON matching `want`, within `io_timeout`.
async fn next_json(
    ws: &mut Ws,
    target: &Target,
    want: impl Fn(&Value) -> bool,
) -> Result<Value, ClientError> {
    bounded(target.io_timeout, async {
        while let Some(msg) = ws.next().await {
            match msg? {
                Message::Text(text) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&text) {
                        if want(&v) {
                            return Ok(v);
                        }
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Answers invokes on `ws` until the socket closes: `node.invoke.request` events get a
/// `node.invoke.result` request, plain requests (behind the relay) a `res`. Responses the gateway
/// sends back for `node.invoke.result` are ignored.
pub async fn respond(mut ws: Ws, node_id: String) {
    let mut buf = String::with_capacity(256);
    let mut next_id = 2u64;
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(text) = msg else { continue };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        buf.clear();
        if v["type"] == "event" && v["event"] == "node.invoke.request" {
            let Some(id) = v["payload"]["id"].as_str() else {
                continue;
            };
            let _ = write!(
                buf,
                r#"{{"type":"req","id":"n{next_id}","method":"node.invoke.result","params":{{"id":"{id}","nodeId":"{node_id}","ok":true,"payloadJSON":"{RESULT_JSON}"}}}}"#
            );
            next_id += 1;
        } else if v["type"] == "req" {
            let Some(id) = v["id"].as_str() else { continue };
            let _ = write!(
                buf,
                r#"{{"type":"res","id":"{id}","ok":true,"payload":{{"ok":true,"nodeId":"{node_id}","command":"{COMMAND}","payloadJSON":"{RESULT_JSON}"}}}}"#
            );
        } else {
            continue;
        }
        if ws.send(Message::text(buf.as_str())).await.is_err() {
            return;
        }
    }
}

/// The direct path: an in-process WebSocket relay on loopback. The first client to connect is the
/// node, the second the operator; every text frame from one is forwarded to the other as is.
pub struct Relay {
    pub url: String,
    tasks: JoinSet<()>,
}

impl Relay {
    pub async fn start() -> std::io::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("ws://{}", listener.local_addr()?);
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let Some(node) = accept(&listener).await else {
                return;
            };
            let Some(operator) = accept(&listener).await else {
                return;
            };
            let (node_tx, node_rx) = node.split();
            let (op_tx, op_rx) = operator.split();
            let mut pumps = JoinSet::new();
            pumps.spawn(pump(op_rx, node_tx));
            pumps.spawn(pump(node_rx, op_tx));
            // Either side closing ends the relay.
            pumps.join_next().await;
        });
        Ok(Relay { url, tasks })
    }

    /// Stops the relay (also what dropping it does).
    pub fn stop(mut self) {
        self.tasks.abort_all();
    }
}

async fn accept(
    listener: &TcpListener,
) -> Option<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>> {
    let (tcp, _) = listener.accept().await.ok()?;
    tcp.set_nodelay(true).ok()?;
    tokio_tungstenite::accept_async(tcp).await.ok()
}

type ServerWs = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn pump(
    mut rx: futures_util::stream::SplitStream<ServerWs>,
    mut tx: futures_util::stream::SplitSink<ServerWs, Message>,
) {
    while let Some(Ok(msg)) = rx.next().await {
        if msg.is_text() && tx.send(msg).await.is_err() {
            return;
        }
    }
}

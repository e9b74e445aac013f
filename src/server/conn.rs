//! One WebSocket connection: challenge → `connect` → `hello-ok` → request loop,
//! as a single actor task that owns the socket (reads, writes, events, close).
//!
//! Invariants: every policy rejection after the upgrade completes the handshake
//! and closes with a code and reason (threats.md WS-6); the pre-auth cap is
//! enforced by [`GuardedIo`] until `hello-ok`; events carry this connection's
//! own monotonically increasing `seq`.

use std::sync::Arc;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role as WsRole, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tracing::Instrument;

use super::budget::Permit;
use super::guard_io::GuardedIo;
use super::hub::Outbound;
use super::methods::{self, Session};
use super::Gateway;
use crate::auth::handshake::{self, Admission};
use crate::auth::Transport;
use crate::protocol::connect::{self, Connect, Role};
use crate::protocol::errors::{close, truncate_close_reason, Rejection, WireError};
use crate::protocol::frames::{self, EventFrame};
use crate::protocol::{MAX_BUFFERED_BYTES, MAX_PAYLOAD_BYTES, MAX_PREAUTH_PAYLOAD_BYTES};

/// Read chunk size: small, because most connections are idle (the default 128 KiB
/// would cost ~130 KiB per socket).
pub const READ_BUFFER: usize = 4 * 1024;

type Ws = WebSocketStream<GuardedIo<TokioIo<Upgraded>>>;

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_BUFFERED_BYTES)
        .max_message_size(Some(MAX_PAYLOAD_BYTES))
        .max_frame_size(Some(MAX_PAYLOAD_BYTES))
}

/// Runs the connection to completion.
pub async fn run(
    gw: Arc<Gateway>,
    up: Upgraded,
    t: Transport,
    permit: Option<Permit>,
    host_ok: bool,
) {
    let span = tracing::info_span!("conn", peer = %t.peer, client = tracing::field::Empty);
    async move {
        let io = GuardedIo::new(TokioIo::new(up), MAX_PREAUTH_PAYLOAD_BYTES);
        let mut ws = WebSocketStream::from_raw_socket(io, WsRole::Server, Some(ws_config())).await;
        if !host_ok {
            tracing::warn!(host = ?t.host, "refused: Host not allowed (DNS rebinding guard)");
            return close_ws(&mut ws, close::POLICY, "host not allowed").await;
        }
        let Some(permit) = permit else {
            return close_ws(
                &mut ws,
                close::TRY_AGAIN_LATER,
                "too many pending handshakes",
            )
            .await;
        };
        let timeout = gw.settings.handshake_timeout;
        let outcome = tokio::time::timeout(timeout, handshake(&gw, &mut ws, &t)).await;
        drop(permit);
        match outcome {
            Err(_) => close_ws(&mut ws, close::POLICY, "handshake timeout").await,
            Ok(Err(Some(Closing { code, reason }))) => close_ws(&mut ws, code, &reason).await,
            Ok(Err(None)) => {}
            Ok(Ok((connect, admission))) => {
                tracing::Span::current().record("client", connect.client().id.as_str());
                ws.get_mut().disarm();
                session(gw, ws, t, connect, admission).await
            }
        }
    }
    .instrument(span)
    .await
}

struct Closing {
    code: u16,
    reason: String,
}

impl From<&Rejection> for Closing {
    fn from(r: &Rejection) -> Self {
        Closing {
            code: r.close_code,
            reason: r.close_reason.clone(),
        }
    }
}

/// Sends the challenge and processes the first frame, which must be `connect`.
async fn handshake(
    gw: &Gateway,
    ws: &mut Ws,
    t: &Transport,
) -> Result<(Connect, Admission), Option<Closing>> {
    let nonce = uuid::Uuid::new_v4().to_string();
    let challenge = EventFrame::new(
        "connect.challenge",
        &json!({"nonce": nonce, "ts": crate::util::now_ms()}),
    );
    ws.send(Message::text(challenge.unsequenced()))
        .await
        .map_err(|_| None)?;
    let text = loop {
        match ws.next().await {
            Some(Ok(Message::Text(s))) => break s,
            Some(Ok(Message::Binary(_))) => {
                let e = WireError::invalid(
                    "invalid handshake: binary frames are not part of the protocol",
                );
                let _ = ws
                    .send(Message::text(frames::res_err(frames::INVALID_ID, &e)))
                    .await;
                return Err(Some(Closing {
                    code: close::POLICY,
                    reason: "invalid handshake".into(),
                }));
            }
            Some(Ok(Message::Close(_))) | None => return Err(None),
            Some(Ok(_)) => continue,
            Some(Err(_)) if ws.get_ref().tripped() => {
                return Err(Some(Closing {
                    code: close::TOO_BIG,
                    reason: "preauth payload too large".into(),
                }))
            }
            Some(Err(e)) => {
                tracing::debug!("read error before connect: {e}");
                return Err(None);
            }
        }
    };
    let req = match frames::parse_request(&text) {
        Ok(r) if r.method == "connect" => r,
        Ok(r) => {
            return Err(reject(
                ws,
                &r.id,
                &Rejection::policy(WireError::invalid(
                    "invalid handshake: first request must be connect",
                )),
            )
            .await)
        }
        Err(e) => {
            return Err(reject(
                ws,
                &e.id,
                &Rejection::policy(WireError::invalid(format!(
                    "invalid handshake: {}",
                    e.message
                ))),
            )
            .await)
        }
    };
    let id = req.id.to_string();
    let connect = match connect::validate(req.params.map(|p| p.get())) {
        Ok(c) => c,
        Err(r) => return Err(reject(ws, &id, &r).await),
    };
    let tokens = |d: &crate::protocol::signature::VerifiedDevice, role: &str, tok: &str, scopes: &[String]| {
        let pk = crate::protocol::signature::encode_public_key(&d.public_key);
        gw.pairing.read(|p| p.check_device_token(&d.id, &pk, role, tok, scopes))
    };
    let input = handshake::Input {
        tokens: &tokens,
        connect: &connect,
        transport: t,
        auth: &gw.settings.auth,
        allowed_origins: &gw.settings.allowed_origins,
        issued_nonce: &nonce,
        now_ms: crate::util::now_ms(),
        now: Instant::now(),
    };
    match handshake::decide(&input, &gw.limiter) {
        Ok(a) => {
            let hello = hello_ok(gw, &connect, &a);
            ws.send(Message::text(frames::res_ok_raw(&id, &hello)))
                .await
                .map_err(|_| None)?;
            Ok((connect, a))
        }
        Err(r) => {
            tracing::info!(code = ?r.error.detail_code(), "connect refused: {}", r.error.message);
            Err(reject(ws, &id, &r).await)
        }
    }
}

async fn reject(ws: &mut Ws, id: &str, r: &Rejection) -> Option<Closing> {
    let _ = ws.send(Message::text(frames::res_err(id, &r.error))).await;
    Some(Closing::from(r))
}

async fn close_ws(ws: &mut Ws, code: u16, reason: &str) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: truncate_close_reason(reason).to_string().into(),
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), ws.close(Some(frame))).await;
}

/// The `hello-ok` payload JSON.
fn hello_ok(gw: &Gateway, c: &Connect, a: &Admission) -> String {
    let admin = a.role == Role::Operator
        && crate::protocol::scopes::satisfies(&a.scopes, crate::protocol::scopes::ADMIN);
    let mut snapshot = json!({
        "presence": serde_json::from_str::<Value>(&gw.hub.presence.list_json(crate::util::now_ms())).unwrap_or(Value::Array(vec![])),
        "health": methods::health_snapshot(gw),
        "stateVersion": gw.hub.presence.state_version(),
        "uptimeMs": gw.uptime_ms(),
    });
    if admin {
        snapshot["configPath"] = json!(gw.settings.paths.config_path);
        snapshot["stateDir"] = json!(gw.settings.paths.state_dir);
        snapshot["authMode"] = json!(gw.settings.auth.mode);
    }
    json!({
        "type": "hello-ok",
        "protocol": c.protocol,
        "server": {"version": env!("CARGO_PKG_VERSION"), "connId": uuid::Uuid::new_v4().to_string(), "bootId": gw.boot_id},
        "features": {"methods": methods::IMPLEMENTED, "events": methods::EVENTS},
        "snapshot": snapshot,
        "auth": {"method": a.method.wire_name(), "role": a.role.as_str(), "scopes": a.scopes},
        "policy": {"maxPayload": MAX_PAYLOAD_BYTES, "maxBufferedBytes": MAX_BUFFERED_BYTES, "tickIntervalMs": gw.settings.tick_interval.as_millis() as u64},
    })
    .to_string()
}

/// Presence key and fields for a non-CLI client.
fn presence_for(
    c: &Connect,
    a: &Admission,
    t: &Transport,
    conn: u64,
) -> Option<(String, Map<String, Value>)> {
    let client = c.client();
    if client.mode == "cli" || client.mode == "probe" {
        return None;
    }
    let key = a
        .device
        .as_ref()
        .map(|d| d.id.clone())
        .or_else(|| client.instance_id.clone())
        .unwrap_or_else(|| format!("conn-{conn}"));
    let now = crate::util::now_ms();
    let v = json!({
        "host": client.display_name.clone().unwrap_or_else(|| client.id.clone()),
        "ip": t.peer.to_string(), "version": client.version, "platform": client.platform,
        "deviceFamily": client.device_family, "modelIdentifier": client.model_identifier,
        "mode": client.mode, "roles": [a.role.as_str()], "scopes": a.scopes,
        "instanceId": client.instance_id, "deviceId": a.device.as_ref().map(|d| d.id.clone()),
        "reason": "connect", "onlineSince": now, "lastActivityAt": now,
    });
    let fields = v
        .as_object()?
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Some((key, fields))
}

fn broadcast_presence(gw: &Gateway, sv: crate::protocol::frames::StateVersion) {
    let list: Value =
        serde_json::from_str(&gw.hub.presence.list_json(crate::util::now_ms())).unwrap_or_default();
    gw.hub.broadcast(EventFrame::with_state(
        "presence",
        &json!({"presence": list}),
        sv,
    ));
}

/// The authenticated request loop.
async fn session(gw: Arc<Gateway>, mut ws: Ws, t: Transport, c: Connect, a: Admission) {
    let shared = matches!(
        a.method,
        crate::auth::AuthMethod::Token | crate::auth::AuthMethod::Password
    );
    let mut reg = gw.hub.register(
        a.role,
        a.scopes.clone(),
        a.device.as_ref().map(|d| d.id.clone()),
        shared,
        &gw.cancel,
    );
    tracing::debug!(conn = reg.id, role = a.role.as_str(), scopes = ?a.scopes, "connected");
    let presence = presence_for(&c, &a, &t, reg.id);
    if let Some((key, fields)) = &presence {
        let sv = gw
            .hub
            .presence
            .upsert(key, fields.clone(), crate::util::now_ms());
        broadcast_presence(&gw, sv);
    }
    let mut s = Session::new(reg.id, a, c);
    let mut seq: u64 = 0;
    let end = loop {
        tokio::select! {
            biased;
            _ = gw.cancel.cancelled() => {
                seq += 1;
                let ev = EventFrame::new("shutdown", &json!({"reason": "gateway stopping"}));
                let _ = ws.send(Message::text(ev.with_seq(seq))).await;
                break Some((close::SERVICE_RESTART, "service restart".to_string()));
            }
            _ = reg.kick.cancelled() => {
                let k = reg.kick_reason();
                break Some((k.code, k.reason));
            }
            out = reg.rx.recv() => match out {
                Some(Outbound::Event(ev)) => {
                    seq += 1;
                    if let Err(e) = ws.send(Message::text(ev.with_seq(seq))).await {
                        break write_failure(e);
                    }
                }
                None => break None,
            },
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let reply = methods::dispatch(&gw, &mut s, &text).await;
                    if let Err(e) = ws.send(Message::text(reply)).await {
                        break write_failure(e);
                    }
                    if s.flooding() {
                        break Some((close::POLICY, "repeated unauthorized calls".into()));
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let e = WireError::invalid("invalid frame: binary frames are not part of the protocol");
                    if ws.send(Message::text(frames::res_err(frames::INVALID_ID, &e))).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(Message::Close(_))) | None => break None,
                Some(Ok(_)) => {}
                Some(Err(WsError::Capacity(e))) => break Some((close::TOO_BIG, format!("message too large: {e}"))),
                Some(Err(e)) => {
                    tracing::debug!("read error: {e}");
                    break None;
                }
            },
        }
    };
    if let Some((code, reason)) = end {
        close_ws(&mut ws, code, &reason).await;
    }
    gw.hub.unregister(reg.id);
    if let Some(sv) = presence.and_then(|(key, _)| gw.hub.presence.remove(&key)) {
        broadcast_presence(&gw, sv);
    }
    tracing::debug!(conn = reg.id, "disconnected");
}

fn write_failure(e: WsError) -> Option<(u16, String)> {
    match e {
        WsError::WriteBufferFull(_) => Some((close::POLICY, "slow consumer".into())),
        _ => None,
    }
}

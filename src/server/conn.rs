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

/// Initial read buffer: small, because most connections are idle and every idle
/// socket pays for it (the default 128 KiB costs ~130 KiB per socket). tungstenite
/// grows it on demand for larger frames; a typical request fits in one read.
pub const READ_BUFFER: usize = 512;

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
    refusal: Option<String>,
) {
    let span = tracing::info_span!("conn", peer = %t.peer, client = tracing::field::Empty);
    async move {
        if t.proxy_headers
            && !t.proxy_ingress
            && crate::auth::ratelimit::canonical_ip(t.peer).is_loopback()
        {
            gw.audit.note_forwarded_on_loopback();
        }
        let io = GuardedIo::new(TokioIo::new(up), MAX_PREAUTH_PAYLOAD_BYTES);
        let mut ws = WebSocketStream::from_raw_socket(io, WsRole::Server, Some(ws_config())).await;
        if let Some(reason) = refusal {
            tracing::warn!(host = %t.host.as_deref().unwrap_or("-"), "refused before connect: {reason}");
            return close_ws(&mut ws, close::POLICY, &reason).await;
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
        let outcome = tokio::time::timeout(timeout, Box::pin(handshake(&gw, &mut ws, &t))).await;
        drop(permit);
        match outcome {
            Err(_) => close_ws(&mut ws, close::POLICY, "handshake timeout").await,
            Ok(Err(Some(Closing { code, reason }))) => close_ws(&mut ws, code, &reason).await,
            Ok(Err(None)) => {}
            Ok(Ok((connect, admission, hello))) => {
                tracing::Span::current().record("client", connect.client().id.as_str());
                ws.get_mut().disarm();
                session(gw, ws, t, connect, admission, hello).await
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
) -> Result<(Box<Connect>, Admission, String), Option<Closing>> {
    let nonce = crate::util::random_uuid();
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
                return Err(violation_close(&e).map(|(code, reason)| Closing { code, reason }));
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
    let tokens = |d: &crate::protocol::signature::VerifiedDevice,
                  role: &str,
                  tok: &str,
                  scopes: &[String]| {
        let pk = crate::protocol::signature::encode_public_key(&d.public_key);
        gw.pairing
            .read(|p| p.check_device_token(&d.id, &pk, role, tok, scopes))
    };
    let auth = gw.auth();
    let input = handshake::Input {
        tokens: &tokens,
        connect: &connect,
        transport: t,
        auth: &auth,
        allowed_origins: &gw.settings.allowed_origins,
        issued_nonce: &nonce,
        now_ms: crate::util::now_ms(),
        now: Instant::now(),
    };
    let wait = match handshake::loopback_wait(&input, &gw.limiter) {
        Ok(w) => w,
        Err(r) => return Err(refuse(gw, ws, &id, &r).await),
    };
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    let input = handshake::Input {
        now: Instant::now(),
        now_ms: crate::util::now_ms(),
        ..input
    };
    match handshake::decide(&input, &gw.limiter) {
        Ok(mut a) => {
            let paired = match super::admit::pair(gw, &connect, &a, t).await {
                Ok(p) => p,
                Err(r) => {
                    // Throttled: fresh identities can flood pairing requests (RL-5).
                    let request_id = pending_request_id(&r);
                    crate::throttled_info!(gw.refusal_log, "connect held for pairing", code = %r.error.detail_code().unwrap_or("-"), request_id = %request_id, approve = %format_args!("clawgate devices approve {request_id}"), "connect held for pairing: {}", r.error.message);
                    return Err(reject(ws, &id, &r).await);
                }
            };
            a.scopes = paired.scopes.clone();
            for s in &a.identity_scopes {
                if !a.scopes.contains(s) {
                    a.scopes.push(s.clone());
                }
            }
            let hello = frames::res_ok_raw(&id, &hello_ok(gw, &connect, &a, &paired));
            Ok((Box::new(connect), a, hello))
        }
        Err(r) => Err(refuse(gw, ws, &id, &r).await),
    }
}

/// Answers a refused `connect`, logging it through the refusal throttle (RL-3).
async fn refuse(gw: &Gateway, ws: &mut Ws, id: &str, r: &Rejection) -> Option<Closing> {
    crate::throttled_info!(gw.refusal_log, "connect refused", code = %r.error.detail_code().unwrap_or("-"), "connect refused: {}", r.error.message);
    reject(ws, id, r).await
}

/// The pairing request id a `PAIRING_REQUIRED` rejection carries (for the log line).
fn pending_request_id(r: &Rejection) -> &str {
    r.error
        .details
        .as_ref()
        .and_then(|d| d.get("requestId"))
        .and_then(|v| v.as_str())
        .unwrap_or("-")
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
fn hello_ok(gw: &Gateway, c: &Connect, a: &Admission, p: &super::admit::Paired) -> String {
    let admin = a.role == Role::Operator
        && crate::protocol::scopes::satisfies(&a.scopes, crate::protocol::scopes::ADMIN);
    let now = crate::util::now_ms();
    let mut snapshot = format!(
        r#"{{"presence":{},"health":{},"stateVersion":{},"uptimeMs":{}"#,
        gw.hub.presence.list_json(now),
        methods::health_snapshot(gw),
        serde_json::to_string(&gw.hub.presence.state_version()).unwrap_or_default(),
        gw.uptime_ms()
    );
    if admin {
        let extra = json!({"configPath": gw.settings.paths.config_path, "stateDir": gw.settings.paths.state_dir, "authMode": gw.settings.auth.mode});
        snapshot.push(',');
        snapshot.push_str(
            extra
                .to_string()
                .trim_start_matches('{')
                .trim_end_matches('}'),
        );
    }
    snapshot.push('}');
    let server = json!({"version": env!("CARGO_PKG_VERSION"), "connId": crate::util::random_uuid(), "bootId": gw.boot_id});
    format!(
        r#"{{"type":"hello-ok","protocol":{},"server":{},"features":{},"snapshot":{},"auth":{},"policy":{}}}"#,
        c.protocol,
        server,
        features_json(),
        snapshot,
        auth_block(a, p),
        policy_json(gw)
    )
}

/// `hello-ok.features`, serialised once.
fn features_json() -> &'static str {
    static FEATURES: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    FEATURES.get_or_init(|| {
        json!({"methods": methods::IMPLEMENTED, "events": methods::EVENTS}).to_string()
    })
}

fn policy_json(gw: &Gateway) -> String {
    format!(
        r#"{{"maxPayload":{MAX_PAYLOAD_BYTES},"maxBufferedBytes":{MAX_BUFFERED_BYTES},"tickIntervalMs":{}}}"#,
        gw.settings.tick_interval.as_millis() as u64
    )
}

/// `hello-ok.auth`: live scopes, plus issued device tokens.
fn auth_block(a: &Admission, p: &super::admit::Paired) -> Value {
    let mut v =
        json!({"method": a.method.wire_name(), "role": a.role.as_str(), "scopes": a.scopes});
    if let Some(t) = &p.device_token {
        v["deviceToken"] = json!(t.token);
        v["issuedAtMs"] = json!(t.rotated_at_ms.unwrap_or(t.created_at_ms));
    }
    if !p.device_tokens.is_empty() {
        let list: Vec<Value> = p.device_tokens.iter().map(|t| json!({"deviceToken": t.token, "role": t.role, "scopes": t.scopes, "issuedAtMs": t.created_at_ms})).collect();
        v["deviceTokens"] = Value::Array(list);
    }
    v
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

/// The authenticated request loop; `hello` is sent once the connection is routable.
async fn session(
    gw: Arc<Gateway>,
    mut ws: Ws,
    t: Transport,
    c: Box<Connect>,
    a: Admission,
    hello: String,
) {
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
        gw.broadcast_presence(sv);
    }
    let node_id = Box::pin(register_node(&gw, &c, &a, &t, &reg)).await;
    let mut s = Session::new(reg.id, reg.tx.clone(), a, c);
    let mut seq: u64 = 0;
    let end = if ws.send(Message::text(hello)).await.is_err() {
        None
    } else {
        loop {
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
                    Some(Outbound::Reply(text)) => {
                        if let Err(e) = ws.send(Message::text(*text)).await {
                            break write_failure(e);
                        }
                    }
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
                        // Boxed (like the handshake): large, short-lived futures stay out of the
                        // idle connection's state, which is what every idle socket pays for.
                        if let Some(reply) = Box::pin(methods::dispatch(&gw, &mut s, &text)).await {
                            if let Err(e) = ws.send(Message::text(reply)).await {
                                break write_failure(e);
                            }
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
                    Some(Err(e)) => {
                        tracing::debug!("read error: {e}");
                        break violation_close(&e);
                    }
                },
            }
        }
    };
    if let Some((code, reason)) = end {
        close_ws(&mut ws, code, &reason).await;
    }
    gw.hub.unregister(reg.id);
    if let Some(n) = &node_id {
        gw.nodes.disconnect(n, reg.id);
    }
    if let Some(sv) = presence.and_then(|(key, _)| gw.hub.presence.remove(&key)) {
        gw.broadcast_presence(sv);
    }
    tracing::debug!(conn = reg.id, "disconnected");
}

/// Registers a node connection and reconciles its declared command surface.
async fn register_node(
    gw: &Gateway,
    c: &Connect,
    a: &Admission,
    t: &Transport,
    reg: &super::hub::Registration,
) -> Option<String> {
    let id = a
        .device
        .as_ref()
        .filter(|_| a.role == Role::Node)?
        .id
        .clone();
    let p = &c.params;
    let (commands, caps) = (
        p.commands.clone().unwrap_or_default(),
        p.caps.clone().unwrap_or_default(),
    );
    let client = c.client();
    let now = crate::util::now_ms();
    let display = client.display_name.clone();
    let reconciled = gw
        .pairing
        .update(|d| {
            d.reconcile_node(
                &id,
                &commands,
                &caps,
                display.as_deref(),
                now,
                &mut crate::pairing::store::OsEntropy,
            )
        })
        .await;
    let (effective, request) = match reconciled {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("pairing store write failed: {e}");
            (vec![], None)
        }
    };
    if let Some((req, true)) = &request {
        let mut ev = json!(req);
        ev["displayName"] = json!(display);
        gw.hub
            .broadcast(EventFrame::new("node.pair.requested", &ev));
        tracing::info!(node = %id, request = %req.request_id, "node command surface awaits approval: clawgate nodes approve {}", req.request_id);
    }
    let info = json!({
        "displayName": display, "platform": client.platform, "version": client.version,
        "clientId": client.id, "clientMode": client.mode, "deviceFamily": client.device_family,
        "modelIdentifier": client.model_identifier, "remoteIp": t.peer.to_string(), "caps": caps,
        "declaredCommands": commands, "pathEnv": p.path_env, "permissions": p.permissions,
    });
    gw.nodes.connect(
        &id,
        super::nodes::NodeConn {
            conn_id: reg.id,
            tx: reg.tx.clone(),
            info,
            declared: commands,
            effective,
            connected_at_ms: now,
        },
    );
    Some(id)
}

/// The RFC 6455 close for a read error (protocol.md §10): protocol violations 1002,
/// invalid UTF-8 1007, oversize 1009; `None` when the peer is gone (nothing to tell it).
fn violation_close(e: &WsError) -> Option<(u16, String)> {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    match e {
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(p) => Some((close::PROTOCOL_ERROR, format!("protocol error: {p}"))),
        WsError::Utf8(_) => Some((
            close::INVALID_PAYLOAD,
            "invalid UTF-8 in a text frame".into(),
        )),
        WsError::Capacity(c) => Some((close::TOO_BIG, format!("message too large: {c}"))),
        _ => None,
    }
}

fn write_failure(e: WsError) -> Option<(u16, String)> {
    match e {
        WsError::WriteBufferFull(_) => Some((close::POLICY, "slow consumer".into())),
        _ => None,
    }
}

//! RPC dispatch for authenticated connections: frame parsing, role and scope
//! checks, the unauthorized-call flood guard, and the core methods
//! (`health`, `status`, `system-presence`, `system-event`, `gateway.identity.get`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::Gateway;
use crate::auth::handshake::Admission;
use crate::protocol::connect::{Connect, Role};
use crate::protocol::errors::WireError;
use crate::protocol::frames;
use crate::protocol::scopes::{self, Denied};

/// Methods this gateway serves (advertised in `hello-ok.features.methods`).
pub const IMPLEMENTED: &[&str] = &[
    "health",
    "status",
    "system-presence",
    "system-event",
    "gateway.identity.get",
    "config.get",
    "device.pair.list",
    "device.pair.approve",
    "device.pair.reject",
    "device.pair.remove",
    "device.pair.rename",
    "device.token.rotate",
    "device.token.revoke",
    "node.pair.list",
    "node.pair.approve",
    "node.pair.reject",
    "node.pair.remove",
    "node.rename",
    "node.list",
    "node.describe",
    "node.invoke",
    "node.invoke.result",
    "node.invoke.progress",
    "node.event",
];
/// Served but not advertised (the reference does not list them either).
pub const UNADVERTISED: &[&str] = &["device.pair.setupCode"];
/// Events this gateway emits.
pub const EVENTS: &[&str] = &[
    "connect.challenge",
    "tick",
    "presence",
    "shutdown",
    "device.pair.requested",
    "device.pair.resolved",
    "node.pair.requested",
    "node.pair.resolved",
    "node.invoke.request",
];
/// Denied calls tolerated per [`DENIAL_WINDOW`]; one more closes 1008 (threats.md RL-4;
/// the reference closes after 10 consecutive role violations — we count every denial).
pub const MAX_DENIALS: usize = 10;
/// Sliding window of the breaker: a client that probes a scope it lacks now and
/// then stays connected; a flood does not, whatever allowed calls it interleaves.
pub const DENIAL_WINDOW: Duration = Duration::from_secs(10);
/// Families of privileged methods: an unknown method in one of them is a denied call,
/// an unknown method elsewhere (a newer client probing a feature) is not.
pub const PRIVILEGED_PREFIXES: &[&str] = &[
    "config.", "update.", "exec", "secrets.", "plugins.", "device.", "node.", "system.",
    "gateway.", "wizard.", "cron.", "hooks.",
];

/// Per-connection state visible to handlers.
pub struct Session {
    pub conn_id: u64,
    /// This connection's outbound queue, for replies completed later.
    pub tx: tokio::sync::mpsc::Sender<super::hub::Outbound>,
    pub admission: Admission,
    pub connect: Box<Connect>,
    /// When each denied call of the last [`DENIAL_WINDOW`] happened.
    denials: VecDeque<Instant>,
}

impl Session {
    pub fn new(
        conn_id: u64,
        tx: tokio::sync::mpsc::Sender<super::hub::Outbound>,
        admission: Admission,
        connect: Box<Connect>,
    ) -> Self {
        Session {
            conn_id,
            tx,
            admission,
            connect,
            denials: VecDeque::new(),
        }
    }

    /// The pairing view of this caller.
    pub fn caller(&self) -> crate::pairing::Caller {
        crate::pairing::Caller {
            scopes: self.admission.scopes.clone(),
            device_id: self.admission.device.as_ref().map(|d| d.id.clone()),
            via_device_token: self.admission.method == crate::auth::AuthMethod::DeviceToken,
        }
    }

    /// The node id of a node-role connection (its device id).
    pub fn node_id(&self) -> Option<&str> {
        (self.admission.role == Role::Node)
            .then(|| self.admission.device.as_ref().map(|d| d.id.as_str()))
            .flatten()
    }

    /// Records a denied call at `now`; allowed calls never clear the window.
    pub fn record_denial(&mut self, now: Instant) {
        while self
            .denials
            .front()
            .is_some_and(|t| now.duration_since(*t) >= DENIAL_WINDOW)
        {
            self.denials.pop_front();
        }
        self.denials.push_back(now);
    }

    /// More than [`MAX_DENIALS`] denied calls inside the window: close the connection.
    pub fn flooding(&self) -> bool {
        self.denials.len() > MAX_DENIALS
    }

    fn is_admin(&self) -> bool {
        self.admission.role == Role::Operator
            && scopes::satisfies(&self.admission.scopes, scopes::ADMIN)
    }
}

/// Handles one text frame and returns the response frame.
/// Handles one text frame; `None` when the reply will arrive on the session's queue.
pub async fn dispatch(gw: &std::sync::Arc<Gateway>, s: &mut Session, text: &str) -> Option<String> {
    let req = match frames::parse_request(text) {
        Ok(r) => r,
        Err(e) => return Some(frames::res_err(&e.id, &WireError::invalid(e.message))),
    };
    let denied = denial(s, &req.method);
    if let Some((counts, e)) = denied {
        if counts {
            s.record_denial(Instant::now());
            crate::throttled_info!(gw.denial_log, "call denied", conn = s.conn_id, method = %req.method, "call denied: {}", e.message);
        }
        return Some(frames::res_err(&req.id, &e));
    }
    let params = req.params.map(|p| p.get()).unwrap_or("{}");
    if let Some(r) = super::methods_pairing::handle(gw, s, &req.method, params).await {
        return Some(
            r.map(|v| frames::res_ok(&req.id, &v))
                .unwrap_or_else(|e| frames::res_err(&req.id, &e)),
        );
    }
    if let Some(r) = super::methods_nodes::handle(gw, s, &req.id, &req.method, params).await {
        return match r {
            Ok(Some(v)) => Some(frames::res_ok(&req.id, &v)),
            Ok(None) => None,
            Err(e) => Some(frames::res_err(&req.id, &e)),
        };
    }
    let result = match req.method.as_ref() {
        "health" => Ok(frames::res_ok(&req.id, &health_snapshot(gw))),
        "status" => Ok(frames::res_ok(&req.id, &status(gw, s))),
        "system-presence" => Ok(frames::res_ok_raw(
            &req.id,
            &gw.hub.presence.list_json(crate::util::now_ms()),
        )),
        "system-event" => req
            .params_as::<SystemEvent>()
            .map(|p| frames::res_ok(&req.id, &system_event(gw, s, p))),
        "gateway.identity.get" => Ok(frames::res_ok(
            &req.id,
            &json!({"deviceId": gw.identity.device_id, "publicKey": gw.identity.public_key}),
        )),
        "config.get" => Ok(frames::res_ok(&req.id, &config_get(gw, s))),
        other => Err(WireError::invalid(format!("unknown method: {other}"))),
    };
    Some(result.unwrap_or_else(|e| frames::res_err(&req.id, &e)))
}

/// Why this session may not call `method`, and whether it counts toward the breaker
/// (scope, role, unknown privileged method); `None` when the call is allowed.
fn denial(s: &Session, method: &str) -> Option<(bool, WireError)> {
    let served = IMPLEMENTED.contains(&method) || UNADVERTISED.contains(&method);
    let Some(access) = scopes::method_access(method).filter(|_| served) else {
        let privileged = PRIVILEGED_PREFIXES.iter().any(|p| method.starts_with(p));
        return Some((
            privileged,
            WireError::invalid(format!("unknown method: {method}")),
        ));
    };
    match scopes::authorize(access, s.admission.role, &s.admission.scopes) {
        Ok(()) => None,
        Err(Denied::Role) => {
            let role = s.admission.role.as_str();
            let msg = format!("unauthorized role: {role} cannot call {method}");
            Some((true, WireError::invalid(msg)))
        }
        Err(Denied::Scope(scope)) => Some((true, WireError::missing_scope(scope))),
    }
}

/// The health snapshot (`health` result and `hello-ok.snapshot.health`).
pub fn health_snapshot(gw: &Gateway) -> Value {
    let started = std::time::Instant::now();
    let (operators, nodes) = gw.hub.counts_by_role();
    json!({
        "ok": true,
        "ts": crate::util::now_ms(),
        "durationMs": started.elapsed().as_millis() as u64,
        "uptimeMs": gw.uptime_ms(),
        "connections": {"operators": operators, "nodes": nodes},
    })
}

fn status(gw: &Gateway, s: &Session) -> Value {
    let (operators, nodes) = gw.hub.counts_by_role();
    let mut v = json!({
        "ok": true,
        "version": env!("CARGO_PKG_VERSION"),
        // The reference's name for the same value.
        "runtimeVersion": env!("CARGO_PKG_VERSION"),
        "uptimeMs": gw.uptime_ms(),
        "connections": {"operators": operators, "nodes": nodes},
        "presence": gw.hub.presence.state_version(),
        "exposure": gw.exposure.report(),
        "tailscaleSource": gw.exposure.source_report(),
        "audit": gw.audit.json(),
    });
    if let Some(d) = gw.discovery.get() {
        v["discovery"] = serde_json::to_value(d.status()).unwrap_or_default();
    }
    v["tls"] = match gw.tls.get() {
        Some(t) => json!({"enabled": true, "fingerprint": t.fingerprint()}),
        None => json!({"enabled": false}),
    };
    if s.is_admin() {
        let addrs: Vec<String> = gw
            .listen_addrs
            .lock()
            .map(|a| a.iter().map(|x| x.to_string()).collect())
            .unwrap_or_default();
        v["gateway"] = json!({
            "bind": gw.settings.bind,
            "port": gw.settings.port,
            "listening": addrs,
            "authMode": gw.settings.auth.mode,
            "configPath": gw.settings.paths.config_path,
            "stateDir": gw.settings.paths.state_dir,
            "deviceId": gw.identity.device_id,
        });
    }
    v
}

/// `config.get`: the effective config, secrets redacted; paths only for admins.
fn config_get(gw: &Gateway, s: &Session) -> Value {
    let mut v = gw.settings.redacted_json();
    let exists = v["configExists"].clone();
    let path = if s.is_admin() {
        v["configPath"].clone()
    } else {
        Value::Null
    };
    if !s.is_admin() {
        if let Some(o) = v.as_object_mut() {
            o.remove("stateDir");
            o.remove("configPath");
        }
    }
    json!({"path": path, "exists": exists, "valid": true, "issues": [], "config": v})
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SystemEvent {
    text: String,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// Known optional presence fields a `system-event` may set.
const SYSTEM_EVENT_FIELDS: &[&str] = &[
    "deviceId",
    "instanceId",
    "host",
    "ip",
    "mode",
    "version",
    "platform",
    "deviceFamily",
    "modelIdentifier",
    "lastInputSeconds",
    "reason",
    "roles",
    "scopes",
    "tags",
];

fn system_event(gw: &Gateway, s: &Session, p: SystemEvent) -> Value {
    let mut fields: Map<String, Value> = p
        .rest
        .into_iter()
        .filter(|(k, _)| SYSTEM_EVENT_FIELDS.contains(&k.as_str()))
        .collect();
    fields.insert("text".into(), Value::String(p.text));
    let key = ["deviceId", "instanceId"]
        .iter()
        .find_map(|k| fields.get(*k).and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| format!("conn-{}", s.conn_id));
    let sv = gw.hub.presence.upsert(&key, fields, crate::util::now_ms());
    gw.broadcast_presence(sv);
    json!({"ok": true, "stateVersion": sv})
}

//! Node methods: `node.list`, `node.describe`, `node.invoke` (operator → node
//! routing with timeout and idempotency), and the node-role `node.invoke.result`,
//! `node.invoke.progress`, `node.event` (protocol.md §17, §18).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::hub::Outbound;
use super::methods::Session;
use super::nodes::{InvokeFailure, Started, DEFAULT_INVOKE_TIMEOUT_MS};
use super::Gateway;
use crate::pairing::machine::ADMIN_ONLY_INVOKE;
use crate::pairing::{NodeSurface, PairedDevice, PairingData};
use crate::protocol::errors::{ErrorCode, WireError};
use crate::protocol::frames;
use crate::protocol::scopes::{self, ADMIN};

/// Longest invoke timeout a caller may ask for.
pub const MAX_INVOKE_TIMEOUT_MS: u64 = 10 * 60 * 1000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvokeParams {
    node_id: String,
    command: String,
    #[serde(default)]
    params: Option<Value>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    idempotency_key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultParams {
    id: String,
    node_id: String,
    ok: bool,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default, rename = "payloadJSON")]
    payload_json: Option<String>,
    #[serde(default)]
    error: Option<Value>,
}

fn parse<T: for<'de> Deserialize<'de>>(method: &str, params: &str) -> Result<T, WireError> {
    serde_json::from_str(params)
        .map_err(|e| WireError::invalid(format!("invalid {method} params: {e}")))
}

/// The paired device's client metadata under the reference's field names (`node.list`,
/// `node.pair.*`); absent fields stay absent.
pub(super) fn device_meta(dev: Option<&PairedDevice>) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(meta) = dev.map(|d| &d.meta) {
        for (k, v) in [
            ("clientId", &meta.client_id),
            ("clientMode", &meta.client_mode),
            ("platform", &meta.platform),
            ("deviceFamily", &meta.device_family),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), json!(v));
            }
        }
    }
    m
}

/// The reference's approval fields of a node row: `approvalState`, and while a surface request
/// waits, its id and the declared (not yet effective) commands and caps.
fn approval_fields(v: &mut Value, surface: Option<&NodeSurface>) {
    let Some(s) = surface else { return };
    if let Some(p) = &s.pending {
        v["approvalState"] = json!("pending-approval");
        v["pendingRequestId"] = json!(p.request_id);
        v["pendingDeclaredCommands"] = json!(p.commands);
        v["pendingDeclaredCaps"] = json!(p.caps);
    } else if s.approved_at_ms.is_some() {
        v["approvalState"] = json!("approved");
    }
}

/// One `node.list` row: live connection fields first, then the paired record's.
fn node_row(id: &str, d: &PairingData, live: &[LiveNode]) -> Value {
    let surface = d.nodes.get(id);
    let dev = d.paired.get(id);
    let conn = live.iter().find(|(n, ..)| n == id);
    let mut v = conn
        .map(|(_, info, ..)| info.clone())
        .unwrap_or_else(|| json!({}));
    for (k, m) in device_meta(dev) {
        if v.get(&k).is_none_or(Value::is_null) {
            v[k] = m;
        }
    }
    v["nodeId"] = json!(id);
    v["connected"] = json!(conn.is_some());
    v["paired"] = json!(dev.is_some());
    if let Some(name) = surface
        .and_then(|s| s.display_name.clone())
        .or(dev.and_then(|d| d.label.clone().or(d.meta.display_name.clone())))
    {
        v["displayName"] = json!(name);
    }
    let approved_caps = surface.map(|s| s.approved_caps.clone()).unwrap_or_default();
    if let Some((_, _, eff, at)) = conn {
        v["commands"] = json!(eff);
        v["connectedAtMs"] = json!(at);
        // Like commands, declared caps count only once approved (the reference shows `[]`).
        let declared: Vec<String> = serde_json::from_value(v["caps"].take()).unwrap_or_default();
        v["caps"] = json!(declared
            .into_iter()
            .filter(|c| approved_caps.contains(c))
            .collect::<Vec<_>>());
    } else {
        v["commands"] = json!(surface
            .map(|s| s.approved_commands.clone())
            .unwrap_or_default());
        v["caps"] = json!(approved_caps);
    }
    if let Some(at) = surface
        .and_then(|s| s.approved_at_ms)
        .or(dev.map(|d| d.approved_at_ms))
    {
        v["approvedAtMs"] = json!(at);
    }
    approval_fields(&mut v, surface);
    v
}

/// A connected node as the registry reports it: id, info, effective commands, connected-at.
type LiveNode = (String, Value, Vec<String>, i64);

/// All known nodes (paired surfaces and connected nodes), connected first, then by name.
fn node_rows(gw: &Gateway) -> Vec<Value> {
    let live = gw.nodes.snapshot();
    let mut rows: Vec<Value> = gw.pairing.read(|d| {
        let mut ids: Vec<String> = d.nodes.keys().cloned().collect();
        ids.extend(
            d.paired
                .values()
                .filter(|p| p.roles.iter().any(|r| r == "node"))
                .map(|p| p.device_id.clone()),
        );
        ids.extend(live.iter().map(|(id, ..)| id.clone()));
        ids.sort();
        ids.dedup();
        ids.iter().map(|id| node_row(id, d, &live)).collect()
    });
    rows.sort_by_key(|r| {
        (
            !r["connected"].as_bool().unwrap_or(false),
            r["displayName"].as_str().unwrap_or("").to_string(),
        )
    });
    rows
}

/// Dispatches node methods. `Ok(None)` means the reply will arrive on the session's queue.
pub async fn handle(
    gw: &Arc<Gateway>,
    s: &Session,
    req_id: &str,
    method: &str,
    params: &str,
) -> Option<Result<Option<Value>, WireError>> {
    Some(match method {
        "node.list" => Ok(Some(
            json!({"ts": crate::util::now_ms(), "nodes": node_rows(gw)}),
        )),
        "node.describe" => parse::<Value>(method, params).and_then(|p| {
            let id = p["nodeId"].as_str().unwrap_or_default().to_string();
            node_rows(gw)
                .into_iter()
                .find(|r| r["nodeId"] == id.as_str())
                .map(|mut r| {
                    r["ts"] = json!(crate::util::now_ms());
                    Some(r)
                })
                .ok_or_else(|| WireError::invalid("unknown nodeId"))
        }),
        "node.invoke" => invoke(gw, s, req_id, parse(method, params)).map(|()| None),
        "node.invoke.result" => parse::<ResultParams>(method, params).and_then(|p| {
            if s.node_id() != Some(p.node_id.as_str()) {
                return Err(WireError::invalid("nodeId does not match this node"));
            }
            let result = if p.ok {
                Ok(json!({"payload": p.payload, "payloadJSON": p.payload_json}))
            } else {
                Err(InvokeFailure::Node(p.error.unwrap_or(Value::Null)))
            };
            let known = gw.nodes.complete(&p.node_id, &p.id, result);
            Ok(Some(if known {
                json!({"ok": true})
            } else {
                json!({"ok": true, "ignored": true})
            }))
        }),
        "node.invoke.progress" => parse::<Value>(method, params).map(|p| {
            let live = p["invokeId"]
                .as_str()
                .is_some_and(|id| gw.nodes.is_pending(s.node_id().unwrap_or_default(), id));
            // Progress for an invoke that is not (or no longer) pending is ignored, as a late result.
            Some(if live {
                json!({"ok": true})
            } else {
                json!({"ok": true, "ignored": true})
            })
        }),
        "node.event" => parse::<Value>(method, params)
            .map(|p| Some(json!({"ok": true, "event": p["event"], "handled": false}))),
        _ => return None,
    })
}

fn invoke(
    gw: &Arc<Gateway>,
    s: &Session,
    req_id: &str,
    p: Result<InvokeParams, WireError>,
) -> Result<(), WireError> {
    let p = p?;
    if p.command.starts_with("system.execApprovals.") {
        return Err(
            WireError::invalid("node.invoke does not allow system.execApprovals.*")
                .with_details(json!({"command": p.command})),
        );
    }
    if ADMIN_ONLY_INVOKE.contains(&p.command.as_str())
        && !scopes::satisfies(&s.admission.scopes, ADMIN)
    {
        return Err(WireError::missing_scope(ADMIN));
    }
    let cfg = &gw.settings.file.gateway.nodes;
    let denied = cfg
        .commands
        .deny
        .iter()
        .chain(&cfg.deny_commands)
        .any(|c| c == &p.command);
    let allow: Vec<&String> = cfg
        .commands
        .allow
        .iter()
        .chain(&cfg.allow_commands)
        .collect();
    if denied || (!allow.is_empty() && !allow.contains(&&p.command)) {
        return Err(WireError::invalid(format!(
            "command {} is not allowed by gateway.nodes.commands",
            p.command
        ))
        .with_details(json!({"reason": "command-not-allowed"})));
    }
    let timeout = p
        .timeout_ms
        .filter(|t| *t > 0)
        .unwrap_or(DEFAULT_INVOKE_TIMEOUT_MS)
        .min(MAX_INVOKE_TIMEOUT_MS);
    let rx = match gw.nodes.start_invoke(
        &p.node_id,
        &p.command,
        p.params.as_ref(),
        timeout,
        Some(&p.idempotency_key),
    ) {
        Started::NotConnected => {
            return Err(
                WireError::new(ErrorCode::Unavailable, "node not connected").with_details(
                    json!({"code": "NOT_CONNECTED", "nodeError": {"code": "NOT_CONNECTED", "message": "node not connected"}, "nodeCommandDispatched": false}),
                ),
            )
        }
        Started::NotAllowed => {
            return Err(WireError::invalid(format!(
                "command {} is not approved for this node (approve it: clawgate nodes pending)",
                p.command
            ))
            .with_details(json!({"reason": "command-not-approved", "command": p.command})))
        }
        Started::Busy => {
            return Err(WireError::new(
                ErrorCode::Unavailable,
                "node is not keeping up; retry shortly",
            )
            .retry_after(500))
        }
        Started::Done(r) => {
            let _ = s.tx.try_send(Outbound::Reply(Box::new(reply(
                req_id, &p.node_id, &p.command, r,
            ))));
            return Ok(());
        }
        Started::Waiting(rx) => rx,
    };
    let (gw2, tx, id) = (gw.clone(), s.tx.clone(), req_id.to_string());
    gw.tracker.spawn(async move {
        let result = match tokio::time::timeout(std::time::Duration::from_millis(timeout), rx).await
        {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(InvokeFailure::Disconnected),
            Err(_) => {
                if let Some(inv) = gw2.nodes.id_for_key(&p.node_id, &p.idempotency_key) {
                    gw2.nodes.expire(&inv);
                }
                Err(InvokeFailure::Timeout)
            }
        };
        let _ = tx
            .send(Outbound::Reply(Box::new(reply(
                &id, &p.node_id, &p.command, result,
            ))))
            .await;
    });
    Ok(())
}

/// The `payload` of a successful invoke as the reference answers it: the node's own `payload`,
/// else its `payloadJSON` parsed (protocol.md §16; `openclaw nodes invoke --json` prints it), else
/// `null` (no payload, or `payloadJSON` that is not JSON — passed through untouched as the string).
fn result_payload(v: &Value) -> Value {
    match &v["payload"] {
        Value::Null => v["payloadJSON"]
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null),
        p => p.clone(),
    }
}

/// The operator's `res` for a finished invoke (reference shapes, see the ADR).
fn reply(req_id: &str, node_id: &str, command: &str, r: super::nodes::InvokeResult) -> String {
    match r {
        Ok(v) => frames::res_ok(
            req_id,
            &json!({"ok": true, "nodeId": node_id, "command": command, "payload": result_payload(&v), "payloadJSON": v["payloadJSON"]}),
        ),
        Err(f) => {
            let (node_error, msg) = match f {
                InvokeFailure::Node(e) => {
                    let code = e["code"].as_str().unwrap_or("").to_string();
                    let m = e["message"]
                        .as_str()
                        .unwrap_or("node invoke failed")
                        .to_string();
                    (
                        e,
                        if code.is_empty() {
                            m
                        } else {
                            format!("{code}: {m}")
                        },
                    )
                }
                InvokeFailure::Timeout => (
                    json!({"code": "TIMEOUT", "message": "node invoke timed out"}),
                    "TIMEOUT: node invoke timed out".into(),
                ),
                InvokeFailure::Disconnected => (
                    json!({"code": "NOT_CONNECTED", "message": "node disconnected"}),
                    "NOT_CONNECTED: node disconnected".into(),
                ),
            };
            let e = WireError::new(ErrorCode::Unavailable, msg)
                .with_details(json!({"nodeError": node_error, "nodeCommandDispatched": true}));
            frames::res_err(req_id, &e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoke_payload_is_the_parsed_payload_json_like_the_reference() {
        let which = json!({"payload": null, "payloadJSON": "{\"bins\":{\"sh\":\"/usr/bin/sh\"}}"});
        assert_eq!(
            result_payload(&which),
            json!({"bins": {"sh": "/usr/bin/sh"}})
        );
        let direct = json!({"payload": {"a": 1}, "payloadJSON": null});
        assert_eq!(result_payload(&direct), json!({"a": 1}));
        let garbage = json!({"payload": null, "payloadJSON": "not json"});
        assert_eq!(result_payload(&garbage), Value::Null);
        assert_eq!(result_payload(&json!({})), Value::Null);
        let frame: Value =
            serde_json::from_str(&reply("r1", "n", "system.which", Ok(which))).unwrap();
        assert_eq!(frame["payload"]["payload"]["bins"]["sh"], "/usr/bin/sh");
        assert!(frame["payload"]["payloadJSON"].is_string());
    }
}

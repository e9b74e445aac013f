//! `device.pair.*`, `device.token.*` and `node.pair.*` / `node.rename`
//! (protocol.md §13.5, §13.6, §16). Authorization beyond the method scope
//! (caller-scope bounds, own-device rules) lives in the pairing state machine.

use serde::Deserialize;
use serde_json::{json, Value};

use super::methods::Session;
use super::Gateway;
use crate::pairing::store::OsEntropy;
use crate::pairing::{PairedDevice, PairingError};
use crate::protocol::errors::{close, WireError};
use crate::protocol::frames::EventFrame;

fn perr(e: PairingError) -> WireError {
    let reason = match &e {
        PairingError::CallerMissingScope(_) => "caller-missing-scope",
        PairingError::UnknownRequest => "unknown-request",
        PairingError::UnknownDevice => "unknown-device",
        PairingError::UnknownNode => "unknown-node",
        PairingError::RoleNotApproved(_) => "role-not-approved",
        PairingError::NotOwnDevice => "not-own-device",
        PairingError::InvalidLabel => "invalid-label",
        PairingError::TooManyPending => "too-many-pending",
    };
    // The reference CLI retries with operator.admin when the message says
    // "device pairing approval denied" (devices-cli `isDevicePairingApprovalDenied`).
    let message = match &e {
        PairingError::CallerMissingScope(_) | PairingError::NotOwnDevice => {
            format!("device pairing approval denied: {e}")
        }
        _ => e.to_string(),
    };
    WireError::invalid(message).with_details(json!({"reason": reason}))
}

fn store(e: crate::pairing::store::StoreError) -> WireError {
    tracing::error!("pairing store write failed: {e}");
    WireError::new(
        crate::protocol::errors::ErrorCode::Unavailable,
        "pairing store unavailable; retry shortly",
    )
    .retry_after(1000)
}

/// A paired device with token secrets replaced by summaries.
pub fn redact(d: &PairedDevice) -> Value {
    let mut v = serde_json::to_value(d).unwrap_or_default();
    let tokens: Vec<Value> = d.tokens.values().map(|t| json!({"role": t.role, "scopes": t.scopes, "createdAtMs": t.created_at_ms, "rotatedAtMs": t.rotated_at_ms, "revokedAtMs": t.revoked_at_ms, "lastUsedAtMs": t.last_used_at_ms})).collect();
    v["tokens"] = Value::Array(tokens);
    v["role"] = json!(d.roles.first());
    v["scopes"] = json!(d.approved_scopes);
    v
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestIdParams {
    request_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceParams {
    device_id: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeParams {
    node_id: String,
    #[serde(default)]
    display_name: Option<String>,
}

fn parse<T: for<'de> Deserialize<'de>>(method: &str, params: &str) -> Result<T, WireError> {
    serde_json::from_str(params)
        .map_err(|e| WireError::invalid(format!("invalid {method} params: {e}")))
}

/// Dispatches the pairing methods; `None` when `method` is not one of them.
pub async fn handle(
    gw: &Gateway,
    s: &Session,
    method: &str,
    params: &str,
) -> Option<Result<Value, WireError>> {
    let now = crate::util::now_ms();
    let caller = s.caller();
    Some(match method {
        "device.pair.list" => Ok(device_pair_list(gw, now)),
        "device.pair.approve" => approve(gw, &caller, parse(method, params), now).await,
        "device.pair.reject" => reject(gw, parse(method, params), now).await,
        "device.pair.remove" => remove(gw, &caller, parse(method, params)).await,
        "device.pair.rename" => rename(gw, parse(method, params)).await,
        "device.token.rotate" => rotate(gw, s, parse(method, params), now).await,
        "device.token.revoke" => revoke(gw, &caller, parse(method, params), now).await,
        "device.pair.setupCode" => setup_code(gw, parse(method, params), now).await,
        "node.pair.list" => Ok(node_pair_list(gw)),
        "node.pair.approve" => approve_node(gw, &caller, parse(method, params), now).await,
        "node.pair.reject" => reject_node(gw, parse(method, params), now).await,
        "node.pair.remove" => remove_node(gw, &caller, parse(method, params)).await,
        "node.rename" => rename_node(gw, parse(method, params)).await,
        _ => return None,
    })
}

/// Applies a pairing change durably; store and pairing errors become wire errors.
async fn change<T>(
    gw: &Gateway,
    f: impl FnOnce(&mut crate::pairing::PairingData) -> Result<T, PairingError>,
) -> Result<T, WireError> {
    gw.pairing.update(f).await.map_err(store)?.map_err(perr)
}

fn device_pair_list(gw: &Gateway, now: i64) -> Value {
    gw.pairing.read(|p| {
        let pending: Vec<Value> = p
            .pending
            .values()
            .filter(|r| now - r.ts < crate::pairing::machine::PENDING_TTL_MS)
            .map(|r| json!(r))
            .collect();
        let paired: Vec<Value> = p.paired.values().map(redact).collect();
        json!({"pending": pending, "paired": paired})
    })
}

async fn reject(
    gw: &Gateway,
    p: Result<RequestIdParams, WireError>,
    now: i64,
) -> Result<Value, WireError> {
    let p = p?;
    let r = change(gw, |d| d.reject(&p.request_id)).await?;
    gw.hub.broadcast(EventFrame::new("device.pair.resolved", &json!({"requestId": r.request_id, "deviceId": r.device_id, "decision": "rejected", "ts": now})));
    Ok(json!({"requestId": r.request_id, "deviceId": r.device_id}))
}

async fn remove(
    gw: &Gateway,
    caller: &crate::pairing::Caller,
    p: Result<DeviceParams, WireError>,
) -> Result<Value, WireError> {
    let p = p?;
    change(gw, |d| d.remove(&p.device_id, caller)).await?;
    gw.hub.kick_where(close::POLICY, "device removed", |e| {
        e.device_id.as_deref() == Some(p.device_id.as_str())
    });
    Ok(json!({"deviceId": p.device_id}))
}

async fn rename(gw: &Gateway, p: Result<DeviceParams, WireError>) -> Result<Value, WireError> {
    let p = p?;
    let d = change(gw, |d| {
        d.rename(&p.device_id, p.label.as_deref().unwrap_or(""))
    })
    .await?;
    Ok(json!({"deviceId": d.device_id, "label": d.label}))
}

async fn revoke(
    gw: &Gateway,
    caller: &crate::pairing::Caller,
    p: Result<DeviceParams, WireError>,
    now: i64,
) -> Result<Value, WireError> {
    let p = p?;
    let role = p.role.clone().unwrap_or_default();
    let t = change(gw, |d| d.revoke(&p.device_id, &role, caller, now)).await?;
    let r = if role == "node" {
        crate::protocol::connect::Role::Node
    } else {
        crate::protocol::connect::Role::Operator
    };
    gw.hub
        .kick_where(close::POLICY, "device token revoked", |e| {
            e.device_id.as_deref() == Some(p.device_id.as_str()) && e.role == r
        });
    Ok(json!({"deviceId": p.device_id, "role": role, "revokedAtMs": t.revoked_at_ms}))
}

async fn reject_node(
    gw: &Gateway,
    p: Result<RequestIdParams, WireError>,
    now: i64,
) -> Result<Value, WireError> {
    let p = p?;
    let r = change(gw, |d| d.reject_node(&p.request_id)).await?;
    gw.hub.broadcast(EventFrame::new(
        "node.pair.resolved",
        &json!({"requestId": r.request_id, "nodeId": r.node_id, "decision": "rejected", "ts": now}),
    ));
    Ok(json!({"requestId": r.request_id, "nodeId": r.node_id}))
}

/// Removes a node's surface and, like the reference, the pairing of a node-only device (so it
/// cannot reconnect on its device token); a device that is also an operator keeps that role.
async fn remove_node(
    gw: &Gateway,
    caller: &crate::pairing::Caller,
    p: Result<NodeParams, WireError>,
) -> Result<Value, WireError> {
    let p = p?;
    let id = p.node_id.as_str();
    change(gw, |d| {
        d.remove_node(id)?;
        if d.paired
            .get(id)
            .is_some_and(|dev| dev.roles.iter().all(|r| r == "node"))
        {
            d.remove(id, caller)?;
        }
        Ok(())
    })
    .await?;
    gw.nodes.set_effective(id, vec![]);
    gw.hub.kick_where(close::POLICY, "node removed", |e| {
        e.device_id.as_deref() == Some(id) && e.role == crate::protocol::connect::Role::Node
    });
    Ok(json!({"nodeId": p.node_id}))
}

async fn rename_node(gw: &Gateway, p: Result<NodeParams, WireError>) -> Result<Value, WireError> {
    let p = p?;
    let name = p.display_name.clone().unwrap_or_default();
    change(gw, |d| d.rename_node(&p.node_id, &name)).await?;
    Ok(json!({"nodeId": p.node_id, "displayName": name}))
}

async fn approve(
    gw: &Gateway,
    caller: &crate::pairing::Caller,
    p: Result<RequestIdParams, WireError>,
    now: i64,
) -> Result<Value, WireError> {
    let p = p?;
    let (req, dev) = change(gw, |d| {
        d.approve(&p.request_id, Some(caller), now, &mut OsEntropy)
    })
    .await?;
    gw.hub.broadcast(EventFrame::new("device.pair.resolved", &json!({"requestId": req.request_id, "deviceId": req.device_id, "decision": "approved", "ts": now})));
    tracing::info!(device = %req.device_id, roles = ?req.roles, "pairing approved by operator");
    Ok(json!({"requestId": req.request_id, "device": redact(&dev)}))
}

async fn rotate(
    gw: &Gateway,
    s: &Session,
    p: Result<DeviceParams, WireError>,
    now: i64,
) -> Result<Value, WireError> {
    let p = p?;
    let role = p
        .role
        .clone()
        .ok_or_else(|| WireError::invalid("device.token.rotate needs role"))?;
    let caller = s.caller();
    let t = change(gw, |d| {
        d.rotate(
            &p.device_id,
            &role,
            p.scopes.as_deref(),
            &caller,
            now,
            &mut OsEntropy,
        )
    })
    .await?;
    let same_device =
        caller.via_device_token && caller.device_id.as_deref() == Some(p.device_id.as_str());
    let mut v =
        json!({"deviceId": p.device_id, "role": role, "scopes": t.scopes, "rotatedAtMs": now});
    if same_device {
        v["token"] = json!(t.token);
        v["tokenDelivery"] = json!("in-band");
    } else {
        v["tokenDelivery"] = json!("withheld-cross-device");
    }
    Ok(v)
}

fn node_pair_list(gw: &Gateway) -> Value {
    gw.pairing.read(|d| {
        let pending: Vec<Value> = d
            .nodes
            .values()
            .filter_map(|n| {
                n.pending.as_ref().map(|p| {
                    let mut v = with_meta(json!(p), d, &n.node_id);
                    v["displayName"] = json!(n.display_name);
                    v
                })
            })
            .collect();
        let paired: Vec<Value> = d
            .nodes
            .values()
            .filter(|n| n.approved_at_ms.is_some())
            .map(|n| approved_node(d, n))
            .collect();
        json!({"pending": pending, "paired": paired})
    })
}

async fn approve_node(
    gw: &Gateway,
    caller: &crate::pairing::Caller,
    p: Result<RequestIdParams, WireError>,
    now: i64,
) -> Result<Value, WireError> {
    let p = p?;
    let (n, node) = change(gw, |d| {
        let n = d.approve_node(&p.request_id, caller, now)?;
        let node = approved_node(d, &n);
        Ok((n, node))
    })
    .await?;
    gw.nodes.refresh_effective(&n.node_id, &n.approved_commands);
    gw.hub.broadcast(EventFrame::new(
        "node.pair.resolved",
        &json!({"requestId": p.request_id, "nodeId": n.node_id, "decision": "approved", "ts": now}),
    ));
    Ok(json!({"requestId": p.request_id, "node": node}))
}

/// `v` with the node's paired-device metadata (clientId, platform, …) added where absent.
fn with_meta(mut v: Value, d: &crate::pairing::PairingData, node_id: &str) -> Value {
    for (k, m) in super::methods_nodes::device_meta(d.paired.get(node_id)) {
        if v.get(&k).is_none() {
            v[k] = m;
        }
    }
    v
}

/// An approved node surface as `node.pair.list` / `node.pair.approve` show it.
fn approved_node(d: &crate::pairing::PairingData, n: &crate::pairing::NodeSurface) -> Value {
    with_meta(
        json!({"nodeId": n.node_id, "displayName": n.display_name, "commands": n.approved_commands, "caps": n.approved_caps, "approvedAtMs": n.approved_at_ms}),
        d,
        &n.node_id,
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetupParams {
    #[serde(default)]
    public_url: Option<String>,
    #[serde(default)]
    bootstrap_profile: Option<String>,
}

/// Why there is no setup URL, worded for the bind in use.
fn no_url_message(bind: crate::config::BindMode) -> &'static str {
    use crate::config::BindMode;
    match bind {
        BindMode::Loopback => "Gateway is only bound to loopback: pass a reachable URL (clawgate qr --url wss://<name> or ws://<LAN address>:<port>), or bind to a private address",
        _ => "No URL for the setup code: the gateway listens beyond loopback but cannot tell which address a device should use; pass it (clawgate qr --url ws://<LAN address>:<port>) or set gateway.remote.url",
    }
}

/// Where the setup code's URL comes from (protocol.md §15.4), and which source.
fn setup_url(gw: &Gateway, explicit: Option<String>) -> Result<(String, &'static str), WireError> {
    let plugin = gw
        .settings
        .file
        .plugins
        .pointer("/entries/device-pair/config/publicUrl")
        .and_then(Value::as_str)
        .map(str::to_string);
    let remote = gw.settings.file.gateway.remote.url.clone();
    let custom = gw
        .settings
        .custom_bind_host
        .filter(|_| gw.settings.bind == crate::config::BindMode::Custom)
        .map(|h| {
            let scheme = if gw.tls.get().is_some() { "wss" } else { "ws" };
            match h {
                std::net::IpAddr::V6(v6) => format!("{scheme}://[{v6}]:{}", gw.settings.port),
                v4 => format!("{scheme}://{v4}:{}", gw.settings.port),
            }
        });
    // The Serve/Funnel endpoint (MagicDNS) is the one public source of truth once exposure is on.
    let tailscale = gw.exposure.public_url();
    let (url, source) = [
        (explicit, "explicit"),
        (plugin, "plugin-config"),
        (tailscale, "tailscale-serve"),
        (remote, "remote-config"),
        (custom, "bind-custom"),
    ]
    .into_iter()
    .find_map(|(u, s)| u.map(|u| (u, s)))
    .ok_or_else(|| {
        WireError::invalid(no_url_message(gw.settings.bind))
            .with_details(json!({"reason": "no-url"}))
    })?;
    let url = crate::pairing::setup_code::check_url(&url).map_err(|e| {
        WireError::invalid(e.to_string()).with_details(json!({"reason": "url-not-allowed"}))
    })?;
    Ok((url, source))
}

/// The gateway's own fingerprint when `url` is a direct `wss://` URL to its TLS port (a Serve
/// URL carries a publicly trusted certificate, which is not pinned: threats.md TLS-2).
fn direct_tls_fingerprint(gw: &Gateway, url: &str, source: &str) -> Option<String> {
    let tls = gw.tls.get()?;
    let rest = url.strip_prefix("wss://")?;
    let authority = rest.split('/').next().unwrap_or("");
    let port = authority
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok());
    let ours = |p: u16| {
        p == gw.settings.port
            || gw
                .listen_addrs
                .lock()
                .is_ok_and(|a| a.iter().any(|x| x.port() == p))
    };
    (source != "tailscale-serve" && port.is_some_and(ours)).then(|| tls.fingerprint())
}

async fn setup_code(
    gw: &Gateway,
    p: Result<SetupParams, WireError>,
    now: i64,
) -> Result<Value, WireError> {
    use crate::pairing::setup_code::{encode, SetupPayload};
    let p = p?;
    let (url, source) = setup_url(gw, p.public_url)?;
    let requested = p.bootstrap_profile.unwrap_or_else(|| "limited".into());
    let (profile, access) = match requested.as_str() {
        "node" => (
            crate::pairing::BootstrapProfile {
                roles: vec!["node".into()],
                scopes: vec![],
            },
            "node",
        ),
        "limited" | "full" => (
            crate::pairing::BootstrapProfile {
                roles: vec!["node".into(), "operator".into()],
                scopes: [
                    "operator.approvals",
                    "operator.read",
                    "operator.talk.secrets",
                    "operator.write",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            },
            "limited",
        ),
        other => {
            return Err(WireError::invalid(format!(
                "unknown bootstrapProfile {other:?}; use limited or node"
            )))
        }
    };
    let (token, expires) = gw
        .pairing
        .update(|d| d.issue_bootstrap(profile, now, &mut OsEntropy))
        .await
        .map_err(store)?;
    let code = encode(&SetupPayload {
        url: url.clone(),
        urls: vec![],
        bootstrap_token: token,
        expires_at_ms: Some(expires),
        tls_fingerprint: direct_tls_fingerprint(gw, &url, source),
    });
    let auth = if gw.settings.auth.mode == crate::config::AuthMode::Password {
        "password"
    } else {
        "token"
    };
    let mut v = json!({"setupCode": code, "gatewayUrl": url, "auth": auth, "urlSource": source, "expiresAtMs": expires, "access": access});
    if requested == "full" {
        v["accessDowngraded"] = json!(true);
    }
    Ok(v)
}

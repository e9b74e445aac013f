//! The pairing step of `connect` (protocol.md §13.1, §15.6, §16): for a
//! device-bearing connect that authenticated, decide whether the device is
//! paired, request or silently approve pairing, mint/confirm its token, and
//! reconcile a node's command surface. Decisions live in the pure
//! [`crate::pairing::machine`]; this module only sequences them with the store,
//! events and wire errors.

use serde_json::{json, Value};

use super::Gateway;
use crate::auth::handshake::Admission;
use crate::auth::{AuthFailure, AuthMethod, Locality, Transport};
use crate::pairing::machine::{silent_approval, Reason, SilentContext};
use crate::pairing::store::OsEntropy;
use crate::pairing::{ClientMeta, DeviceConnect, DeviceToken, PendingRequest};
use crate::protocol::connect::{Connect, Role};
use crate::protocol::errors::{ErrorCode, Rejection, WireError};
use crate::protocol::frames::EventFrame;
use crate::protocol::signature::encode_public_key;

/// What pairing adds to an admitted connection.
#[derive(Debug, Default)]
pub struct Paired {
    pub scopes: Vec<String>,
    pub device_token: Option<DeviceToken>,
    pub device_tokens: Vec<DeviceToken>,
}

fn store_error(e: impl std::fmt::Display) -> Rejection {
    tracing::error!("pairing store write failed: {e}");
    Rejection::with_close(
        WireError::new(
            ErrorCode::Unavailable,
            "pairing store unavailable; retry shortly",
        )
        .retry_after(1000),
        crate::protocol::errors::close::TRY_AGAIN_LATER,
        "pairing store unavailable",
    )
}

fn device_connect(c: &Connect, a: &Admission, t: &Transport) -> Option<DeviceConnect> {
    let d = a.device.as_ref()?;
    let client = c.client();
    Some(DeviceConnect {
        device_id: d.id.clone(),
        public_key: encode_public_key(&d.public_key),
        role: c.role.as_str().to_string(),
        scopes: if c.role == Role::Operator {
            dedup(c.scopes())
                .into_iter()
                .filter(|s| !a.identity_scopes.contains(s))
                .collect()
        } else {
            vec![]
        },
        meta: ClientMeta {
            display_name: client.display_name.clone(),
            platform: Some(client.platform.clone()),
            device_family: client.device_family.clone(),
            client_id: Some(client.id.clone()),
            client_mode: Some(client.mode.clone()),
            remote_ip: Some(t.peer.to_string()),
        },
    })
}

fn dedup(v: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in v {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

/// The transport facts the pure silent-approval rule needs.
fn silent_context(gw: &Gateway, a: &Admission, t: &Transport) -> SilentContext {
    SilentContext {
        direct_local: a.locality == Locality::DirectLocal
            && t.origin.is_none()
            && t.is_direct_local(),
        auto_approve_local: gw.settings.auto_approve_local,
        shared_or_none: matches!(
            a.method,
            AuthMethod::None | AuthMethod::Token | AuthMethod::Password
        ),
    }
}

/// Runs the pairing step; `Ok` carries scopes and tokens for `hello-ok`.
pub async fn pair(
    gw: &Gateway,
    c: &Connect,
    a: &Admission,
    t: &Transport,
) -> Result<Paired, Rejection> {
    let Some(dc) = device_connect(c, a, t) else {
        return Ok(Paired {
            scopes: a.scopes.clone(),
            ..Default::default()
        });
    };
    let now = crate::util::now_ms();
    if a.method == AuthMethod::BootstrapToken {
        return bootstrap(gw, c, &dc, now).await;
    }
    let mut reason = gw.pairing.read(|p| p.evaluate(&dc));
    if reason == Some(Reason::MetadataUpgrade)
        && matches!(
            a.method,
            AuthMethod::DeviceToken
                | AuthMethod::Token
                | AuthMethod::Password
                | AuthMethod::Tailscale
        )
    {
        gw.pairing
            .update(|p| p.update_metadata(&dc))
            .await
            .map_err(store_error)?;
        reason = None;
    }
    if let Some(reason) = reason {
        let silent = silent_approval(silent_context(gw, a, t), reason);
        let (req, new) = gw
            .pairing
            .try_update(|p| p.request(&dc, reason, silent, now, &mut OsEntropy))
            .await
            .map_err(store_error)?
            .map_err(|_| {
                let e = WireError::new(
                    ErrorCode::Unavailable,
                    "too many pending pairing requests; retry later",
                )
                .with_details(json!({"code": "PAIRING_RATE_LIMITED"}))
                .retry_after(60_000);
                Rejection::with_close(
                    e,
                    crate::protocol::errors::close::TRY_AGAIN_LATER,
                    "too many pending pairing requests",
                )
            })?;
        if !silent {
            if new {
                gw.hub
                    .broadcast(EventFrame::new("device.pair.requested", &req));
            }
            return Err(pairing_required(&req, reason));
        }
        let (_, _) = gw
            .pairing
            .update(|p| p.approve(&req.request_id, None, now, &mut OsEntropy))
            .await
            .map_err(store_error)?
            .map_err(store_error)?;
        gw.hub.broadcast(EventFrame::new("device.pair.resolved", &json!({"requestId": req.request_id, "deviceId": dc.device_id, "decision": "approved", "ts": now})));
        tracing::info!(device = %dc.device_id, role = %dc.role, "paired silently (direct loopback)");
    }
    let token = gw
        .pairing
        .update(|p| p.ensure_token(&dc.device_id, &dc.role, &[], now, &mut OsEntropy))
        .await
        .map_err(store_error)?;
    let scopes = if a.locality == Locality::DirectLocal && c.role == Role::Operator {
        a.scopes.clone()
    } else {
        dc.scopes.clone()
    };
    Ok(Paired {
        scopes,
        device_token: token,
        device_tokens: vec![],
    })
}

async fn bootstrap(
    gw: &Gateway,
    c: &Connect,
    dc: &DeviceConnect,
    now: i64,
) -> Result<Paired, Rejection> {
    let token = c.auth().bootstrap_token.unwrap_or_default();
    let fresh = gw.pairing.read(|p| p.evaluate(dc)) == Some(Reason::NotPaired)
        && !gw.pairing.read(|p| p.paired.contains_key(&dc.device_id));
    let eligible = fresh && c.role == Role::Node && dc.scopes.is_empty();
    let profile = if eligible {
        gw.pairing
            .update(|p| p.redeem_bootstrap(&token, &dc.device_id, &dc.public_key, now))
            .await
            .map_err(store_error)?
    } else {
        None
    };
    let Some(profile) = profile else {
        return Err(AuthFailure::BootstrapInvalid.rejection(false, "bootstrap-token"));
    };
    let dev = gw
        .pairing
        .update(|p| p.approve_bootstrap(dc, &profile, now, &mut OsEntropy))
        .await
        .map_err(store_error)?;
    gw.hub.broadcast(EventFrame::new("device.pair.resolved", &json!({"requestId": format!("bootstrap:{}", dc.device_id), "deviceId": dc.device_id, "decision": "approved", "ts": now})));
    tracing::info!(device = %dc.device_id, "paired through a setup code (bootstrap token)");
    let node = dev.tokens.get("node").cloned();
    let others: Vec<DeviceToken> = dev
        .tokens
        .values()
        .filter(|t| t.role != "node")
        .cloned()
        .collect();
    Ok(Paired {
        scopes: vec![],
        device_token: node,
        device_tokens: others,
    })
}

/// `NOT_PAIRED` / `PAIRING_REQUIRED` with everything the operator needs (PR-1).
pub fn pairing_required(req: &PendingRequest, reason: Reason) -> Rejection {
    let details: Value = json!({
        "code": "PAIRING_REQUIRED",
        "reason": reason.as_str(),
        "requestId": req.request_id,
        "deviceId": req.device_id,
        "requestedRole": req.role,
        "requestedScopes": req.scopes,
        "remediationHint": format!("clawgate devices approve {}", req.request_id),
        "recommendedNextStep": "wait_then_retry",
        "retryable": true,
        "pauseReconnect": false,
        "waitForResolution": true,
    });
    let error = WireError::new(
        ErrorCode::NotPaired,
        format!("pairing required: {}", reason.as_str()),
    )
    .with_details(details);
    let reason_text = format!("pairing required (requestId: {})", req.request_id);
    Rejection::with_close(error, crate::protocol::errors::close::POLICY, reason_text)
}

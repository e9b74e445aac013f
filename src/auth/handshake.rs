//! The admission decision for a validated `connect` (protocol.md §8): origin,
//! rate limit, device proof, shared secret, device-less rules and the scopes the
//! connection ends up with. No I/O; the rate limiter is the only shared state.
//!
//! Invariants: a device proof, when present, is always verified (never skipped
//! because another credential is present); credential presence never counts as
//! validity; scopes are never wider than requested.

use std::time::Instant;

use serde_json::json;

use super::proxy::{Hop, ProxyFailure};
use super::ratelimit::{client_key, RateLimiter};
use super::{origin, secret_eq, AuthFailure, AuthMethod, Locality, Transport};
use crate::config::{AuthMode, AuthSettings};
use crate::pairing::TokenCheck;
use crate::protocol::connect::{Connect, ConnectAuth, Role};
use crate::protocol::errors::{Rejection, WireError};
use crate::protocol::signature::{self, ProofContext, VerifiedDevice};

/// Rate-limit scope for shared-secret failures.
pub const SCOPE_SHARED: &str = "shared-secret";

/// A successful admission.
#[derive(Debug, Clone)]
pub struct Admission {
    pub role: Role,
    pub scopes: Vec<String>,
    pub method: AuthMethod,
    pub device: Option<VerifiedDevice>,
    pub locality: Locality,
    /// Requested scopes granted by `gateway.auth.identityScopes` to the verified Tailscale login:
    /// connection-only, never written to the pairing record.
    pub identity_scopes: Vec<String>,
}

/// Checks a device token against the pairing store: (device, role, token, requested scopes).
pub type TokenChecker<'a> =
    &'a (dyn Fn(&VerifiedDevice, &str, &str, &[String]) -> TokenCheck + Sync);

/// Inputs of the decision.
pub struct Input<'a> {
    pub tokens: TokenChecker<'a>,
    pub connect: &'a Connect,
    pub transport: &'a Transport,
    pub auth: &'a AuthSettings,
    pub allowed_origins: &'a [String],
    pub issued_nonce: &'a str,
    pub now_ms: i64,
    pub now: Instant,
}

/// The limiter bucket of this connection and whether it is the lockout-exempt
/// direct-loopback one (which gets the escalating delay instead, RL-3).
fn bucket(input: &Input<'_>) -> (String, bool) {
    let t = input.transport;
    let key = client_key(t.peer, t.origin.as_deref());
    let exempt = input.auth.rate_limit.exempt_loopback && t.is_direct_local() && t.origin.is_none();
    (key, exempt)
}

/// How long to hold this connect before its credential is evaluated (loopback
/// escalating delay); `Err` when the loopback bucket is saturated.
pub fn loopback_wait(
    input: &Input<'_>,
    limiter: &RateLimiter,
) -> Result<std::time::Duration, Rejection> {
    let (key, exempt) = bucket(input);
    if !exempt {
        return Ok(std::time::Duration::ZERO);
    }
    limiter
        .loopback_wait(SCOPE_SHARED, &key, input.now)
        .map_err(|l| {
            let ms = l.retry_after.as_millis() as u64;
            AuthFailure::RateLimited { retry_after_ms: ms }.rejection(false, "none")
        })
}

/// Decides whether the connection is admitted and with which scopes.
pub fn decide(input: &Input<'_>, limiter: &RateLimiter) -> Result<Admission, Rejection> {
    let t = input.transport;
    if let Some(o) = &t.origin {
        if !origin::origin_allowed(o, t.host.as_deref(), input.allowed_origins) {
            return Err(origin_rejection());
        }
    }
    if let Hop::Unattributable { .. } = t.hop {
        return Err(AuthFailure::ProxyAttribution.rejection(false, input.connect.auth().provided()));
    }
    let (key, exempt) = bucket(input);
    if !exempt {
        if let Err(l) = limiter.check(SCOPE_SHARED, &key, input.now) {
            let ms = l.retry_after.as_millis() as u64;
            return Err(AuthFailure::RateLimited { retry_after_ms: ms }.rejection(false, "none"));
        }
    }
    let c = input.connect;
    let auth = c.auth();
    let device = match &c.params.device {
        Some(proof) => Some(signature::verify(
            proof,
            &ProofContext {
                params: &c.params,
                role: c.role,
                auth: &auth,
                issued_nonce: input.issued_nonce,
                now_ms: input.now_ms,
            },
        )?),
        None => None,
    };
    let method = match authenticate(input, &auth, device.as_ref()) {
        // Loopback keeps its failures on success: every local process shares that
        // bucket, so one client's success must not hand another fresh free guesses.
        Ok(m) if exempt => m,
        Ok(m) => {
            limiter.record_success(SCOPE_SHARED, &key);
            m
        }
        Err((f, can_retry)) => {
            match (f.counts(), exempt) {
                (true, true) => limiter.record_loopback_failure(SCOPE_SHARED, &key, input.now),
                (true, false) => {
                    limiter.record_failure(SCOPE_SHARED, &key, input.now);
                }
                (false, _) => {}
            }
            return Err(f.rejection(can_retry, auth.provided()));
        }
    };
    if c.role == Role::Node && device.is_none() {
        return Err(Rejection::policy(
            WireError::new(
                crate::protocol::errors::ErrorCode::NotPaired,
                "device identity required",
            )
            .with_details(json!({"code": "DEVICE_IDENTITY_REQUIRED"})),
        ));
    }
    if method == AuthMethod::Tailscale && device.is_none() {
        return Err(Rejection::policy(
            WireError::new(
                crate::protocol::errors::ErrorCode::NotPaired,
                "device identity required (a Tailscale identity alone is not enough; pair the device)",
            )
            .with_details(json!({"code": "DEVICE_IDENTITY_REQUIRED"})),
        ));
    }
    let is_cli = c.client().id == "cli" && c.client().mode == "cli";
    let locality = t.locality(method != AuthMethod::None, is_cli);
    let scopes = effective_scopes(c, locality, method);
    Ok(Admission {
        role: c.role,
        scopes,
        method,
        device,
        locality,
        identity_scopes: identity_scopes(input),
    })
}

/// Requested scopes that `identityScopes` grants the verified login (config.md §5.3).
fn identity_scopes(input: &Input<'_>) -> Vec<String> {
    let Some(login) = input
        .transport
        .tailnet_login()
        .filter(|_| input.auth.allow_tailscale)
    else {
        return Vec::new();
    };
    let Some(extra) = input
        .auth
        .identity_scopes
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(login))
        .map(|(_, v)| v)
    else {
        return Vec::new();
    };
    dedup(input.connect.scopes())
        .into_iter()
        .filter(|s| extra.contains(s))
        .collect()
}

/// Tailscale identity as a primary credential (protocol.md §8.2): only with `allowTailscale`, only a
/// whois-verified untagged login from the dedicated listener (never Funnel, never headers), and
/// skipped when the client sent an explicit token or password.
fn tailscale_ok(input: &Input<'_>, auth: &ConnectAuth) -> bool {
    input.auth.allow_tailscale
        && input.transport.tailnet_login().is_some()
        && auth.token.is_none()
        && auth.password.is_none()
}

/// Primary credential, then bootstrap, then device token (protocol.md §8.2).
/// `Err` carries the failure and `canRetryWithDeviceToken`.
fn authenticate(
    input: &Input<'_>,
    auth: &ConnectAuth,
    device: Option<&VerifiedDevice>,
) -> Result<AuthMethod, (AuthFailure, bool)> {
    let primary = match input.auth.mode {
        AuthMode::TrustedProxy => trusted_proxy(input, auth),
        _ => check_shared(input.auth, auth),
    };
    if primary.is_ok() && input.auth.mode != AuthMode::None {
        return primary.map_err(|f| (f, false));
    }
    let Some(dev) = device else {
        if primary.is_err() && tailscale_ok(input, auth) {
            return Ok(AuthMethod::Tailscale);
        }
        return primary.map_err(|f| (f, false));
    };
    let has_shared = auth.token.is_some() || auth.password.is_some();
    if auth.bootstrap_token.is_some() && !has_shared && auth.device_token.is_none() {
        return Ok(AuthMethod::BootstrapToken);
    }
    let role = input.connect.role.as_str();
    let scopes = input.connect.scopes();
    if let Some(dt) = auth
        .device_token
        .as_deref()
        .or(auth.token.as_deref())
        .filter(|t| !t.is_empty())
    {
        match (input.tokens)(dev, role, dt, scopes) {
            TokenCheck::Valid => return Ok(AuthMethod::DeviceToken),
            TokenCheck::ScopeMismatch => return Err((AuthFailure::ScopeMismatch, false)),
            TokenCheck::Mismatch if auth.device_token.is_some() => {
                return Err((AuthFailure::DeviceTokenMismatch, false))
            }
            TokenCheck::Mismatch => {}
        }
    }
    if primary.is_err() && tailscale_ok(input, auth) {
        return Ok(AuthMethod::Tailscale);
    }
    primary.map_err(|f| {
        let can_retry =
            f == AuthFailure::TokenMismatch && auth.token.is_some() && auth.device_token.is_none();
        (f, can_retry)
    })
}

/// Trusted-proxy identity as the primary credential (config.md §7): a user the proxy rules
/// accepted on a request attributed through a trusted proxy; otherwise the password, for direct
/// local callers only (PX-8).
fn trusted_proxy(input: &Input<'_>, auth: &ConnectAuth) -> Result<AuthMethod, AuthFailure> {
    let t = input.transport;
    match &t.proxy_user {
        Some(Ok(_)) if matches!(t.hop, Hop::Trusted { .. }) => return Ok(AuthMethod::TrustedProxy),
        Some(Ok(_)) => return Err(AuthFailure::ProxyAttribution),
        _ => {}
    }
    if t.is_direct_local() && input.auth.password.is_some() && auth.password.is_some() {
        return check_shared(input.auth, auth);
    }
    Err(AuthFailure::TrustedProxy(match &t.proxy_user {
        Some(Err(f)) => f.clone(),
        _ => ProxyFailure::UntrustedSource,
    }))
}

fn origin_rejection() -> Rejection {
    let error = WireError::invalid("origin not allowed")
        .with_details(json!({"code": "CONTROL_UI_ORIGIN_NOT_ALLOWED"}));
    Rejection::policy(error)
}

/// Shared-secret check for the configured mode.
pub fn check_shared(
    cfg: &AuthSettings,
    offered: &crate::protocol::connect::ConnectAuth,
) -> Result<AuthMethod, AuthFailure> {
    match cfg.mode {
        AuthMode::None => Ok(AuthMethod::None),
        AuthMode::Token => {
            let expected = cfg.token.as_ref().ok_or(AuthFailure::TokenMissingConfig)?;
            let got = offered.token.as_deref().ok_or(AuthFailure::TokenMissing)?;
            if got.is_empty() {
                return Err(AuthFailure::TokenMissing);
            }
            secret_eq(got, expected.expose())
                .then_some(AuthMethod::Token)
                .ok_or(AuthFailure::TokenMismatch)
        }
        AuthMode::Password | AuthMode::TrustedProxy => {
            let expected = cfg
                .password
                .as_ref()
                .ok_or(AuthFailure::PasswordMissingConfig)?;
            let got = offered
                .password
                .as_deref()
                .ok_or(AuthFailure::PasswordMissing)?;
            if got.is_empty() {
                return Err(AuthFailure::PasswordMissing);
            }
            secret_eq(got, expected.expose())
                .then_some(AuthMethod::Password)
                .ok_or(AuthFailure::PasswordMismatch)
        }
    }
}

/// Scopes of an admitted connection (protocol.md §8.3): requested scopes are kept
/// for local CLI/backend connections (and device-bearing or `auth = none` local
/// ones), cleared to `[]` otherwise — a device-less shared-secret client that is
/// neither `cli`/`cli` nor `gateway-client`/`backend` gets `[]` even on loopback.
fn effective_scopes(c: &Connect, locality: Locality, method: AuthMethod) -> Vec<String> {
    if c.role == Role::Node {
        return Vec::new();
    }
    let client = c.client();
    let cli = client.id == "cli" && client.mode == "cli";
    let backend = client.id == "gateway-client" && client.mode == "backend";
    let probe = client.mode == "probe";
    let device_less_shared =
        c.params.device.is_none() && matches!(method, AuthMethod::Token | AuthMethod::Password);
    let keep = match locality {
        Locality::DirectLocal => cli || backend || probe || !device_less_shared,
        Locality::CliContainerLocal => cli || probe,
        Locality::SharedSecretLoopbackLocal => backend || method == AuthMethod::None,
        Locality::Remote => false,
    };
    if keep {
        dedup(c.scopes())
    } else {
        Vec::new()
    }
}

fn dedup(scopes: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(scopes.len());
    for s in scopes {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests;

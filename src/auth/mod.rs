//! Authentication on `connect`: shared-secret checks (constant time), failure
//! reasons mapped to wire errors (protocol.md §9.3), connection locality (§8.4)
//! and browser protections.

pub mod handshake;
pub mod origin;
pub mod proxy;
pub mod ratelimit;

use serde_json::json;
use subtle::ConstantTimeEq;

use crate::protocol::errors::{Rejection, WireError};

/// Constant-time string equality (length leaks, content does not).
pub fn secret_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// How a connection authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    None,
    Token,
    Password,
    DeviceToken,
    BootstrapToken,
    /// Verified Tailscale identity (dedicated Serve listener + whois; `allowTailscale`).
    Tailscale,
    /// A user authenticated by a configured trusted proxy (config.md §7).
    TrustedProxy,
}

impl AuthMethod {
    /// `hello-ok.auth.method`.
    pub fn wire_name(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::Token => "token",
            AuthMethod::Password => "password",
            AuthMethod::DeviceToken => "device-token",
            AuthMethod::BootstrapToken => "bootstrap-token",
            AuthMethod::Tailscale => "tailscale",
            AuthMethod::TrustedProxy => "trusted-proxy",
        }
    }
}

/// Internal auth failure reasons (`authReason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    TokenMissing,
    TokenMissingConfig,
    TokenMismatch,
    PasswordMissing,
    PasswordMissingConfig,
    PasswordMismatch,
    DeviceTokenMismatch,
    ScopeMismatch,
    BootstrapInvalid,
    RateLimited {
        retry_after_ms: u64,
    },
    /// A request from a trusted proxy without a usable client address (PX-5, PX-6).
    ProxyAttribution,
    /// Trusted-proxy auth refused the request.
    TrustedProxy(proxy::ProxyFailure),
}

impl AuthFailure {
    fn parts(&self) -> (&'static str, &'static str, &'static str) {
        use AuthFailure::*;
        match self {
            TokenMissing => (
                "token_missing",
                "AUTH_TOKEN_MISSING",
                "update_auth_configuration",
            ),
            TokenMissingConfig => (
                "token_missing_config",
                "AUTH_TOKEN_NOT_CONFIGURED",
                "update_auth_configuration",
            ),
            TokenMismatch => (
                "token_mismatch",
                "AUTH_TOKEN_MISMATCH",
                "update_auth_credentials",
            ),
            PasswordMissing => (
                "password_missing",
                "AUTH_PASSWORD_MISSING",
                "update_auth_configuration",
            ),
            PasswordMissingConfig => (
                "password_missing_config",
                "AUTH_PASSWORD_NOT_CONFIGURED",
                "update_auth_configuration",
            ),
            PasswordMismatch => (
                "password_mismatch",
                "AUTH_PASSWORD_MISMATCH",
                "update_auth_credentials",
            ),
            DeviceTokenMismatch => (
                "device_token_mismatch",
                "AUTH_DEVICE_TOKEN_MISMATCH",
                "update_auth_credentials",
            ),
            ScopeMismatch => (
                "scope_mismatch",
                "AUTH_SCOPE_MISMATCH",
                "review_auth_configuration",
            ),
            BootstrapInvalid => (
                "bootstrap_token_invalid",
                "AUTH_BOOTSTRAP_TOKEN_INVALID",
                "review_auth_configuration",
            ),
            RateLimited { .. } => ("rate_limited", "AUTH_RATE_LIMITED", "wait_then_retry"),
            ProxyAttribution => (
                "proxy_attribution_required",
                "AUTH_UNAUTHORIZED",
                "review_auth_configuration",
            ),
            TrustedProxy(f) => ("", f.detail_code(), "review_auth_configuration"),
        }
    }

    /// `authReason` on the wire.
    fn reason(&self) -> String {
        match self {
            AuthFailure::TrustedProxy(f) => f.reason(),
            other => other.parts().0.to_string(),
        }
    }

    /// Whether this failure counts toward the rate limiter (wrong credentials only).
    pub fn counts(&self) -> bool {
        matches!(
            self,
            AuthFailure::TokenMismatch
                | AuthFailure::PasswordMismatch
                | AuthFailure::DeviceTokenMismatch
                | AuthFailure::BootstrapInvalid
        )
    }

    /// The wire rejection; `can_retry` is `canRetryWithDeviceToken`.
    pub fn rejection(&self, can_retry: bool, provided: &str) -> Rejection {
        let (_, code, mut next) = self.parts();
        let reason = self.reason();
        if can_retry {
            next = "retry_with_device_token";
        }
        let message = match self {
            AuthFailure::RateLimited { .. } => {
                "unauthorized: too many failed authentication attempts (retry later)".to_string()
            }
            AuthFailure::ProxyAttribution => {
                format!(
                    "unauthorized: proxied request without a usable client address ({})",
                    proxy::ATTRIBUTION_GUIDANCE
                )
            }
            AuthFailure::TrustedProxy(f) => format!("unauthorized: trusted-proxy auth: {f}"),
            _ => format!("unauthorized: gateway {}", describe(self)),
        };
        let mut details = json!({
            "code": code,
            "authReason": reason,
            "recommendedNextStep": next,
            "authProvided": provided,
        });
        if matches!(self, AuthFailure::TokenMismatch) {
            details["canRetryWithDeviceToken"] = json!(can_retry);
        }
        let mut error = WireError::invalid(message).with_details(details);
        if let AuthFailure::RateLimited { retry_after_ms } = self {
            error = error.retry_after(*retry_after_ms);
        }
        Rejection::policy(error)
    }
}

fn describe(f: &AuthFailure) -> &'static str {
    use AuthFailure::*;
    match f {
        TokenMissing => "token missing (send this gateway's token: clawgate token shows it)",
        TokenMissingConfig => "token not configured on the gateway (set gateway.auth.token)",
        TokenMismatch => {
            "token mismatch (use this gateway's gateway.auth.token or pair the device)"
        }
        PasswordMissing => "password missing (send gateway.auth.password)",
        PasswordMissingConfig => {
            "password not configured on the gateway (set gateway.auth.password)"
        }
        PasswordMismatch => "password mismatch (use this gateway's gateway.auth.password)",
        DeviceTokenMismatch => "device token mismatch (re-pair the device or rotate its token)",
        ScopeMismatch => "device token does not cover the requested scopes",
        BootstrapInvalid => "bootstrap token invalid or expired (ask for a new setup code)",
        RateLimited { .. } => "rate limited",
        ProxyAttribution | TrustedProxy(_) => "proxy rules refused the request",
    }
}

/// Locality of a connection (protocol.md §8.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locality {
    DirectLocal,
    CliContainerLocal,
    SharedSecretLoopbackLocal,
    Remote,
}

/// What the transport knows about a connection, before `connect`.
#[derive(Debug, Clone)]
pub struct Transport {
    pub peer: std::net::IpAddr,
    pub local: std::net::IpAddr,
    /// Any of Forwarded / X-Forwarded-* / X-Real-IP was present.
    pub proxy_headers: bool,
    pub origin: Option<String>,
    pub host: Option<String>,
    /// Arrived on a listener that is a proxy ingress (Serve/Funnel): never local.
    pub proxy_ingress: bool,
    /// The loopback socket peer is (or could not be proven not to be) a userspace tailscaled
    /// forwarding a tailnet peer (tailscale.md §12.1): never local. `peer` is then the tailnet
    /// node's address when whois named it.
    pub loopback_forwarded: bool,
    /// The whois-verified source behind the dedicated Serve/Funnel listener (`None` elsewhere:
    /// headers never produce one).
    pub tailnet: Option<std::sync::Arc<crate::exposure::IngressPeer>>,
    /// How configured trusted proxies place this request (`peer` is then the attributed client).
    pub hop: proxy::Hop,
    /// Trusted-proxy auth of the request (`None` unless `auth.mode = trusted-proxy`).
    pub proxy_user: Option<Result<String, proxy::ProxyFailure>>,
}

impl Transport {
    /// The verified Tailscale login (untagged tailnet node on the dedicated listener).
    pub fn tailnet_login(&self) -> Option<&str> {
        self.tailnet.as_deref().and_then(|p| p.login())
    }

    /// `direct_local`: loopback peer proven local, no proxy evidence, not a proxy ingress.
    pub fn is_direct_local(&self) -> bool {
        self.loopback_client() && !self.proxy_headers && !self.proxy_ingress
    }

    /// A loopback socket peer that is the client itself (not a userspace tailscaled forward).
    fn loopback_client(&self) -> bool {
        ratelimit::canonical_ip(self.peer).is_loopback() && !self.loopback_forwarded
    }

    pub fn locality(&self, shared_secret_ok: bool, cli: bool) -> Locality {
        if self.is_direct_local() {
            return Locality::DirectLocal;
        }
        let host_ok = self
            .host
            .as_deref()
            .map(origin::host_part)
            .is_some_and(|h| {
                origin::is_loopback_host(&h)
                    || h.parse::<std::net::IpAddr>().is_ok_and(is_private_literal)
            });
        let loopback_peer = self.loopback_client();
        if shared_secret_ok
            && !self.proxy_headers
            && !self.proxy_ingress
            && self.origin.is_none()
            && loopback_peer
            && host_ok
        {
            return if cli {
                Locality::CliContainerLocal
            } else {
                Locality::SharedSecretLoopbackLocal
            };
        }
        Locality::Remote
    }
}

/// RFC 1918 / ULA literal (for the container-local `Host` rule only).
fn is_private_literal(ip: std::net::IpAddr) -> bool {
    match ratelimit::canonical_ip(ip) {
        std::net::IpAddr::V4(v4) => v4.is_private(),
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_equality() {
        assert!(secret_eq("abc", "abc"));
        assert!(!secret_eq("abc", "abd"));
        assert!(!secret_eq("abc", "abcd"));
        assert!(!secret_eq("", "a"));
    }

    #[test]
    fn token_mismatch_maps_to_spec_details() {
        let r = AuthFailure::TokenMismatch.rejection(false, "token");
        let d = r.error.details.clone().unwrap();
        assert_eq!(d["code"], "AUTH_TOKEN_MISMATCH");
        assert_eq!(d["authReason"], "token_mismatch");
        assert_eq!(d["canRetryWithDeviceToken"], false);
        assert_eq!(d["recommendedNextStep"], "update_auth_credentials");
        assert_eq!(r.close_code, 1008);
        assert!(r.error.message.starts_with("unauthorized"));
        assert_eq!(r.close_reason, r.error.message);
        let r = AuthFailure::TokenMismatch.rejection(true, "token");
        assert_eq!(
            r.error.details.unwrap()["recommendedNextStep"],
            "retry_with_device_token"
        );
    }

    #[test]
    fn rate_limited_has_retry_after() {
        let r = AuthFailure::RateLimited {
            retry_after_ms: 287_000,
        }
        .rejection(false, "token");
        assert_eq!(r.error.retry_after_ms, Some(287_000));
        assert_eq!(r.error.retryable, Some(true));
        assert_eq!(r.error.detail_code(), Some("AUTH_RATE_LIMITED"));
    }

    #[test]
    fn locality_rules() {
        let t = Transport {
            peer: "127.0.0.1".parse().unwrap(),
            local: "127.0.0.1".parse().unwrap(),
            proxy_headers: false,
            origin: None,
            host: Some("127.0.0.1:1".into()),
            proxy_ingress: false,
            loopback_forwarded: false,
            tailnet: None,
            hop: proxy::Hop::Direct,
            proxy_user: None,
        };
        assert_eq!(t.locality(true, true), Locality::DirectLocal);
        let proxied = Transport {
            proxy_headers: true,
            ..t.clone()
        };
        assert_eq!(proxied.locality(true, true), Locality::Remote);
        let serve = Transport {
            proxy_ingress: true,
            ..t.clone()
        };
        assert_eq!(serve.locality(true, true), Locality::Remote);
        // A userspace tailscaled forward (or an unproven loopback peer) keeps no loopback row.
        let forwarded = Transport {
            loopback_forwarded: true,
            ..t.clone()
        };
        assert!(!forwarded.is_direct_local());
        assert_eq!(forwarded.locality(true, true), Locality::Remote);
        assert_eq!(forwarded.locality(true, false), Locality::Remote);
        let lan = Transport {
            peer: "10.77.0.2".parse().unwrap(),
            ..t
        };
        assert_eq!(lan.locality(true, true), Locality::Remote);
    }
}

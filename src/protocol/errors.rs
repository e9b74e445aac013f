//! Wire errors: the `ErrorShape` object, its top-level codes, the connect
//! `details.code` values and WebSocket close codes (protocol.md §9, §10).

use serde::Serialize;
use serde_json::{json, Value};

/// Top-level `error.code` values (`gateway-error-details.ts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    NotLinked,
    NotPaired,
    InvalidRequest,
    Forbidden,
    Unavailable,
}

/// An `ErrorShape` as sent in `res.error`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError {
            code,
            message: message.into(),
            details: None,
            retryable: None,
            retry_after_ms: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn retry_after(mut self, ms: u64) -> Self {
        self.retryable = Some(true);
        self.retry_after_ms = Some(ms);
        self
    }

    /// `FORBIDDEN` / `MISSING_SCOPE` for a method whose scope the caller lacks.
    pub fn missing_scope(scope: &str) -> Self {
        Self::new(ErrorCode::Forbidden, format!("missing scope: {scope}")).with_details(json!({
            "code": "MISSING_SCOPE",
            "missingScope": scope,
            "requiredScopes": [scope],
        }))
    }

    /// The `details.code` string, if any.
    pub fn detail_code(&self) -> Option<&str> {
        self.details.as_ref()?.get("code")?.as_str()
    }
}

/// WebSocket close codes used by the server (protocol.md §10).
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const PROTOCOL_MISMATCH: u16 = 1002;
    /// RFC 6455 protocol error (unmasked or RSV frames, orphan continuations, bad opcodes);
    /// the same code as [`PROTOCOL_MISMATCH`].
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// RFC 6455: a text frame that is not valid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const SERVICE_RESTART: u16 = 1012;
    pub const TRY_AGAIN_LATER: u16 = 1013;
    pub const AUTH_CHANGED: u16 = 4001;
}

/// Truncates a close reason to the 123 bytes RFC 6455 allows, on a char boundary.
pub fn truncate_close_reason(reason: &str) -> &str {
    const MAX: usize = 123;
    if reason.len() <= MAX {
        return reason;
    }
    let mut end = MAX;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// A connect rejection: the error answered to `connect` and the close that follows.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub error: WireError,
    pub close_code: u16,
    pub close_reason: String,
}

impl Rejection {
    /// Close 1008 with the error message as the reason.
    pub fn policy(error: WireError) -> Self {
        let close_reason = error.message.clone();
        Rejection {
            error,
            close_code: close::POLICY,
            close_reason,
        }
    }

    pub fn with_close(error: WireError, code: u16, reason: impl Into<String>) -> Self {
        Rejection {
            error,
            close_code: code,
            close_reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_error_shape_in_wire_order() {
        let e = WireError::missing_scope("operator.pairing");
        let s = serde_json::to_string(&e).unwrap();
        assert_eq!(
            s,
            r#"{"code":"FORBIDDEN","message":"missing scope: operator.pairing","details":{"code":"MISSING_SCOPE","missingScope":"operator.pairing","requiredScopes":["operator.pairing"]}}"#
        );
    }

    #[test]
    fn rate_limited_carries_retry_after() {
        let e = WireError::invalid("unauthorized").retry_after(287_000);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["retryable"], true);
        assert_eq!(v["retryAfterMs"], 287_000);
        assert_eq!(v["code"], "INVALID_REQUEST");
    }

    #[test]
    fn close_reason_truncates_on_char_boundary() {
        let long = "é".repeat(100);
        let t = truncate_close_reason(&long);
        assert!(t.len() <= 123);
        assert!(long.starts_with(t));
        assert_eq!(truncate_close_reason("short"), "short");
    }
}

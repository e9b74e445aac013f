//! Errors of the LocalAPI client and its fake.
//!
//! Invariant: an HTTP error answer from tailscaled keeps its status code and Tailscale's own message
//! text (the `error` field of a JSON error body, or the trimmed plain-text body), because operators
//! act on those messages ("listener already exists for port 443", "bad password", …).

use std::time::Duration;

/// Anything that can go wrong talking to a LocalAPI.
#[derive(Debug, thiserror::Error)]
pub enum LocalApiError {
    /// No endpoint is known yet (e.g. the sidecar has not produced its handshake or is restarting).
    #[error("Tailscale LocalAPI is not available: {0}")]
    Unavailable(String),
    /// The socket or TCP port could not be reached.
    #[error("cannot connect to Tailscale LocalAPI at {endpoint}: {source}")]
    Connect {
        /// Human-readable endpoint (never contains the password).
        endpoint: String,
        /// The I/O error from the dial.
        source: std::io::Error,
    },
    /// HTTP framing or connection failure after connecting.
    #[error("Tailscale LocalAPI HTTP exchange failed: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built (a caller bug, e.g. an invalid header value).
    #[error("invalid LocalAPI request: {0}")]
    Request(String),
    /// `If-Match` did not match the current serve-config ETag (HTTP 412): re-read and retry.
    #[error("serve config was changed concurrently (ETag mismatch): {message}")]
    PreconditionFailed {
        /// Tailscale's message text.
        message: String,
    },
    /// Any other non-2xx answer.
    #[error("Tailscale LocalAPI answered HTTP {status}: {message}")]
    Status {
        /// HTTP status code.
        status: u16,
        /// Tailscale's message text.
        message: String,
    },
    /// The answer was not the JSON we expected.
    #[error("cannot decode LocalAPI {what}: {source}")]
    Decode {
        /// Which answer (e.g. "status", "whois").
        what: &'static str,
        /// The serde error.
        source: serde_json::Error,
    },
    /// A response body or NDJSON line exceeded its bound.
    #[error("LocalAPI {what} exceeds {limit} bytes")]
    TooLarge {
        /// Which body.
        what: &'static str,
        /// The bound in bytes.
        limit: usize,
    },
    /// The certificate answer did not contain a key and a certificate.
    #[error("LocalAPI certificate answer is malformed: {0}")]
    BadCertificate(String),
    /// The operation did not finish in time.
    #[error("Tailscale LocalAPI {what} timed out after {after:?}")]
    Timeout {
        /// Which operation.
        what: &'static str,
        /// The bound that expired.
        after: Duration,
    },
    /// A caller-provided argument cannot be sent (e.g. a domain with path characters).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The IPN bus stream ended (tailscaled restarted, or the fake dropped the session).
    #[error("IPN bus stream closed")]
    BusClosed,
}

impl LocalApiError {
    /// The HTTP status of an error answer, if this error is one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::PreconditionFailed { .. } => Some(412),
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Builds the error for a non-2xx answer, extracting Tailscale's message from `body`.
    pub fn from_answer(status: u16, body: &[u8]) -> Self {
        let message = error_message(body);
        if status == 412 {
            Self::PreconditionFailed { message }
        } else {
            Self::Status { status, message }
        }
    }

    /// True when retrying later may help (connectivity, restarts, timeouts) as opposed to a
    /// refusal by tailscaled.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_)
                | Self::Connect { .. }
                | Self::Http(_)
                | Self::Timeout { .. }
                | Self::BusClosed
        )
    }
}

/// Tailscale's error text: `{"error":"…"}` (WriteErrorJSON) or `{"Error":"…"}` (prefs), else the
/// trimmed body as text.
fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct JsonError {
        #[serde(alias = "Error")]
        error: String,
    }
    if let Ok(e) = serde_json::from_slice::<JsonError>(body) {
        return e.error;
    }
    String::from_utf8_lossy(body).trim().to_owned()
}

/// Result alias for LocalAPI calls.
pub type Result<T, E = LocalApiError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_text_messages_are_kept_with_status() {
        let e = LocalApiError::from_answer(500, br#"{"error":"netMap is nil"}"#);
        assert_eq!(e.http_status(), Some(500));
        assert!(e.to_string().contains("netMap is nil"), "{e}");
        let e = LocalApiError::from_answer(403, b"bad password\n");
        assert!(
            matches!(e, LocalApiError::Status { status: 403, ref message } if message == "bad password")
        );
        let e = LocalApiError::from_answer(412, b"etag mismatch\n");
        assert!(
            matches!(e, LocalApiError::PreconditionFailed { ref message } if message == "etag mismatch")
        );
        let e = LocalApiError::from_answer(400, br#"{"Error":"bad edit"}"#);
        assert!(e.to_string().ends_with("bad edit"), "{e}");
    }
}

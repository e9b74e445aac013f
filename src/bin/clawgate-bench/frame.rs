//! Cheap frame handling for the bench client and the floor server.
//!
//! The client must not be the bottleneck, so it never builds a JSON tree for a response. A response is
//! recognised by its prefix `{"type":"res","id":"<id>","ok":<bool>` (the field order both clawgate and
//! the reference gateway emit); only when that prefix does not match does it fall back to a typed,
//! borrowing `serde` decode of the three top-level fields, which skips everything else without
//! allocating a tree. Invariant: `classify` never reports a match for a frame whose top-level `type`
//! is not `res` or whose `id` differs.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Deserialize;

/// What one inbound text frame means to a client waiting for the response to request `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// The awaited `res` with `ok:true`.
    Ok,
    /// The awaited `res` with `ok:false` (or without `ok`).
    Failed,
    /// Anything else: an event (`tick`, `health`, …) or a response to another id.
    Other,
}

/// Top-level fields read by the slow path; every other field is skipped by serde.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    ok: Option<bool>,
}

/// Classifies `text` against the awaited request `id` (see the module doc for the two paths).
pub fn classify(text: &str, id: &str) -> Reply {
    const HEAD: &str = r#"{"type":"res","id":""#;
    if let Some(rest) = text.strip_prefix(HEAD) {
        if let Some(end) = rest.find(['"', '\\']) {
            if rest.as_bytes()[end] == b'"' {
                let (frame_id, after) = rest.split_at(end);
                if frame_id != id {
                    return Reply::Other;
                }
                if after.starts_with(r#"","ok":true"#) {
                    return Reply::Ok;
                }
                if after.starts_with(r#"","ok":false"#) {
                    return Reply::Failed;
                }
            }
        }
    }
    if text.starts_with(r#"{"type":"event""#) {
        return Reply::Other;
    }
    slow_classify(text, id)
}

fn slow_classify(text: &str, id: &str) -> Reply {
    match serde_json::from_str::<Head<'_>>(text) {
        Ok(head) if head.kind == "res" && head.id.as_deref() == Some(id) => {
            if head.ok == Some(true) {
                Reply::Ok
            } else {
                Reply::Failed
            }
        }
        _ => Reply::Other,
    }
}

/// Writes a request frame `{"type":"req","id":"<id>","method":"<method>","params":{}}` into `buf`.
/// `method` must be a plain JSON string body (no quotes or backslashes); all bench methods are.
pub fn write_request(buf: &mut String, id: u64, method: &str) {
    buf.clear();
    let _ = write!(
        buf,
        r#"{{"type":"req","id":"{id}","method":"{method}","params":{{}}}}"#
    );
}

/// The `connect` request the bench client sends (protocol.md §22.1 shape, no device: a loopback
/// `cli`/`cli` token connect keeps its requested scopes).
pub fn connect_request(token: &str) -> String {
    let token = serde_json::Value::String(token.to_owned()).to_string();
    format!(
        r#"{{"type":"req","id":"1","method":"connect","params":{{"minProtocol":4,"maxProtocol":4,"client":{{"id":"cli","version":"bench","platform":"linux","mode":"cli"}},"role":"operator","scopes":["operator.read"],"caps":[],"auth":{{"token":{token}}}}}}}"#
    )
}

/// True when `text` is the `connect.challenge` event (checked by substring: the bench client does
/// not use the nonce, because it connects without a device identity).
pub fn is_challenge(text: &str) -> bool {
    text.contains(r#""event":"connect.challenge""#)
}

/// The request id of a `req` frame, found by scanning for the first `"id":"…"` (the floor's only
/// per-frame work). Ids with escapes are not supported and yield `None`.
pub fn request_id(text: &str) -> Option<&str> {
    const KEY: &str = r#""id":""#;
    let start = text.find(KEY)? + KEY.len();
    let len = text[start..].find(['"', '\\'])?;
    (text.as_bytes().get(start + len) == Some(&b'"')).then(|| &text[start..start + len])
}

/// A token `connect` like `connect_request` asking for `scopes` (setup connections only).
pub fn connect_request_scoped(token: &str, scopes: &[&str]) -> String {
    serde_json::json!({"type": "req", "id": "1", "method": "connect", "params": {
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "cli", "version": "bench", "platform": "linux", "mode": "cli"},
        "role": "operator", "scopes": scopes, "caps": [], "auth": {"token": token},
    }})
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_matches_only_the_awaited_id() {
        let ok = r#"{"type":"res","id":"12","ok":true,"payload":{"ok":true}}"#;
        assert_eq!(classify(ok, "12"), Reply::Ok);
        assert_eq!(classify(ok, "1"), Reply::Other);
        assert_eq!(classify(ok, "123"), Reply::Other);
        let failed = r#"{"type":"res","id":"7","ok":false,"error":{"code":"X","message":"m"}}"#;
        assert_eq!(classify(failed, "7"), Reply::Failed);
    }

    #[test]
    fn events_are_not_replies_even_when_they_mention_the_id() {
        let tick = r#"{"type":"event","event":"tick","payload":{"ts":1,"id":"5"},"seq":3}"#;
        assert_eq!(classify(tick, "5"), Reply::Other);
    }

    #[test]
    fn slow_path_handles_other_field_orders() {
        let reordered = r#"{"ok":true,"payload":{"type":"res","id":"9"},"id":"8","type":"res"}"#;
        assert_eq!(classify(reordered, "8"), Reply::Ok);
        assert_eq!(classify(reordered, "9"), Reply::Other);
        let no_ok = r#"{"id":"8","type":"res"}"#;
        assert_eq!(classify(no_ok, "8"), Reply::Failed);
        assert_eq!(classify("not json", "8"), Reply::Other);
    }

    #[test]
    fn requests_round_trip_through_the_floor_id_scan() {
        let mut buf = String::new();
        write_request(&mut buf, 42, "system-presence");
        let v: serde_json::Value = serde_json::from_str(&buf).expect("valid JSON");
        assert_eq!(v["method"], "system-presence");
        assert_eq!(request_id(&buf), Some("42"));
        let connect = connect_request("t\"k");
        let v: serde_json::Value = serde_json::from_str(&connect).expect("valid JSON");
        assert_eq!(v["params"]["auth"]["token"], "t\"k");
        assert_eq!(request_id(&connect), Some("1"));
        assert_eq!(request_id(r#"{"id":"a\"b"}"#), None);
    }
}

//! Frame codec: parse client `req` frames, build `res` and `event` frames.
//!
//! Parsing borrows from the input text where it can and never panics. Outgoing
//! frames are assembled as strings so that hot paths (cached payloads, per-connection
//! event `seq`) avoid re-serialising JSON trees.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::errors::WireError;

/// The id echoed when no request id can be read (`"invalid"`, as the reference does).
pub const INVALID_ID: &str = "invalid";
/// Longest `traceparent` the schema allows.
const MAX_TRACEPARENT: usize = 128;

/// A parsed client request.
#[derive(Debug)]
pub struct Request<'a> {
    pub id: Cow<'a, str>,
    pub method: Cow<'a, str>,
    /// Raw JSON of `params`; `None` when absent.
    pub params: Option<&'a RawValue>,
}

impl Request<'_> {
    /// Deserialises `params` into `T`; absent params read as `{}`.
    pub fn params_as<T: for<'de> Deserialize<'de>>(&self) -> Result<T, WireError> {
        let text = self.params.map(RawValue::get).unwrap_or("{}");
        serde_json::from_str(text)
            .map_err(|e| WireError::invalid(format!("invalid {} params: {e}", self.method)))
    }
}

/// Why a frame was refused; carries the id to echo.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError {
    pub id: String,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    params: Option<&'a RawValue>,
    #[serde(default)]
    traceparent: Option<String>,
}

#[derive(Deserialize)]
struct IdOnly {
    #[serde(default)]
    id: Option<serde_json::Value>,
}

/// Best-effort id extraction for error echoes.
fn salvage_id(text: &str) -> String {
    match serde_json::from_str::<IdOnly>(text) {
        Ok(IdOnly {
            id: Some(serde_json::Value::String(s)),
        }) if !s.is_empty() => s,
        _ => INVALID_ID.to_string(),
    }
}

/// Parses one text frame as a `req` frame.
pub fn parse_request(text: &str) -> Result<Request<'_>, FrameError> {
    let frame: InFrame<'_> = serde_json::from_str(text).map_err(|e| FrameError {
        id: salvage_id(text),
        message: format!("invalid frame: {e}"),
    })?;
    let id = match frame.id {
        Some(id) if !id.is_empty() => id,
        _ => {
            return Err(err(
                INVALID_ID,
                "invalid frame: id must be a non-empty string",
            ))
        }
    };
    if frame.kind != "req" {
        return Err(err(&id, "invalid frame: only req frames are accepted"));
    }
    if frame
        .traceparent
        .as_ref()
        .is_some_and(|t| t.len() > MAX_TRACEPARENT)
    {
        return Err(err(&id, "invalid frame: traceparent too long"));
    }
    let method = match frame.method {
        Some(m) if !m.is_empty() => m,
        _ => return Err(err(&id, "invalid frame: method must be a non-empty string")),
    };
    Ok(Request {
        id,
        method,
        params: frame.params,
    })
}

fn err(id: &str, message: &str) -> FrameError {
    FrameError {
        id: id.to_string(),
        message: message.to_string(),
    }
}

fn push_json_str(out: &mut String, s: &str) {
    // Serialising a &str to JSON cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

/// `{"type":"res","id":…,"ok":true,"payload":<raw>}` from pre-serialised payload JSON.
pub fn res_ok_raw(id: &str, payload_json: &str) -> String {
    let mut out = String::with_capacity(40 + id.len() + payload_json.len());
    out.push_str(r#"{"type":"res","id":"#);
    push_json_str(&mut out, id);
    out.push_str(r#","ok":true,"payload":"#);
    out.push_str(payload_json);
    out.push('}');
    out
}

/// A successful `res` frame.
pub fn res_ok<T: Serialize + ?Sized>(id: &str, payload: &T) -> String {
    let json = serde_json::to_string(payload).unwrap_or_else(|_| "null".into());
    res_ok_raw(id, &json)
}

/// A failed `res` frame.
pub fn res_err(id: &str, error: &WireError) -> String {
    let mut out = String::with_capacity(96);
    out.push_str(r#"{"type":"res","id":"#);
    push_json_str(&mut out, id);
    out.push_str(r#","ok":false,"error":"#);
    out.push_str(&serde_json::to_string(error).unwrap_or_else(|_| "{}".into()));
    out.push('}');
    out
}

/// Presence/health counters attached to `presence` and `health` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StateVersion {
    pub presence: u64,
    pub health: u64,
}

/// An event serialised once and finished per connection with that connection's `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFrame {
    /// Event name, for scope filtering.
    pub name: String,
    prefix: String,
}

impl EventFrame {
    pub fn new<T: Serialize + ?Sized>(name: &str, payload: &T) -> Self {
        Self::build(name, payload, None)
    }

    pub fn with_state<T: Serialize + ?Sized>(name: &str, payload: &T, sv: StateVersion) -> Self {
        Self::build(name, payload, Some(sv))
    }

    fn build<T: Serialize + ?Sized>(name: &str, payload: &T, sv: Option<StateVersion>) -> Self {
        let mut prefix = String::with_capacity(64);
        prefix.push_str(r#"{"type":"event","event":"#);
        push_json_str(&mut prefix, name);
        prefix.push_str(r#","payload":"#);
        prefix.push_str(&serde_json::to_string(payload).unwrap_or_else(|_| "null".into()));
        if let Some(sv) = sv {
            prefix.push_str(r#","stateVersion":"#);
            prefix.push_str(&serde_json::to_string(&sv).unwrap_or_default());
        }
        EventFrame {
            name: name.to_string(),
            prefix,
        }
    }

    /// The frame without `seq` (used for `connect.challenge`, which precedes the session).
    pub fn unsequenced(&self) -> String {
        format!("{}}}", self.prefix)
    }

    /// The frame with this connection's `seq`.
    pub fn with_seq(&self, seq: u64) -> String {
        let mut out = String::with_capacity(self.prefix.len() + 24);
        out.push_str(&self.prefix);
        out.push_str(r#","seq":"#);
        out.push_str(&seq.to_string());
        out.push('}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn parses_a_real_cli_request() {
        let r =
            parse_request(r#"{"type":"req","id":"2:5b0e","method":"health","params":{}}"#).unwrap();
        assert_eq!(r.id, "2:5b0e");
        assert_eq!(r.method, "health");
        assert_eq!(r.params.unwrap().get(), "{}");
    }

    #[test]
    fn rejects_non_req_frames_with_id_echo() {
        let e = parse_request(r#"{"type":"event","id":"7","event":"x"}"#).unwrap_err();
        assert_eq!(e.id, "7");
        let e = parse_request(r#"{"type":"res","id":"8","ok":true}"#).unwrap_err();
        assert_eq!(e.id, "8");
    }

    #[test]
    fn unreadable_frames_echo_invalid() {
        for text in [
            "not json",
            "[]",
            r#"{"type":"req","method":"x"}"#,
            r#"{"id":5}"#,
        ] {
            assert_eq!(parse_request(text).unwrap_err().id, INVALID_ID, "{text}");
        }
        assert_eq!(
            parse_request(r#"{"type":"req","id":"","method":"x"}"#)
                .unwrap_err()
                .id,
            INVALID_ID
        );
    }

    #[test]
    fn builds_res_frames() {
        let ok = res_ok("1:\"q", &json!({"ok": true}));
        let v: Value = serde_json::from_str(&ok).unwrap();
        assert_eq!(
            v,
            json!({"type":"res","id":"1:\"q","ok":true,"payload":{"ok":true}})
        );
        let e = res_err("9", &WireError::invalid("unknown method: x"));
        let v: Value = serde_json::from_str(&e).unwrap();
        assert_eq!(v["error"]["code"], "INVALID_REQUEST");
        assert_eq!(v["ok"], false);
    }

    #[test]
    fn events_carry_per_connection_seq() {
        let ev = EventFrame::with_state(
            "presence",
            &json!({"presence": []}),
            StateVersion {
                presence: 3,
                health: 1,
            },
        );
        let v: Value = serde_json::from_str(&ev.with_seq(12)).unwrap();
        assert_eq!(v["seq"], 12);
        assert_eq!(v["stateVersion"]["presence"], 3);
        let c: Value = serde_json::from_str(&ev.unsequenced()).unwrap();
        assert!(c.get("seq").is_none());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,200}") {
            let _ = parse_request(&s);
        }

        #[test]
        fn ids_round_trip(id in "[^\u{0}]{1,40}") {
            let frame = serde_json::json!({"type":"req","id":id,"method":"m"}).to_string();
            let r = parse_request(&frame).unwrap();
            proptest::prop_assert_eq!(r.id.as_ref(), id.as_str());
            let back: Value = serde_json::from_str(&res_ok_raw(&r.id, "1")).unwrap();
            proptest::prop_assert_eq!(back["id"].as_str().unwrap(), id.as_str());
        }
    }
}

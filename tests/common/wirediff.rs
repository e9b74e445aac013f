//! Structural comparison of two gateways' answers (the differential wire test) and its
//! allow-list of accepted differences (`tests/fixtures/reference/diff-allow.json`).
//!
//! Owns the rules for "alike": the same `ok`, the same `error.code` and `error.details.code`, the
//! same close code, the same object keys and the same JSON value types; everything else (ids,
//! timestamps, messages, per-instance values) is ignored. Arrays are compared by emptiness and by
//! the shape of their first element. Invariant: every difference is reported exactly once, at the
//! shallowest path where it appears (a key missing on one side is not descended into).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::Value;

/// One structural difference between the reference's answer and clawgate's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    /// The request case that produced the answers.
    pub case: String,
    /// JSON path in the answer, `$` the frame itself, `[]` any array element.
    pub path: String,
    pub what: String,
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.case, self.path, self.what)
    }
}

/// An accepted difference: `path` matches itself and everything below it; `case` may end in `*`.
#[derive(Debug, Clone, Deserialize)]
pub struct Allowed {
    pub case: String,
    pub path: String,
    pub reason: String,
    /// The difference appears in some runs only (the reference emits the field on a timer or
    /// after a background check), so an entry that allowed nothing this run is not stale.
    #[serde(default)]
    pub sometimes: bool,
}

impl Allowed {
    pub fn matches(&self, d: &Diff) -> bool {
        let case_ok = match self.case.strip_suffix('*') {
            Some(prefix) => d.case.starts_with(prefix),
            None => d.case == self.case,
        };
        let below = d
            .path
            .strip_prefix(&self.path)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']));
        case_ok && below
    }
}

/// Values compared as values, not only by type: they carry the protocol's meaning.
const SEMANTIC: &[&str] = &["$.ok", "$.error.code", "$.error.details.code", "$.close"];

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every difference between `reference` and `ours` for one case.
pub fn diff(case: &str, reference: &Value, ours: &Value) -> Vec<Diff> {
    let mut out = Vec::new();
    walk(case, "$", reference, ours, &mut out);
    out
}

fn walk(case: &str, path: &str, r: &Value, o: &Value, out: &mut Vec<Diff>) {
    let mut push = |what: String| {
        out.push(Diff {
            case: case.into(),
            path: path.into(),
            what,
        })
    };
    if SEMANTIC.contains(&path) && r != o {
        return push(format!("reference {r}, clawgate {o}"));
    }
    if kind(r) != kind(o) {
        return push(format!("type: reference {}, clawgate {}", kind(r), kind(o)));
    }
    match (r, o) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    Some(vb) => walk(case, &p, va, vb, out),
                    None => out.push(Diff {
                        case: case.into(),
                        path: p,
                        what: format!("only in reference ({})", kind(va)),
                    }),
                }
            }
            for (k, vb) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                out.push(Diff {
                    case: case.into(),
                    path: format!("{path}.{k}"),
                    what: format!("only in clawgate ({})", kind(vb)),
                });
            }
        }
        (Value::Array(a), Value::Array(b)) => match (a.first(), b.first()) {
            (Some(x), Some(y)) => walk(case, &format!("{path}[]"), x, y, out),
            (None, None) => {}
            _ => push(format!(
                "array length: reference {}, clawgate {}",
                a.len(),
                b.len()
            )),
        },
        _ => {}
    }
}

/// Differences of every case (cases missing on one side are differences at `$`).
pub fn diff_all(reference: &BTreeMap<String, Value>, ours: &BTreeMap<String, Value>) -> Vec<Diff> {
    let mut out = Vec::new();
    for (case, r) in reference {
        match ours.get(case) {
            Some(o) => out.extend(diff(case, r, o)),
            None => out.push(Diff {
                case: case.clone(),
                path: "$".into(),
                what: "case only run against the reference".into(),
            }),
        }
    }
    for case in ours.keys().filter(|c| !reference.contains_key(*c)) {
        out.push(Diff {
            case: case.clone(),
            path: "$".into(),
            what: "case only run against clawgate".into(),
        });
    }
    out
}

/// Reads an allow-list file; every entry must give a reason.
pub fn load_allow(path: &std::path::Path) -> Vec<Allowed> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let list: Vec<Allowed> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    for a in &list {
        assert!(
            a.reason.trim().len() >= 10,
            "allow-list entry {} {} needs a reason",
            a.case,
            a.path
        );
    }
    list
}

/// The differences no entry allows, and the entries that allowed nothing (stale).
pub fn judge<'a>(diffs: &[Diff], allow: &'a [Allowed]) -> (Vec<Diff>, Vec<&'a Allowed>) {
    let unallowed = diffs
        .iter()
        .filter(|d| !allow.iter().any(|a| a.matches(d)))
        .cloned()
        .collect();
    let stale = allow
        .iter()
        .filter(|a| !a.sometimes && !diffs.iter().any(|d| a.matches(d)))
        .collect();
    (unallowed, stale)
}

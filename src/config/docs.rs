//! `docs/configuration.md`, generated from the config types so it cannot drift (issue 17).
//!
//! The keys, their nesting and their accepted values are discovered from the serde schema
//! itself: each struct is probed with an unknown key (`deny_unknown_fields` answers with the
//! list of known fields), each leaf with a string (an enum answers with its variants, other
//! types with what they expect). Only the one-line descriptions are written by hand, in
//! [`super::docs_text::DESCRIPTIONS`]; a key without one renders as `UNDOCUMENTED`, which the
//! test refuses, as it refuses a description for a key that no longer exists.
//!
//! Regenerate: `CLAWGATE_WRITE_DOCS=1 cargo test --release --lib config::docs` (or `make docs`).

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

const PROBE: &str = "__probe__";

/// One documented key.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub path: String,
    pub kind: String,
}

/// A config section and the type that parses it.
struct Section {
    prefix: &'static str,
    probe: fn(&Value) -> Option<(String, String)>,
}

fn probe_as<T: DeserializeOwned>(v: &Value) -> Option<(String, String)> {
    serde_path_to_error::deserialize::<_, T>(v.clone())
        .err()
        .map(|e| (e.path().to_string(), e.inner().to_string()))
}

fn sections() -> [Section; 3] {
    [
        Section {
            prefix: "gateway",
            probe: |v| probe_as::<super::file::FileConfig>(&json!({ "gateway": v })),
        },
        Section {
            prefix: "gateway.tailscale",
            probe: probe_as::<crate::tailscale::TailscaleConfig>,
        },
        Section {
            prefix: "discovery",
            probe: probe_as::<crate::discovery::DiscoveryConfig>,
        },
    ]
}

/// `{a: {b: leaf}}` for path `[a, b]`.
fn nested(path: &[String], leaf: Value) -> Value {
    path.iter()
        .rev()
        .fold(leaf, |inner, k| json!({ k.as_str(): inner }))
}

fn dotted(prefix: &str, path: &[String]) -> String {
    let mut all = vec![prefix.to_string()];
    all.extend(path.iter().cloned());
    all.join(".")
}

/// What a probe with an unknown key says about the value at `path`.
enum Shape {
    Struct(Vec<String>),
    Map,
    Free,
    Leaf,
}

fn shape(s: &Section, path: &[String]) -> Shape {
    let mut probe_path = path.to_vec();
    probe_path.push(PROBE.into());
    let at_probe = |p: &str| {
        let want = dotted(s.prefix, &probe_path);
        p == want || format!("{}.{p}", s.prefix) == want || format!("gateway.{p}") == want
    };
    match (s.probe)(&nested(path, json!({ PROBE: 1 }))) {
        None => Shape::Free,
        Some((p, msg)) if msg.starts_with(&format!("unknown field `{PROBE}`")) && at_probe(&p) => {
            Shape::Struct(expected_list(&msg))
        }
        Some((p, _)) if at_probe(&p) => Shape::Map,
        Some(_) => Shape::Leaf,
    }
}

fn expected_list(msg: &str) -> Vec<String> {
    msg.split_once(", expected")
        .map(|(_, rest)| {
            rest.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The accepted values of a leaf, from what it says to a string.
fn leaf_kind(s: &Section, path: &[String]) -> String {
    match (s.probe)(&nested(path, json!(PROBE))) {
        None => match (s.probe)(&nested(path, json!(1))) {
            Some((_, msg)) if msg.contains("untagged enum SecretInput") => {
                "string, or a SecretRef `{source, id}`".into()
            }
            _ => "string".into(),
        },
        Some((_, msg)) if msg.starts_with("unknown variant") => {
            format!("one of {}", expected_list(&msg).join(" \\| "))
        }
        Some((_, msg)) if msg.contains("untagged enum SecretInput") => {
            "string, or a SecretRef `{source, id}`".into()
        }
        Some((_, msg)) => match msg.split_once("expected ") {
            Some((_, what)) => what.trim_end_matches('.').to_string(),
            None => msg,
        },
    }
}

fn walk(s: &Section, path: &mut Vec<String>, out: &mut Vec<Key>) {
    match shape(s, path) {
        Shape::Struct(fields) => {
            for f in fields {
                path.push(f);
                walk(s, path, out);
                path.pop();
            }
        }
        Shape::Map => {
            path.push("x".into());
            let kind = format!("map of name → {}", leaf_kind(s, path));
            path.pop();
            out.push(Key {
                path: dotted(s.prefix, path),
                kind,
            });
        }
        Shape::Free => out.push(Key {
            path: dotted(s.prefix, path),
            kind: "any JSON value (passed through)".into(),
        }),
        Shape::Leaf => out.push(Key {
            path: dotted(s.prefix, path),
            kind: leaf_kind(s, path),
        }),
    }
}

/// Every key of every section, in schema order.
pub fn keys() -> Vec<Key> {
    let mut out = Vec::new();
    for s in sections() {
        walk(&s, &mut Vec::new(), &mut out);
    }
    out.retain(|k| !(k.path == "gateway.tailscale" && k.kind.starts_with("any JSON")));
    out
}

/// The whole Markdown document.
pub fn render() -> String {
    let mut md = String::from(super::docs_text::HEADER);
    let mut section = "";
    for k in keys() {
        let top = if k.path.starts_with("gateway.tailscale") {
            "gateway.tailscale"
        } else {
            k.path.split('.').next().unwrap_or("")
        };
        if top != section {
            section = if top == "gateway.tailscale" {
                "gateway.tailscale"
            } else if top == "gateway" {
                "gateway"
            } else {
                "discovery"
            };
            md.push_str(&format!(
                "\n## `{section}`\n\n| key | values | meaning |\n|---|---|---|\n"
            ));
        }
        let text = super::docs_text::describe(&k.path).unwrap_or("UNDOCUMENTED");
        md.push_str(&format!("| `{}` | {} | {} |\n", k.path, k.kind, text));
    }
    md.push_str(super::docs_text::FOOTER);
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");

    #[test]
    fn configuration_md_is_generated_from_the_schema() {
        let fresh = render();
        if std::env::var_os("CLAWGATE_WRITE_DOCS").is_some() {
            std::fs::write(PATH, &fresh).unwrap();
        }
        let undocumented: Vec<String> = keys()
            .into_iter()
            .filter(|k| super::super::docs_text::describe(&k.path).is_none())
            .map(|k| k.path)
            .collect();
        assert!(
            undocumented.is_empty(),
            "keys without a description in config/docs_text.rs: {undocumented:#?}"
        );
        let known: Vec<String> = keys().into_iter().map(|k| k.path).collect();
        let stale: Vec<&str> = super::super::docs_text::DESCRIPTIONS
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| !known.iter().any(|k| k == p))
            .collect();
        assert!(
            stale.is_empty(),
            "descriptions of keys that no longer exist: {stale:?}"
        );
        let on_disk = std::fs::read_to_string(PATH).unwrap_or_default();
        assert!(
            on_disk == fresh,
            "docs/configuration.md is stale: regenerate with CLAWGATE_WRITE_DOCS=1 cargo test --release --lib config::docs"
        );
    }

    #[test]
    fn probes_find_nested_keys_and_enum_values() {
        let k = keys();
        let find = |p: &str| {
            k.iter()
                .find(|x| x.path == p)
                .unwrap_or_else(|| panic!("{p} in {k:#?}"))
        };
        assert!(find("gateway.bind").kind.contains("loopback"));
        assert!(find("gateway.auth.rateLimit.maxAttempts")
            .kind
            .contains("u32"));
        assert!(find("gateway.tailscale.mode").kind.contains("funnel"));
        find("discovery.mdns.mode");
    }
}

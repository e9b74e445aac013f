//! Human rendering of the gateway's `status` result (`clawgate status` without `--json`).
//!
//! Invariant: read-only formatting of fields the gateway sent; a missing field prints `-`,
//! never a panic, and nothing secret is in `status` to begin with.

use serde_json::Value;

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Prints a short summary: version, uptime, connections, listeners, exposure, audit.
pub fn print_status(v: &Value) {
    crate::outln!(
        "clawgate {} up {} s",
        text(&v["version"]),
        v["uptimeMs"].as_u64().unwrap_or(0) / 1000
    );
    let c = &v["connections"];
    crate::outln!(
        "connections: {} operator(s), {} node(s)",
        text(&c["operators"]),
        text(&c["nodes"])
    );
    let g = &v["gateway"];
    if g.is_object() {
        let listening: Vec<String> = g["listening"]
            .as_array()
            .map(|a| a.iter().map(text).collect())
            .unwrap_or_default();
        crate::outln!(
            "listening: {} (bind {}, auth {})",
            listening.join(", "),
            text(&g["bind"]),
            text(&g["authMode"])
        );
        crate::outln!("device id: {}", text(&g["deviceId"]));
        crate::outln!("state dir: {}", text(&g["stateDir"]));
    }
    let e = &v["exposure"];
    let (mode, state) = (text(&e["mode"]), text(&e["tailscale"]));
    let mut line = format!("tailscale: {mode}");
    if state != mode && state != "off" {
        line.push_str(&format!(" ({state})"));
    }
    if let Some(url) = e["publicUrl"].as_str() {
        line.push_str(&format!(", {url}"));
    }
    if let Some(reason) = e["reason"].as_str() {
        line.push_str(&format!(": {reason}"));
    }
    crate::outln!("{line}");
    for f in v["audit"].as_array().into_iter().flatten() {
        crate::outln!(
            "audit: {} {}: {}",
            text(&f["severity"]),
            text(&f["id"]),
            text(&f["message"])
        );
    }
    crate::outln!("machine-readable: clawgate status --json");
}

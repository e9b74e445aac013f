//! Keys clawgate parses (so OpenClaw config files load) but does not implement (issue 15 §7):
//! no key is silently ignored. A security-relevant one refuses `config check` and start, naming
//! the key and what to do; a harmless one yields a warning, logged once at start and printed by
//! `config check`.
//!
//! Invariants: pure (inspects the parsed file only); a key set to its default/off value is never
//! reported; `trustedProxies`, `allowRealIpFallback` and `auth.trustedProxy` are handled
//! elsewhere, as is `gateway.tls` (implemented, `crate::tls`).

use super::file::{FileConfig, GatewayMode};
use super::ConfigError;

/// The first security-relevant key set to something clawgate does not do.
pub fn refusal(f: &FileConfig) -> Result<(), ConfigError> {
    let g = &f.gateway;
    if g.mode == Some(GatewayMode::Remote) {
        return Err(ConfigError::new(
            "gateway.mode",
            "mode \"remote\" means this host does not serve and OpenClaw connects to gateway.remote.url; clawgate is always the local gateway",
            "remove gateway.mode (or set it to \"local\") on the gateway host; keep remote mode only in client configs",
        ));
    }
    if !g.nodes.pairing.auto_approve_cidrs.is_empty() {
        return Err(ConfigError::new(
            "gateway.nodes.pairing.autoApproveCidrs",
            "automatic pairing approval by source address is not implemented by clawgate",
            "remove the key and approve devices explicitly (clawgate devices approve <id>); loopback pairing is governed by nodes.pairing.autoApproveLocal",
        ));
    }
    if g.nodes.pairing.ssh_verify.as_ref().is_some_and(is_set) {
        return Err(ConfigError::new(
            "gateway.nodes.pairing.sshVerify",
            "SSH-verified node pairing is not implemented by clawgate",
            "remove the key and approve nodes explicitly (clawgate devices approve <id>)",
        ));
    }
    Ok(())
}

fn is_set(v: &serde_json::Value) -> bool {
    !(v.is_null() || v == &serde_json::Value::Bool(false))
}

/// Harmless keys clawgate ignores, each with what it means here.
pub fn warnings(f: &FileConfig) -> Vec<String> {
    let g = &f.gateway;
    let r = &g.remote;
    let mut out = Vec::new();
    let remote_keys = [
        ("transport", r.transport.is_some()),
        ("token", r.token.is_some()),
        ("password", r.password.is_some()),
        ("tlsFingerprint", r.tls_fingerprint.is_some()),
        ("sshTarget", r.ssh_target.is_some()),
        ("sshIdentity", r.ssh_identity.is_some()),
        ("remotePort", r.remote_port.is_some()),
        ("sshHostKeyPolicy", r.ssh_host_key_policy.is_some()),
        ("edgeAuth", !r.edge_auth.is_empty()),
        ("enabled", r.enabled.is_some()),
    ];
    for (key, set) in remote_keys {
        if set {
            out.push(format!("gateway.remote.{key} is a client setting (OpenClaw CLI/apps); the clawgate gateway ignores it (gateway.remote.url is used only as a setup-code URL)"));
        }
    }
    let ui = &g.control_ui;
    if ui.enabled == Some(true) {
        out.push("gateway.controlUi.enabled: clawgate serves no Control UI; browsers reach the gateway over WebSocket only (allowedOrigins applies)".into());
    }
    if ui.base_path.is_some() {
        out.push("gateway.controlUi.basePath is ignored: clawgate serves no Control UI".into());
    }
    if let Some(m) = &g.reload.mode {
        out.push(format!("gateway.reload.mode = {m:?} is ignored: clawgate hot-reloads auth secrets and the TLS certificate, other keys need a restart"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> FileConfig {
        super::super::parse_file(text).unwrap()
    }

    #[test]
    fn security_relevant_keys_refuse_naming_the_key() {
        for (cfg, key) in [
            (r#"{ gateway: { mode: "remote" } }"#, "gateway.mode"),
            (
                r#"{ gateway: { nodes: { pairing: { autoApproveCidrs: ["10.0.0.0/8"] } } } }"#,
                "gateway.nodes.pairing.autoApproveCidrs",
            ),
            (
                r#"{ gateway: { nodes: { pairing: { sshVerify: { enabled: true } } } } }"#,
                "gateway.nodes.pairing.sshVerify",
            ),
        ] {
            let e = refusal(&file(cfg)).unwrap_err();
            assert_eq!(e.key, key);
            assert!(!e.fix.is_empty());
        }
        for ok in [
            r#"{ gateway: { mode: "local" } }"#,
            r#"{ gateway: { nodes: { pairing: { sshVerify: false, autoApproveCidrs: [] } } } }"#,
            "{}",
        ] {
            assert!(refusal(&file(ok)).is_ok(), "{ok}");
        }
    }

    #[test]
    fn harmless_keys_warn_and_defaults_do_not() {
        let w = warnings(&file(
            r#"{ gateway: { remote: { url: "wss://x", token: "t", tlsFingerprint: "ab" }, controlUi: { basePath: "/ui" }, reload: { mode: "hot" } } }"#,
        ));
        assert_eq!(w.len(), 4, "{w:?}");
        assert!(w.iter().any(|m| m.starts_with("gateway.remote.token")));
        assert!(w
            .iter()
            .any(|m| m.starts_with("gateway.remote.tlsFingerprint")));
        assert!(warnings(&file("{}")).is_empty());
        assert!(warnings(&file(r#"{ gateway: { remote: { url: "wss://x" } } }"#)).is_empty());
    }
}

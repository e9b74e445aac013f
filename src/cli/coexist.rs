//! Sharing the generated gateway token with the real OpenClaw CLI on the same host (ADR 0102).
//!
//! OpenClaw's CLI finds a local gateway's token only in `gateway.auth.token` of `openclaw.json`
//! (or `OPENCLAW_GATEWAY_TOKEN`); it never reads `<stateDir>/gateway/auth-token`. So when the
//! gateway runs on a generated token, the token is also written to `gateway.auth.token`.
//!
//! Invariants: only for a generated token (never one from a flag or the environment); the
//! config is created (mode 0600) when absent, or edited only when it is strict JSON (a JSON5 file
//! with comments is never rewritten: that would drop them) — other keys are preserved; the
//! write is atomic (temp + fsync + rename) and leaves the file 0600; the token is never logged.

use std::path::Path;

use serde_json::{json, Value};

use crate::config::{Settings, TokenSource};

/// What [`share_token`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Shared {
    /// Written to `gateway.auth.token`.
    Written,
    /// Nothing to do (not a generated token, or the file already has a token).
    Unneeded,
    /// The file is JSON5 (comments, trailing commas…): left alone.
    Json5,
}

/// Errors writing the config.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error("cannot update {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Adds `gateway.auth.token = token` to the JSON config at `path` (creating it).
pub fn share_token(path: &Path, token: &str) -> Result<Shared, ShareError> {
    let io = |source| ShareError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut doc = match crate::state::read_optional(path).map_err(io)? {
        None => json!({}),
        Some(text) => match serde_json::from_str::<Value>(&text) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Ok(Shared::Json5),
        },
    };
    let auth = &doc["gateway"]["auth"];
    if !auth["token"].is_null() || auth["mode"].as_str().is_some_and(|m| m != "token") {
        return Ok(Shared::Unneeded);
    }
    doc["gateway"]["auth"]["token"] = json!(token);
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    crate::state::write_atomic(path, text.as_bytes(), crate::state::SECRET_FILE_MODE)
        .map_err(io)?;
    Ok(Shared::Written)
}

/// At `clawgate run`: shares a generated token; any failure is a WARN with the alternative.
pub fn expose_token(s: &Settings) {
    let (TokenSource::StateDir, Some(tok)) = (s.token_source, &s.auth.token) else {
        return;
    };
    let path = &s.paths.config_path;
    match share_token(path, tok.expose()) {
        Ok(Shared::Written) => tracing::info!(
            config = %path.display(),
            "generated token shared with the OpenClaw CLI as gateway.auth.token (file mode 0600)"
        ),
        Ok(Shared::Unneeded) => {}
        Ok(Shared::Json5) => tracing::info!(
            config = %path.display(),
            "config is JSON5, not rewritten: for `openclaw gateway …` without --token set gateway.auth.token or OPENCLAW_GATEWAY_TOKEN=\"$(clawgate token)\""
        ),
        Err(e) => tracing::warn!("{e}: `openclaw gateway …` needs --token \"$(clawgate token)\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn creates_a_private_config_then_leaves_an_existing_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("openclaw.json");
        assert_eq!(share_token(&path, "tok-1").unwrap(), Shared::Written);
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["gateway"]["auth"]["token"], "tok-1");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(share_token(&path, "tok-2").unwrap(), Shared::Unneeded);
    }

    #[test]
    fn preserves_other_keys_and_never_rewrites_json5() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("openclaw.json");
        std::fs::write(&path, r#"{"agents":{"x":1},"gateway":{"port":18789}}"#).unwrap();
        assert_eq!(share_token(&path, "tok").unwrap(), Shared::Written);
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["agents"]["x"], 1);
        assert_eq!(v["gateway"]["port"], 18789);
        let json5 = "{ // mine\n gateway: { port: 1 } }";
        std::fs::write(&path, json5).unwrap();
        assert_eq!(share_token(&path, "tok").unwrap(), Shared::Json5);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), json5);
        std::fs::write(&path, r#"{"gateway":{"auth":{"mode":"password"}}}"#).unwrap();
        assert_eq!(share_token(&path, "tok").unwrap(), Shared::Unneeded);
    }
}

//! Client commands: `health`, `status`, `call`, `probe`, `token`.
//!
//! Credential rules (config.md §8.1): with `--url`, credentials must be explicit;
//! without it the local gateway is targeted with the configured or generated token.

use serde_json::{json, Value};

use super::{out, CallArgs, TargetArgs, TokenArgs};
use crate::client::{Client, ClientError};
use crate::config::{self, secrets, Overrides, TokenSource};
use crate::protocol::scopes::CLI_DEFAULT_SCOPES;

/// Exit code for usage errors.
const USAGE: i32 = 2;

/// Trust options from the TLS flags plus this host's own certificate pins, with the pin store
/// under `state_dir` (a terminal may confirm a first-use certificate).
pub fn tls_opts(
    a: &super::TlsArgs,
    local_pins: Vec<String>,
    state_dir: &std::path::Path,
) -> crate::client::TlsOpts {
    crate::client::TlsOpts {
        fingerprint: a.tls_fingerprint.clone(),
        local_pins,
        store: Some(state_dir.to_path_buf()),
        trust: a.trust_fingerprint.clone(),
        prompt: interactive(),
        system_roots: true,
        ca_file: a.ca_file.clone(),
        ..Default::default()
    }
}

/// A person at a terminal can answer a prompt.
pub fn interactive() -> bool {
    use std::io::IsTerminal as _;
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The fingerprint of this host's gateway certificate, if it can be read.
pub(super) fn own_pin(t: &crate::tls::TlsSettings) -> Option<String> {
    crate::tls::cert::leaf_fingerprint(&t.cert_path).ok()
}

/// Pins for `--url`: this host's gateway certificate (configured path, else the default one).
pub(super) fn own_pins(a: &TargetArgs) -> Vec<String> {
    let over = Overrides {
        config: a.config.clone(),
        ..Default::default()
    };
    if let Ok(s) = config::load(&over, &config::process_env) {
        if let Some(t) = crate::tls::TlsSettings::from_settings(&s) {
            return own_pin(&t).into_iter().collect();
        }
    }
    config::Paths::resolve(a.config.as_deref(), &config::process_env)
        .ok()
        .map(|p| crate::tls::default_dir(&p.state_dir).join(crate::tls::CERT_FILE))
        .and_then(|p| crate::tls::cert::leaf_fingerprint(&p).ok())
        .into_iter()
        .collect()
}

/// Result of one RPC for commands that render their own output.
pub enum RpcOutcome {
    Ok(Value),
    /// Already reported; the exit code.
    Failed(i32),
}

/// Connects (CLI defaults), calls one method, closes.
pub async fn rpc(a: &TargetArgs, method: &str, params: Value) -> anyhow::Result<RpcOutcome> {
    let resolved = match super::target::resolve(a).await? {
        Ok(r) => r,
        Err(usage) => return Ok(RpcOutcome::Failed(usage_error(a.json, &usage))),
    };
    let t = &resolved.target;
    let mut c = match Client::connect(t, "cli", CLI_DEFAULT_SCOPES).await {
        Ok(c) => c,
        Err(e) => return report(a.json, e).map(RpcOutcome::Failed),
    };
    let r = c.request(method, params).await;
    c.close().await;
    match r {
        Ok(v) => Ok(RpcOutcome::Ok(v)),
        Err(e) => report(a.json, e).map(RpcOutcome::Failed),
    }
}

async fn one_call(a: &TargetArgs, method: &str, params: Value) -> anyhow::Result<i32> {
    match rpc(a, method, params).await? {
        RpcOutcome::Ok(v) => {
            print_value(a.json, method, &v);
            Ok(0)
        }
        RpcOutcome::Failed(code) => Ok(code),
    }
}

fn print_value(as_json: bool, method: &str, v: &Value) {
    if as_json {
        crate::outln!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else if method == "health" && v["ok"] == true {
        crate::outln!("gateway healthy (uptime {} ms)", v["uptimeMs"]);
    } else if method == "status" {
        super::status_view::print_status(v);
    } else {
        crate::outln!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    }
}

/// A usage error (exit 2): a line on stderr and, with `--json`, the shared error shape on stdout.
pub fn usage_error(as_json: bool, message: &str) -> i32 {
    if as_json {
        crate::outln!("{}", out::json_error("USAGE", message, None));
    }
    crate::errln!("error: {message}");
    USAGE
}

/// Stable machine code of a client-side failure.
fn error_code(e: &ClientError) -> &'static str {
    match e {
        ClientError::Connect { .. } => "UNREACHABLE",
        ClientError::Timeout(_) => "TIMEOUT",
        ClientError::Closed(_) => "CLOSED",
        ClientError::Rejected { .. } => "REJECTED",
        ClientError::Protocol(_) => "PROTOCOL",
        ClientError::Device(_) => "STATE",
    }
}

/// A failed call (exit 1): the human line (with a hint) on stderr; with `--json` the shared
/// error shape on stdout, carrying the gateway's own error object when it sent one.
fn report(as_json: bool, e: ClientError) -> anyhow::Result<i32> {
    if as_json {
        let extra = match &e {
            ClientError::Rejected { error, .. } => Some(error),
            _ => None,
        };
        crate::outln!("{}", out::json_error(error_code(&e), &e.to_string(), extra));
    }
    crate::errln!("error: {e}");
    if let Some(id) = pairing_request(&e) {
        crate::errln!("hint: this CLI asked to pair (request {id}); on the gateway host run `clawgate devices approve {id}`, then run this command again");
    } else if let Some(hint) = hint(&e) {
        crate::errln!("hint: {hint}");
    }
    Ok(1)
}

/// The pairing request id of a `PAIRING_REQUIRED` rejection.
fn pairing_request(e: &ClientError) -> Option<&str> {
    match e {
        ClientError::Rejected { detail, error, .. }
            if detail.as_deref() == Some("PAIRING_REQUIRED") =>
        {
            error["details"]["requestId"].as_str()
        }
        _ => None,
    }
}

/// A shared-secret refusal: the wire code (`INVALID_REQUEST` on the reference) or its detail
/// (`AUTH_TOKEN_MISMATCH`, `AUTH_PASSWORD_MISMATCH`, …) names auth; device-token and pairing
/// refusals have their own fixes.
fn auth_code(code: &str, detail: Option<&str>) -> bool {
    let is_auth = |c: &str| {
        (c.contains("TOKEN") || c.contains("PASSWORD") || c.starts_with("AUTH"))
            && !c.contains("DEVICE")
    };
    is_auth(code) || detail.is_some_and(is_auth)
}

/// What to try next for the common failures.
fn hint(e: &ClientError) -> Option<&'static str> {
    match e {
        ClientError::Connect { .. } => Some("is the gateway running? start it with `clawgate run`"),
        ClientError::Rejected { code, detail, .. } if auth_code(code, detail.as_deref()) => {
            Some("on the gateway host `clawgate token` prints the token it uses (generated, or OPENCLAW_GATEWAY_TOKEN / gateway.auth.token when set); pass it with --token")
        }
        _ => None,
    }
}

pub async fn health(a: TargetArgs) -> anyhow::Result<i32> {
    one_call(&a, "health", json!({})).await
}

pub async fn status(a: TargetArgs) -> anyhow::Result<i32> {
    one_call(&a, "status", json!({})).await
}

pub async fn call(c: CallArgs) -> anyhow::Result<i32> {
    let params: Value = match serde_json::from_str(&c.params) {
        Ok(v) => v,
        Err(e) => {
            let msg = format!("--params is not valid JSON: {e}");
            return Ok(usage_error(c.target.json, &msg));
        }
    };
    one_call(&c.target, &c.method, params).await
}

/// `probe`: connect as a probe, then report what the credentials allow.
pub async fn probe(a: TargetArgs) -> anyhow::Result<i32> {
    let resolved = match super::target::resolve(&a).await? {
        Ok(r) => r,
        Err(usage) => return Ok(usage_error(a.json, &usage)),
    };
    let t = &resolved.target;
    let started = std::time::Instant::now();
    let mut c = match Client::connect(t, "probe", &["operator.read"]).await {
        Ok(c) => c,
        Err(e) => {
            let reachable = !matches!(e, ClientError::Connect { .. } | ClientError::Timeout(_));
            if a.json {
                let mut v = out::json_error(error_code(&e), &e.to_string(), None);
                v["url"] = json!(t.url);
                v["reachable"] = json!(reachable);
                crate::outln!("{v}");
            }
            crate::errln!("probe failed: {e}");
            return Ok(1);
        }
    };
    let connect_ms = started.elapsed().as_millis() as u64;
    let scopes = c.hello["auth"]["scopes"].clone();
    let health = c.request("health", json!({})).await.ok();
    c.close().await;
    let v = json!({"ok": true, "url": t.url, "reachable": true, "connectMs": connect_ms, "protocol": c_protocol(&scopes), "scopes": scopes, "health": health});
    if a.json {
        crate::outln!("{v}");
    } else {
        crate::outln!(
            "gateway reachable at {} (connect {connect_ms} ms), scopes {}",
            t.url,
            v["scopes"]
        );
    }
    Ok(0)
}

fn c_protocol(_: &Value) -> u32 {
    crate::protocol::PROTOCOL_VERSION
}

/// `token`: prints the token this host's gateway uses.
pub fn token(a: TokenArgs) -> anyhow::Result<i32> {
    let s = config::load(
        &Overrides {
            config: a.config,
            ..Default::default()
        },
        &config::process_env,
    )?;
    let configured = s
        .auth
        .token
        .clone()
        .map(|t| (t, token_source(s.token_source)));
    let generated = || secrets::read_generated_token(&s.paths.state_dir).map(|t| (t, "generated"));
    let Some((tok, source)) = configured.or_else(generated) else {
        let message = format!(
            "no token configured and none generated yet in {} (start the gateway once: clawgate run)",
            s.paths.state_dir.display()
        );
        if a.json {
            crate::outln!("{}", out::json_error("NO_TOKEN", &message, None));
        }
        crate::errln!("error: {message}");
        return Ok(1);
    };
    if a.json {
        let mut v = json!({"ok": true, "token": tok.expose(), "source": source});
        if source == "generated" {
            v["path"] = json!(secrets::token_file(&s.paths.state_dir));
        }
        crate::outln!("{v}");
    } else {
        crate::outln!("{}", tok.expose());
    }
    Ok(0)
}

/// Where a configured token came from, as `token --json` reports it.
fn token_source(src: TokenSource) -> &'static str {
    match src {
        TokenSource::Flag => "flag",
        TokenSource::Env => "env",
        TokenSource::File => "config",
        TokenSource::StateDir => "generated",
        TokenSource::None => "none",
    }
}

//! `clawgate tls fingerprint` and `clawgate tls rotate`, and the `tls` check of `doctor`.
//!
//! Invariants: `rotate` re-issues only the auto-generated self-signed certificate (a configured
//! `certPath` is the operator's own and is never overwritten), keeps the key unless `--new-key`
//! (SPKI pins survive), and prints old and new fingerprints; a running gateway picks the new pair
//! up by itself (file change) for new connections. Nothing here prints key material.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::doctor::{fail, pass, Check};
use crate::config::{self, Overrides};
use crate::tls::{cert, TlsSettings};

#[derive(Subcommand, Debug)]
pub enum TlsCmd {
    /// Print the SHA-256 fingerprint of the gateway certificate (64 lowercase hex).
    #[command(
        after_help = "Examples:\n  clawgate tls fingerprint\n  clawgate tls fingerprint --json"
    )]
    Fingerprint(TlsArgs),
    /// Re-issue the self-signed gateway certificate; prints the old and new fingerprints.
    #[command(after_help = "Examples:\n  clawgate tls rotate\n  clawgate tls rotate --new-key")]
    Rotate {
        #[command(flatten)]
        args: TlsArgs,
        /// Also generate a new private key (breaks SPKI pins as well as leaf pins).
        #[arg(long)]
        new_key: bool,
    },
}

#[derive(Args, Debug)]
pub struct TlsArgs {
    /// Config file (default: $OPENCLAW_CONFIG_PATH, else ~/.openclaw/openclaw.json).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

fn settings(a: &TlsArgs) -> anyhow::Result<Result<(TlsSettings, config::Settings), String>> {
    let over = Overrides {
        config: a.config.clone(),
        ..Default::default()
    };
    let s = config::load(&over, &config::process_env)?;
    Ok(match TlsSettings::from_settings(&s) {
        Some(t) => Ok((t, s)),
        None => Err("gateway TLS is off (set gateway.tls.enabled: true)".into()),
    })
}

fn emit(json_out: bool, v: Value, text: String) {
    if json_out {
        crate::outln!("{v}");
    } else {
        crate::outln!("{text}");
    }
}

pub fn run(cmd: TlsCmd) -> anyhow::Result<i32> {
    match cmd {
        TlsCmd::Fingerprint(a) => fingerprint(&a),
        TlsCmd::Rotate { args, new_key } => rotate(&args, new_key),
    }
}

fn fingerprint(a: &TlsArgs) -> anyhow::Result<i32> {
    let (t, _) = match settings(a)? {
        Ok(x) => x,
        Err(why) => {
            emit(
                a.json,
                json!({"ok": false, "enabled": false, "error": why}),
                why.clone(),
            );
            return Ok(1);
        }
    };
    match cert::leaf_fingerprint(&t.cert_path) {
        Ok(fp) => {
            let v =
                json!({"ok": true, "enabled": true, "fingerprint": fp, "certPath": t.cert_path});
            emit(a.json, v, fp);
            Ok(0)
        }
        Err(e) => {
            let why = format!("{e} (the gateway generates it at its first start with TLS on)");
            emit(
                a.json,
                json!({"ok": false, "enabled": true, "error": why}),
                why.clone(),
            );
            Ok(1)
        }
    }
}

fn rotate(a: &TlsArgs, new_key: bool) -> anyhow::Result<i32> {
    let (t, s) = match settings(a)? {
        Ok(x) => x,
        Err(why) => {
            crate::errln!("error: {why}");
            return Ok(1);
        }
    };
    if s.file.gateway.tls.cert_path.is_some() {
        crate::errln!(
            "error: gateway.tls.certPath names your own certificate ({}); replace that file to rotate it (the gateway reloads it)",
            t.cert_path.display()
        );
        return Ok(1);
    }
    let names = cert::Names::discover(&crate::tls::known_dns_names(), &[]);
    let r = cert::rotate(&t, &names, new_key)?;
    let old = r.old.clone().unwrap_or_else(|| "none".into());
    let v = json!({"ok": true, "old": r.old, "new": r.new, "newKey": r.new_key, "certPath": t.cert_path});
    let text = format!(
        "old fingerprint: {old}\nnew fingerprint: {}\n{}\nthe running gateway serves it to new connections within seconds (or now: kill -HUP <pid>); clients that pinned the old fingerprint must be updated (a new setup code carries it)",
        r.new,
        if r.new_key { "key: new" } else { "key: kept (SPKI pins stay valid)" }
    );
    emit(a.json, v, text);
    Ok(0)
}

/// `doctor`'s `tls` check: the certificate file, and whether the running gateway serves it.
pub fn doctor_check(tls: Option<&TlsSettings>, ready: Option<&Value>) -> Option<Check> {
    let t = tls?;
    let file = match cert::leaf_fingerprint(&t.cert_path) {
        Ok(fp) => fp,
        Err(e) => {
            return Some(fail(
                "tls",
                e.to_string(),
                "start the gateway (it generates the pair) or fix gateway.tls.certPath/keyPath",
            ))
        }
    };
    let served = ready.and_then(|r| r["tls"]["fingerprint"].as_str());
    Some(match served {
        Some(fp) if fp != file => fail(
            "tls",
            format!(
                "the gateway serves {fp} but {} holds {file}",
                t.cert_path.display()
            ),
            "send SIGHUP to the gateway (or fix the pair: the gateway logs why it refused it)",
        ),
        _ => pass("tls", format!("direct TLS on, sha256 fingerprint {file}")),
    })
}

//! `clawgate pins list` and `clawgate pins forget`: the client's stored TLS pins.
//!
//! Invariants: pins are added only by a confirmed connect (`--trust-fingerprint` or the prompt),
//! never here; `forget` removes exactly one `host:port`; an unknown key is an error (exit 1) so
//! a typo is not mistaken for success.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::client::pinstore;
use crate::config;

#[derive(Subcommand, Debug)]
pub enum PinsCmd {
    /// List the stored gateway certificate pins.
    #[command(after_help = "Examples:\n  clawgate pins list\n  clawgate pins list --json")]
    List(PinsArgs),
    /// Forget the pin of one gateway (after a deliberate certificate change).
    #[command(after_help = "Example:\n  clawgate pins forget vienna.tail1234.ts.net:443")]
    Forget {
        /// The endpoint as listed: host:port.
        #[arg(value_name = "HOST:PORT")]
        endpoint: String,
        #[command(flatten)]
        args: PinsArgs,
    },
}

#[derive(Args, Debug)]
pub struct PinsArgs {
    /// Config file (default: $OPENCLAW_CONFIG_PATH, else ~/.openclaw/openclaw.json).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

fn state_dir(a: &PinsArgs) -> anyhow::Result<PathBuf> {
    Ok(config::Paths::resolve(a.config.as_deref(), &config::process_env)?.state_dir)
}

/// Runs a `pins` subcommand; the exit code.
pub fn run(c: PinsCmd) -> anyhow::Result<i32> {
    match c {
        PinsCmd::List(a) => {
            let pins = pinstore::load(&state_dir(&a)?)?;
            if a.json {
                crate::outln!("{}", json!({ "pins": pins }));
            } else if pins.is_empty() {
                crate::outln!("no stored pins");
            } else {
                for (k, p) in &pins {
                    let key = p
                        .spki_sha256
                        .as_deref()
                        .map(|k| format!("  key sha256 {k}"))
                        .unwrap_or_default();
                    crate::outln!("{k}  sha256 {}{key}  ({:?})", p.sha256, p.confirmed);
                }
            }
            Ok(0)
        }
        PinsCmd::Forget { endpoint, args } => {
            let key = endpoint.trim().to_ascii_lowercase();
            if pinstore::forget(&state_dir(&args)?, &key)? {
                crate::outln!("forgot the pin for {key}");
                Ok(0)
            } else {
                crate::errln!("no stored pin for {key} (see `clawgate pins list`)");
                Ok(1)
            }
        }
    }
}

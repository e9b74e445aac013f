//! Shared-secret hot reload: on SIGHUP, or when the config file changes, the
//! configuration is loaded and validated again. A valid change of the shared
//! token or password takes effect for new connects and closes every
//! shared-secret session with 4001 `gateway auth changed` (protocol.md §8.2).
//! An invalid file is logged and the previous configuration stays active
//! (threats.md SL-7); only auth secrets are hot-reloaded — other keys need a restart.
//! The gateway TLS pair is reloaded on the same SIGHUP and whenever its files change
//! ([`reload_tls`]): new handshakes get the new pair, open connections keep theirs, and a bad
//! pair is refused with the reason while the old one stays.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::Gateway;
use crate::config::{self, AuthSettings, Overrides};
use crate::protocol::errors::close;

/// How often the config file's modification time is checked.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

fn mtime(gw: &Gateway) -> Option<SystemTime> {
    std::fs::metadata(&gw.settings.paths.config_path)
        .and_then(|m| m.modified())
        .ok()
}

/// Starts the reload watcher on the gateway's tracker.
pub fn spawn(gw: &Arc<Gateway>, over: Overrides) {
    let gw2 = gw.clone();
    gw.tracker.spawn(async move {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("no SIGHUP handler, config reload only by file change: {e}");
                None
            }
        };
        let mut last = mtime(&gw2);
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        loop {
            tokio::select! {
                _ = gw2.cancel.cancelled() => return,
                _ = async { match hup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending().await } } => {
                    reload(&gw2, &over);
                    reload_tls(&gw2, true);
                }
                _ = tick.tick() => {
                    reload_tls(&gw2, false);
                    let now = mtime(&gw2);
                    if now != last {
                        last = now;
                        reload(&gw2, &over);
                    }
                }
            }
        }
    });
}

/// Reloads the TLS pair when its files changed (or always, `force`); logs the outcome.
pub fn reload_tls(gw: &Gateway, force: bool) {
    let Some(tls) = gw.tls.get() else { return };
    match tls.reload(force) {
        Ok(crate::tls::server::Reloaded::Unchanged) => {}
        Ok(crate::tls::server::Reloaded::Swapped { old, new }) => {
            tracing::info!(%old, %new, "TLS certificate reloaded: new connections get the new certificate");
            gw.refresh_discovery_tls();
        }
        Err(e) => tracing::error!(
            kept = %tls.fingerprint(),
            "TLS certificate reload refused, keeping the served certificate: {e}"
        ),
    }
}

fn secrets_differ(a: &AuthSettings, b: &AuthSettings) -> bool {
    a.mode != b.mode || a.token != b.token || a.password != b.password
}

/// The new settings, with the generated token (checked like any other secret) when token
/// auth has no configured token.
fn load(over: &Overrides) -> Result<config::Settings, config::ConfigError> {
    let mut next = config::load(over, &config::process_env)?;
    if next.auth.mode == config::AuthMode::Token && next.auth.token.is_none() {
        if let Some(t) = config::secrets::read_generated_token(&next.paths.state_dir) {
            config::secrets::use_generated_token(&mut next, t)?;
        }
    }
    Ok(next)
}

/// Reloads and applies a changed shared secret.
pub fn reload(gw: &Gateway, over: &Overrides) {
    let next = match load(over) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("config reload refused, keeping the running configuration: {e}");
            return;
        }
    };
    let current = gw.auth();
    if !secrets_differ(&current, &next.auth) {
        return;
    }
    gw.set_auth(next.auth);
    let closed = gw
        .hub
        .kick_where(close::AUTH_CHANGED, "gateway auth changed", |e| {
            e.shared_secret
        });
    tracing::info!(
        closed,
        "shared secret changed: closed shared-secret sessions with 4001"
    );
}

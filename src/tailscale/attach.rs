//! Attach mode of the sidecar supervisor: follow the handshake file of a `clawgate-tsnet` that
//! someone else runs (e.g. a systemd unit started with `--handshake-file`).
//!
//! Invariants: the endpoint is republished only when the file content changes; a missing or
//! unusable file publishes `None` (callers get `Unavailable`, never a stale endpoint parsed from
//! garbage); the task ends on cancellation and leaves the state `Stopped`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::handshake::Handshake;
use super::sidecar::{Publish, SidecarState};

/// Poll period for the handshake file (the sidecar rewrites it atomically on restart).
pub const ATTACH_POLL: Duration = Duration::from_millis(500);

/// Attach mode: publish the endpoint from `path` whenever its content changes.
pub(super) async fn follow_file(path: PathBuf, publish: Publish, cancel: CancellationToken) {
    let mut last: Option<Vec<u8>> = None;
    loop {
        let content = tokio::fs::read(&path).await.ok();
        if content != last {
            apply_file(&path, content.as_deref(), &publish);
            last = content;
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(ATTACH_POLL) => {}
        }
    }
    publish.endpoint.send_replace(None);
    publish.state.send_replace(SidecarState::Stopped);
}

fn apply_file(path: &Path, content: Option<&[u8]>, publish: &Publish) {
    let parsed = content.map(|c| Handshake::parse(c.trim_ascii()));
    match parsed {
        Some(Ok((hs, ep))) => {
            tracing::info!(file = %path.display(), endpoint = %ep, "attached to Tailscale sidecar");
            publish.endpoint.send_replace(Some(ep));
            publish.state.send_replace(SidecarState::Running {
                pid: None,
                dns_name: hs.dns_name,
                restarts: 0,
            });
        }
        Some(Err(e)) => {
            tracing::warn!(file = %path.display(), error = %e, "unusable sidecar handshake file");
            publish.endpoint.send_replace(None);
            publish.state.send_replace(SidecarState::Backoff {
                restarts: 0,
                retry_in: ATTACH_POLL,
                last_error: e.to_string(),
            });
        }
        None => {
            publish.endpoint.send_replace(None);
            publish
                .state
                .send_replace(SidecarState::Starting { restarts: 0 });
        }
    }
}

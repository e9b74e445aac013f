//! Where a running gateway can be found: `clawgate run` records its pid and loopback port in
//! `<stateDir>/clawgate/run.json` once its listeners are bound and removes it on a clean stop,
//! so `clawgate doctor` finds a gateway started with `--port` (or port 0) on the same state dir
//! instead of reporting "not running" on the configured port.
//!
//! Invariants: written atomically (a reader never sees half a file); a record whose pid is gone
//! (a SIGKILLed gateway) is ignored; the record is only a hint — the reader still has to get a
//! `/readyz` answer from that port before trusting anything. Nothing secret is stored.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a running gateway leaves behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    pub pid: u32,
    /// The port of its loopback listener.
    pub port: u16,
    pub version: String,
}

/// `<stateDir>/clawgate/run.json`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("clawgate").join("run.json")
}

/// Records this process as the gateway on `port` (a failure is logged, never fatal).
pub fn write(state_dir: &Path, port: u16) {
    let info = RunInfo {
        pid: std::process::id(),
        port,
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let body = serde_json::to_vec(&info).unwrap_or_default();
    if let Err(e) = crate::state::write_atomic(&path(state_dir), &body, 0o600) {
        tracing::warn!(
            "cannot record the running gateway in {}: {e}",
            path(state_dir).display()
        );
    }
}

/// Removes the record if it is this process's.
pub fn remove(state_dir: &Path) {
    if read(state_dir).is_some_and(|i| i.pid == std::process::id()) {
        let _ = std::fs::remove_file(path(state_dir));
    }
}

fn read(state_dir: &Path) -> Option<RunInfo> {
    let text = std::fs::read_to_string(path(state_dir)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The record, if its process is still alive.
pub fn read_live(state_dir: &Path) -> Option<RunInfo> {
    read(state_dir).filter(|i| alive(i.pid))
}

fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0: existence check only (EPERM would still mean it exists).
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_record_is_read_and_a_dead_or_foreign_one_is_not() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read_live(d.path()), None);
        write(d.path(), 19001);
        let me = read_live(d.path()).expect("own record");
        assert_eq!((me.pid, me.port), (std::process::id(), 19001));
        // A pid that cannot exist (beyond pid_max).
        let dead = RunInfo {
            pid: 4_000_000_000,
            port: 1,
            version: "x".into(),
        };
        crate::state::write_atomic(&path(d.path()), &serde_json::to_vec(&dead).unwrap(), 0o600)
            .unwrap();
        assert_eq!(read_live(d.path()), None);
        remove(d.path());
        assert!(
            path(d.path()).exists(),
            "another process's record is left alone"
        );
        write(d.path(), 19002);
        remove(d.path());
        assert!(!path(d.path()).exists());
    }
}

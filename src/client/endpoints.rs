//! The client's saved endpoints: the direct endpoint chosen from discovery (or confirmed by a
//! successful connect) and the tailnet name to try, in
//! `<stateDir>/clawgate/client/endpoints.json` (0600, atomic).
//!
//! Invariants: only routing data is stored (URL, TLS server name, where it came from) — never a
//! credential or a pin (pins live in the pin store, confirmed explicitly); a corrupt file fails
//! closed with its path and the fix, it is never silently replaced.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Current file format.
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum EndpointsError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is corrupt ({why}); fix it or delete it to forget the saved gateway")]
    Corrupt { path: PathBuf, why: String },
}

/// Where a saved direct endpoint came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Picked from a discovery list.
    Discovery,
    /// Given on the command line (`clawgate connect --url … --save`).
    Manual,
}

/// A direct endpoint the client will try first (policy step 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedEndpoint {
    /// `ws://` or `wss://` URL, host usually an address resolved from SRV + A/AAAA.
    pub url: String,
    /// TLS server name (the SRV host) when the URL holds an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    pub origin: Origin,
    /// Display name (discovered instance name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub saved_at_ms: i64,
}

impl SavedEndpoint {
    /// An endpoint saved now.
    pub fn new(url: &str, server_name: Option<String>, origin: Origin) -> SavedEndpoint {
        SavedEndpoint {
            url: url.to_string(),
            server_name,
            origin,
            name: None,
            saved_at_ms: crate::util::now_ms(),
        }
    }
}

/// Everything saved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Saved {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct: Option<SavedEndpoint>,
    /// A tailnet MagicDNS name or IP (policy step 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tailnet: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    #[serde(flatten)]
    saved: Saved,
}

/// The file below `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir
        .join("clawgate")
        .join("client")
        .join("endpoints.json")
}

/// Reads the saved endpoints (missing file ⇒ nothing saved).
pub fn load(state_dir: &Path) -> Result<Saved, EndpointsError> {
    let p = path(state_dir);
    let text = crate::state::read_optional(&p).map_err(|source| EndpointsError::Io {
        path: p.clone(),
        source,
    })?;
    let Some(text) = text else {
        return Ok(Saved::default());
    };
    let f: File = serde_json::from_str(&text).map_err(|e| EndpointsError::Corrupt {
        path: p.clone(),
        why: e.to_string(),
    })?;
    if f.version != VERSION {
        return Err(EndpointsError::Corrupt {
            path: p,
            why: format!("version {} (this clawgate reads {VERSION})", f.version),
        });
    }
    Ok(f.saved)
}

/// Replaces the saved endpoints atomically.
pub fn store(state_dir: &Path, saved: &Saved) -> Result<(), EndpointsError> {
    let p = path(state_dir);
    let f = File {
        version: VERSION,
        saved: saved.clone(),
    };
    let text = serde_json::to_vec_pretty(&f).map_err(|e| EndpointsError::Corrupt {
        path: p.clone(),
        why: e.to_string(),
    })?;
    crate::state::write_atomic(&p, &text, 0o600)
        .map_err(|source| EndpointsError::Io { path: p, source })
}

/// Saves `ep` as the direct endpoint, keeping the rest.
pub fn save_direct(state_dir: &Path, ep: SavedEndpoint) -> Result<(), EndpointsError> {
    let mut s = load(state_dir)?;
    s.direct = Some(ep);
    store(state_dir, &s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> SavedEndpoint {
        SavedEndpoint {
            url: "wss://100.64.0.1:443".into(),
            server_name: Some("vienna.tail.ts.net".into()),
            origin: Origin::Discovery,
            name: Some("vienna".into()),
            saved_at_ms: 1,
        }
    }

    #[test]
    fn round_trips_and_keeps_the_tailnet_name() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(load(d.path()).unwrap(), Saved::default());
        store(
            d.path(),
            &Saved {
                direct: None,
                tailnet: Some("vienna".into()),
            },
        )
        .unwrap();
        save_direct(d.path(), ep()).unwrap();
        let s = load(d.path()).unwrap();
        assert_eq!(s.direct, Some(ep()));
        assert_eq!(s.tailnet.as_deref(), Some("vienna"));
        let text = std::fs::read_to_string(path(d.path())).unwrap();
        assert!(!text.contains("token"));
    }

    #[test]
    fn a_corrupt_file_fails_closed_and_is_kept() {
        let d = tempfile::tempdir().unwrap();
        let p = path(d.path());
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "{\"version\":1,\"direct\":").unwrap();
        let e = load(d.path()).unwrap_err().to_string();
        assert!(e.contains("endpoints.json") && e.contains("corrupt"), "{e}");
        assert!(save_direct(d.path(), ep()).is_err());
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"version\":1,\"direct\":"
        );
        std::fs::write(&p, "{\"version\":9}").unwrap();
        assert!(load(d.path()).is_err());
    }
}

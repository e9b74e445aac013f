//! The client's stored TLS pins: which certificate each `wss://` endpoint was confirmed to present,
//! in `<stateDir>/clawgate/client/pins.json` (0600, atomic).
//!
//! Invariants: keyed by `host:port` (lower-case host — the TLS server name when it differs from the
//! URL host); a pin enters the store only after a confirmation (`--trust-fingerprint` equal to the
//! presented certificate, or `yes` at a terminal prompt) — never from an advertised hint
//! (threats.md TLS-6); a stored pin is never replaced by a connect, only removed by `pins forget`;
//! a corrupt file fails closed with its path, never treated as empty.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Current file format.
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum PinStoreError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is corrupt ({why}); fix it or delete it to forget every stored pin")]
    Corrupt { path: PathBuf, why: String },
}

/// How a pin was confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confirmed {
    /// `--trust-fingerprint` matched the presented certificate.
    Flag,
    /// A person answered `yes` at the prompt.
    Prompt,
}

/// One stored pin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pin {
    /// Leaf SHA-256, 64 lower-case hex (the certificate that was confirmed).
    pub sha256: String,
    /// SHA-256 of its public key (SPKI): a re-issued certificate with the same key still
    /// matches (threats.md TLS-3). Absent in pins stored before it was recorded (leaf only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spki_sha256: Option<String>,
    pub confirmed: Confirmed,
    pub stored_at_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct File {
    version: u32,
    #[serde(default)]
    pins: BTreeMap<String, Pin>,
}

/// `host:port` for an endpoint (host lower-case, brackets dropped).
pub fn endpoint_key(host: &str, port: u16) -> String {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    format!("{}:{port}", h.to_ascii_lowercase())
}

/// The pin file under `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("clawgate").join("client").join("pins.json")
}

/// Every stored pin (missing file ⇒ none).
pub fn load(state_dir: &Path) -> Result<BTreeMap<String, Pin>, PinStoreError> {
    let p = path(state_dir);
    let text = crate::state::read_optional(&p).map_err(|source| PinStoreError::Io {
        path: p.clone(),
        source,
    })?;
    let Some(text) = text else {
        return Ok(BTreeMap::new());
    };
    let corrupt = |why: String| PinStoreError::Corrupt {
        path: p.clone(),
        why,
    };
    let f: File = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
    if f.version != VERSION {
        return Err(corrupt(format!(
            "version {} (this clawgate reads {VERSION})",
            f.version
        )));
    }
    let hex = |h: &str| crate::tls::client::normalize(h).as_deref() == Some(h);
    if let Some((k, _)) = f
        .pins
        .iter()
        .find(|(_, v)| !hex(&v.sha256) || v.spki_sha256.as_deref().is_some_and(|s| !hex(s)))
    {
        return Err(corrupt(format!("pin for {k} is not 64 lower-case hex")));
    }
    Ok(f.pins)
}

/// The stored pin for `key`.
pub fn get(state_dir: &Path, key: &str) -> Result<Option<Pin>, PinStoreError> {
    Ok(load(state_dir)?.remove(key))
}

fn store(state_dir: &Path, pins: BTreeMap<String, Pin>) -> Result<(), PinStoreError> {
    let p = path(state_dir);
    let f = File {
        version: VERSION,
        pins,
    };
    let text = serde_json::to_vec_pretty(&f).map_err(|e| PinStoreError::Corrupt {
        path: p.clone(),
        why: e.to_string(),
    })?;
    crate::state::write_atomic(&p, &text, crate::state::SECRET_FILE_MODE)
        .map_err(|source| PinStoreError::Io { path: p, source })
}

/// Stores a confirmed pin for `key` unless one is already stored (a stored pin is only removed by
/// [`forget`]). Returns whether it was added.
pub fn add(
    state_dir: &Path,
    key: &str,
    seen: &crate::tls::client::SeenCert,
    confirmed: Confirmed,
) -> Result<bool, PinStoreError> {
    let mut pins = load(state_dir)?;
    if pins.contains_key(key) {
        return Ok(false);
    }
    let pin = Pin {
        sha256: seen.sha256.clone(),
        spki_sha256: seen.spki_sha256.clone(),
        confirmed,
        stored_at_ms: crate::util::now_ms(),
    };
    pins.insert(key.to_string(), pin);
    store(state_dir, pins).map(|()| true)
}

/// Removes the pin for `key`; returns whether one was stored.
pub fn forget(state_dir: &Path, key: &str) -> Result<bool, PinStoreError> {
    let mut pins = load(state_dir)?;
    let had = pins.remove(key).is_some();
    if had {
        store(state_dir, pins)?;
    }
    Ok(had)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn seen(leaf: &str) -> crate::tls::client::SeenCert {
        crate::tls::client::SeenCert {
            sha256: leaf.into(),
            spki_sha256: Some("cc".repeat(32)),
        }
    }

    #[test]
    fn a_stored_pin_is_kept_until_forgotten() {
        let d = tempfile::tempdir().unwrap();
        let k = endpoint_key("Vienna.TS.net", 443);
        assert_eq!(k, "vienna.ts.net:443");
        assert!(add(d.path(), &k, &seen(A), Confirmed::Flag).unwrap());
        assert!(
            !add(d.path(), &k, &seen(B), Confirmed::Prompt).unwrap(),
            "never replaced"
        );
        let pin = get(d.path(), &k).unwrap().unwrap();
        assert_eq!(
            (pin.sha256.as_str(), pin.spki_sha256),
            (A, Some("cc".repeat(32)))
        );
        assert!(forget(d.path(), &k).unwrap());
        assert!(get(d.path(), &k).unwrap().is_none());
        assert!(!forget(d.path(), &k).unwrap());
    }

    #[test]
    fn a_corrupt_or_malformed_file_fails_closed() {
        let d = tempfile::tempdir().unwrap();
        let p = path(d.path());
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "{").unwrap();
        assert!(matches!(load(d.path()), Err(PinStoreError::Corrupt { .. })));
        let bad =
            r#"{"version":1,"pins":{"h:1":{"sha256":"zz","confirmed":"flag","storedAtMs":1}}}"#;
        std::fs::write(&p, bad).unwrap();
        assert!(matches!(
            add(d.path(), "x:1", &seen(A), Confirmed::Flag),
            Err(PinStoreError::Corrupt { .. })
        ));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), bad, "kept as it was");
        let bad_spki = format!(
            r#"{{"version":1,"pins":{{"h:1":{{"sha256":"{A}","spkiSha256":"XY","confirmed":"flag","storedAtMs":1}}}}}}"#
        );
        std::fs::write(&p, bad_spki).unwrap();
        assert!(matches!(load(d.path()), Err(PinStoreError::Corrupt { .. })));
    }
}

//! The gateway's own Ed25519 identity (`gateway.identity.get`), persisted as
//! `<stateDir>/clawgate/gateway-identity.json` in the reference format
//! `{version:1, deviceId, publicKeyPem, privateKeyPem, createdAtMs}`, mode 0600.
//!
//! Not in `<stateDir>/identity/device.json` any more (ADR 0103): that is where the OpenClaw CLI
//! and node host keep *their* device identity, and OpenClaw 2026.9.x migrates that file into
//! SQLite and deletes it. An identity found only at that legacy path is copied to the new one
//! (the legacy file is left for OpenClaw). The public device id is also recorded in
//! `<stateDir>/clawgate/gateway-id`, so a lost key file is noticed.
//!
//! Invariants: a valid stored identity is never regenerated; an unreadable one refuses the start;
//! a new identity where an old id was recorded is logged as a WARN with both ids, never silently.
//! Callers load it only after taking the state-dir lock.

use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::protocol::signature::{device_id_for, encode_public_key};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is corrupt ({why}); move it aside to create a new identity")]
    Corrupt { path: PathBuf, why: String },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    version: u32,
    device_id: String,
    public_key_pem: String,
    private_key_pem: String,
    created_at_ms: u64,
}

/// A loaded identity.
pub struct Identity {
    pub device_id: String,
    /// base64url raw public key.
    pub public_key: String,
    key: SigningKey,
}

impl Identity {
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// Where the identity lives.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("clawgate").join("gateway-identity.json")
    }

    /// Where clawgate before ADR 0103 kept it (OpenClaw's own device-identity path).
    pub fn legacy_path(state_dir: &Path) -> PathBuf {
        state_dir.join("identity").join("device.json")
    }

    fn id_record(state_dir: &Path) -> PathBuf {
        state_dir.join("clawgate").join("gateway-id")
    }

    /// Loads the identity (migrating it from the legacy path), creating it on first use.
    pub fn load_or_create(state_dir: &Path) -> Result<Identity, IdentityError> {
        let path = Self::path(state_dir);
        if let Some(id) = Self::load(&path)? {
            Self::record_id(state_dir, &id)?;
            return Ok(id);
        }
        if let Some(id) = Self::migrate(state_dir, &path)? {
            return Ok(id);
        }
        let id = Self::from_key(SigningKey::generate(&mut rand::rngs::OsRng));
        Self::store(&path, &id)?;
        match Self::recorded_id(state_dir) {
            Some(old) if old != id.device_id => tracing::warn!(
                old_device_id = %old,
                new_device_id = %id.device_id,
                path = %path.display(),
                "gateway identity file was missing: created a NEW identity; clients that pinned the old id will see a different gateway"
            ),
            _ => {
                tracing::info!(device_id = %id.device_id, path = %path.display(), "created the gateway identity")
            }
        }
        Self::record_id(state_dir, &id)?;
        Ok(id)
    }

    /// Loads the identity stored at `path`, creating it there on first use — the CLI's own device
    /// identity (no id record, no migration). Two processes creating it at once both end up
    /// with the one that was written last: the loser re-reads it.
    pub fn load_or_create_at(path: &Path) -> Result<Identity, IdentityError> {
        if let Some(id) = Self::load(path)? {
            return Ok(id);
        }
        Self::store(
            path,
            &Self::from_key(SigningKey::generate(&mut rand::rngs::OsRng)),
        )?;
        Self::load(path)?.ok_or_else(|| IdentityError::Corrupt {
            path: path.to_path_buf(),
            why: "vanished right after it was written".into(),
        })
    }

    /// A stored identity at `path`; `None` when there is no file; corrupt refuses.
    fn load(path: &Path) -> Result<Option<Identity>, IdentityError> {
        let io = |source| IdentityError::Io {
            path: path.to_path_buf(),
            source,
        };
        match crate::state::read_optional(path).map_err(io)? {
            Some(text) => Self::parse(&text)
                .map(Some)
                .map_err(|why| IdentityError::Corrupt {
                    path: path.to_path_buf(),
                    why,
                }),
            None => Ok(None),
        }
    }

    /// Copies a valid legacy identity to `path`. A legacy file that does not parse as ours (for
    /// example the OpenClaw node host's own, in another format) is left alone and not adopted.
    fn migrate(state_dir: &Path, path: &Path) -> Result<Option<Identity>, IdentityError> {
        let legacy = Self::legacy_path(state_dir);
        let Ok(Some(id)) = Self::load(&legacy) else {
            return Ok(None);
        };
        if Self::recorded_id(state_dir).is_some_and(|old| old != id.device_id) {
            return Ok(None); // not the identity this gateway had: OpenClaw's own
        }
        Self::store(path, &id)?;
        Self::record_id(state_dir, &id)?;
        tracing::info!(device_id = %id.device_id, from = %legacy.display(), to = %path.display(), "moved the gateway identity out of OpenClaw's identity dir");
        Ok(Some(id))
    }

    fn recorded_id(state_dir: &Path) -> Option<String> {
        let text = crate::state::read_optional(&Self::id_record(state_dir)).ok()??;
        Some(text.trim().to_string()).filter(|t| !t.is_empty())
    }

    fn record_id(state_dir: &Path, id: &Identity) -> Result<(), IdentityError> {
        let path = Self::id_record(state_dir);
        if Self::recorded_id(state_dir).as_deref() == Some(id.device_id.as_str()) {
            return Ok(());
        }
        let line = format!("{}\n", id.device_id);
        crate::state::write_atomic(&path, line.as_bytes(), 0o644)
            .map_err(|source| IdentityError::Io { path, source })
    }

    fn store(path: &Path, id: &Identity) -> Result<(), IdentityError> {
        let io = |source| IdentityError::Io {
            path: path.to_path_buf(),
            source,
        };
        let other = |e: String| io(std::io::Error::other(e));
        let stored = Stored {
            version: 1,
            device_id: id.device_id.clone(),
            public_key_pem: id
                .key
                .verifying_key()
                .to_public_key_pem(Default::default())
                .map_err(|e| other(e.to_string()))?,
            private_key_pem: id
                .key
                .to_pkcs8_pem(Default::default())
                .map_err(|e| other(e.to_string()))?
                .to_string(),
            created_at_ms: crate::util::now_ms() as u64,
        };
        let json = serde_json::to_vec_pretty(&stored).map_err(|e| other(e.to_string()))?;
        crate::state::write_atomic(path, &json, crate::state::SECRET_FILE_MODE).map_err(io)
    }

    fn parse(text: &str) -> Result<Identity, String> {
        let s: Stored = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let key = SigningKey::from_pkcs8_pem(&s.private_key_pem).map_err(|e| e.to_string())?;
        let id = Self::from_key(key);
        if id.device_id != s.device_id {
            return Err("deviceId does not match the key".into());
        }
        Ok(id)
    }

    fn from_key(key: SigningKey) -> Identity {
        let raw = key.verifying_key().to_bytes();
        Identity {
            device_id: device_id_for(&raw),
            public_key: encode_public_key(&raw),
            key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_persists_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let a = Identity::load_or_create(dir.path()).unwrap();
        let b = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(a.device_id, b.device_id);
        assert_eq!(a.device_id.len(), 64);
        assert_eq!(a.public_key.len(), 43);
        std::fs::write(Identity::path(dir.path()), "{").unwrap();
        assert!(matches!(
            Identity::load_or_create(dir.path()),
            Err(IdentityError::Corrupt { .. })
        ));
    }

    #[test]
    fn legacy_identity_moves_and_survives_its_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = Identity::legacy_path(dir.path());
        let old = Identity::from_key(SigningKey::generate(&mut rand::rngs::OsRng));
        Identity::store(&legacy, &old).unwrap();
        let a = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(a.device_id, old.device_id, "migrated, not regenerated");
        std::fs::remove_file(&legacy).unwrap(); // what OpenClaw 2026.9.x does
        let b = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(b.device_id, old.device_id);
    }

    #[test]
    fn a_foreign_legacy_identity_is_not_adopted_once_ours_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let ours = Identity::load_or_create(dir.path()).unwrap();
        std::fs::remove_file(Identity::path(dir.path())).unwrap();
        let foreign = Identity::from_key(SigningKey::generate(&mut rand::rngs::OsRng));
        Identity::store(&Identity::legacy_path(dir.path()), &foreign).unwrap();
        let next = Identity::load_or_create(dir.path()).unwrap();
        assert_ne!(next.device_id, foreign.device_id);
        assert_ne!(
            next.device_id, ours.device_id,
            "the key is gone: a new one, with a WARN"
        );
        assert_eq!(Identity::recorded_id(dir.path()), Some(next.device_id));
    }
}

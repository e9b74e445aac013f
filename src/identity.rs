//! The gateway's own Ed25519 identity (`gateway.identity.get`), persisted as
//! `<stateDir>/identity/device.json` in the reference format
//! `{version:1, deviceId, publicKeyPem, privateKeyPem, createdAtMs}`, mode 0600.
//!
//! Invariant: a valid stored identity is never regenerated.

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

    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("identity").join("device.json")
    }

    /// Loads the identity, creating it on first use.
    pub fn load_or_create(state_dir: &Path) -> Result<Identity, IdentityError> {
        let path = Self::path(state_dir);
        let io = |source| IdentityError::Io {
            path: path.clone(),
            source,
        };
        if let Some(text) = crate::state::read_optional(&path).map_err(io)? {
            return Self::parse(&text).map_err(|why| IdentityError::Corrupt {
                path: path.clone(),
                why,
            });
        }
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let id = Self::from_key(key);
        let stored = Stored {
            version: 1,
            device_id: id.device_id.clone(),
            public_key_pem: id
                .key
                .verifying_key()
                .to_public_key_pem(Default::default())
                .map_err(|e| io(std::io::Error::other(e.to_string())))?,
            private_key_pem: id
                .key
                .to_pkcs8_pem(Default::default())
                .map_err(|e| io(std::io::Error::other(e.to_string())))?
                .to_string(),
            created_at_ms: crate::util::now_ms() as u64,
        };
        let json = serde_json::to_vec_pretty(&stored).map_err(|e| io(std::io::Error::other(e)))?;
        crate::state::write_atomic(&path, &json, crate::state::SECRET_FILE_MODE).map_err(io)?;
        Ok(id)
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
}

//! The CLI's own device identity and the device tokens gateways issued to it (issue 16 item 2).
//!
//! Owns `<stateDir>/clawgate/client/device.json` (an Ed25519 key in the reference
//! `{version, deviceId, publicKeyPem, privateKeyPem, createdAtMs}` format — not OpenClaw's own
//! `identity/device.json`, which OpenClaw migrates away and deletes) and
//! `<stateDir>/clawgate/client/device-auth.json` (`{version:1, deviceId, gateways:{<key>:{<role>:
//! {token, scopes, updatedAtMs}}}}`, mode 0600), and the signed `device` object of a `connect`
//! (protocol.md §6, v3 payload).
//!
//! Invariants: a device token is stored under the gateway it came from ([`gateway_key`]: scheme,
//! host, port) and is only ever offered to that gateway; a token file written for another
//! device id, of another version, or unreadable is an error (never treated as empty, never
//! overwritten blindly); every write is atomic; tokens never reach logs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::Signer;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::config::Secret;
use crate::identity::{Identity, IdentityError};
use crate::protocol::signature::{payload_v3, PayloadFields};

const VERSION: u32 = 1;

/// Platform and family the CLI declares (and signs, v3).
pub const PLATFORM: &str = std::env::consts::OS;
const DEVICE_FAMILY: &str = "cli";

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is corrupt ({why}); move it aside to pair this CLI again")]
    Corrupt { path: PathBuf, why: String },
}

/// Which gateway a device token belongs to: `scheme://host:port`, host lower-cased, default
/// ports made explicit. `None` for a URL that does not parse.
pub fn gateway_key(url: &str) -> Option<String> {
    let req = url.into_client_request().ok()?;
    let uri = req.uri();
    let scheme = uri.scheme_str()?;
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "wss" { 443 } else { 80 });
    let host = uri.host()?.to_ascii_lowercase();
    Some(format!("{scheme}://{host}:{port}"))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredToken {
    token: String,
    #[serde(default)]
    scopes: Vec<String>,
    updated_at_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenFile {
    version: u32,
    device_id: String,
    #[serde(default)]
    gateways: BTreeMap<String, BTreeMap<String, StoredToken>>,
}

/// The CLI's device for one gateway.
pub struct Device {
    identity: Identity,
    tokens_path: PathBuf,
    gateway: String,
}

/// What a `connect` signs.
pub struct Signed<'a> {
    pub client_id: &'a str,
    pub mode: &'a str,
    pub role: &'a str,
    pub scopes: &'a [String],
    /// The token sent in `auth` (shared or device token), "" for none.
    pub token: &'a str,
    pub nonce: &'a str,
    pub signed_at_ms: u64,
}

impl Device {
    /// `<stateDir>/clawgate/client`.
    pub fn dir(state_dir: &Path) -> PathBuf {
        state_dir.join("clawgate").join("client")
    }

    /// Loads (or creates) the identity and binds it to `gateway` (a [`gateway_key`]).
    pub fn open(state_dir: &Path, gateway: String) -> Result<Device, DeviceError> {
        let dir = Self::dir(state_dir);
        let identity = Identity::load_or_create_at(&dir.join("device.json"))?;
        let me = Device {
            identity,
            tokens_path: dir.join("device-auth.json"),
            gateway,
        };
        me.load()?; // a corrupt token file refuses now, not after the handshake
        Ok(me)
    }

    pub fn id(&self) -> &str {
        &self.identity.device_id
    }

    /// The stored device token for `role` at this gateway.
    pub fn token(&self, role: &str) -> Result<Option<Secret>, DeviceError> {
        let f = self.load()?;
        let t = f.gateways.get(&self.gateway).and_then(|m| m.get(role));
        Ok(t.map(|t| Secret::new(t.token.clone())))
    }

    /// Stores the device token the gateway issued (`hello-ok.auth.deviceToken`).
    pub fn remember(
        &self,
        role: &str,
        token: &str,
        scopes: Vec<String>,
    ) -> Result<(), DeviceError> {
        let mut f = self.load()?;
        let entry = StoredToken {
            token: token.to_string(),
            scopes,
            updated_at_ms: crate::util::now_ms() as u64,
        };
        let roles = f.gateways.entry(self.gateway.clone()).or_default();
        if roles
            .get(role)
            .is_some_and(|old| old.token == entry.token && old.scopes == entry.scopes)
        {
            return Ok(());
        }
        roles.insert(role.to_string(), entry);
        self.store(&f)
    }

    /// Drops the token for `role` (the gateway said it is no longer valid).
    pub fn forget(&self, role: &str) -> Result<(), DeviceError> {
        let mut f = self.load()?;
        let removed = f
            .gateways
            .get_mut(&self.gateway)
            .and_then(|m| m.remove(role))
            .is_some();
        if removed {
            f.gateways.retain(|_, m| !m.is_empty());
            self.store(&f)?;
        }
        Ok(())
    }

    /// The `device` object of `connect`, signed over the v3 payload.
    pub fn proof(&self, s: &Signed<'_>) -> Value {
        let fields = PayloadFields {
            device_id: &self.identity.device_id,
            client_id: s.client_id,
            client_mode: s.mode,
            role: s.role,
            scopes: s.scopes,
            signed_at_ms: s.signed_at_ms,
            token: s.token,
            nonce: s.nonce,
            platform: Some(PLATFORM),
            device_family: Some(DEVICE_FAMILY),
        };
        let sig = self
            .identity
            .signing_key()
            .sign(payload_v3(&fields).as_bytes());
        json!({
            "id": self.identity.device_id,
            "publicKey": self.identity.public_key,
            "signature": URL_SAFE_NO_PAD.encode(sig.to_bytes()),
            "signedAt": s.signed_at_ms,
            "nonce": s.nonce,
        })
    }

    /// `client.deviceFamily` to declare alongside [`Device::proof`].
    pub fn family() -> &'static str {
        DEVICE_FAMILY
    }

    fn load(&self) -> Result<TokenFile, DeviceError> {
        let p = &self.tokens_path;
        let corrupt = |why: String| DeviceError::Corrupt {
            path: p.clone(),
            why,
        };
        let text = crate::state::read_optional(p).map_err(|source| DeviceError::Io {
            path: p.clone(),
            source,
        })?;
        let Some(text) = text else {
            return Ok(TokenFile {
                version: VERSION,
                device_id: self.identity.device_id.clone(),
                gateways: BTreeMap::new(),
            });
        };
        let f: TokenFile = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        if f.version != VERSION {
            return Err(corrupt(format!(
                "version {} (this clawgate reads {VERSION})",
                f.version
            )));
        }
        if f.device_id != self.identity.device_id {
            return Err(corrupt(format!(
                "tokens belong to device {}, not this CLI's device {}",
                f.device_id, self.identity.device_id
            )));
        }
        Ok(f)
    }

    fn store(&self, f: &TokenFile) -> Result<(), DeviceError> {
        let p = &self.tokens_path;
        let text = serde_json::to_vec_pretty(f).map_err(|e| DeviceError::Corrupt {
            path: p.clone(),
            why: e.to_string(),
        })?;
        crate::state::write_atomic(p, &text, crate::state::SECRET_FILE_MODE).map_err(|source| {
            DeviceError::Io {
                path: p.clone(),
                source,
            }
        })
    }
}

#[cfg(test)]
#[path = "device_tests.rs"]
mod tests;

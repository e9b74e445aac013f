//! Ed25519 device identity: key encodings, the exact v3/v2 signature payload
//! strings and proof verification in the reference order (protocol.md §6).
//!
//! Pure: the caller passes the current time and the nonce issued on its socket.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::connect::{ConnectAuth, ConnectParams, DeviceProof, Role};
use super::errors::{Rejection, WireError};
use super::DEVICE_SIGNATURE_SKEW_MS;

/// SPKI DER prefix of an Ed25519 public key.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Inputs of the signature payload.
#[derive(Debug, Clone, Copy)]
pub struct PayloadFields<'a> {
    pub device_id: &'a str,
    pub client_id: &'a str,
    pub client_mode: &'a str,
    pub role: &'a str,
    pub scopes: &'a [String],
    pub signed_at_ms: u64,
    pub token: &'a str,
    pub nonce: &'a str,
    pub platform: Option<&'a str>,
    pub device_family: Option<&'a str>,
}

/// Trim, then lower-case ASCII `A`–`Z` only (`normalizeDeviceMetadataForAuth`).
pub fn normalize_metadata(v: Option<&str>) -> String {
    v.map(|s| s.trim().to_ascii_lowercase()).unwrap_or_default()
}

/// `v2|deviceId|clientId|clientMode|role|scopes|signedAtMs|token|nonce`.
pub fn payload_v2(f: &PayloadFields<'_>) -> String {
    format!(
        "v2|{}|{}|{}|{}|{}|{}|{}|{}",
        f.device_id,
        f.client_id,
        f.client_mode,
        f.role,
        f.scopes.join(","),
        f.signed_at_ms,
        f.token,
        f.nonce
    )
}

/// `v3|…v2 fields…|platform|deviceFamily` with normalised metadata.
pub fn payload_v3(f: &PayloadFields<'_>) -> String {
    let v2 = payload_v2(f);
    format!(
        "v3{}|{}|{}",
        &v2[2..],
        normalize_metadata(f.platform),
        normalize_metadata(f.device_family)
    )
}

/// Lower-case hex SHA-256 of the raw public key.
pub fn device_id_for(raw_key: &[u8; 32]) -> String {
    hex::encode(Sha256::digest(raw_key))
}

/// base64url (no padding) of the raw key.
pub fn encode_public_key(raw_key: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(raw_key)
}

/// Decodes base64url, falling back to standard base64 (the reference's order).
fn decode_b64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
        .or_else(|| STANDARD.decode(s).ok())
}

/// Raw 32-byte key from base64url raw, base64 SPKI DER, or a PEM SPKI string.
pub fn parse_public_key(s: &str) -> Option<[u8; 32]> {
    let bytes = if s.contains("BEGIN") {
        let body: String = s
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .concat();
        STANDARD.decode(body.trim()).ok()?
    } else {
        decode_b64(s)?
    };
    let raw = match bytes.len() {
        32 => &bytes[..],
        44 if bytes[..12] == SPKI_PREFIX => &bytes[12..],
        _ => return None,
    };
    raw.try_into().ok()
}

fn device_error(message: &str, code: &str, reason: &str) -> Rejection {
    Rejection::policy(
        WireError::invalid(message).with_details(json!({"code": code, "reason": reason})),
    )
}

/// A verified device: id and raw key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDevice {
    pub id: String,
    pub public_key: [u8; 32],
}

/// What the verifier needs besides the proof.
pub struct ProofContext<'a> {
    pub params: &'a ConnectParams,
    pub role: Role,
    pub auth: &'a ConnectAuth,
    /// The nonce sent in this socket's `connect.challenge`.
    pub issued_nonce: &'a str,
    pub now_ms: i64,
}

/// Verifies `device` in the reference order: id → skew → nonce present → nonce
/// match → v3 then v2 signature → key normalisation.
pub fn verify(proof: &DeviceProof, ctx: &ProofContext<'_>) -> Result<VerifiedDevice, Rejection> {
    let key = parse_public_key(&proof.public_key);
    let id_ok = key.is_some_and(|k| device_id_for(&k) == proof.id);
    if !id_ok {
        return Err(device_error(
            "device identity mismatch",
            "DEVICE_AUTH_DEVICE_ID_MISMATCH",
            "device-id-mismatch",
        ));
    }
    let skew = (ctx.now_ms - i64::try_from(proof.signed_at).unwrap_or(i64::MAX)).abs();
    if skew > DEVICE_SIGNATURE_SKEW_MS {
        return Err(device_error(
            "device signature expired",
            "DEVICE_AUTH_SIGNATURE_EXPIRED",
            "device-signature-stale",
        ));
    }
    let nonce = proof.nonce.trim();
    if nonce.is_empty() {
        return Err(device_error(
            "device nonce required",
            "DEVICE_AUTH_NONCE_REQUIRED",
            "device-nonce-missing",
        ));
    }
    if nonce != ctx.issued_nonce {
        return Err(device_error(
            "device nonce mismatch",
            "DEVICE_AUTH_NONCE_MISMATCH",
            "device-nonce-mismatch",
        ));
    }
    let raw = key.unwrap_or([0; 32]);
    if !signature_matches(proof, ctx, &raw) {
        return Err(device_error(
            "device signature invalid",
            "DEVICE_AUTH_SIGNATURE_INVALID",
            "device-signature",
        ));
    }
    if VerifyingKey::from_bytes(&raw).is_err() {
        return Err(device_error(
            "device public key invalid",
            "DEVICE_AUTH_PUBLIC_KEY_INVALID",
            "device-public-key",
        ));
    }
    Ok(VerifiedDevice {
        id: proof.id.clone(),
        public_key: raw,
    })
}

fn signature_matches(proof: &DeviceProof, ctx: &ProofContext<'_>, raw: &[u8; 32]) -> bool {
    let token = ctx.auth.signature_token();
    // Field-boundary injection: a token with separators can never be a valid proof.
    if token.contains(['|', '\0', '\r', '\n']) {
        return false;
    }
    let (Ok(key), Some(sig_bytes)) = (VerifyingKey::from_bytes(raw), decode_b64(&proof.signature))
    else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(&sig_bytes) else {
        return false;
    };
    let c = &ctx.params.client;
    let fields = PayloadFields {
        device_id: &proof.id,
        client_id: &c.id,
        client_mode: &c.mode,
        role: ctx.role.as_str(),
        scopes: ctx.params.scopes.as_deref().unwrap_or(&[]),
        signed_at_ms: proof.signed_at,
        token,
        nonce: &proof.nonce,
        platform: Some(&c.platform),
        device_family: c.device_family.as_deref(),
    };
    let v3 = payload_v3(&fields);
    key.verify(v3.as_bytes(), &sig).is_ok()
        || key.verify(payload_v2(&fields).as_bytes(), &sig).is_ok()
}

#[cfg(test)]
mod tests;

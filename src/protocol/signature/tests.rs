//! Known-answer vectors from protocol.md §6.5 (RFC 8032 TEST 1 key).

use super::*;
use crate::protocol::connect::{validate, ConnectParams};
use ed25519_dalek::{Signer, SigningKey};

const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const PUBKEY_B64: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
const DEVICE_ID: &str = "21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9";
const NONCE: &str = "2f0c8a0e-6d1b-4b7e-9a51-0c3f1f7b2d11";
const SIGNED_AT: u64 = 1_790_605_209_429;
const V3: &str = "v3|21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9|cli|cli|operator|operator.admin,operator.read|1790605209429|T|2f0c8a0e-6d1b-4b7e-9a51-0c3f1f7b2d11|linux|linux";
const V3_SIG: &str =
    "zyEMPnHWUXY8tMJV9-fpxqO0-ZtGcBoJ4M3u6umvvCCK0pAPTjGolcqlI46D8iuNmr_UgQkgOrd5GCw2OXaQAw";
const V2: &str = "v2|21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9|cli|cli|operator|operator.admin,operator.read|1790605209429|T|2f0c8a0e-6d1b-4b7e-9a51-0c3f1f7b2d11";
const V2_SIG: &str =
    "qcJ36AaOSy_Eg21hmfPTYMFRzFix5noHfkb-p16T1vVb1Q5NJOc7q80xSBQyQsnOLW8IRHzH58VUsF2mceenBw";
const V3_NODE: &str = "v3|21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9|node-host|node|node||1790605209429|BOOTSTRAP|2f0c8a0e-6d1b-4b7e-9a51-0c3f1f7b2d11|linux|";
const V3_NODE_SIG: &str =
    "KpPUOJmjQ48i2y7bqNR5E-PyLf_EnhHt52_a0LpF6RaXUA8SGiiScaQAuLcHcUEkXDl5s1eYoguJev8q1HwdAg";

fn key() -> SigningKey {
    let seed: [u8; 32] = hex::decode(SEED).unwrap().try_into().unwrap();
    SigningKey::from_bytes(&seed)
}

fn scopes() -> Vec<String> {
    vec!["operator.admin".into(), "operator.read".into()]
}

fn fields(scopes: &[String]) -> PayloadFields<'_> {
    PayloadFields {
        device_id: DEVICE_ID,
        client_id: "cli",
        client_mode: "cli",
        role: "operator",
        scopes,
        signed_at_ms: SIGNED_AT,
        token: "T",
        nonce: NONCE,
        platform: Some("linux"),
        device_family: Some("Linux"),
    }
}

#[test]
fn key_encodings_match_vector() {
    let vk = key().verifying_key();
    assert_eq!(encode_public_key(vk.as_bytes()), PUBKEY_B64);
    assert_eq!(device_id_for(vk.as_bytes()), DEVICE_ID);
    let spki = hex::decode(format!(
        "302a300506032b6570032100{}",
        hex::encode(vk.as_bytes())
    ))
    .unwrap();
    let spki_b64 = STANDARD.encode(&spki);
    assert_eq!(parse_public_key(&spki_b64), Some(*vk.as_bytes()));
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{spki_b64}\n-----END PUBLIC KEY-----\n");
    assert_eq!(parse_public_key(&pem), Some(*vk.as_bytes()));
}

#[test]
fn payload_strings_match_vectors() {
    let s = scopes();
    assert_eq!(payload_v3(&fields(&s)), V3);
    assert_eq!(payload_v2(&fields(&s)), V2);
    let empty: Vec<String> = vec![];
    let node = PayloadFields {
        client_id: "node-host",
        client_mode: "node",
        role: "node",
        token: "BOOTSTRAP",
        device_family: None,
        ..fields(&empty)
    };
    assert_eq!(payload_v3(&node), V3_NODE);
}

#[test]
fn signatures_match_vectors() {
    let k = key();
    for (payload, sig) in [(V3, V3_SIG), (V2, V2_SIG), (V3_NODE, V3_NODE_SIG)] {
        let s = k.sign(payload.as_bytes());
        assert_eq!(URL_SAFE_NO_PAD.encode(s.to_bytes()), sig);
    }
}

fn connect_params(sig: &str, token: &str) -> ConnectParams {
    let raw = serde_json::json!({
        "minProtocol":4,"maxProtocol":4,
        "client":{"id":"cli","version":"2026.9.6","platform":"linux","deviceFamily":"Linux","mode":"cli"},
        "role":"operator","scopes":["operator.admin","operator.read"],"caps":[],
        "auth":{"token":token},
        "device":{"id":DEVICE_ID,"publicKey":PUBKEY_B64,"signature":sig,"signedAt":SIGNED_AT,"nonce":NONCE}
    });
    validate(Some(&raw.to_string())).unwrap().params
}

fn run(params: &ConnectParams, nonce: &str, now: i64) -> Result<VerifiedDevice, Rejection> {
    let auth = params.auth.clone().unwrap_or_default();
    let ctx = ProofContext {
        params,
        role: Role::Operator,
        auth: &auth,
        issued_nonce: nonce,
        now_ms: now,
    };
    verify(params.device.as_ref().unwrap(), &ctx)
}

fn code(r: Rejection) -> String {
    r.error.detail_code().unwrap().to_string()
}

#[test]
fn verifies_v3_and_v2_proofs() {
    let now = SIGNED_AT as i64 + 1_000;
    assert_eq!(
        run(&connect_params(V3_SIG, "T"), NONCE, now).unwrap().id,
        DEVICE_ID
    );
    assert!(run(&connect_params(V2_SIG, "T"), NONCE, now).is_ok());
}

#[test]
fn rejections_in_reference_order() {
    let now = SIGNED_AT as i64;
    let p = connect_params(V3_SIG, "T");
    assert_eq!(
        code(run(&p, NONCE, now + 120_001).unwrap_err()),
        "DEVICE_AUTH_SIGNATURE_EXPIRED"
    );
    assert_eq!(
        code(run(&p, "other", now).unwrap_err()),
        "DEVICE_AUTH_NONCE_MISMATCH"
    );
    let wrong_token = connect_params(V3_SIG, "U");
    assert_eq!(
        code(run(&wrong_token, NONCE, now).unwrap_err()),
        "DEVICE_AUTH_SIGNATURE_INVALID"
    );
    let mut bad_id = p.clone();
    bad_id.device.as_mut().unwrap().id = "00".repeat(32);
    assert_eq!(
        code(run(&bad_id, NONCE, now).unwrap_err()),
        "DEVICE_AUTH_DEVICE_ID_MISMATCH"
    );
    let mut no_nonce = p.clone();
    no_nonce.device.as_mut().unwrap().nonce = "  ".into();
    assert_eq!(
        code(run(&no_nonce, NONCE, now).unwrap_err()),
        "DEVICE_AUTH_NONCE_REQUIRED"
    );
    let r = run(&bad_id, NONCE, now).unwrap_err();
    assert_eq!(
        (r.close_code, r.error.message.as_str()),
        (1008, "device identity mismatch")
    );
}

#[test]
fn separator_in_token_fails_proof() {
    let k = key();
    let s = scopes();
    let f = PayloadFields {
        token: "a|b",
        ..fields(&s)
    };
    let sig = URL_SAFE_NO_PAD.encode(k.sign(payload_v3(&f).as_bytes()).to_bytes());
    let p = connect_params(&sig, "a|b");
    assert_eq!(
        code(run(&p, NONCE, SIGNED_AT as i64).unwrap_err()),
        "DEVICE_AUTH_SIGNATURE_INVALID"
    );
}

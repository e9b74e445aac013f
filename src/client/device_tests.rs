use std::time::Duration;

use serde_json::json;

use super::*;
use crate::client::{connect_params, Target, TlsOpts};
use crate::protocol::connect::{validate, Role};
use crate::protocol::signature::{verify, ProofContext};

fn open(dir: &Path, url: &str) -> Device {
    Device::open(dir, gateway_key(url).unwrap()).unwrap()
}

#[test]
fn gateway_keys_are_normalised() {
    assert_eq!(
        gateway_key("wss://GW.Example.ts.net").unwrap(),
        "wss://gw.example.ts.net:443"
    );
    assert_eq!(
        gateway_key("ws://10.0.0.2:18789/").unwrap(),
        "ws://10.0.0.2:18789"
    );
    assert_eq!(gateway_key("ws://[fd00::1]").unwrap(), "ws://[fd00::1]:80");
    assert_ne!(
        gateway_key("ws://h:1"),
        gateway_key("wss://h:1"),
        "scheme is part of the key"
    );
    assert!(gateway_key("not a url").is_none());
}

#[test]
fn identity_is_stable_and_tokens_stay_with_their_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), "ws://10.0.0.2:18789");
    let again = open(dir.path(), "ws://10.0.0.2:18789");
    assert_eq!(a.id(), again.id());
    assert!(a.token("operator").unwrap().is_none());
    a.remember("operator", "tok-A", vec!["operator.read".into()])
        .unwrap();
    assert_eq!(again.token("operator").unwrap().unwrap().expose(), "tok-A");
    assert!(again.token("node").unwrap().is_none(), "per role");
    let other = open(dir.path(), "ws://10.0.0.3:18789");
    assert_eq!(other.id(), a.id(), "one identity for every gateway");
    assert!(
        other.token("operator").unwrap().is_none(),
        "never offered to another gateway"
    );
    let meta = std::fs::metadata(Device::dir(dir.path()).join("device-auth.json")).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    a.forget("operator").unwrap();
    assert!(again.token("operator").unwrap().is_none());
}

#[test]
fn a_bad_token_file_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let d = open(dir.path(), "ws://10.0.0.2:1");
    let p = Device::dir(dir.path()).join("device-auth.json");
    std::fs::write(&p, "{").unwrap();
    assert!(matches!(
        d.token("operator"),
        Err(DeviceError::Corrupt { .. })
    ));
    assert!(
        d.remember("operator", "t", vec![]).is_err(),
        "never overwritten blindly"
    );
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "{");
    let foreign = json!({"version": 1, "deviceId": "someone-else", "gateways": {}});
    std::fs::write(&p, foreign.to_string()).unwrap();
    assert!(matches!(
        d.token("operator"),
        Err(DeviceError::Corrupt { .. })
    ));
    assert!(Device::open(dir.path(), "ws://10.0.0.2:1".into()).is_err());
}

fn target(token: Option<&str>) -> Target {
    Target {
        url: "ws://10.0.0.2:18789".into(),
        token: token.map(Secret::new),
        password: None,
        timeout: Duration::from_secs(1),
        tls: TlsOpts::default(),
        device: None,
    }
}

/// The params clawgate sends pass the gateway's own verifier, whichever token is signed.
#[test]
fn signed_connect_verifies_with_the_gateway_verifier() {
    let dir = tempfile::tempdir().unwrap();
    let d = open(dir.path(), "ws://10.0.0.2:18789");
    let now = crate::util::now_ms();
    let challenge = json!({"event": "connect.challenge", "payload": {"nonce": "n-123", "ts": now}});
    let stored = Secret::new("device-tok");
    for (t, stored, field, expect) in [
        (target(Some("shared")), None, "token", "shared"),
        (target(None), Some(&stored), "deviceToken", "device-tok"),
    ] {
        let p = connect_params(&t, Some(&d), stored, &challenge, "cli", &["operator.read"]);
        assert_eq!(p["auth"][field], expect);
        assert_eq!(p["client"]["deviceFamily"], "cli");
        let c = validate(Some(&p.to_string())).unwrap();
        let auth = c.auth();
        let ctx = ProofContext {
            params: &c.params,
            role: Role::Operator,
            auth: &auth,
            issued_nonce: "n-123",
            now_ms: now,
        };
        let v = verify(c.params.device.as_ref().unwrap(), &ctx).unwrap();
        assert_eq!(v.id, d.id());
        let wrong = ProofContext {
            issued_nonce: "other",
            ..ctx
        };
        assert!(verify(c.params.device.as_ref().unwrap(), &wrong).is_err());
    }
}

#[test]
fn deviceless_params_carry_no_device() {
    let challenge = json!({"payload": {"nonce": "n", "ts": 1}});
    let p = connect_params(
        &target(Some("shared")),
        None,
        None,
        &challenge,
        "cli",
        &["operator.read"],
    );
    assert!(p.get("device").is_none());
    assert_eq!(p["auth"], json!({"token": "shared"}));
}

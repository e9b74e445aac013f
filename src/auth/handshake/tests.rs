//! Admission decisions.

use super::*;
use crate::config::file::RateLimitFile;
use crate::config::Secret;
use crate::protocol::connect::validate;

fn settings(mode: AuthMode) -> AuthSettings {
    AuthSettings {
        mode,
        token: Some(Secret::new("T")),
        password: Some(Secret::new("P")),
        rate_limit: RateLimitFile::default(),
        allow_tailscale: false,
        identity_scopes: Default::default(),
        proxy: Default::default(),
    }
}

fn transport(peer: &str) -> Transport {
    Transport {
        peer: peer.parse().unwrap(),
        local: "127.0.0.1".parse().unwrap(),
        proxy_headers: false,
        origin: None,
        host: Some("127.0.0.1:18789".into()),
        proxy_ingress: false,
        loopback_forwarded: false,
        tailnet: None,
        hop: crate::auth::proxy::Hop::Direct,
        proxy_user: None,
    }
}

fn connect(auth: serde_json::Value, extra: serde_json::Value) -> Connect {
    let mut v = serde_json::json!({
        "minProtocol":4,"maxProtocol":4,
        "client":{"id":"cli","version":"1","platform":"linux","mode":"cli"},
        "scopes":["operator.read","operator.admin"],"auth":auth
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    validate(Some(&v.to_string())).unwrap()
}

fn run(
    c: &Connect,
    t: &Transport,
    a: &AuthSettings,
    rl: &RateLimiter,
) -> Result<Admission, Rejection> {
    decide(
        &Input {
            tokens: &|_, _, _, _| TokenCheck::Mismatch,
            connect: c,
            transport: t,
            auth: a,
            allowed_origins: &[],
            issued_nonce: "n",
            now_ms: 0,
            now: Instant::now(),
        },
        rl,
    )
}

fn code(r: Result<Admission, Rejection>) -> String {
    r.unwrap_err().error.detail_code().unwrap().to_string()
}

#[test]
fn local_cli_token_keeps_requested_scopes() {
    let rl = RateLimiter::new(&RateLimitFile::default());
    let a = run(
        &connect(serde_json::json!({"token":"T"}), serde_json::json!({})),
        &transport("127.0.0.1"),
        &settings(AuthMode::Token),
        &rl,
    )
    .unwrap();
    assert_eq!(a.scopes, ["operator.read", "operator.admin"]);
    assert_eq!(
        (a.method, a.locality),
        (AuthMethod::Token, Locality::DirectLocal)
    );
}

#[test]
fn remote_deviceless_scopes_are_cleared() {
    let rl = RateLimiter::new(&RateLimitFile::default());
    let a = run(
        &connect(serde_json::json!({"token":"T"}), serde_json::json!({})),
        &transport("10.77.0.2"),
        &settings(AuthMode::Token),
        &rl,
    )
    .unwrap();
    assert!(a.scopes.is_empty());
}

#[test]
fn local_deviceless_clients_other_than_cli_and_backend_get_no_scopes() {
    let rl = RateLimiter::new(&RateLimitFile::default());
    let lo = transport("127.0.0.1");
    let tok = settings(AuthMode::Token);
    let as_client = |id: &str, mode: &str| {
        let client =
            serde_json::json!({"id": id, "version": "1", "platform": "linux", "mode": mode});
        connect(
            serde_json::json!({"token":"T"}),
            serde_json::json!({"client": client}),
        )
    };
    for (id, mode) in [
        ("openclaw-tui", "cli"),
        ("openclaw-macos", "ui"),
        ("cli", "ui"),
    ] {
        let a = run(&as_client(id, mode), &lo, &tok, &rl).unwrap();
        assert!(a.scopes.is_empty(), "{id}/{mode} kept {:?}", a.scopes);
    }
    let backend = run(&as_client("gateway-client", "backend"), &lo, &tok, &rl).unwrap();
    assert_eq!(backend.scopes, ["operator.read", "operator.admin"]);
    // `auth = none` on loopback has no shared secret to bound: requested scopes stay.
    let none = run(
        &as_client("openclaw-macos", "ui"),
        &lo,
        &settings(AuthMode::None),
        &rl,
    );
    assert_eq!(none.unwrap().scopes, ["operator.read", "operator.admin"]);
}

#[test]
fn credential_failures() {
    let rl = RateLimiter::new(&RateLimitFile::default());
    let t = transport("127.0.0.1");
    let tok = settings(AuthMode::Token);
    assert_eq!(
        code(run(
            &connect(serde_json::json!({"token":"X"}), serde_json::json!({})),
            &t,
            &tok,
            &rl
        )),
        "AUTH_TOKEN_MISMATCH"
    );
    assert_eq!(
        code(run(
            &connect(serde_json::json!({}), serde_json::json!({})),
            &t,
            &tok,
            &rl
        )),
        "AUTH_TOKEN_MISSING"
    );
    assert_eq!(
        code(run(
            &connect(serde_json::json!({"token":""}), serde_json::json!({})),
            &t,
            &tok,
            &rl
        )),
        "AUTH_TOKEN_MISSING"
    );
    let pw = settings(AuthMode::Password);
    assert_eq!(
        code(run(
            &connect(serde_json::json!({"token":"T"}), serde_json::json!({})),
            &t,
            &pw,
            &rl
        )),
        "AUTH_PASSWORD_MISSING"
    );
    assert_eq!(
        code(run(
            &connect(
                serde_json::json!({"password":"nope"}),
                serde_json::json!({})
            ),
            &t,
            &pw,
            &rl
        )),
        "AUTH_PASSWORD_MISMATCH"
    );
}

#[test]
fn remote_failures_lock_out_but_loopback_is_exempt() {
    let rl = RateLimiter::new(&RateLimitFile::default());
    let tok = settings(AuthMode::Token);
    let bad = connect(serde_json::json!({"token":"X"}), serde_json::json!({}));
    let lan = transport("10.77.0.2");
    for _ in 0..10 {
        assert_eq!(code(run(&bad, &lan, &tok, &rl)), "AUTH_TOKEN_MISMATCH");
    }
    let good = connect(serde_json::json!({"token":"T"}), serde_json::json!({}));
    assert_eq!(code(run(&good, &lan, &tok, &rl)), "AUTH_RATE_LIMITED");
    let lo = transport("127.0.0.1");
    for _ in 0..12 {
        run(&bad, &lo, &tok, &rl).unwrap_err();
    }
    assert!(run(&good, &lo, &tok, &rl).is_ok());
    // Not locked out, but no longer free: the next loopback attempt is held (RL-3).
    let input = Input {
        tokens: &|_, _, _, _| TokenCheck::Mismatch,
        connect: &good,
        transport: &lo,
        auth: &tok,
        allowed_origins: &[],
        issued_nonce: "n",
        now_ms: 0,
        now: Instant::now(),
    };
    let first = loopback_wait(&input, &rl).unwrap();
    let second = loopback_wait(&input, &rl).unwrap();
    assert!(
        second > first,
        "attempts are spaced: {first:?} then {second:?}"
    );
    // A browser Origin removes the loopback exemption.
    let browser = Transport {
        origin: Some("http://localhost:3000".into()),
        ..lo
    };
    for _ in 0..10 {
        run(&bad, &browser, &tok, &rl).unwrap_err();
    }
    assert_eq!(code(run(&good, &browser, &tok, &rl)), "AUTH_RATE_LIMITED");
}

#[test]
fn a_userspace_forward_on_loopback_is_never_exempt() {
    let rl = RateLimiter::new(&RateLimitFile::default());
    let tok = settings(AuthMode::Token);
    let bad = connect(serde_json::json!({"token":"WRONG"}), serde_json::json!({}));
    let good = connect(serde_json::json!({"token":"T"}), serde_json::json!({}));
    let unproven = Transport {
        loopback_forwarded: true,
        ..transport("127.0.0.1")
    };
    for _ in 0..10 {
        run(&bad, &unproven, &tok, &rl).unwrap_err();
    }
    assert_eq!(code(run(&good, &unproven, &tok, &rl)), "AUTH_RATE_LIMITED");
}

#[test]
fn origin_is_checked_for_any_client() {
    let rl = RateLimiter::new(&RateLimitFile::default());
    let t = Transport {
        origin: Some("https://evil.example".into()),
        ..transport("127.0.0.1")
    };
    let r = run(
        &connect(serde_json::json!({"token":"T"}), serde_json::json!({})),
        &t,
        &settings(AuthMode::Token),
        &rl,
    )
    .unwrap_err();
    assert_eq!(r.error.detail_code(), Some("CONTROL_UI_ORIGIN_NOT_ALLOWED"));
    assert_eq!(r.close_reason, "origin not allowed");
}

#[test]
fn node_without_device_needs_identity() {
    let rl = RateLimiter::new(&RateLimitFile::default());
    let node = connect(
        serde_json::json!({"token":"T"}),
        serde_json::json!({"role":"node","client":{"id":"node-host","version":"1","platform":"linux","mode":"node"}}),
    );
    let r = run(
        &node,
        &transport("127.0.0.1"),
        &settings(AuthMode::Token),
        &rl,
    )
    .unwrap_err();
    assert_eq!(r.error.detail_code(), Some("DEVICE_IDENTITY_REQUIRED"));
    assert_eq!(
        serde_json::to_value(&r.error).unwrap()["code"],
        "NOT_PAIRED"
    );
}

#[test]
fn device_proof_is_never_skipped() {
    let rl = RateLimiter::new(&RateLimitFile::default());
    let forged = serde_json::json!({"device":{"id":"00","publicKey":"AAAA","signature":"x","signedAt":0,"nonce":"n"}});
    let r = run(
        &connect(serde_json::json!({"token":"T"}), forged),
        &transport("127.0.0.1"),
        &settings(AuthMode::Token),
        &rl,
    );
    assert_eq!(code(r), "DEVICE_AUTH_DEVICE_ID_MISMATCH");
}

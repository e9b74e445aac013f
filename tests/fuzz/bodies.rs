//! Fuzz target bodies, shared by the `cargo fuzz` targets (`tests/fuzz/fuzz_targets/*.rs`, nightly,
//! coverage-guided) and the stable smoke test `tests/fuzz_smoke.rs` (seed corpus + deterministic
//! mutations, part of `make test`).
//!
//! Each body takes untrusted bytes and checks an invariant of the parser it drives, not only
//! "no panic": split invariance for the streaming decoders, round trips for the encoders, and
//! accept-only-what-was-signed for the signature payload. A body panics when an invariant breaks.
//!
//! Invariant: bodies are deterministic (no clock, no OS randomness) so every crash reproduces from
//! its input file alone.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use clawgate::discovery::config::MdnsMode;
use clawgate::discovery::txt::{self, TxtInput, MAX_TXT_ENTRY};
use clawgate::discovery::widearea::zone::{self, ZoneSpec};
use clawgate::exposure::proxy_v2;
use clawgate::pairing::setup_code::{self, SetupPayload};
use clawgate::protocol::connect::{self, ConnectAuth, DeviceProof, Role};
use clawgate::protocol::frame_guard::FrameGuard;
use clawgate::protocol::frames;
use clawgate::protocol::signature::{self, PayloadFields, ProofContext};
use clawgate::tailscale::{parse_notify, NdjsonDecoder};

/// Every body, by the name of its `cargo fuzz` target (and its seed directory).
/// A fuzz body: untrusted bytes in, a panic when an invariant breaks.
pub type Body = fn(&[u8]);

pub const TARGETS: &[(&str, Body)] = &[
    ("frame_parser", frame_parser),
    ("frame_guard", frame_guard),
    ("connect_params", connect_params),
    ("signature_payload", signature_payload),
    ("setup_code", setup_code),
    ("proxy_v2", proxy_v2),
    ("ipn_bus", ipn_bus),
    ("txt_zone", txt_zone),
    ("config_json5", config_json5),
];

/// Splits fuzz input into typed pieces; returns defaults once the input is exhausted.
pub struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader(data)
    }
    pub fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    pub fn flag(&mut self) -> bool {
        self.byte() & 1 == 0
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = (self.byte() as usize).min(max).min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    pub fn string(&mut self, max: usize) -> String {
        String::from_utf8_lossy(self.bytes(max)).into_owned()
    }
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

/// Chunk boundaries taken from the input itself, so the fuzzer explores splits.
fn chunks(data: &[u8]) -> Vec<&[u8]> {
    let Some((&seed, body)) = data.split_first() else {
        return Vec::new();
    };
    let step = usize::from(seed % 7) + 1;
    body.chunks(step).collect()
}

/// A text frame: `parse_request` never panics, an accepted frame has a non-empty id and
/// method, and every error answer it leads to is valid JSON naming a non-empty id.
pub fn frame_parser(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match frames::parse_request(text) {
        Ok(req) => {
            assert!(!req.id.is_empty() && !req.method.is_empty());
            let _ = req.params_as::<serde_json::Value>();
        }
        Err(e) => {
            let wire = clawgate::protocol::errors::WireError::invalid(e.message.clone());
            let answer = frames::res_err(&e.id, &wire);
            let v: serde_json::Value = serde_json::from_str(&answer).expect("error answer is JSON");
            assert!(v["id"].as_str().is_some_and(|s| !s.is_empty()));
        }
    }
}

/// The pre-auth frame guard: the verdict does not depend on how the stream is split.
pub fn frame_guard(data: &[u8]) {
    let cap = 1024;
    let body = data.get(1..).unwrap_or_default();
    let mut whole = FrameGuard::new(cap);
    let whole_ok = whole.feed(body).is_ok();
    let mut split = FrameGuard::new(cap);
    let split_ok = chunks(data).iter().all(|c| split.feed(c).is_ok());
    assert_eq!(whole_ok, split_ok, "verdict depends on chunking");
    if !whole_ok {
        assert!(
            whole.feed(b"\x81\x00").is_err(),
            "a tripped guard stays tripped"
        );
    }
}

/// `connect` params: validation never panics; an accepted connect is answered with protocol 4
/// and fits one of the three admission rules (protocol.md §3: v4 range, probe, legacy v3 node).
pub fn connect_params(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = connect::validate(Some(text)) {
        let (min, max, mode) = (
            c.params.min_protocol,
            c.params.max_protocol,
            &c.params.client.mode,
        );
        let v4 = min <= 4 && 4 <= max;
        let probe = mode == "probe" && max >= 3 && min <= 4;
        let node = c.role == Role::Node && mode == "node" && min <= 3 && 3 <= max;
        assert_eq!(
            c.protocol, 4,
            "hello-ok always carries the server's version"
        );
        assert!(
            v4 || probe || node,
            "admitted outside every rule: {min}..{max} {mode}"
        );
        if let Some(device) = &c.params.device {
            let ctx = ProofContext {
                params: &c.params,
                role: c.role,
                auth: &c.auth(),
                issued_nonce: "fuzz-nonce",
                now_ms: 1_700_000_000_000,
            };
            let _ = signature::verify(device, &ctx);
        }
    }
}

/// The signature payload: a proof signed over fuzzed fields verifies; changing any signed
/// field (here: the scopes, the token, the nonce) makes it fail.
pub fn signature_payload(data: &[u8]) {
    use ed25519_dalek::{Signer, SigningKey};
    let mut r = Reader::new(data);
    let mut seed = [0u8; 32];
    seed.iter_mut().for_each(|b| *b = r.byte());
    let key = SigningKey::from_bytes(&seed);
    let raw = key.verifying_key().to_bytes();
    let (client_id, scope, token, platform) =
        (r.string(24), r.string(24), r.string(40), r.string(16));
    let params_json = serde_json::json!({
        "minProtocol": 3, "maxProtocol": 4, "role": "operator", "scopes": [scope],
        "client": {"id": client_id, "mode": "cli", "version": "1", "platform": platform},
    });
    let Ok(params) = serde_json::from_value::<connect::ConnectParams>(params_json) else {
        return;
    };
    let auth = ConnectAuth {
        token: Some(token.clone()),
        ..ConnectAuth::default()
    };
    let now = 1_700_000_000_000_u64;
    let fields = PayloadFields {
        device_id: &signature::device_id_for(&raw),
        client_id: &params.client.id,
        client_mode: &params.client.mode,
        role: "operator",
        scopes: params.scopes.as_deref().unwrap_or(&[]),
        signed_at_ms: now,
        token: &token,
        nonce: "n0",
        platform: Some(&params.client.platform),
        device_family: None,
    };
    let sig = key.sign(signature::payload_v3(&fields).as_bytes());
    let proof = DeviceProof {
        id: signature::device_id_for(&raw),
        public_key: signature::encode_public_key(&raw),
        signature: base64_url(&sig.to_bytes()),
        signed_at: now,
        nonce: "n0".into(),
    };
    let ctx = |params: &'_ connect::ConnectParams, auth: &'_ ConnectAuth, nonce: &'static str| {
        signature::verify(
            &proof,
            &ProofContext {
                params,
                role: Role::Operator,
                auth,
                issued_nonce: nonce,
                now_ms: now as i64,
            },
        )
    };
    let separator = token.contains(['|', '\0', '\r', '\n']);
    assert_eq!(
        ctx(&params, &auth, "n0").is_ok(),
        !separator,
        "signed proof must verify"
    );
    let mut other = params.clone();
    other.scopes = Some(vec![format!("{scope}x")]);
    assert!(
        ctx(&other, &auth, "n0").is_err(),
        "changed scopes must not verify"
    );
    let other_auth = ConnectAuth {
        token: Some(format!("{token}x")),
        ..ConnectAuth::default()
    };
    assert!(
        ctx(&params, &other_auth, "n0").is_err(),
        "changed token must not verify"
    );
    assert!(
        ctx(&params, &auth, "n1").is_err(),
        "other nonce must not verify"
    );
}

fn base64_url(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Setup codes: decoding never panics, and encode → decode is the identity.
pub fn setup_code(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = setup_code::decode(text);
        let _ = setup_code::check_url(text);
    }
    let mut r = Reader::new(data);
    let p = SetupPayload {
        url: r.string(64),
        urls: vec![r.string(32)],
        bootstrap_token: r.string(64),
        expires_at_ms: Some(i64::from(r.u16())),
        tls_fingerprint: Some(r.string(64)),
    };
    let code = setup_code::encode(&p);
    assert_eq!(setup_code::decode(&code).as_ref(), Some(&p));
    assert_eq!(
        setup_code::decode(&format!("oc-pair://{code}")).as_ref(),
        Some(&p)
    );
}

/// PROXY v2: parsing never panics, never claims more bytes than given, and encode → parse
/// round-trips both addresses.
pub fn proxy_v2(data: &[u8]) {
    if let Ok((_, n)) = proxy_v2::parse(data) {
        assert!(n <= data.len());
    }
    let mut r = Reader::new(data);
    let v4 = |r: &mut Reader<'_>| IpAddr::V4(Ipv4Addr::new(r.byte(), r.byte(), r.byte(), r.byte()));
    let (src, dst) = if r.flag() {
        (
            SocketAddr::new(v4(&mut r), r.u16()),
            SocketAddr::new(v4(&mut r), r.u16()),
        )
    } else {
        let v6 = |r: &mut Reader<'_>| {
            let mut s = [0u16; 8];
            s.iter_mut().for_each(|x| *x = r.u16());
            IpAddr::V6(Ipv6Addr::from(s))
        };
        (
            SocketAddr::new(v6(&mut r), r.u16()),
            SocketAddr::new(v6(&mut r), r.u16()),
        )
    };
    let wire = proxy_v2::encode(src, dst);
    let (h, n) = proxy_v2::parse(&wire).expect("own encoding parses");
    assert_eq!((h.source, h.destination, n), (src, dst, wire.len()));
}

/// IPN bus NDJSON: the lines produced do not depend on chunking, none exceeds the bound, and
/// decoding a line never panics.
pub fn ipn_bus(data: &[u8]) {
    const MAX: usize = 256;
    let drain = |d: &mut NdjsonDecoder, out: &mut Vec<Result<Vec<u8>, ()>>| loop {
        match d.next_line() {
            Ok(Some(l)) => out.push(Ok(l)),
            Ok(None) => break,
            Err(_) => out.push(Err(())),
        }
    };
    let mut whole = NdjsonDecoder::new(MAX);
    let mut a = Vec::new();
    whole.push(data.get(1..).unwrap_or_default());
    drain(&mut whole, &mut a);
    let mut split = NdjsonDecoder::new(MAX);
    let mut b = Vec::new();
    for c in chunks(data) {
        split.push(c);
        drain(&mut split, &mut b);
    }
    let ok =
        |v: &[Result<Vec<u8>, ()>]| v.iter().filter_map(|x| x.clone().ok()).collect::<Vec<_>>();
    if !a.iter().chain(&b).any(Result::is_err) {
        assert_eq!(ok(&a), ok(&b), "lines depend on chunking");
    }
    for line in ok(&a).iter().chain(&ok(&b)) {
        assert!(line.len() <= MAX);
        let _ = parse_notify(line);
    }
}

/// TXT and zone building: no TXT string exceeds 255 bytes, the fingerprint is published only
/// normalised, and the zone text is printable ASCII with every TXT value quoted.
pub fn txt_zone(data: &[u8]) {
    let mut r = Reader::new(data);
    let t = TxtInput {
        mode: if r.flag() {
            MdnsMode::Minimal
        } else {
            MdnsMode::Full
        },
        gateway_port: r.u16(),
        display_name: r.string(300),
        host_label: r.string(80),
        tls: r.flag(),
        tls_sha256: Some(r.string(100)),
        direct_reachable: r.flag(),
        tailnet_dns: Some(r.string(300)),
        ssh_port: r.u16(),
        cli_path: Some(r.string(300)),
    };
    for set in [txt::lan_txt(&t), txt::wide_area_txt(&t)] {
        for (k, v) in &set {
            assert!(
                k.len() + 1 + v.len() <= MAX_TXT_ENTRY,
                "TXT entry over 255 bytes"
            );
            if k == "gatewayTlsSha256" {
                assert!(
                    v.len() == 64
                        && v.bytes()
                            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                );
            }
        }
        let z = ZoneSpec {
            domain: "example.ts.net".into(),
            instance: "gw".into(),
            host: "gw".into(),
            port: t.gateway_port,
            srv_target: None,
            txt: set,
            v4: Ipv4Addr::new(100, 64, 0, 1),
            v6: vec![],
        };
        let text = zone::render(&z, Some(2026120201));
        assert!(
            text.bytes()
                .all(|b| b == b'\n' || (0x20..0x7f).contains(&b)),
            "zone not printable"
        );
    }
    let q = zone::quote_txt(&r.string(255));
    assert!(q.starts_with('"') && q.ends_with('"') && q.len() >= 2);
}

/// The JSON5 config loader: never panics; an error always names a fix.
pub fn config_json5(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = clawgate::config::parse_file(text) {
        assert!(!e.to_string().is_empty());
    }
}

//! Gateway TLS on loopback (issue 15): the real `openssl s_client` sees TLS 1.3 and the same
//! fingerprint clawgate prints; plaintext on the TLS port gets a 400 naming `wss://`; clawgate's own
//! CLI works against it; setup codes carry `tlsFingerprint`; certificate file replacement, a bad
//! pair and `clawgate tls rotate` behave as specified while connections stay open.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{bounded, call, connect_params, handshake, Gateway, TOKEN};
use serde_json::{json, Value};

fn tls_gateway() -> Gateway {
    tls_gateway_on(0)
}

fn tls_gateway_on(port: u16) -> Gateway {
    let cfg = json!({"gateway": {"tls": {"enabled": true}}});
    let port = port.to_string();
    Gateway::with_config(&cfg, &["--port", &port, "--token", TOKEN], &[])
}

/// A port that was free a moment ago (for commands that read the port from config, like doctor).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `clawgate <args>` as this gateway's host user (same HOME, state dir and config).
fn cg(gw: &Gateway, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .args(args)
        .env("HOME", gw.dir.path())
        .env("OPENCLAW_STATE_DIR", gw.dir.path().join("state"))
        .env("OPENCLAW_CONFIG_PATH", gw.config_path())
        // The gateway runs on an ephemeral port with --token: point the CLI at it.
        .env("OPENCLAW_GATEWAY_URL", gw.url())
        .env("OPENCLAW_GATEWAY_TOKEN", TOKEN)
        .env("OPENCLAW_GATEWAY_PORT", gw.port.to_string())
        .output()
        .expect("run clawgate")
}

fn cg_json(gw: &Gateway, args: &[&str]) -> Value {
    let o = cg(gw, args);
    assert!(
        o.status.success(),
        "clawgate {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("json")
}

fn tls_dir(gw: &Gateway) -> std::path::PathBuf {
    gw.dir.path().join("state/gateway/tls")
}

/// What the real `openssl s_client` sees on the port: (protocol line, leaf SHA-256 as 64 hex).
fn s_client(port: u16) -> (String, String) {
    let mut c = Command::new("timeout")
        .args(["10", "openssl", "s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", "localhost"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client (apt: openssl)");
    drop(c.stdin.take());
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let _ = c.wait();
    let proto = out
        .lines()
        .find(|l| l.trim_start().starts_with("Protocol") || l.contains("New, TLSv"))
        .unwrap_or_default()
        .to_string();
    let pem_start = out
        .find("-----BEGIN CERTIFICATE-----")
        .expect("certificate in s_client output");
    let pem_end = out.find("-----END CERTIFICATE-----").unwrap() + 25;
    let mut x = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    x.stdin
        .take()
        .unwrap()
        .write_all(&out.as_bytes()[pem_start..pem_end])
        .unwrap();
    let o = x.wait_with_output().unwrap();
    let line = String::from_utf8_lossy(&o.stdout).to_string();
    let fp = line
        .split('=')
        .nth(1)
        .unwrap_or_default()
        .trim()
        .replace(':', "")
        .to_ascii_lowercase();
    (proto, fp)
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn fingerprint_cmd(gw: &Gateway) -> String {
    let v = cg_json(gw, &["tls", "fingerprint", "--json"]);
    v["fingerprint"].as_str().expect("fingerprint").to_string()
}

#[test]
fn openssl_sees_tls13_and_the_printed_fingerprint_and_files_are_private() {
    let gw = tls_gateway();
    assert_eq!(gw.scheme, "wss", "banner announces wss://");
    let fp = fingerprint_cmd(&gw);
    assert_eq!(fp.len(), 64);
    let (proto, served) = s_client(gw.port);
    assert!(proto.contains("TLSv1.3"), "{proto}");
    assert_eq!(served, fp);
    use std::os::unix::fs::PermissionsExt;
    for f in ["gateway-cert.pem", "gateway-key.pem"] {
        let mode = std::fs::metadata(tls_dir(&gw).join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    // TLS 1.2 is not offered.
    let o = Command::new("timeout")
        .args(["10", "openssl", "s_client", "-tls1_2", "-connect"])
        .arg(format!("127.0.0.1:{}", gw.port))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&o.stdout).contains("BEGIN CERTIFICATE"));
}

#[test]
fn plaintext_on_the_tls_port_gets_a_400_naming_wss() {
    let gw = tls_gateway();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("wss://") && out.contains("https://"), "{out}");
    // A plaintext WebSocket client fails with that answer too.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = format!("ws://127.0.0.1:{}", gw.port);
    let r = rt.block_on(tokio_tungstenite::connect_async(url));
    assert!(r.is_err());
}

#[test]
fn own_cli_status_doctor_and_setup_code_work_over_tls() {
    let gw = tls_gateway_on(free_port());
    let fp = fingerprint_cmd(&gw);
    let h = cg_json(&gw, &["health", "--json"]);
    assert_eq!(h["ok"], true, "{h}");
    let st = cg_json(&gw, &["status", "--json"]);
    assert_eq!(st["tls"]["fingerprint"], fp.as_str(), "{st}");
    // With an explicit wss:// URL the CLI still trusts only this host's certificate.
    let url = gw.url();
    let h = cg_json(&gw, &["health", "--url", &url, "--token", TOKEN, "--json"]);
    assert_eq!(h["ok"], true, "{h}");
    let o = cg(&gw, &["doctor", "--json"]);
    let d: Value = serde_json::from_slice(&o.stdout).expect("doctor json");
    let tls = d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "tls")
        .unwrap_or_else(|| panic!("no tls check: {d}"));
    assert_eq!(tls["ok"], true, "{tls}");
    assert!(tls["detail"].as_str().unwrap().contains(&fp), "{tls}");
    let gw_check = d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "gateway")
        .unwrap();
    assert_eq!(
        gw_check["ok"], true,
        "doctor reached /readyz over TLS: {gw_check}"
    );
    // A setup code for the direct TLS URL carries the fingerprint.
    let public = format!("wss://127.0.0.1:{}", gw.port);
    let q = cg_json(&gw, &["qr", "--url", &public, "--json", "--token", TOKEN]);
    let code = q["setupCode"].as_str().unwrap_or_else(|| panic!("{q}"));
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(code)
        .unwrap();
    let payload: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(payload["tlsFingerprint"], fp.as_str(), "{payload}");
    assert_eq!(payload["url"], public.as_str());
}

/// A new P-256 pair from the real openssl CLI: (cert PEM, key PEM).
fn openssl_pair(dir: &Path, tag: &str) -> (Vec<u8>, Vec<u8>) {
    let (c, k) = (
        dir.join(format!("{tag}-c.pem")),
        dir.join(format!("{tag}-k.pem")),
    );
    let s = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=replaced",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&k)
        .arg("-out")
        .arg(&c)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(s.success());
    (std::fs::read(c).unwrap(), std::fs::read(k).unwrap())
}

/// Replaces `path` atomically (rename), as deployment tools do.
fn replace(path: &Path, data: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, data).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn hup(gw: &Gateway) {
    let s = Command::new("kill")
        .args(["-HUP", &gw.child.id().to_string()])
        .status()
        .unwrap();
    assert!(s.success());
}

#[tokio::test]
async fn replaced_files_reload_for_new_connections_open_ones_stay_and_a_bad_pair_is_refused() {
    bounded(Duration::from_secs(120), async {
        let gw = tls_gateway();
        let fp1 = fingerprint_cmd(&gw);
        let mut ws = clawgate::tls::client::connect(&gw.url(), std::slice::from_ref(&fp1))
            .await
            .expect("wss connect pinned to the served certificate");
        let (_, res) = handshake(
            &mut ws,
            connect_params(json!({"token": TOKEN}), &["operator.read"]),
        )
        .await;
        assert_eq!(res["ok"], true, "{res}");
        let tmp = tempfile::tempdir().unwrap();
        let (cert2, key2) = openssl_pair(tmp.path(), "two");
        let dir = tls_dir(&gw);
        replace(&dir.join("gateway-key.pem"), &key2);
        replace(&dir.join("gateway-cert.pem"), &cert2);
        let fp2 = clawgate::tls::cert::leaf_fingerprint(&dir.join("gateway-cert.pem")).unwrap();
        let port = gw.port;
        tokio::task::spawn_blocking(move || {
            wait_until("the new certificate to be served", 20, || {
                s_client(port).1 == fp2
            })
        })
        .await
        .unwrap();
        // The connection opened before the swap still works.
        let r = call(&mut ws, "h1", "health", json!({})).await;
        assert_eq!(r["ok"], true, "{r}");
        // A key that does not belong to the certificate: refused, the served pair stays.
        let (_, key3) = openssl_pair(tmp.path(), "three");
        replace(&dir.join("gateway-key.pem"), &key3);
        hup(&gw);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let fp2 = clawgate::tls::cert::leaf_fingerprint(&dir.join("gateway-cert.pem")).unwrap();
        let served = tokio::task::spawn_blocking(move || s_client(port).1)
            .await
            .unwrap();
        assert_eq!(served, fp2, "a bad pair must not replace the served one");
        let h = cg_json(&gw, &["health", "--json"]);
        assert_eq!(h["ok"], true);
        // Fixing the pair afterwards is picked up (the watcher was not stuck on the bad pair).
        let (cert4, key4) = openssl_pair(tmp.path(), "four");
        replace(&dir.join("gateway-key.pem"), &key4);
        replace(&dir.join("gateway-cert.pem"), &cert4);
        let fp4 = clawgate::tls::cert::leaf_fingerprint(&dir.join("gateway-cert.pem")).unwrap();
        hup(&gw);
        tokio::task::spawn_blocking(move || {
            wait_until("the fixed pair to be served", 20, || {
                s_client(port).1 == fp4
            })
        })
        .await
        .unwrap();
        let r = call(&mut ws, "h2", "health", json!({})).await;
        assert_eq!(r["ok"], true, "{r}");
    })
    .await;
}

#[test]
fn rotate_prints_old_and_new_and_the_gateway_serves_the_new_one() {
    let gw = tls_gateway();
    let fp1 = fingerprint_cmd(&gw);
    let r = cg_json(&gw, &["tls", "rotate", "--json"]);
    assert_eq!(r["old"], fp1.as_str(), "{r}");
    let new = r["new"].as_str().unwrap().to_string();
    assert_ne!(new, fp1);
    assert_eq!(r["newKey"], false, "the key is kept");
    let text = cg(&gw, &["tls", "rotate"]);
    let out = String::from_utf8_lossy(&text.stdout);
    assert!(out.contains(&format!("old fingerprint: {new}")), "{out}");
    let newest = fingerprint_cmd(&gw);
    assert!(out.contains(&format!("new fingerprint: {newest}")), "{out}");
    wait_until("the rotated certificate to be served", 20, || {
        s_client(gw.port).1 == newest
    });
    let h = cg_json(&gw, &["health", "--json"]);
    assert_eq!(h["ok"], true);
}

#[test]
fn tls_enabled_without_a_pair_and_without_auto_generate_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("openclaw.json");
    std::fs::write(
        &cfg,
        r#"{ gateway: { tls: { enabled: true, autoGenerate: false } } }"#,
    )
    .unwrap();
    let o = Command::new("timeout")
        .args([
            "20",
            env!("CARGO_BIN_EXE_clawgate"),
            "run",
            "--port",
            "0",
            "--token",
            TOKEN,
            "--config",
        ])
        .arg(&cfg)
        .env("HOME", dir.path())
        .env("OPENCLAW_STATE_DIR", dir.path().join("state"))
        .env("OPENCLAW_DISABLE_BONJOUR", "1")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("autoGenerate"), "{err}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("listening"));
}

/// A stalled ClientHello holds its pre-auth slot only for the header-read timeout (5 s): the
/// server closes it, so slow handshakes cannot pin connections (threats.md RL-1).
#[test]
fn a_stalled_tls_handshake_is_closed_within_the_header_timeout() {
    let gw = tls_gateway();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    // The first byte of a TLS handshake record, then nothing.
    s.write_all(&[0x16, 0x03, 0x01]).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    let waited = started.elapsed();
    assert_eq!(n, 0, "closed without an answer");
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(8),
        "closed after {waited:?}"
    );
}

//! Test harness: runs the real `clawgate` binary on an ephemeral port with its own
//! state dir, and a raw WebSocket client that speaks the protocol frame by frame.
#![allow(dead_code)]

pub mod daemon;
pub mod doctor;
pub mod netns;
pub mod openclaw;
pub mod reference;
pub mod sshd;
pub mod testnet;
pub mod vienna;
pub mod wirediff;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const TOKEN: &str = "test-token-0123456789abcdef";
/// A strong Funnel password (the config check refuses weak ones for exposed gateways).
pub const FUNNEL_PASSWORD: &str = "funnel-pass-7Qx9-Lm2v-Zr4k";

/// Runs a whole test body under `limit`: every test is bounded in time.
pub async fn bounded<F: std::future::Future>(limit: Duration, f: F) -> F::Output {
    tokio::time::timeout(limit, f)
        .await
        .expect("test finished in time")
}

/// A loopback port that was free a moment ago (bound to `:0` and released).
/// Polls `f` every 250 ms until it yields a value; panics after `secs` naming `what`.
pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind :0");
    l.local_addr().expect("local addr").port()
}

/// The config file name inside a gateway's HOME (OpenClaw's).
pub const CONFIG_FILE: &str = "openclaw.json";

/// A running gateway process, killed on drop.
pub struct Gateway {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// `ws`, or `wss` when the banner announced gateway TLS.
    pub scheme: &'static str,
}

impl Gateway {
    pub fn start(env: &[(&str, &str)]) -> Gateway {
        Self::start_with(&["--port", "0", "--token", TOKEN], env)
    }

    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Gateway {
        Self::start_in(tempfile::tempdir().unwrap(), args, env)
    }

    /// SIGKILLs the gateway and starts a new one on the same state dir.
    pub fn kill9_and_restart(mut self) -> Gateway {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        Self::start_in(dir, &["--port", "0", "--token", TOKEN], &[])
    }

    /// Writes `cfg` to `openclaw.json` in a fresh HOME and starts the gateway with `--config` it
    /// plus `args`.
    pub fn with_config(cfg: &Value, args: &[&str], env: &[(&str, &str)]) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CONFIG_FILE);
        std::fs::write(&path, cfg.to_string()).unwrap();
        let mut all = vec!["--config", path.to_str().unwrap()];
        all.extend_from_slice(args);
        Self::start_in(dir, &all, env)
    }

    /// The config file [`Gateway::with_config`] wrote.
    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join(CONFIG_FILE)
    }

    pub fn start_in(dir: tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Gateway {
        Self::start_wrapped(&[], dir, args, env)
    }

    /// [`Gateway::start_in`] with `wrapper` in front of the binary (e.g. `prlimit --nofile=256:256
    /// --`, which execs it: `child` is then the gateway itself).
    pub fn start_wrapped(
        wrapper: &[&str],
        dir: tempfile::TempDir,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Gateway {
        let bin = env!("CARGO_BIN_EXE_clawgate");
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.arg("run")
            .args(args)
            .env("HOME", dir.path())
            .env("OPENCLAW_STATE_DIR", dir.path().join("state"))
            .env_remove("OPENCLAW_GATEWAY_TOKEN")
            .env_remove("OPENCLAW_GATEWAY_PASSWORD")
            .env_remove("OPENCLAW_GATEWAY_PORT")
            .env_remove("OPENCLAW_CONFIG_PATH")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn clawgate");
        let out = child.stdout.take().unwrap();
        let mut lines = BufReader::new(out).lines();
        let first = lines.next().expect("banner").unwrap();
        let scheme = if first.contains("wss://") {
            "wss"
        } else {
            "ws"
        };
        let port = first
            .split("://127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split([',', ' ']).next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in banner: {first}"));
        std::thread::spawn(move || for _ in lines {});
        Gateway {
            child,
            port,
            dir,
            scheme,
        }
    }

    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    pub fn sigterm(&self) {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket with extra upgrade headers.
pub async fn try_open(url: &str, headers: &[(&str, &str)]) -> Option<Ws> {
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        let name =
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        req.headers_mut().insert(name, v.parse().unwrap());
    }
    let (ws, _) = tokio_tungstenite::connect_async(req).await.ok()?;
    Some(ws)
}

/// Opens a WebSocket with extra upgrade headers (panics when refused).
pub async fn open(url: &str, headers: &[(&str, &str)]) -> Ws {
    try_open(url, headers).await.expect("ws connect")
}

/// The next text frame as JSON (skipping pings), or the close frame as `{"close":code,"reason":…}`.
pub async fn next<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Value {
    let fut = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
                Some(Ok(Message::Close(Some(f)))) => {
                    return json!({"close": u16::from(f.code), "reason": f.reason.to_string()})
                }
                Some(Ok(Message::Close(None))) | None => return json!({"close": null}),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return json!({"error": e.to_string()}),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("frame within 10 s")
}

/// Skips events until a `res` arrives.
pub async fn next_res<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Value {
    loop {
        let f = next(ws).await;
        if f["type"] != "event" {
            return f;
        }
    }
}

pub async fn send<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, v: Value) {
    // A failed send shows up as an error or close frame on the next read.
    let _ = ws.send(Message::text(v.to_string())).await;
}

pub fn connect_params(auth: Value, scopes: &[&str]) -> Value {
    json!({
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "cli", "version": "test", "platform": "linux", "mode": "cli"},
        "role": "operator", "scopes": scopes, "caps": [], "auth": auth,
    })
}

/// Reads the challenge, sends `connect` with `params`, returns (challenge, response).
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    params: Value,
) -> (Value, Value) {
    let ch = next(ws).await;
    assert_eq!(ch["event"], "connect.challenge", "{ch}");
    send(
        ws,
        json!({"type": "req", "id": "c1", "method": "connect", "params": params}),
    )
    .await;
    (ch, next(ws).await)
}

/// A connected operator with the given scopes.
pub async fn operator(gw: &Gateway, scopes: &[&str]) -> Ws {
    let mut ws = open(&gw.url(), &[]).await;
    let (_, res) = handshake(&mut ws, connect_params(json!({"token": TOKEN}), scopes)).await;
    assert_eq!(res["ok"], true, "{res}");
    ws
}

pub async fn call<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    id: &str,
    method: &str,
    params: Value,
) -> Value {
    send(
        ws,
        json!({"type": "req", "id": id, "method": method, "params": params}),
    )
    .await;
    next_res(ws).await
}

/// A test device identity (Ed25519) that signs `connect` per protocol.md §6.
pub struct Device {
    pub key: ed25519_dalek::SigningKey,
    pub id: String,
    pub public_key: String,
}

impl Device {
    pub fn new() -> Device {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let raw = key.verifying_key().to_bytes();
        Device {
            id: clawgate::protocol::signature::device_id_for(&raw),
            public_key: clawgate::protocol::signature::encode_public_key(&raw),
            key,
        }
    }

    /// Connect params for `role` with `auth`, signed over the challenge nonce/ts.
    pub fn params(
        &self,
        challenge: &Value,
        role: &str,
        client: (&str, &str),
        scopes: &[&str],
        auth: Value,
        extra: Value,
    ) -> Value {
        use base64::Engine;
        use ed25519_dalek::Signer;
        let nonce = challenge["payload"]["nonce"].as_str().unwrap().to_string();
        let ts = challenge["payload"]["ts"].as_u64().unwrap();
        let scopes_s: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let token = ["token", "deviceToken", "bootstrapToken"]
            .iter()
            .find_map(|k| auth[*k].as_str())
            .unwrap_or("")
            .to_string();
        let f = clawgate::protocol::signature::PayloadFields {
            device_id: &self.id,
            client_id: client.0,
            client_mode: client.1,
            role,
            scopes: &scopes_s,
            signed_at_ms: ts,
            token: &token,
            nonce: &nonce,
            platform: Some("linux"),
            device_family: Some("Linux"),
        };
        let sig = self
            .key
            .sign(clawgate::protocol::signature::payload_v3(&f).as_bytes());
        let mut p = json!({
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": client.0, "version": "test", "platform": "linux", "deviceFamily": "Linux", "mode": client.1},
            "role": role, "scopes": scopes, "caps": [], "auth": auth,
            "device": {"id": self.id, "publicKey": self.public_key, "signature": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.to_bytes()), "signedAt": ts, "nonce": nonce},
        });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            p[k] = v;
        }
        p
    }

    /// Opens a socket and sends a signed connect; returns the socket and the `connect` response.
    #[allow(clippy::too_many_arguments)]
    pub async fn try_connect(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        role: &str,
        client: (&str, &str),
        scopes: &[&str],
        auth: Value,
        extra: Value,
    ) -> Option<(Ws, Value)> {
        let mut ws = try_open(url, headers).await?;
        let ch = next(&mut ws).await;
        if ch["event"] != "connect.challenge" {
            return Some((ws, ch));
        }
        let p = self.params(&ch, role, client, scopes, auth, extra);
        send(
            &mut ws,
            json!({"type": "req", "id": "c1", "method": "connect", "params": p}),
        )
        .await;
        let res = next(&mut ws).await;
        Some((ws, res))
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn connect(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        role: &str,
        client: (&str, &str),
        scopes: &[&str],
        auth: Value,
        extra: Value,
    ) -> (Ws, Value) {
        self.try_connect(url, headers, role, client, scopes, auth, extra)
            .await
            .expect("ws connect")
    }
}

/// Connects a node-host-like device declaring `commands`.
pub async fn node(
    gw: &Gateway,
    d: &Device,
    headers: &[(&str, &str)],
    commands: &[&str],
) -> (Ws, Value) {
    d.connect(
        &gw.url(),
        headers,
        "node",
        ("node-host", "node"),
        &[],
        json!({"token": TOKEN}),
        json!({"commands": commands, "caps": ["system"]}),
    )
    .await
}

/// Starts the real gateway on an ephemeral port with a config attaching to london's LocalAPI in
/// `tailscale.mode = mode`, with `extra` merged into `gateway`, plus CLI `args`.
pub fn attached_gateway(
    net: &testnet::Testnet,
    mode: &str,
    extra: Value,
    args: &[&str],
) -> Gateway {
    let mut cfg = json!({"gateway": {"tailscale": {"mode": mode, "sidecar": {"attach": net.handshake_file("london")}}}});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        cfg["gateway"][k] = v;
    }
    let mut all = vec!["--port", "0"];
    all.extend_from_slice(args);
    Gateway::with_config(&cfg, &all, &[])
}

/// Starts the real gateway (shared token, ephemeral port) supervising its own `clawgate-tsnet` as
/// the testnet's pre-authorised sidecar node `name`, with the tailnet's offline environment and
/// `extra` merged into `gateway`.
pub fn own_sidecar_gateway(
    net: &testnet::Testnet,
    name: &str,
    tsnet: &std::path::Path,
    extra: Value,
) -> Gateway {
    let mut cfg = json!({"gateway": {"tailscale": testnet::own_sidecar_config(net, name, tsnet)}});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        cfg["gateway"][k] = v;
    }
    Gateway::with_config(&cfg, &["--port", "0", "--token", TOKEN], &testnet_env(net))
}

/// The tailnet's offline environment (`TS_*` knobs) for a gateway supervising a sidecar.
pub fn testnet_env(net: &testnet::Testnet) -> Vec<(&str, &str)> {
    net.manifest
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Signed `operator.read` connect (client `cli`) over an open socket with `auth`; returns the
/// `connect` response.
pub async fn signed_operator<S>(ws: &mut WebSocketStream<S>, d: &Device, auth: Value) -> Value
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ch = next(ws).await;
    assert_eq!(ch["event"], "connect.challenge", "{ch}");
    let p = d.params(
        &ch,
        "operator",
        ("cli", "cli"),
        &["operator.read"],
        auth,
        json!({}),
    );
    send(
        ws,
        json!({"type": "req", "id": "c1", "method": "connect", "params": p}),
    )
    .await;
    next(ws).await
}

impl testnet::Testnet {
    /// A testnet with the real userspace `tailscaled` as node "daemon" (`None`: skipped, see
    /// [`daemon::tailscaled_bin`] and [`testnet::testnet_bin`]).
    pub async fn with_daemon() -> Option<Self> {
        let tailscaled = daemon::tailscaled_bin()?;
        Self::start(&["--tailscaled", tailscaled.to_str()?]).await
    }
}

/// `wss://<fqdn>` from `from` answers with `connect.challenge` (the Serve route works end to end).
pub async fn assert_challenge(net: &testnet::Testnet, from: &str, fqdn: &str, alpn: &[&str]) {
    let (mut ws, _) = testnet::wss_to_name(net, from, fqdn, alpn).await.unwrap();
    assert_eq!(next(&mut ws).await["event"], "connect.challenge");
}

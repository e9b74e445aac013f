//! The offline tailnet (`clawgate-testnet`) for gateway-level tests: start/stop, the manifest,
//! a sidecar handshake file pointing the gateway at a node's LocalAPI, and `wss://` clients that
//! reach the gateway the way real peers do — through a node's SOCKS5 (MagicDNS resolves) or the
//! Funnel entry — with TLS trusting the harness CA and a chosen ALPN offer.
//!
//! Binaries: `CLAWGATE_TESTNET_BIN`, else `sidecar/bin/clawgate-testnet`; missing ⇒ the test is
//! skipped with a message, or fails when `CLAWGATE_REQUIRE_TESTNET=1`. Every testnet lives in its
//! own temp dir and is stopped (stdin EOF, then kill) by [`Testnet::stop`] or on drop.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_rustls::rustls;
use tokio_tungstenite::WebSocketStream;

/// Env var naming the harness binary.
pub const ENV_TESTNET_BIN: &str = "CLAWGATE_TESTNET_BIN";
/// Set to 1 in CI: missing binaries are a failure, not a skip.
pub const ENV_REQUIRE: &str = "CLAWGATE_REQUIRE_TESTNET";
/// Bound on the testnet start-up (well under a second normally; tailscaled login takes seconds).
pub const START_BOUND: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    #[serde(rename = "controlURL")]
    pub control_url: String,
    /// The harness control API (`http://127.0.0.1:P`: /nodes, /caps, /certs, …).
    #[serde(rename = "controlAPI")]
    pub control_api: String,
    pub auth_key: String,
    #[serde(default)]
    pub env: HashMap<String, String>,
    #[serde(default)]
    pub sidecars: HashMap<String, SidecarInfo>,
    pub ca_cert_path: PathBuf,
    pub nodes: HashMap<String, NodeInfo>,
    #[serde(default)]
    pub funnel: HashMap<String, FunnelInfo>,
}

#[derive(Debug, Deserialize)]
pub struct NodeInfo {
    pub fqdn: String,
    pub ips: Vec<IpAddr>,
    pub login: String,
    #[serde(rename = "stateDir", default)]
    pub state_dir: PathBuf,
    pub localapi: Value,
    #[serde(default)]
    pub socks5: Option<Socks5>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SidecarInfo {
    pub fqdn: String,
    pub state_dir: PathBuf,
}

#[derive(Debug, Deserialize)]
pub struct Socks5 {
    pub address: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunnelInfo {
    pub address: String,
    #[serde(rename = "srcIP")]
    pub src_ip: String,
}

/// A running `clawgate-testnet`.
pub struct Testnet {
    child: Child,
    pub manifest: Manifest,
    pub dir: tempfile::TempDir,
}

/// The harness binary, or `None` after printing a skip (panics when required).
pub fn testnet_bin() -> Option<PathBuf> {
    let path = std::env::var_os(ENV_TESTNET_BIN)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("sidecar/bin/clawgate-testnet")
        });
    if path.is_file() {
        return Some(path);
    }
    let msg = format!("clawgate-testnet not found: set {ENV_TESTNET_BIN} or run make sidecar");
    if std::env::var(ENV_REQUIRE).as_deref() == Ok("1") {
        panic!("{ENV_REQUIRE}=1 but {msg}");
    }
    eprintln!("SKIPPED (testnet): {msg}");
    None
}

impl Testnet {
    /// Starts a tailnet (extra harness flags in `extra`).
    pub async fn start(extra: &[&str]) -> Option<Self> {
        let bin = testnet_bin()?;
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(bin)
            .arg("--manifest")
            .arg(dir.path().join("manifest.json"))
            .arg("--dir")
            .arg(dir.path().join("net"))
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(START_BOUND, lines.next_line())
            .await
            .expect("testnet up in time")
            .unwrap()
            .expect("testnet printed its manifest");
        let manifest = serde_json::from_str(&line).expect("manifest JSON");
        Some(Self {
            child,
            manifest,
            dir,
        })
    }

    /// The harness process id (for CPU accounting), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn node(&self, name: &str) -> &NodeInfo {
        &self.manifest.nodes[name]
    }

    /// Writes a sidecar handshake file for `node` (what `gateway.tailscale.sidecar.attach` reads).
    pub fn handshake_file(&self, node: &str) -> PathBuf {
        let n = self.node(node);
        let hs = json!({"v": 1, "localapi": n.localapi, "dnsName": format!("{}.", n.fqdn), "tailscaleIPs": n.ips, "hostname": node});
        let path = self.dir.path().join(format!("{node}-handshake.json"));
        std::fs::write(&path, hs.to_string()).unwrap();
        path
    }

    /// Stops the harness (stdin EOF, then kill).
    pub async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// TLS config trusting only the harness CA, offering `alpn`.
pub fn tls_config(ca: &Path, alpn: &[&str]) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(cfg)
}

/// A byte stream a WebSocket can run over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A `wss://` client socket.
pub type Wss = WebSocketStream<Box<dyn Io>>;

/// Dials `host:port` through `via`'s SOCKS5 proxy (MagicDNS names resolve inside the tailnet).
pub async fn socks_dial(
    net: &Testnet,
    via: &str,
    host: &str,
    port: u16,
) -> std::io::Result<TcpStream> {
    let s = net.node(via).socks5.as_ref().expect("node has SOCKS5");
    let proxy: SocketAddr = s.address.parse().unwrap();
    let r = match (&s.username, &s.password) {
        (Some(u), Some(p)) => {
            tokio_socks::tcp::Socks5Stream::connect_with_password(proxy, (host, port), u, p).await
        }
        _ => tokio_socks::tcp::Socks5Stream::connect(proxy, (host, port)).await,
    };
    r.map(|s| s.into_inner()).map_err(std::io::Error::other)
}

/// TLS (SNI `sni`, harness CA, `alpn`) then the WebSocket upgrade to `wss://sni/` with `headers`.
/// Returns the negotiated ALPN too.
pub async fn wss_over(
    net: &Testnet,
    tcp: TcpStream,
    sni: &str,
    alpn: &[&str],
    headers: &[(&str, &str)],
) -> Result<(Wss, Option<Vec<u8>>), String> {
    wss_over_tls(
        tls_config(&net.manifest.ca_cert_path, alpn),
        tcp,
        sni,
        headers,
    )
    .await
}

/// [`wss_over`] with a prepared TLS config (a client that keeps one config for many connections).
pub async fn wss_over_tls(
    tls: Arc<rustls::ClientConfig>,
    tcp: TcpStream,
    sni: &str,
    headers: &[(&str, &str)],
) -> Result<(Wss, Option<Vec<u8>>), String> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let connector = tokio_rustls::TlsConnector::from(tls);
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let mut req = format!("wss://{sni}/").into_client_request().unwrap();
    for (k, v) in headers {
        let n = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        req.headers_mut().insert(n, v.parse().unwrap());
    }
    let io: Box<dyn Io> = Box::new(tls);
    let (ws, _) = tokio_tungstenite::client_async(req, io)
        .await
        .map_err(|e| format!("ws: {e}"))?;
    Ok((ws, negotiated))
}

/// `wss://<fqdn>` from `from` through its SOCKS5.
pub async fn wss_to_name(
    net: &Testnet,
    from: &str,
    fqdn: &str,
    alpn: &[&str],
) -> Result<(Wss, Option<Vec<u8>>), String> {
    let tcp = socks_dial(net, from, fqdn, 443)
        .await
        .map_err(|e| format!("socks: {e}"))?;
    wss_over(net, tcp, fqdn, alpn, &[]).await
}

/// The sidecar binary (`CLAWGATE_TSNET_BIN`, else `sidecar/bin/clawgate-tsnet`), if present.
pub fn tsnet_bin() -> Option<PathBuf> {
    let path = std::env::var_os("CLAWGATE_TSNET_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("sidecar/bin/clawgate-tsnet")
        });
    if path.is_file() {
        return Some(path);
    }
    let msg =
        format!("clawgate-tsnet not found at {path:?}: set CLAWGATE_TSNET_BIN or run make sidecar");
    if std::env::var(ENV_REQUIRE).as_deref() == Ok("1") {
        panic!("{ENV_REQUIRE}=1 but {msg}");
    }
    eprintln!("SKIPPED (testnet): {msg}");
    None
}

/// `wss://<node fqdn>` from `from` through its SOCKS5.
pub async fn wss_from(
    net: &Testnet,
    from: &str,
    to: &str,
    alpn: &[&str],
    headers: &[(&str, &str)],
) -> Result<(Wss, Option<Vec<u8>>), String> {
    let fqdn = net.node(to).fqdn.clone();
    let tcp = socks_dial(net, from, &fqdn, 443)
        .await
        .map_err(|e| format!("socks: {e}"))?;
    wss_over(net, tcp, &fqdn, alpn, headers).await
}

/// `wss://<node fqdn>` through the Funnel entry (a public client).
pub async fn wss_funnel(
    net: &Testnet,
    to: &str,
    headers: &[(&str, &str)],
) -> Result<(Wss, Option<Vec<u8>>), String> {
    let entry = &net.manifest.funnel[to];
    let tcp = TcpStream::connect(&entry.address)
        .await
        .map_err(|e| format!("funnel entry: {e}"))?;
    let fqdn = net.node(to).fqdn.clone();
    wss_over(net, tcp, &fqdn, &["h2", "http/1.1"], headers).await
}

/// GET `/readyz` on the gateway's loopback port.
pub async fn readyz(port: u16) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap()
}

/// Waits (bounded) until `/readyz` reports exposure `want`; returns the exposure object.
pub async fn wait_exposure(port: u16, want: &str, bound: Duration) -> Value {
    let what = format!("exposure {want}");
    wait_readyz(port, &what, bound, |e| e["tailscale"] == want).await
}

/// Waits (bounded) until `/readyz` reports `exposure.loopback.state == want`; returns that
/// `loopback` object.
pub async fn wait_readyz_loopback(port: u16, want: &str, bound: Duration) -> Value {
    let what = format!("loopback {want}");
    wait_readyz(port, &what, bound, |e| e["loopback"]["state"] == want).await["loopback"].clone()
}

/// Polls `/readyz` (bounded) until its `exposure` object satisfies `done`; returns it.
async fn wait_readyz(
    port: u16,
    what: &str,
    bound: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let exp = readyz(port).await["exposure"].clone();
        if done(&exp) {
            return exp;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never {what}: {exp}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// POSTs `body` to the harness control API at `path` (e.g. `/certs`); returns the HTTP status.
pub async fn control_post(net: &Testnet, path: &str, body: &Value) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = net
        .manifest
        .control_api
        .strip_prefix("http://")
        .expect("control API is plain http");
    let body = body.to_string();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf);
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    status.unwrap_or_else(|| panic!("control API answer: {text}"))
}

/// Re-seeds `node`'s HTTPS leaf (harness CA) with NotBefore = now − `age` and NotAfter =
/// NotBefore + `valid_for`; the node's tailscale serves it as long as it is within that window
/// (sidecar/testnet/ca.go `leafValidity`).
pub async fn seed_node_cert(net: &Testnet, node: &str, age: Duration, valid_for: Duration) {
    let n = net.node(node);
    let body = json!({"fqdn": n.fqdn, "stateDir": n.state_dir, "age": age.as_secs(), "validFor": valid_for.as_secs()});
    assert_eq!(
        control_post(net, "/certs", &body).await,
        204,
        "POST /certs {body}"
    );
}

/// Waits (bounded) until `/readyz` reports the reachability line `line` (`tailnet` or `public`)
/// in `state`; returns the exposure object.
pub async fn wait_reach(port: u16, line: &str, state: &str, bound: Duration) -> Value {
    let what = format!("{line} reachability {state}");
    wait_readyz(port, &what, bound, |e| {
        e["reachability"][line]["state"] == state
    })
    .await
}

/// `gateway.tailscale` (mode serve) for a gateway that supervises its own `clawgate-tsnet`
/// (`tsnet`) as the pre-authorised sidecar node `name` (`Testnet::start(&["--sidecar-node",
/// name])`); the auth key goes to a 0600 file in the testnet dir, never into the config.
pub fn own_sidecar_config(net: &Testnet, name: &str, tsnet: &Path) -> Value {
    use std::os::unix::fs::PermissionsExt;
    let m = &net.manifest;
    let key = net.dir.path().join("authkey");
    std::fs::write(&key, &m.auth_key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    json!({"mode": "serve", "sidecar": {
        "binary": tsnet, "hostname": name, "stateDir": m.sidecars[name].state_dir,
        "authKeyFile": key, "controlUrl": m.control_url}})
}

/// A loopback TCP relay that carries every connection through `via`'s SOCKS5 proxy to
/// `host:port` inside the tailnet, so unmodified programs (the real OpenClaw node host) can be a
/// tailnet peer of that node. Runs until the returned task is aborted (or the test ends).
pub async fn socks_relay(
    net: &Testnet,
    via: &str,
    host: &str,
    port: u16,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let s = net.node(via).socks5.as_ref().expect("node has SOCKS5");
    let proxy: SocketAddr = s.address.parse().unwrap();
    let creds = s.username.clone().zip(s.password.clone());
    let target = (host.to_owned(), port);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = l.accept().await {
            let (target, creds) = (target.clone(), creds.clone());
            tokio::spawn(async move {
                let t = (target.0.as_str(), target.1);
                let out = match &creds {
                    Some((u, p)) => {
                        tokio_socks::tcp::Socks5Stream::connect_with_password(proxy, t, u, p).await
                    }
                    None => tokio_socks::tcp::Socks5Stream::connect(proxy, t).await,
                };
                if let Ok(out) = out {
                    let mut out = out.into_inner();
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    (addr, task)
}

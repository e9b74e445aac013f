//! The real LocalAPI client and sidecar supervisor against the offline tailnet of
//! `clawgate-testnet` (real tsnet nodes, testcontrol, DERP, test CA; optionally a real tailscaled
//! on a Unix socket). Binaries: `CLAWGATE_TESTNET_BIN` / `CLAWGATE_TSNET_BIN` /
//! `CLAWGATE_TAILSCALED_BIN`, else `sidecar/bin/<name>`. Missing binaries skip these tests, or
//! fail them when `CLAWGATE_REQUIRE_TESTNET=1` (CI). Every test owns its tailnet in a temp dir
//! and stops it (stdin EOF, then kill) on the way out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use clawgate::tailscale::{
    preflight, ClaimError, EndpointSpec, ForegroundSession, FunnelPort, HttpHandler, LocalApi,
    LocalApiClient, LocalApiError, PreflightIssue, ServeConfig, Sidecar, SidecarConfig,
    SidecarSpawn, SidecarState, TailscaleMode, TcpPortHandler, WebServerConfig,
};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Env var naming the harness binary.
const ENV_TESTNET_BIN: &str = "CLAWGATE_TESTNET_BIN";
/// Env var naming the sidecar binary.
const ENV_TSNET_BIN: &str = "CLAWGATE_TSNET_BIN";
/// Env var naming a tailscaled binary (its `tailscale` CLI must sit next to it).
const ENV_TAILSCALED_BIN: &str = "CLAWGATE_TAILSCALED_BIN";
/// Set to 1 in CI: missing binaries are a failure, not a skip.
const ENV_REQUIRE: &str = "CLAWGATE_REQUIRE_TESTNET";
/// Bound on a whole test (the tailnet starts in well under a second; tailscaled login ~seconds).
const TEST_BOUND: Duration = Duration::from_secs(120);
/// Bound on waiting for a state change (foreground cleanup, sidecar restart).
const STEP: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    #[serde(rename = "controlURL")]
    control_url: String,
    ca_cert_path: PathBuf,
    auth_key: String,
    env: HashMap<String, String>,
    nodes: HashMap<String, NodeInfo>,
    #[serde(default)]
    sidecars: HashMap<String, SidecarInfo>,
}

#[derive(Debug, Deserialize)]
struct NodeInfo {
    fqdn: String,
    ips: Vec<IpAddr>,
    login: String,
    tagged: bool,
    localapi: EndpointSpec,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SidecarInfo {
    hostname: String,
    fqdn: String,
    state_dir: PathBuf,
}

impl Manifest {
    fn node(&self, name: &str) -> &NodeInfo {
        self.nodes
            .get(name)
            .unwrap_or_else(|| panic!("manifest has no node {name}"))
    }

    fn client(&self, name: &str) -> LocalApiClient {
        LocalApiClient::new(self.node(name).localapi.to_endpoint().unwrap())
    }
}

/// One running `clawgate-testnet`.
struct Testnet {
    child: Child,
    manifest: Manifest,
    dir: tempfile::TempDir,
}

fn binary(env: &str, name: &str) -> Option<PathBuf> {
    let path = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("sidecar/bin")
            .join(name)
    });
    path.is_file().then_some(path)
}

/// The binary, or `None` after printing a skip — or a panic when the testnet is required.
fn required(env: &str, name: &str) -> Option<PathBuf> {
    let found = binary(env, name);
    if found.is_none() {
        let msg = format!("{name} not found: set {env} or build sidecar/bin/{name} (make deps)");
        if std::env::var(ENV_REQUIRE).as_deref() == Ok("1") {
            panic!("{ENV_REQUIRE}=1 but {msg}");
        }
        eprintln!("SKIPPED (testnet): {msg}");
    }
    found
}

impl Testnet {
    async fn start(extra: &[&std::ffi::OsStr]) -> Option<Self> {
        let bin = required(ENV_TESTNET_BIN, "clawgate-testnet")?;
        let dir = tempfile::tempdir().unwrap();
        let manifest_path = dir.path().join("manifest.json");
        let mut child = Command::new(bin)
            .arg("--manifest")
            .arg(&manifest_path)
            .arg("--dir")
            .arg(dir.path().join("net"))
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(TEST_BOUND, lines.next_line()).await;
        let line = line
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

    async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        drop(self.dir);
    }
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_BOUND, f)
        .await
        .expect("test finished in time")
}

#[tokio::test]
async fn status_and_whois_over_tsnet_loopback() {
    bounded(async {
        let Some(net) = Testnet::start(&[]).await else {
            return;
        };
        let m = &net.manifest;
        let london = m.client("london");
        let st = london.status().await.unwrap();
        assert_eq!(st.backend_state.name(), "Running");
        assert_eq!(st.fqdn(), Some(m.node("london").fqdn.as_str()));
        let me = st.self_node.as_ref().unwrap();
        assert_eq!(me.dns_name, format!("{}.", m.node("london").fqdn));
        assert_eq!(st.tailscale_ips, m.node("london").ips);

        let vienna = m.node("vienna");
        let who = london.whois(vienna.ips[0].into()).await.unwrap();
        assert_eq!(
            who.user().map(|u| u.login_name.as_str()),
            Some(vienna.login.as_str())
        );
        let who6 = london.whois(vienna.ips[1].into()).await.unwrap();
        assert_eq!(who6.user().unwrap().login_name, vienna.login);

        let tagged = m.node("tagged");
        assert!(tagged.tagged);
        let who = london.whois(tagged.ips[0].into()).await.unwrap();
        assert!(who.is_tagged() && who.user().is_none(), "{who:?}");

        let with_port = std::net::SocketAddr::new(vienna.ips[0], 41641);
        let who = london.whois(with_port.into()).await.unwrap();
        assert_eq!(who.user().unwrap().login_name, vienna.login);

        let err = london
            .whois("100.127.1.1".parse::<IpAddr>().unwrap().into())
            .await
            .unwrap_err();
        assert_eq!(err.http_status(), Some(404), "{err}");
        let prefs = london.prefs().await.unwrap();
        assert_eq!(prefs.hostname, "london");

        let own = london.self_status().await.unwrap();
        assert!(own.peer.is_empty() && !st.peer.is_empty());
        // testcontrol grants https, funnel and funnel-ports 8080,443.
        let check = |mode, port| preflight(&own, Some(&prefs), mode, port);
        assert_eq!(check(TailscaleMode::Serve, FunnelPort::P443), vec![]);
        assert_eq!(check(TailscaleMode::Funnel, FunnelPort::P443), vec![]);
        let issues = check(TailscaleMode::Funnel, FunnelPort::P8443);
        assert!(
            matches!(
                issues[..],
                [PreflightIssue::FunnelPortNotAllowed { port: 8443, .. }]
            ),
            "{issues:?}"
        );
        net.stop().await;
    })
    .await;
}

fn openssl(args: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl CLI (make deps)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn certificate_chains_to_the_test_ca_and_matches_its_key() {
    bounded(async {
        let Some(net) = Testnet::start(&[]).await else {
            return;
        };
        let m = &net.manifest;
        let fqdn = &m.node("london").fqdn;
        let pair = m.client("london").cert_pair(fqdn).await.unwrap();
        const END: &str = "-----END CERTIFICATE-----";
        let cut = pair.cert_pem.find(END).expect("a certificate") + END.len();
        let (leaf, rest) = pair.cert_pem.split_at(cut);
        let d = net.dir.path();
        std::fs::write(d.join("leaf.pem"), leaf).unwrap();
        std::fs::write(d.join("key.pem"), &pair.key_pem).unwrap();
        let ca = m.ca_cert_path.to_str().unwrap();
        let leaf_path = d.join("leaf.pem");
        let leaf_path = leaf_path.to_str().unwrap();
        let mut verify = vec!["verify", "-CAfile", ca];
        let rest_path = d.join("rest.pem");
        if rest.contains("BEGIN CERTIFICATE") {
            std::fs::write(&rest_path, rest).unwrap();
            verify.extend(["-untrusted", rest_path.to_str().unwrap()]);
        }
        verify.extend(["-verify_hostname", fqdn, leaf_path]);
        assert!(openssl(&verify).contains(": OK"));
        let cert_key = openssl(&["x509", "-noout", "-pubkey", "-in", leaf_path]);
        let key = openssl(&[
            "pkey",
            "-pubout",
            "-in",
            d.join("key.pem").to_str().unwrap(),
        ]);
        assert_eq!(cert_key, key, "key PEM belongs to the leaf");
        let err = m
            .client("london")
            .cert_pair("vienna.tail-scale.ts.net")
            .await
            .unwrap_err();
        assert!(err.http_status().is_some_and(|s| s >= 400), "{err}");
        net.stop().await;
    })
    .await;
}

fn text_site(fqdn: &str, port: &str, text: &str) -> ServeConfig {
    let mut cfg = ServeConfig::default();
    cfg.tcp.insert(
        port.into(),
        TcpPortHandler {
            https: true,
            ..Default::default()
        },
    );
    let handler = HttpHandler {
        text: Some(text.into()),
        ..Default::default()
    };
    let site = WebServerConfig {
        handlers: [("/".to_owned(), handler)].into(),
        ..Default::default()
    };
    cfg.web.insert(format!("{fqdn}:{port}"), site);
    cfg
}

/// Serve-config ETag semantics and a Foreground claim that vanishes with its watch.
async fn serve_and_foreground(api: &dyn LocalApi, fqdn: &str) {
    let (cfg, etag) = api.serve_config().await.unwrap();
    assert!(cfg.is_empty(), "fresh node: {cfg:?}");
    let background = text_site(fqdn, "8443", "foreign");
    api.set_serve_config(&background, Some(&etag))
        .await
        .unwrap();
    let err = api
        .set_serve_config(&ServeConfig::default(), Some(&etag))
        .await
        .unwrap_err();
    assert!(
        matches!(err, LocalApiError::PreconditionFailed { .. }),
        "{err}"
    );
    let (now, etag2) = api.serve_config().await.unwrap();
    assert_eq!(now, background, "stale write changed nothing");
    assert_ne!(etag2, etag);

    let session = ForegroundSession::open(api).await.unwrap();
    let err = session
        .claim(api, &text_site(fqdn, "8443", "mine"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClaimError::PortInUse { .. }), "{err}");
    session
        .claim(api, &text_site(fqdn, "443", "mine"))
        .await
        .unwrap();
    let (now, _) = api.serve_config().await.unwrap();
    assert_eq!(
        now.foreground.get(session.id()),
        Some(&text_site(fqdn, "443", "mine"))
    );
    assert_eq!(now.tcp, background.tcp, "background entry kept");
    drop(session);
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let (now, _) = api.serve_config().await.unwrap();
        if now.foreground.is_empty() {
            assert_eq!(now, background);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "foreground entry outlived its watch: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn serve_config_etag_and_foreground_lifetime_over_tsnet() {
    bounded(async {
        let Some(net) = Testnet::start(&[]).await else {
            return;
        };
        let london = net.manifest.client("london");
        serve_and_foreground(&london, &net.manifest.node("london").fqdn).await;
        net.stop().await;
    })
    .await;
}

#[tokio::test]
async fn real_tailscaled_over_its_unix_socket() {
    bounded(async {
        let Some(tailscaled) = required(ENV_TAILSCALED_BIN, "tailscaled") else {
            return;
        };
        let Some(net) = Testnet::start(&["--tailscaled".as_ref(), tailscaled.as_os_str()]).await
        else {
            return;
        };
        let m = &net.manifest;
        let daemon = m.node("daemon");
        assert_eq!(daemon.localapi.network, "unix");
        let api = m.client("daemon");
        let st = api.status().await.unwrap();
        assert_eq!(st.fqdn(), Some(daemon.fqdn.as_str()));
        let who = api.whois(m.node("vienna").ips[0].into()).await.unwrap();
        assert_eq!(who.user().unwrap().login_name, m.node("vienna").login);
        serve_and_foreground(&api, &daemon.fqdn).await;
        net.stop().await;
    })
    .await;
}

/// The sidecar binary and a tailnet with the pre-authorised sidecar name `gwside`.
async fn sidecar_testnet() -> Option<(PathBuf, Testnet)> {
    let tsnet = required(ENV_TSNET_BIN, "clawgate-tsnet")?;
    let net = Testnet::start(&["--sidecar-node".as_ref(), "gwside".as_ref()]).await?;
    Some((tsnet, net))
}

fn running_pid(s: &SidecarState) -> Option<u32> {
    match s {
        SidecarState::Running { pid, .. } => *pid,
        _ => None,
    }
}

#[tokio::test]
async fn supervisor_restarts_the_real_sidecar_after_kill() {
    bounded(async {
        let Some((tsnet, net)) = sidecar_testnet().await else {
            return;
        };
        let m = &net.manifest;
        let info = &m.sidecars["gwside"];
        let key_file = net.dir.path().join("authkey");
        std::fs::write(&key_file, &m.auth_key).unwrap();
        let cfg = SidecarConfig {
            binary: Some(tsnet),
            hostname: Some(info.hostname.clone()),
            state_dir: Some(info.state_dir.clone()),
            auth_key_file: Some(key_file),
            control_url: Some(m.control_url.clone()),
            ..SidecarConfig::default()
        };
        let mut spec = SidecarSpawn::from_config(&cfg, net.dir.path());
        spec.env = m.env.iter().map(|(k, v)| (k.into(), v.into())).collect();
        let cancel = tokio_util::sync::CancellationToken::new();
        let sidecar = Sidecar::spawn(spec, &cancel);
        let client = sidecar.client();
        let mut state = sidecar.state();
        let first = tokio::time::timeout(STEP, state.wait_for(|s| running_pid(s).is_some()))
            .await
            .expect("sidecar up in time")
            .unwrap()
            .clone();
        let first = running_pid(&first).unwrap();
        let st = client.status().await.unwrap();
        assert_eq!(st.fqdn(), Some(info.fqdn.as_str()));
        let route = text_site(&info.fqdn, "443", "gateway");
        let mut session = ForegroundSession::open(&client).await.unwrap();
        session.claim(&client, &route).await.unwrap();

        let killed = std::process::Command::new("kill")
            .args(["-KILL", &first.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let why = tokio::time::timeout(STEP, session.closed()).await;
        assert!(why.expect("watch ended with the sidecar").is_transient());
        let again = tokio::time::timeout(
            STEP,
            state.wait_for(|s| running_pid(s).is_some_and(|p| p != first)),
        )
        .await
        .expect("sidecar restarted in time")
        .unwrap()
        .clone();
        assert!(
            matches!(again, SidecarState::Running { restarts: 1, .. }),
            "{again:?}"
        );
        let st = client.status().await.unwrap();
        assert_eq!(
            st.fqdn(),
            Some(info.fqdn.as_str()),
            "same client follows the new endpoint"
        );
        // The route died with the process (tsnet's first Up also wipes serve state): claim again.
        let (cfg, _) = client.serve_config().await.unwrap();
        assert!(cfg.is_empty(), "{cfg:?}");
        let session = ForegroundSession::open(&client).await.unwrap();
        session.claim(&client, &route).await.unwrap();
        let (cfg, _) = client.serve_config().await.unwrap();
        assert_eq!(cfg.foreground.get(session.id()), Some(&route));
        drop(session);
        tokio::time::timeout(STEP, sidecar.shutdown())
            .await
            .unwrap();
        assert!(matches!(
            client.status().await,
            Err(LocalApiError::Unavailable(_))
        ));
        net.stop().await;
    })
    .await;
}

#[tokio::test]
async fn attach_follows_a_real_sidecars_handshake_file() {
    bounded(async {
        let Some((tsnet, net)) = sidecar_testnet().await else {
            return;
        };
        let m = &net.manifest;
        let info = &m.sidecars["gwside"];
        let file = net.dir.path().join("handshake.json");
        // Run by "someone else" (as a systemd unit would), writing its handshake to a file.
        let mut child = Command::new(tsnet)
            .args([
                "--hostname",
                &info.hostname,
                "--control-url",
                &m.control_url,
            ])
            .arg("--state-dir")
            .arg(&info.state_dir)
            .arg("--handshake-file")
            .arg(&file)
            .envs(&m.env)
            .env("TS_AUTHKEY", &m.auth_key)
            .stdin(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let cancel = tokio_util::sync::CancellationToken::new();
        let sidecar = Sidecar::attach(file, &cancel);
        assert!(
            sidecar.wait_endpoint(STEP).await.is_some(),
            "handshake file appeared"
        );
        let st = sidecar.client().status().await.unwrap();
        assert_eq!(st.fqdn(), Some(info.fqdn.as_str()));
        assert!(matches!(
            *sidecar.state().borrow(),
            SidecarState::Running { pid: None, .. }
        ));
        sidecar.shutdown().await;
        drop(child.stdin.take());
        let exited = tokio::time::timeout(STEP, child.wait())
            .await
            .expect("sidecar exits on stdin EOF");
        assert!(exited.unwrap().success());
        net.stop().await;
    })
    .await;
}

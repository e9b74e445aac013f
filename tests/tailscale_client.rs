//! The real `LocalApiClient` against `TailscaledDouble`, a local hyper server standing in for
//! tailscaled's LocalAPI at the edge (real Unix socket and real loopback TCP). The double enforces
//! the rules of tailscale.md §1.2/§1.5 (Host, Origin/Referer, tsnet's Sec-Tailscale + Basic auth),
//! ETag/If-Match on serve-config, and streams NDJSON in awkward chunks. The same client is run
//! against real tsnet nodes in `tailscale_testnet.rs`.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use clawgate::tailscale::{
    notify_mask, ETag, Endpoint, ForegroundSession, LocalApi, LocalApiClient, LocalApiError,
    ServeConfig, TailscaleConfig, TailscaleRuntime,
};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const TEST_BOUND: Duration = Duration::from_secs(20);
const PASSWORD: &str = "0123456789abcdef0123456789abcdef";
const VIENNA: &str = "100.64.0.2";

type Body = BoxBody<Bytes, Infallible>;

/// Headers the double saw on one request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    host: Option<String>,
    origin_or_referer: bool,
    sec_tailscale: Option<String>,
    authorization: Option<String>,
}

#[derive(Default)]
struct Shared {
    seen: Vec<Seen>,
    serve: String,
    bus_closed: u32,
}

/// Test double of tailscaled's LocalAPI (see module docs).
struct TailscaledDouble {
    shared: Arc<Mutex<Shared>>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl TailscaledDouble {
    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap()
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Starts serving on `listener`; `password` turns on tsnet Loopback() rules.
    fn start(listener: Listener, password: Option<&'static str>) -> Self {
        let shared = Arc::new(Mutex::new(Shared {
            serve: "null".into(),
            ..Shared::default()
        }));
        let (cancel, tracker) = (CancellationToken::new(), TaskTracker::new());
        let (s, c, t) = (shared.clone(), cancel.clone(), tracker.clone());
        tracker.spawn(async move {
            loop {
                let io: Box<dyn Io> = tokio::select! {
                    () = c.cancelled() => break,
                    io = listener.accept() => io,
                };
                let (s2, t2) = (s.clone(), t.clone());
                let svc = hyper::service::service_fn(move |req| {
                    let (s3, t3) = (s2.clone(), t2.clone());
                    async move { Ok::<_, Infallible>(handle(req, password, s3, t3).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(io), svc);
                let c2 = c.clone();
                t.spawn(async move {
                    tokio::select! { _ = conn => {}, () = c2.cancelled() => {} }
                });
            }
        });
        Self {
            shared,
            cancel,
            tracker,
        }
    }
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

enum Listener {
    Unix(tokio::net::UnixListener),
    Tcp(tokio::net::TcpListener),
}

impl Listener {
    async fn accept(&self) -> Box<dyn Io> {
        match self {
            Self::Unix(l) => Box::new(l.accept().await.unwrap().0),
            Self::Tcp(l) => Box::new(l.accept().await.unwrap().0),
        }
    }
}

fn answer(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    r
}

fn header(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// The access rules of tailscaled (`validHost`, CSRF) and of tsnet's Loopback().
fn check_access(req: &Request<Incoming>, password: Option<&str>) -> Option<Response<Body>> {
    let host_ok = header(req, "host").is_none_or(|h| h == "local-tailscaled.sock");
    if !host_ok || req.headers().contains_key("origin") || req.headers().contains_key("referer") {
        return Some(answer(StatusCode::FORBIDDEN, "invalid localapi request\n"));
    }
    let password = password?;
    if header(req, "sec-tailscale").as_deref() != Some("localapi") {
        return Some(answer(
            StatusCode::FORBIDDEN,
            "missing 'Sec-Tailscale: localapi' header\n",
        ));
    }
    let Some(auth) = header(req, "authorization") else {
        return Some(answer(StatusCode::UNAUTHORIZED, "auth required\n"));
    };
    let expected = base64::engine::general_purpose::STANDARD.encode(format!(":{password}"));
    (auth != format!("Basic {expected}")).then(|| answer(StatusCode::FORBIDDEN, "bad password\n"))
}

async fn handle(
    req: Request<Incoming>,
    password: Option<&str>,
    shared: Arc<Mutex<Shared>>,
    tracker: TaskTracker,
) -> Response<Body> {
    let path = req.uri().path_and_query().unwrap().as_str().to_owned();
    shared.lock().unwrap().seen.push(Seen {
        path: path.clone(),
        host: header(&req, "host"),
        origin_or_referer: req.headers().contains_key("origin")
            || req.headers().contains_key("referer"),
        sec_tailscale: header(&req, "sec-tailscale"),
        authorization: header(&req, "authorization"),
    });
    if let Some(denied) = check_access(&req, password) {
        return denied;
    }
    let route = path.trim_start_matches("/localapi/v0/");
    match (req.method().as_str(), route) {
        ("GET", "status") => answer(StatusCode::OK, fixture("testnet_status.json")),
        ("GET", r) if r == format!("whois?addr={VIENNA}") => {
            answer(StatusCode::OK, fixture("testnet_whois_vienna.json"))
        }
        ("GET", r) if r.starts_with("whois?addr=") => {
            answer(StatusCode::NOT_FOUND, "no match for IP:port\n")
        }
        ("GET", "serve-config") => {
            let body = shared.lock().unwrap().serve.clone();
            let mut r = answer(StatusCode::OK, body.clone());
            let tag = hex::encode(Sha256::digest(body.as_bytes()));
            r.headers_mut().insert("etag", tag.parse().unwrap());
            r
        }
        ("POST", "serve-config") => post_serve(req, &shared).await,
        ("GET", "watch-ipn-bus?mask=2") => stream_bus(shared, &tracker),
        ("GET", "cert/london.tail-scale.ts.net?type=pair") => {
            answer(StatusCode::OK, "-----BEGIN PRIVATE KEY-----\nK\n-----END PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\nC\n-----END CERTIFICATE-----\n")
        }
        _ => answer(StatusCode::NOT_FOUND, "404 page not found\n"),
    }
}

async fn post_serve(req: Request<Incoming>, shared: &Mutex<Shared>) -> Response<Body> {
    let if_match = header(&req, "if-match");
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let mut s = shared.lock().unwrap();
    let current = hex::encode(Sha256::digest(s.serve.as_bytes()));
    if if_match.is_some_and(|m| !m.is_empty() && m != current) {
        return answer(StatusCode::PRECONDITION_FAILED, "etag mismatch\n");
    }
    if String::from_utf8_lossy(&body).contains("shields.example:443") {
        return answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":"Unable to turn on Funnel while shields-up is enabled"}"#,
        );
    }
    s.serve = String::from_utf8(body.to_vec()).unwrap();
    answer(StatusCode::OK, "")
}

/// NDJSON in chunks that split lines (and a UTF-8 sequence) at awkward places; counts closes.
fn stream_bus(shared: Arc<Mutex<Shared>>, tracker: &TaskTracker) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let text = concat!(
        r#"{"Version":"1.102.3","SessionID":"sess-1","State":6}"#,
        "\n",
        r#"{"Health":{"Warnings":{"x":{"Text":"Zürich"}}}}"#,
        "\n",
        r#"{"State":2,"BrowseToURL":"http://login"}"#,
        "\n"
    );
    tracker.spawn(async move {
        for chunk in text.as_bytes().chunks(5) {
            if tx.send(Bytes::copy_from_slice(chunk)).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tx.closed().await;
        shared.lock().unwrap().bus_closed += 1;
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Response::new(BodyExt::boxed(StreamBody::new(stream)))
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/tailscale/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn unix_double() -> (TailscaledDouble, LocalApiClient, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tailscaled.sock");
    let l = tokio::net::UnixListener::bind(&path).unwrap();
    let double = TailscaledDouble::start(Listener::Unix(l), None);
    (double, LocalApiClient::new(Endpoint::Unix(path)), dir)
}

async fn tcp_double(client_password: &str) -> (TailscaledDouble, LocalApiClient) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let double = TailscaledDouble::start(Listener::Tcp(l), Some(PASSWORD));
    let ep = Endpoint::tcp(addr, client_password).unwrap();
    (double, LocalApiClient::new(ep))
}

fn bounded<F: std::future::Future>(f: F) -> tokio::time::Timeout<F> {
    tokio::time::timeout(TEST_BOUND, f)
}

#[tokio::test]
async fn unix_socket_status_whois_and_headers() {
    bounded(async {
        let (double, client, _dir) = unix_double().await;
        let st = client.status().await.unwrap();
        assert_eq!(st.fqdn(), Some("london.tail-scale.ts.net"));
        let vienna: IpAddr = VIENNA.parse().unwrap();
        let who = client.whois(vienna.into()).await.unwrap();
        assert!(who.user().is_some());
        let err = client.whois("100.64.9.9:80".parse::<std::net::SocketAddr>().unwrap().into()).await.unwrap_err();
        assert!(matches!(err, LocalApiError::Status { status: 404, ref message } if message == "no match for IP:port"), "{err}");
        {
            let s = double.shared();
            assert_eq!(s.seen.len(), 3);
            assert_eq!(s.seen[2].path, "/localapi/v0/whois?addr=100.64.9.9%3A80");
            for seen in &s.seen {
                assert_eq!(seen.host.as_deref(), Some("local-tailscaled.sock"), "{seen:?}");
                assert!(!seen.origin_or_referer);
                assert_eq!(seen.sec_tailscale.as_deref(), Some("localapi"));
                assert_eq!(seen.authorization, None, "no credentials on a Unix socket");
            }
        }
        double.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn tcp_sends_basic_auth_and_sec_tailscale_and_keeps_refusals() {
    bounded(async {
        let (double, client) = tcp_double(PASSWORD).await;
        client.status().await.unwrap();
        let pair = client.cert_pair("london.tail-scale.ts.net").await.unwrap();
        assert!(pair.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pair.key_pem.contains("PRIVATE KEY"));
        let auth = double.shared().seen[0].authorization.clone().unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(decoded, format!(":{PASSWORD}").as_bytes());
        double.stop().await;

        let (double, wrong) = tcp_double("not-the-password").await;
        let err = wrong.status().await.unwrap_err();
        assert!(matches!(err, LocalApiError::Status { status: 403, ref message } if message == "bad password"), "{err}");
        assert!(!err.is_transient());
        double.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn serve_config_etag_conflict_and_error_text() {
    bounded(async {
        let (double, client, _dir) = unix_double().await;
        let (cfg, etag) = client.serve_config().await.unwrap();
        assert!(cfg.is_empty(), "null decodes as empty");
        let foreign = r#"{"TCP":{"22":{"TCPForward":"127.0.0.1:22","Future":1}},"Services":{"svc:x":{"Tun":true}}}"#;
        let foreign_cfg: ServeConfig = serde_json::from_str(foreign).unwrap();
        client.set_serve_config(&foreign_cfg, Some(&etag)).await.unwrap();
        // The stale ETag now loses.
        let err = client.set_serve_config(&ServeConfig::default(), Some(&etag)).await.unwrap_err();
        assert!(matches!(err, LocalApiError::PreconditionFailed { ref message } if message == "etag mismatch"), "{err}");
        assert_eq!(err.http_status(), Some(412));
        // Read-modify-write keeps the foreign entry and its unknown fields.
        let (mut cfg, etag) = client.serve_config().await.unwrap();
        cfg.tcp.insert("443".into(), Default::default());
        cfg.tcp.get_mut("443").unwrap().tcp_forward = Some("127.0.0.1:9".into());
        client.set_serve_config(&cfg, Some(&etag)).await.unwrap();
        let stored: serde_json::Value = serde_json::from_str(&double.shared().serve).unwrap();
        assert_eq!(stored["TCP"]["22"]["Future"], 1);
        assert_eq!(stored["Services"]["svc:x"]["Tun"], true);
        // A JSON error keeps status and Tailscale's text.
        cfg.allow_funnel.insert("shields.example:443".into(), true);
        let err = client.set_serve_config(&cfg, None).await.unwrap_err();
        assert!(matches!(err, LocalApiError::Status { status: 500, ref message } if message.contains("shields-up")), "{err}");
        assert_eq!(ETag(String::new()).to_string(), "");
        double.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn ipn_bus_parses_chunked_ndjson_and_closes_on_drop() {
    bounded(async {
        let (double, client, _dir) = unix_double().await;
        let mut session = ForegroundSession::open(&client).await.unwrap();
        assert_eq!(session.id(), "sess-1");
        let health = session.next().await.unwrap().unwrap();
        assert!(health.health.is_some());
        let login = session.next().await.unwrap().unwrap();
        assert_eq!(login.browse_to_url.as_deref(), Some("http://login"));
        assert_eq!(double.shared().bus_closed, 0);
        drop(session);
        for _ in 0..200 {
            if double.shared().bus_closed == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            double.shared().bus_closed,
            1,
            "the server saw the watch close"
        );
        assert_eq!(
            double.shared().seen.last().unwrap().path,
            format!(
                "/localapi/v0/watch-ipn-bus?mask={}",
                notify_mask::INITIAL_STATE
            )
        );
        double.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn unreachable_and_not_yet_available_endpoints_are_transient() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let client = LocalApiClient::new(Endpoint::Unix(dir.path().join("absent.sock")));
        let err = client.status().await.unwrap_err();
        assert!(
            matches!(err, LocalApiError::Connect { .. }) && err.is_transient(),
            "{err}"
        );
        let (tx, rx) = tokio::sync::watch::channel(None);
        let following = LocalApiClient::following(rx);
        let err = following.prefs().await.unwrap_err();
        assert!(matches!(err, LocalApiError::Unavailable(_)), "{err}");
        let (double, _unix, dir2) = unix_double().await;
        tx.send_replace(Some(Endpoint::Unix(dir2.path().join("tailscaled.sock"))));
        assert!(following.status().await.is_ok());
        double.stop().await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn runtime_from_config_uses_the_configured_system_socket() {
    bounded(async {
        let (double, _client, dir) = unix_double().await;
        let sock = dir.path().join("tailscaled.sock");
        let json = format!(
            r#"{{"mode":"serve","socket":{:?}}}"#,
            sock.to_str().unwrap()
        );
        let cfg: TailscaleConfig = serde_json::from_str(&json).unwrap();
        cfg.validate().unwrap();
        let cancel = CancellationToken::new();
        let rt = TailscaleRuntime::start(&cfg, dir.path(), &cancel).expect("serve mode runs");
        let st = rt.api().status().await.unwrap();
        assert_eq!(st.short_host(), Some("london"));
        let report = rt.source().report();
        assert_eq!((report.backend, report.state), ("system", "configured"));
        assert_eq!(report.endpoint, Some(format!("unix:{}", sock.display())));
        rt.shutdown().await;
        double.stop().await;
    })
    .await
    .unwrap();
}

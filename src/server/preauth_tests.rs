//! Timer logic of the HTTP phase under `tokio::time::pause` (no real sleeps).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

const HANDSHAKE: Duration = Duration::from_secs(10);

fn status_svc(
    status: StatusCode,
) -> impl Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
> + Send {
    service_fn(move |_req| async move {
        let mut r = Response::new(Full::new(Bytes::from_static(b"x")));
        *r.status_mut() = status;
        Ok::<_, Infallible>(close_on_refusal(r))
    })
}

/// Runs [`drive`] on one end of a duplex pipe; returns the client end and the server task.
fn serve(
    limits: PhaseLimits,
    status: StatusCode,
    evicted: CancellationToken,
) -> (DuplexStream, tokio::task::JoinHandle<(Ended, Duration)>) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let task = tokio::spawn(async move {
        let t0 = Instant::now();
        let e = drive(
            server,
            status_svc(status),
            limits,
            evicted,
            CancellationToken::new(),
        )
        .await;
        (e, t0.elapsed())
    });
    (client, task)
}

/// [`serve`] for a live socket under [`HANDSHAKE`] that is never evicted.
fn live(status: StatusCode) -> (DuplexStream, tokio::task::JoinHandle<(Ended, Duration)>) {
    serve(
        PhaseLimits::new(HANDSHAKE, false),
        status,
        CancellationToken::new(),
    )
}

/// Reads until EOF (the server closed) and returns what arrived.
async fn read_to_eof(c: &mut DuplexStream) -> String {
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

const GET: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

#[tokio::test(start_paused = true)]
async fn a_socket_that_never_sends_is_closed_by_the_header_timeout() {
    let (mut c, task) = live(StatusCode::OK);
    assert_eq!(read_to_eof(&mut c).await, "");
    let (ended, took) = task.await.unwrap();
    assert_eq!(ended, Ended::Done);
    assert_eq!(took, HEADER_READ_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn a_slowloris_head_is_closed_by_the_header_timeout() {
    let (mut c, task) = live(StatusCode::OK);
    let trickle = tokio::spawn(async move {
        for b in GET.iter().take(GET.len() - 1) {
            if c.write_all(&[*b]).await.is_err() {
                return c;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        c
    });
    let (ended, took) = task.await.unwrap();
    assert_eq!(ended, Ended::Done);
    assert!(
        took <= HEADER_READ_TIMEOUT + Duration::from_secs(1),
        "{took:?}"
    );
    let mut c = trickle.await.unwrap();
    assert_eq!(
        read_to_eof(&mut c).await,
        "",
        "no response to a partial head"
    );
}

#[tokio::test(start_paused = true)]
async fn keep_alive_requests_end_at_the_whole_phase_deadline() {
    let (mut c, task) = live(StatusCode::OK);
    let client = tokio::spawn(async move {
        let mut answered = 0;
        let mut buf = [0u8; 4096];
        while c.write_all(GET).await.is_ok() {
            match c.read(&mut buf).await {
                Ok(n) if n > 0 => answered += 1,
                _ => break,
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        answered
    });
    let (ended, took) = task.await.unwrap();
    assert_eq!(ended, Ended::Deadline);
    assert_eq!(took, HANDSHAKE);
    let answered = client.await.unwrap();
    assert!((9..=11).contains(&answered), "answered {answered}");
}

#[tokio::test(start_paused = true)]
async fn a_refusal_answers_once_and_closes() {
    let limits = PhaseLimits::new(HANDSHAKE, true);
    assert_eq!(limits.deadline, REFUSAL_WINDOW);
    let (mut c, task) = serve(
        limits,
        StatusCode::SERVICE_UNAVAILABLE,
        CancellationToken::new(),
    );
    c.write_all(GET).await.unwrap();
    c.write_all(GET).await.unwrap();
    let got = read_to_eof(&mut c).await;
    assert!(got.starts_with("HTTP/1.1 503"), "{got}");
    assert!(
        got.to_ascii_lowercase().contains("connection: close"),
        "{got}"
    );
    assert_eq!(
        got.matches("HTTP/1.1").count(),
        1,
        "one response only: {got}"
    );
    let (ended, took) = task.await.unwrap();
    assert_eq!(ended, Ended::Done);
    assert!(
        took < REFUSAL_WINDOW,
        "closed right after the 503, not at the deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn any_4xx_on_a_live_socket_closes_it() {
    let (mut c, task) = live(StatusCode::FORBIDDEN);
    c.write_all(GET).await.unwrap();
    let got = read_to_eof(&mut c).await;
    assert!(got.starts_with("HTTP/1.1 403"), "{got}");
    assert_eq!(task.await.unwrap(), (Ended::Done, Duration::ZERO));
}

#[tokio::test(start_paused = true)]
async fn eviction_closes_at_once() {
    let evicted = CancellationToken::new();
    let (mut c, task) = serve(
        PhaseLimits::new(HANDSHAKE, false),
        StatusCode::OK,
        evicted.clone(),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    evicted.cancel();
    assert_eq!(read_to_eof(&mut c).await, "");
    let (ended, took) = task.await.unwrap();
    assert_eq!(ended, Ended::Evicted);
    assert_eq!(took, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn accept_backoff_doubles_to_its_cap_and_logs_once_per_interval() {
    let mut b = AcceptBackoff::default();
    let t0 = Instant::now();
    let first = b.failure(t0);
    assert_eq!(
        first,
        Failure {
            pause: ACCEPT_BACKOFF_MIN,
            log: Some(0)
        }
    );
    let pauses: Vec<Duration> = (0..12).map(|_| b.failure(t0).pause).collect();
    assert_eq!(pauses[0], ACCEPT_BACKOFF_MIN * 2);
    assert!(pauses.windows(2).all(|w| w[1] >= w[0]));
    assert_eq!(*pauses.last().unwrap(), ACCEPT_BACKOFF_MAX);
    assert_eq!(b.failure(t0 + ACCEPT_LOG_EVERY / 2).log, None);
    let later = b.failure(t0 + ACCEPT_LOG_EVERY);
    assert_eq!(later.log, Some(13), "the suppressed failures are reported");
    b.success();
    assert_eq!(b.failure(t0 + ACCEPT_LOG_EVERY).pause, ACCEPT_BACKOFF_MIN);
}

#[test]
fn limits_never_exceed_the_handshake_timeout() {
    let short = Duration::from_millis(300);
    let l = PhaseLimits::new(short, false);
    assert_eq!((l.header_read, l.deadline), (short, short));
    let r = PhaseLimits::new(short, true);
    assert_eq!((r.header_read, r.deadline), (short, short));
    assert!(!out_of_fds(&std::io::Error::other("x")));
    assert!(out_of_fds(&std::io::Error::from_raw_os_error(
        nix::libc::EMFILE
    )));
}

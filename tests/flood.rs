//! threats.md RL-1, bounded before HTTP: idle sockets, slowloris heads and refused sockets are
//! closed within their bounds, and under a low open-file limit an idle flood does not stop
//! authenticated clients (our client and the real OpenClaw CLI); afterwards the gateway's fds and
//! RSS return to their baseline. Figures are printed (`--nocapture`) for the closing note.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

use common::{bounded, call, operator, Gateway, TOKEN};

const HANDSHAKE_ENV: &str = "OPENCLAW_HANDSHAKE_TIMEOUT_MS";
/// clawgate's per-IP pre-auth budget (protocol.md §1) and, beyond it, as many refusals.
const PER_IP: usize = 32;
/// hyper's header-read timeout in clawgate (`server::preauth::HEADER_READ_TIMEOUT`).
const HEADER_READ: Duration = Duration::from_secs(5);
const UPGRADE_HEAD: &str = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

async fn connect_from(src: Ipv4Addr, port: u16) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::from((src, 0)))?;
    s.connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
}

/// Reads until the server closes `s` (EOF or reset) or `bound` passes; returns how long after
/// `t0` it closed (`None`: still open) and the bytes received.
async fn until_closed(mut s: TcpStream, t0: Instant, bound: Duration) -> (Option<Duration>, String) {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let end = tokio::time::Instant::from_std(t0 + bound);
    loop {
        match tokio::time::timeout_at(end, s.read(&mut buf)).await {
            Err(_) => return (None, String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            Ok(_) => return (Some(t0.elapsed()), String::from_utf8_lossy(&got).into_owned()),
        }
    }
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn idle_sockets_beyond_the_budget_close_at_once_and_the_rest_at_the_timeout() {
    let gw = Gateway::start(&[(HANDSHAKE_ENV, "1500")]);
    bounded(Duration::from_secs(30), async {
        let n = 200;
        let mut watchers = Vec::new();
        for _ in 0..n {
            let s = connect_from(Ipv4Addr::LOCALHOST, gw.port).await.unwrap();
            let t0 = Instant::now();
            watchers.push(tokio::spawn(until_closed(s, t0, Duration::from_secs(5))));
        }
        let mut lived = Vec::new();
        for w in watchers {
            let (closed, got) = w.await.unwrap();
            assert_eq!(got, "", "an idle socket gets no bytes");
            lived.push(closed.expect("every idle socket is closed within 5 s"));
        }
        let at_once = lived.iter().filter(|d| **d < Duration::from_millis(500)).count();
        let held = lived.iter().filter(|d| **d >= Duration::from_millis(1300)).count();
        let max = lived.iter().max().copied().unwrap_or_default();
        eprintln!("idle flood: {n} sockets, {at_once} closed < 0.5 s, {held} held to the 1.5 s timeout, last closed after {max:?}");
        assert!(at_once >= n - 2 * PER_IP, "beyond budget + refusals closed at once: {at_once}");
        assert!(held >= PER_IP, "the budget's {PER_IP} live sockets run to the timeout: {held}");
        assert!(max < Duration::from_millis(2500), "{max:?}");
    })
    .await;
}

#[tokio::test]
async fn slowloris_heads_are_closed_by_the_header_read_timeout() {
    let gw = Gateway::start(&[]); // default 10 s handshake timeout: the header timeout acts first
    bounded(Duration::from_secs(30), async {
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let s = connect_from(Ipv4Addr::LOCALHOST, gw.port).await.unwrap();
            tasks.push(tokio::spawn(async move {
                let t0 = Instant::now();
                let (mut rd, mut wr) = s.into_split();
                let trickle = tokio::spawn(async move {
                    let head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
                    for b in head.iter().chain(std::iter::repeat(&b'a')) {
                        if wr.write_all(&[*b]).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                });
                let mut buf = [0u8; 256];
                let r = tokio::time::timeout(Duration::from_secs(15), rd.read(&mut buf)).await;
                trickle.abort();
                (r.map(|r| r.unwrap_or(0)).ok(), t0.elapsed())
            }));
        }
        for t in tasks {
            let (read, took) = t.await.unwrap();
            assert_eq!(read, Some(0), "closed without a response (after {took:?})");
            assert!(
                took >= HEADER_READ - Duration::from_millis(500)
                    && took <= HEADER_READ + Duration::from_millis(2500),
                "closed by the header-read timeout, not later: {took:?}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn refusals_are_answered_then_closed_right_after() {
    let gw = Gateway::start(&[]);
    bounded(Duration::from_secs(30), async {
        let mut held = Vec::new();
        for _ in 0..PER_IP {
            held.push(connect_from(Ipv4Addr::LOCALHOST, gw.port).await.unwrap());
        }
        let mut s = connect_from(Ipv4Addr::LOCALHOST, gw.port).await.unwrap();
        s.write_all(UPGRADE_HEAD.as_bytes()).await.unwrap();
        let (closed, got) = until_closed(s, Instant::now(), Duration::from_secs(5)).await;
        assert!(got.starts_with("HTTP/1.1 503"), "{got}");
        assert!(got.ends_with("Too many unauthenticated sockets"), "{got}");
        let closed = closed.expect("a 503 socket is closed");
        assert!(closed < Duration::from_millis(500), "closed right after the 503: {closed:?}");
        drop(held);
        tokio::time::sleep(Duration::from_millis(200)).await;

        let mut s = connect_from(Ipv4Addr::LOCALHOST, gw.port).await.unwrap();
        s.write_all(b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
        let (closed, got) = until_closed(s, Instant::now(), Duration::from_secs(3)).await;
        assert!(got.starts_with("HTTP/1.1 404"), "{got}");
        assert!(closed.is_some_and(|d| d < Duration::from_millis(500)), "404 then close: {closed:?}");

        let mut s = connect_from(Ipv4Addr::LOCALHOST, gw.port).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
        let (closed, got) = until_closed(s, Instant::now(), Duration::from_secs(1)).await;
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
        assert_eq!(closed, None, "a successful probe keeps its keep-alive connection");
    })
    .await;
}

/// Flood sources: one peer with ~1,100 sockets (the audit's figure), and eight more addresses that
/// together exceed the gateway's fd limit, so the global cap and eviction are exercised too.
fn flood_plan() -> Vec<(Ipv4Addr, usize)> {
    let mut plan = vec![(Ipv4Addr::new(127, 0, 0, 2), 1100)];
    plan.extend((3..11).map(|i| (Ipv4Addr::new(127, 0, 0, i), 60)));
    plan
}

/// Keeps `n` idle sockets from `src` open: reconnects each one the server closes (after a pause,
/// so the test does not monopolise a shared machine) until `stop`.
fn flood(port: u16, src: Ipv4Addr, n: usize, held: Arc<AtomicUsize>, stop: CancellationToken) {
    for _ in 0..n {
        let (held, stop) = (held.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                if let Ok(Ok(mut s)) =
                    tokio::time::timeout(Duration::from_secs(2), connect_from(src, port)).await
                {
                    held.fetch_add(1, Ordering::Relaxed);
                    let mut b = [0u8; 64];
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = s.read(&mut b) => {}
                    }
                    held.fetch_sub(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
    }
}

/// One authenticated round trip: connect (token) and `health`; the time it took.
async fn authenticated_health(gw: &Gateway) -> Duration {
    let t0 = Instant::now();
    let mut ws = operator(gw, &["operator.read"]).await;
    let res = call(&mut ws, "h", "health", json!({})).await;
    assert_eq!(res["ok"], true, "{res}");
    let _ = ws.close(None).await;
    t0.elapsed()
}

fn real_cli_health(url: String) -> Option<bool> {
    let dir = common::openclaw::peer_dir()?;
    let home = tempfile::tempdir().unwrap();
    let args = ["gateway", "health", "--url", &url, "--token", TOKEN];
    let o = common::openclaw::oc(&dir, home.path(), &args);
    eprintln!("real CLI health under flood: {}", String::from_utf8_lossy(&o.stdout).trim());
    Some(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("OK"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_flood_under_a_low_fd_limit_spares_authenticated_clients_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--port", "0", "--token", TOKEN];
    let env = [(HANDSHAKE_ENV, "2000")];
    let gw = Gateway::start_wrapped(&["prlimit", "--nofile=256:256", "--"], dir, &args, &env);
    let pid = gw.child.id();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let nofile = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    assert!(nofile.split_whitespace().filter(|w| *w == "256").count() == 2, "{nofile}");
    bounded(Duration::from_secs(120), async {
        authenticated_health(&gw).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (fd0, rss0) = (fd_count(pid), rss_kib(pid));

        let held = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let plan = flood_plan();
        let attempted: usize = plan.iter().map(|(_, n)| n).sum();
        for (src, n) in plan {
            flood(gw.port, src, n, held.clone(), stop.clone());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let cli = tokio::task::spawn_blocking({
            let url = gw.url();
            move || real_cli_health(url)
        });
        let (mut fd_peak, mut rss_peak, mut slowest, mut held_peak) = (0, 0, Duration::ZERO, 0);
        for _ in 0..10 {
            let took = tokio::time::timeout(Duration::from_secs(10), authenticated_health(&gw))
                .await
                .expect("an authenticated client is served during the flood");
            slowest = slowest.max(took);
            fd_peak = fd_peak.max(fd_count(pid));
            rss_peak = rss_peak.max(rss_kib(pid));
            held_peak = held_peak.max(held.load(Ordering::Relaxed));
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let cli_ok = cli.await.unwrap();
        stop.cancel();
        assert_ne!(cli_ok, Some(false), "the real OpenClaw CLI's health call fails under the flood");

        let t_stop = Instant::now();
        let (mut fd1, mut rss1) = (usize::MAX, 0);
        while t_stop.elapsed() < Duration::from_secs(15) {
            tokio::time::sleep(Duration::from_millis(250)).await;
            (fd1, rss1) = (fd_count(pid), rss_kib(pid));
            if fd1 <= fd0 + 2 {
                break;
            }
        }
        authenticated_health(&gw).await;
        eprintln!(
            "fd-limit flood: {attempted} flood sockets attempted, ≤{held_peak} open on the client side; \
             gateway fds {fd0} → peak {fd_peak} → {fd1} after {:?}; RSS {rss0} → peak {rss_peak} → {rss1} KiB; \
             slowest authenticated connect+health during the flood {slowest:?}",
            t_stop.elapsed()
        );
        assert!(fd_peak < 256, "the gateway stayed below its fd limit: {fd_peak}");
        assert!(fd1 <= fd0 + 2, "fds back to baseline: {fd0} → {fd1}");
        assert!(rss1 <= rss0 + rss0 / 2, "RSS back near baseline: {rss0} → {rss1} KiB");
    })
    .await;
}

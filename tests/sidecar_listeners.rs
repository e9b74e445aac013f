//! The tsnet sidecar's host sockets. `clawgate-tsnet` serves the tailnet from its userspace
//! netstack, but tailscale v1.102.3 still opens one real TCP listener on `0.0.0.0:<port>` for its
//! PeerAPI in netstack mode (`ipn/ipnlocal/peerapi.go`: `if IsNetstack() { ipStr = "" }`; only the
//! first tailnet address gets one). Tailnet peers reach the PeerAPI through netstack interception,
//! never through that socket; a connection that does arrive on it is checked with whois of its
//! source address and closed before a byte is read when the source is no tailnet node
//! (`peerAPIListener.ServeConn`). This test pins exactly that: every other host TCP listener of the
//! sidecar is loopback, and the wildcard one resets a host (non-tailnet) client while the same port
//! answers a tailnet peer. Decision and residual risk: docs/decisions/0081-sidecar-peerapi-listener.md.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use common::testnet::{self, Testnet, ENV_REQUIRE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BOUND: Duration = Duration::from_secs(150);
/// A request any HTTP server would answer.
const PROBE: &[u8] = b"GET / HTTP/1.1\r\nHost: peerapi\r\nConnection: close\r\n\r\n";

/// Decodes one `/proc/net/tcp{,6}` address column (`0100007F:A6B3`, words in host byte order).
fn proc_addr(col: &str) -> SocketAddr {
    let (ip, port) = col.split_once(':').expect("addr:port");
    let port = u16::from_str_radix(port, 16).unwrap();
    let words: Vec<[u8; 4]> = (0..ip.len() / 8)
        .map(|i| {
            u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16)
                .unwrap()
                .swap_bytes()
                .to_be_bytes()
        })
        .collect();
    let ip = match words.as_slice() {
        [w] => IpAddr::V4(Ipv4Addr::from(*w)),
        ws => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ws.concat()).unwrap())),
    };
    SocketAddr::new(ip, port)
}

/// The TCP sockets in LISTEN state that process `pid` holds.
fn tcp_listeners(pid: u32) -> Vec<SocketAddr> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().to_string();
            l.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_string)
        })
        .collect();
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap();
        for cols in text
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
        {
            if cols.get(3) == Some(&"0A")
                && cols.get(9).is_some_and(|i| inodes.iter().any(|x| x == i))
            {
                out.push(proc_addr(cols[1]));
            }
        }
    }
    out
}

/// This host's first global IPv4 address (how another LAN host would reach it), else loopback.
fn host_address() -> IpAddr {
    let o = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next()?.parse().ok())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Sends [`PROBE`] and returns what comes back within 5 s (`Err` for a reset).
async fn probe<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
) -> std::io::Result<Vec<u8>> {
    s.write_all(PROBE).await?;
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("answer or close within 5 s")?;
    buf.truncate(n);
    Ok(buf)
}

#[tokio::test]
async fn sidecar_host_listeners_are_loopback_except_a_peerapi_that_refuses_non_peers() {
    common::bounded(BOUND, async {
        let tsnet = testnet::tsnet_bin();
        assert!(
            tsnet.is_some() || std::env::var(ENV_REQUIRE).as_deref() != Ok("1"),
            "clawgate-tsnet missing"
        );
        let Some(tsnet) = tsnet else {
            return eprintln!("SKIPPED: clawgate-tsnet not found");
        };
        let Some(net) = Testnet::start(&["--sidecar-node", "gw"]).await else {
            return;
        };
        let m = &net.manifest;
        let gw = common::own_sidecar_gateway(&net, "gw", &tsnet, serde_json::json!({}));
        testnet::wait_exposure(gw.port, "ok", Duration::from_secs(60)).await;
        let sidecar = common::daemon::children(gw.child.id());
        assert_eq!(sidecar.len(), 1, "one sidecar child: {sidecar:?}");
        let listeners = tcp_listeners(sidecar[0]);
        eprintln!("sidecar TCP listeners: {listeners:?}");
        let open: Vec<&SocketAddr> = listeners.iter().filter(|a| !a.ip().is_loopback()).collect();
        assert_eq!(
            open.len(),
            1,
            "exactly the PeerAPI listener is not loopback: {listeners:?}"
        );
        assert!(open[0].ip().is_unspecified(), "{listeners:?}");
        let port = open[0].port();
        // A host (non-tailnet) client on that port: reset or closed, never an answer.
        let host = SocketAddr::new(host_address(), port);
        let tcp = tokio::net::TcpStream::connect(host)
            .await
            .expect("connect to the host socket");
        match probe(tcp).await {
            Ok(b) => assert!(
                b.is_empty(),
                "{host} answered a non-peer: {:?}",
                String::from_utf8_lossy(&b)
            ),
            Err(e) => eprintln!("{host}: {e} (refused, as expected)"),
        }
        // The same port over the tailnet is the PeerAPI, answering a peer.
        let fqdn = &m.sidecars["gw"].fqdn;
        let tcp = testnet::socks_dial(&net, "vienna", fqdn, port)
            .await
            .expect("dial over the tailnet");
        let b = probe(tcp).await.expect("peer gets an answer");
        assert!(
            b.starts_with(b"HTTP/1.1 "),
            "PeerAPI answer: {:?}",
            String::from_utf8_lossy(&b)
        );
        drop(gw);
        net.stop().await;
    })
    .await;
}

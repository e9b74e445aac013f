//! PROXY protocol version 2 (haproxy `proxy-protocol.txt` §2.2): the binary header tailscaled
//! writes in front of a Serve TCP forward with `ProxyProtocol: 2`, carrying the original source
//! (a tailnet peer, or the public client of a Funnel connection).
//!
//! Invariants: only the dedicated Serve listener reads this header (anywhere else a PROXY header is
//! just bytes that fail the HTTP parser); the header is read with exact-length reads, so no byte
//! of the payload that follows is consumed; its length is bounded by [`MAX_HEADER`]; a `LOCAL`
//! command, an unknown family or a truncated address block is an error (fail closed), never "no
//! source".
//!
//! Why our own parser and not `ppp`/`proxy-header`: we need the v2 binary form only, the TCP
//! families only, and no TLVs; the format is ~30 lines of fixed offsets, and owning it keeps the
//! strict fail-closed rules above explicit and tested here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The 12-byte v2 signature.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Bound on the variable part (addresses + TLVs): tailscaled sends 12 or 36 bytes; 512 leaves
/// room for TLVs from other senders while bounding memory per pending connection.
pub const MAX_HEADER: usize = 512;
/// How long a freshly accepted connection may take to deliver its header. tailscaled writes it
/// immediately after connecting, so a slow header means something else is talking to us.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a PROXY header was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Not a v2 header (wrong signature or version).
    #[error("not a PROXY protocol v2 header")]
    NotProxyV2,
    /// `LOCAL` command: no original source, which the dedicated listener never accepts.
    #[error("PROXY v2 LOCAL command carries no source address")]
    Local,
    /// Not TCP over IPv4/IPv6.
    #[error("unsupported PROXY v2 family/protocol 0x{0:02x}")]
    Family(u8),
    /// Address block shorter than the family requires, or longer than [`MAX_HEADER`].
    #[error("PROXY v2 header length {0} is invalid")]
    Length(usize),
    /// The header did not arrive within [`HEADER_TIMEOUT`].
    #[error("PROXY v2 header not received within {HEADER_TIMEOUT:?}")]
    Timeout,
    /// Reading failed (including EOF).
    #[error("reading PROXY v2 header: {0}")]
    Io(#[from] std::io::Error),
}

/// The addresses of a `PROXY` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The original client.
    pub source: SocketAddr,
    /// The address the client connected to (as seen by the proxy).
    pub destination: SocketAddr,
}

/// Parses the 16-byte fixed part: returns (command, family, length of the variable part).
fn parse_fixed(fixed: &[u8; 16]) -> Result<(u8, u8, usize), ProxyError> {
    if fixed[..12] != SIGNATURE || fixed[12] >> 4 != 2 {
        return Err(ProxyError::NotProxyV2);
    }
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if len > MAX_HEADER {
        return Err(ProxyError::Length(len));
    }
    Ok((fixed[12] & 0x0f, fixed[13], len))
}

/// Parses the variable part for `command`/`family`.
fn parse_addresses(command: u8, family: u8, body: &[u8]) -> Result<ProxyHeader, ProxyError> {
    match command {
        0 => return Err(ProxyError::Local),
        1 => {}
        _ => return Err(ProxyError::NotProxyV2),
    }
    let port = |i: usize| u16::from_be_bytes([body[i], body[i + 1]]);
    match family {
        0x11 if body.len() >= 12 => {
            let src = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let dst = Ipv4Addr::new(body[4], body[5], body[6], body[7]);
            Ok(ProxyHeader {
                source: SocketAddr::new(IpAddr::V4(src), port(8)),
                destination: SocketAddr::new(IpAddr::V4(dst), port(10)),
            })
        }
        0x21 if body.len() >= 36 => {
            let ip = |i: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&body[i..i + 16]);
                IpAddr::V6(Ipv6Addr::from(b))
            };
            Ok(ProxyHeader {
                source: SocketAddr::new(ip(0), port(32)),
                destination: SocketAddr::new(ip(16), port(34)),
            })
        }
        0x11 | 0x21 => Err(ProxyError::Length(body.len())),
        other => Err(ProxyError::Family(other)),
    }
}

/// Parses a complete header held in memory (for tests and fuzzing); returns it and its length.
pub fn parse(buf: &[u8]) -> Result<(ProxyHeader, usize), ProxyError> {
    let fixed: &[u8; 16] = buf
        .get(..16)
        .and_then(|s| s.try_into().ok())
        .ok_or(ProxyError::Length(buf.len()))?;
    let (cmd, fam, len) = parse_fixed(fixed)?;
    let body = buf.get(16..16 + len).ok_or(ProxyError::Length(buf.len()))?;
    Ok((parse_addresses(cmd, fam, body)?, 16 + len))
}

/// Reads exactly one header from `io` (bounded in time and size), consuming nothing after it.
pub async fn read_header<R: AsyncRead + Unpin>(io: &mut R) -> Result<ProxyHeader, ProxyError> {
    let read = async {
        let mut fixed = [0u8; 16];
        io.read_exact(&mut fixed).await?;
        let (cmd, fam, len) = parse_fixed(&fixed)?;
        let mut body = vec![0u8; len];
        io.read_exact(&mut body).await?;
        parse_addresses(cmd, fam, &body)
    };
    tokio::time::timeout(HEADER_TIMEOUT, read)
        .await
        .map_err(|_| ProxyError::Timeout)?
}

/// Encodes a `PROXY` header (used by tests and the benchmark client to stand in for tailscaled).
pub fn encode(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.push(0x21);
    match (source, destination) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.push(0x11);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        (s, d) => {
            let v6 = |a: SocketAddr| match a.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(0x21);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&v6(d).octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_v4_and_v6_and_keeps_the_payload() {
        let s: SocketAddr = "100.64.0.4:51000".parse().unwrap();
        let d: SocketAddr = "100.64.0.3:443".parse().unwrap();
        let mut buf = encode(s, d);
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let (h, n) = parse(&buf).unwrap();
        assert_eq!((h.source, h.destination, n), (s, d, 28));
        assert_eq!(&buf[n..n + 3], b"GET");
        let s6: SocketAddr = "[fd7a:115c:a1e0::4]:7".parse().unwrap();
        let d6: SocketAddr = "[fd7a:115c:a1e0::3]:443".parse().unwrap();
        assert_eq!(parse(&encode(s6, d6)).unwrap().0.source, s6);
    }

    #[test]
    fn fails_closed_on_everything_else() {
        let good = encode("1.2.3.4:5".parse().unwrap(), "5.6.7.8:9".parse().unwrap());
        let mut local = good.clone();
        local[12] = 0x20;
        assert!(matches!(parse(&local), Err(ProxyError::Local)));
        let mut v1 = good.clone();
        v1[12] = 0x11;
        assert!(matches!(parse(&v1), Err(ProxyError::NotProxyV2)));
        let mut unix = good.clone();
        unix[13] = 0x31;
        assert!(matches!(parse(&unix), Err(ProxyError::Family(0x31))));
        let mut short = good.clone();
        short[15] = 4;
        assert!(matches!(parse(&short), Err(ProxyError::Length(4))));
        let mut huge = good.clone();
        huge[14] = 0xff;
        assert!(matches!(parse(&huge), Err(ProxyError::Length(_))));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Err(ProxyError::NotProxyV2)
        ));
        assert!(parse(&good[..20]).is_err());
    }

    #[tokio::test]
    async fn reads_exactly_the_header_from_a_stream() {
        let hdr = encode(
            "100.64.0.4:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        let (mut a, mut b) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut a, &[hdr.as_slice(), b"rest"].concat())
            .await
            .unwrap();
        let h = read_header(&mut b).await.unwrap();
        assert_eq!(h.source.port(), 1);
        let mut rest = [0u8; 4];
        b.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"rest");
    }
}

//! RFC 6455 close codes for protocol violations (protocol.md §10), with raw
//! bytes over TCP after a real upgrade: invalid UTF-8 ⇒ 1007; unmasked, RSV,
//! orphan continuation and unknown-opcode frames ⇒ 1002; before and after `connect`.

mod common;

use std::time::Duration;

use common::{bounded, connect_params, Gateway, TOKEN};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(30);
const FIN_TEXT: u8 = 0x81;

/// A client frame (`b0` = FIN/RSV/opcode byte), masked unless `masked` is false.
fn frame(b0: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut f = vec![b0];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(mask_bit | n as u8),
        n => {
            f.push(mask_bit | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    let key = [0x37, 0xfa, 0x21, 0x3d];
    if masked {
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

/// A raw upgraded socket and the bytes read past the response head.
struct Raw {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn upgrade(port: u16) -> Raw {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let head = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
        tcp.write_all(head.as_bytes()).await.unwrap();
        let mut raw = Raw {
            tcp,
            buf: Vec::new(),
        };
        let end = loop {
            if let Some(i) = raw.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(raw.fill().await, "connection closed during the upgrade");
        };
        assert!(
            raw.buf.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&raw.buf)
        );
        raw.buf.drain(..end);
        raw
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        let n = self.tcp.read(&mut chunk).await.unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// The next server frame: (opcode, payload); `None` when the socket closed.
    async fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((op, len, start)) = header(&self.buf) {
                if self.buf.len() >= start + len {
                    let payload = self.buf[start..start + len].to_vec();
                    self.buf.drain(..start + len);
                    return Some((op, payload));
                }
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Skips data frames until the close frame; its code.
    async fn close_code(&mut self) -> Option<u16> {
        loop {
            let (op, payload) = self.next().await?;
            if op == 0x8 {
                return Some(u16::from_be_bytes([*payload.first()?, *payload.get(1)?]));
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.unwrap();
    }
}

/// (opcode, payload length, payload start) of an unmasked server frame header.
fn header(b: &[u8]) -> Option<(u8, usize, usize)> {
    let (op, len7) = (b.first()? & 0x0f, b.get(1)? & 0x7f);
    match len7 {
        126 => Some((op, u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize, 4)),
        127 => {
            let ext: [u8; 8] = b.get(2..10)?.try_into().ok()?;
            Some((op, u64::from_be_bytes(ext) as usize, 10))
        }
        n => Some((op, n as usize, 2)),
    }
}

/// Upgrades, reads the challenge, and authenticates when `connected`.
async fn socket(gw: &Gateway, connected: bool) -> Raw {
    let mut raw = Raw::upgrade(gw.port).await;
    let (op, challenge) = raw.next().await.expect("challenge");
    assert_eq!(op, 0x1, "{}", String::from_utf8_lossy(&challenge));
    if connected {
        let req = json!({"type": "req", "id": "c1", "method": "connect", "params": connect_params(json!({"token": TOKEN}), &["operator.read"])});
        raw.send(&frame(FIN_TEXT, req.to_string().as_bytes(), true))
            .await;
        let (_, hello) = raw.next().await.expect("hello-ok");
        assert!(String::from_utf8_lossy(&hello).contains("hello-ok"));
    }
    raw
}

#[tokio::test]
async fn protocol_violations_close_with_rfc6455_codes() {
    bounded(LIMIT, async {
        let gw = Gateway::start(&[]);
        let cases: [(&str, Vec<u8>, u16); 5] = [
            (
                "invalid UTF-8 text",
                frame(FIN_TEXT, &[0x7b, 0xff, 0xfe, 0x7d], true),
                1007,
            ),
            ("unmasked frame", frame(FIN_TEXT, b"{}", false), 1002),
            ("RSV1 without an extension", frame(0xC1, b"{}", true), 1002),
            ("orphan continuation", frame(0x80, b"x", true), 1002),
            ("reserved opcode", frame(0x83, b"x", true), 1002),
        ];
        for connected in [false, true] {
            for (what, bytes, code) in &cases {
                let mut raw = socket(&gw, connected).await;
                raw.send(bytes).await;
                assert_eq!(
                    raw.close_code().await,
                    Some(*code),
                    "{what} (after connect: {connected})"
                );
            }
        }
    })
    .await
}

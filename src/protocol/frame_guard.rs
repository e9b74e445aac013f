//! Pre-auth frame-size guard: a pure WebSocket frame-header tracker that sees the
//! inbound byte stream before tungstenite does, so that an oversized pre-auth
//! message is refused from its header — before its payload is buffered
//! (threats.md RL-2). tokio-tungstenite cannot change its size limits on a live
//! stream, so the codec runs at the post-auth limit and this guard enforces the
//! 64 KiB pre-auth cap (docs/decisions/0010-http-websocket-stack.md).
//!
//! Invariant: while armed, the summed payload length of the data frames of one
//! message never exceeds `cap` without [`FrameGuard::feed`] returning `Err`.

/// The guard tripped: a pre-auth message exceeds the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge;

#[derive(Debug, Clone, Copy)]
enum State {
    /// Collecting a frame header: bytes seen so far.
    Header { buf: [u8; 14], have: usize },
    /// Skipping payload bytes.
    Payload { remaining: u64 },
}

/// Tracks frame boundaries of a client→server WebSocket byte stream.
#[derive(Debug, Clone)]
pub struct FrameGuard {
    cap: u64,
    state: State,
    message_total: u64,
    armed: bool,
    tripped: bool,
}

impl FrameGuard {
    pub fn new(cap: usize) -> Self {
        FrameGuard {
            cap: cap as u64,
            state: State::Header {
                buf: [0; 14],
                have: 0,
            },
            message_total: 0,
            armed: true,
            tripped: false,
        }
    }

    /// Stops checking (after `hello-ok`, the codec's own limits apply).
    pub fn disarm(&mut self) {
        self.armed = false;
    }

    pub fn is_armed(&self) -> bool {
        self.armed
    }

    /// Feeds inbound bytes; `Err` as soon as a header announces too much payload.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), TooLarge> {
        if self.tripped && self.armed {
            return Err(TooLarge);
        }
        while self.armed && !data.is_empty() {
            match &mut self.state {
                State::Payload { remaining } => {
                    let n = (*remaining).min(data.len() as u64);
                    *remaining -= n;
                    data = &data[n as usize..];
                    if *remaining == 0 {
                        self.state = State::Header {
                            buf: [0; 14],
                            have: 0,
                        };
                    }
                }
                State::Header { buf, have } => {
                    buf[*have] = data[0];
                    *have += 1;
                    data = &data[1..];
                    if let Some(len) = header_complete(&buf[..*have]) {
                        let (fin, opcode) = (buf[0] & 0x80 != 0, buf[0] & 0x0f);
                        if let Err(e) = self.on_header(fin, opcode, len) {
                            self.tripped = true;
                            return Err(e);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn on_header(&mut self, fin: bool, opcode: u8, len: u64) -> Result<(), TooLarge> {
        let data_frame = opcode < 0x8;
        if data_frame {
            self.message_total = self.message_total.saturating_add(len);
            if self.message_total > self.cap {
                return Err(TooLarge);
            }
            if fin {
                self.message_total = 0;
            }
        } else if len > 125 {
            return Err(TooLarge);
        }
        self.state = if len == 0 {
            State::Header {
                buf: [0; 14],
                have: 0,
            }
        } else {
            State::Payload { remaining: len }
        };
        Ok(())
    }
}

/// Payload length once the header in `h` is complete, else `None`.
fn header_complete(h: &[u8]) -> Option<u64> {
    if h.len() < 2 {
        return None;
    }
    let masked = h[1] & 0x80 != 0;
    let len7 = h[1] & 0x7f;
    let ext = match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let need = 2 + ext + if masked { 4 } else { 0 };
    if h.len() < need {
        return None;
    }
    Some(match ext {
        2 => u64::from(u16::from_be_bytes([h[2], h[3]])),
        8 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
        _ => u64::from(len7),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame with `len` payload bytes.
    fn frame(fin: bool, opcode: u8, len: usize) -> Vec<u8> {
        let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
        match len {
            0..=125 => f.push(0x80 | len as u8),
            126..=65535 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&[1, 2, 3, 4]);
        f.extend(std::iter::repeat_n(b'x', len));
        f
    }

    #[test]
    fn accepts_frames_up_to_the_cap() {
        let mut g = FrameGuard::new(65536);
        let mut bytes = frame(true, 1, 65536);
        bytes.extend(frame(true, 9, 4));
        bytes.extend(frame(true, 1, 10));
        assert_eq!(g.feed(&bytes), Ok(()));
    }

    #[test]
    fn trips_on_the_header_of_a_large_frame() {
        let mut g = FrameGuard::new(65536);
        let f = frame(true, 1, 65537);
        // Only the header is needed to trip.
        assert_eq!(g.feed(&f[..14]), Err(TooLarge));
    }

    #[test]
    fn trips_on_fragmented_messages_over_the_cap() {
        let mut g = FrameGuard::new(100);
        assert_eq!(g.feed(&frame(false, 1, 60)), Ok(()));
        assert_eq!(g.feed(&frame(false, 0, 60)), Err(TooLarge));
    }

    #[test]
    fn byte_by_byte_feeding_is_equivalent() {
        let mut g = FrameGuard::new(1000);
        let mut bytes = frame(true, 1, 300);
        bytes.extend(frame(true, 1, 999));
        for b in &bytes {
            assert_eq!(g.feed(std::slice::from_ref(b)), Ok(()));
        }
        let big = frame(true, 1, 1001);
        let r: Result<(), TooLarge> = big.iter().try_for_each(|b| g.feed(std::slice::from_ref(b)));
        assert_eq!(r, Err(TooLarge));
    }

    #[test]
    fn disarmed_guard_ignores_everything() {
        let mut g = FrameGuard::new(10);
        g.disarm();
        assert_eq!(g.feed(&frame(true, 1, 5000)), Ok(()));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512), split in 0usize..512) {
            let mut g = FrameGuard::new(64);
            let split = split.min(bytes.len());
            let _ = g.feed(&bytes[..split]);
            let _ = g.feed(&bytes[split..]);
        }
    }
}

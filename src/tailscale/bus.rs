//! The IPN bus (`watch-ipn-bus`, tailscale.md §2.6): NDJSON framing, the [`IpnBus`] stream and
//! [`ForegroundSession`], the handle that keeps a Foreground serve claim alive.
//!
//! Invariants: a line longer than [`MAX_NOTIFY_LINE`] is an error, never an unbounded buffer; the
//! stream is driven only by its reader (no background task), so the caller must keep reading it —
//! tailscaled disconnects slow readers, and a closed stream means every `Foreground` entry of that
//! session is gone; dropping an [`IpnBus`] or [`ForegroundSession`] closes the watch.

use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use super::api::LocalApi;
use super::error::{LocalApiError, Result};
use super::serve::{ETag, ServeConfig};
use super::types::{notify_mask, Notify};

/// Bound on one Notify line. Initial netmaps of large tailnets reach a few MiB; 16 MiB leaves
/// headroom while still bounding memory.
pub const MAX_NOTIFY_LINE: usize = 16 << 20;

/// How long to wait for the first Notify (which carries the session id).
pub const SESSION_ID_TIMEOUT: Duration = Duration::from_secs(10);

/// Bounded attempts of the read-modify-write of the serve config when the ETag keeps changing.
pub const MAX_SERVE_RETRIES: usize = 5;

/// Splits a byte stream into newline-terminated lines, across arbitrary chunk boundaries.
#[derive(Debug)]
pub struct NdjsonDecoder {
    buf: Vec<u8>,
    max_line: usize,
}

impl NdjsonDecoder {
    /// A decoder refusing lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_line,
        }
    }

    /// Appends a received chunk.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete, non-blank line (without its newline), `Ok(None)` if more input is
    /// needed, or an error if the pending line exceeds the bound.
    pub fn next_line(&mut self) -> Result<Option<Vec<u8>>> {
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            if line.len() > self.max_line {
                return Err(self.too_large());
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                return Ok(Some(line));
            }
        }
        if self.buf.len() > self.max_line {
            return Err(self.too_large());
        }
        Ok(None)
    }

    /// At end of input: the unterminated last line, if any.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let rest = std::mem::take(&mut self.buf);
        (!rest.iter().all(u8::is_ascii_whitespace)).then_some(rest)
    }

    fn too_large(&mut self) -> LocalApiError {
        self.buf.clear();
        LocalApiError::TooLarge {
            what: "IPN bus message",
            limit: self.max_line,
        }
    }
}

/// Decodes one Notify line.
pub fn parse_notify(line: &[u8]) -> Result<Notify> {
    serde_json::from_slice(line).map_err(|source| LocalApiError::Decode {
        what: "IPN bus message",
        source,
    })
}

/// An open `watch-ipn-bus` stream. Ends (`None`) when tailscaled closes it.
pub struct IpnBus {
    /// In a `Mutex` only to make the bus `Sync` (so `&ForegroundSession` may cross an `.await` in
    /// a spawned task); it is only ever reached through `get_mut`, never locked.
    stream: std::sync::Mutex<BoxStream<'static, Result<Notify>>>,
    /// Dropped together with the stream; lets the fake forget its session.
    _guard: Option<Box<dyn Send + Sync>>,
}

impl IpnBus {
    /// Wraps a Notify stream; `guard` is dropped when the bus is.
    pub fn new(
        stream: BoxStream<'static, Result<Notify>>,
        guard: Option<Box<dyn Send + Sync>>,
    ) -> Self {
        Self {
            stream: std::sync::Mutex::new(stream),
            _guard: guard,
        }
    }

    /// The next Notify; `None` once the stream has closed.
    pub async fn next(&mut self) -> Option<Result<Notify>> {
        let stream = match self.stream.get_mut() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        stream.next().await
    }
}

impl std::fmt::Debug for IpnBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IpnBus")
    }
}

/// A watch session whose id keys `ServeConfig.Foreground`. While it is open (and read), the
/// entries stored under [`ForegroundSession::id`] stay; when it closes they vanish.
#[derive(Debug)]
pub struct ForegroundSession {
    id: String,
    bus: IpnBus,
}

impl ForegroundSession {
    /// Opens `watch-ipn-bus?mask=NotifyInitialState` and waits for the session id.
    pub async fn open(api: &dyn LocalApi) -> Result<Self> {
        let mut bus = api.watch_ipn_bus(notify_mask::INITIAL_STATE).await?;
        let first = tokio::time::timeout(SESSION_ID_TIMEOUT, bus.next())
            .await
            .map_err(|_| LocalApiError::Timeout {
                what: "IPN bus session id",
                after: SESSION_ID_TIMEOUT,
            })?;
        let notify = first.ok_or(LocalApiError::BusClosed)??;
        match notify.session_id.filter(|s| !s.is_empty()) {
            Some(id) => Ok(Self { id, bus }),
            None => Err(LocalApiError::Request(
                "first IPN bus message carried no SessionID".into(),
            )),
        }
    }

    /// The session id (the `Foreground` key).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The next Notify of this session; keep calling it (slow readers are disconnected).
    pub async fn next(&mut self) -> Option<Result<Notify>> {
        self.bus.next().await
    }

    /// Reads until the stream closes; returns why (`BusClosed` or the stream error). After this
    /// the session's Foreground entries are gone: open a new session and claim again.
    pub async fn closed(&mut self) -> LocalApiError {
        loop {
            match self.bus.next().await {
                None => return LocalApiError::BusClosed,
                Some(Err(e)) => return e,
                Some(Ok(_)) => {}
            }
        }
    }

    /// Stores `entry` as this session's Foreground config with a bounded If-Match
    /// read-modify-write. Everything else in the config is written back untouched. Refuses with
    /// [`ClaimError::PortInUse`] when another owner already serves one of `entry`'s TCP ports.
    pub async fn claim(
        &self,
        api: &dyn LocalApi,
        entry: &ServeConfig,
    ) -> std::result::Result<ETag, ClaimError> {
        let mut last = None;
        for _ in 0..MAX_SERVE_RETRIES {
            let (mut cfg, etag) = api.serve_config().await?;
            if let Some((port, owner)) = self.conflict(&cfg, entry) {
                return Err(ClaimError::PortInUse { port, owner });
            }
            cfg.foreground.insert(self.id.clone(), entry.clone());
            match api.set_serve_config(&cfg, Some(&etag)).await {
                Ok(()) => return Ok(api.serve_config().await?.1),
                Err(e @ LocalApiError::PreconditionFailed { .. }) => last = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last.unwrap_or(LocalApiError::BusClosed).into())
    }

    /// The first port of `entry` already served by someone other than this session.
    fn conflict(&self, cfg: &ServeConfig, entry: &ServeConfig) -> Option<(String, String)> {
        cfg.served_ports()
            .into_iter()
            .filter(|(_, owner)| *owner != Some(self.id.as_str()))
            .find(|(port, _)| entry.tcp.contains_key(port))
            .map(|(port, owner)| {
                let owner = owner.map_or("a background serve entry".to_owned(), |s| {
                    format!("foreground session {s}")
                });
                (port, owner)
            })
    }
}

/// Why a Foreground claim failed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Another route owns the port (clawgate never overwrites foreign routes).
    #[error(
        "port {port} is already served by {owner}; clawgate does not overwrite foreign routes"
    )]
    PortInUse {
        /// The contested port.
        port: String,
        /// Who holds it.
        owner: String,
    },
    /// The LocalAPI refused or failed.
    #[error(transparent)]
    Api(#[from] LocalApiError),
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUS: &str = concat!(
        r#"{"Version":"1.102.3","SessionID":"s-1","State":6,"NewField":[1,2]}"#,
        "\n",
        r#"{"State":9}"#,
        "\n\n",
        r#"{"Prefs":{"Hostname":"gw"},"Health":{"Warnings":null}}"#,
        "\n",
    );

    fn decode_in_chunks(size: usize) -> Vec<Notify> {
        let mut dec = NdjsonDecoder::new(1024);
        let mut out = Vec::new();
        for chunk in BUS.as_bytes().chunks(size) {
            dec.push(chunk);
            while let Some(line) = dec.next_line().unwrap() {
                out.push(parse_notify(&line).unwrap());
            }
        }
        assert!(dec.finish().is_none());
        out
    }

    #[test]
    fn every_chunking_yields_the_same_messages() {
        for size in [1, 2, 3, 7, 64, BUS.len()] {
            let msgs = decode_in_chunks(size);
            assert_eq!(msgs.len(), 3, "chunk size {size}");
            assert_eq!(msgs[0].session_id.as_deref(), Some("s-1"));
            assert_eq!(msgs[0].state, Some(super::super::BackendState::Running));
            assert_eq!(
                msgs[1].state,
                Some(super::super::BackendState::Other("9".into()))
            );
            assert!(msgs[2].wants_status_refresh());
        }
    }

    #[test]
    fn oversized_and_unterminated_lines() {
        let mut dec = NdjsonDecoder::new(8);
        dec.push(b"0123456789");
        assert!(matches!(
            dec.next_line(),
            Err(LocalApiError::TooLarge { .. })
        ));
        let mut dec = NdjsonDecoder::new(64);
        dec.push(br#"{"State":2}"#);
        assert_eq!(dec.next_line().unwrap(), None);
        assert_eq!(dec.finish().unwrap(), br#"{"State":2}"#.to_vec());
    }
}

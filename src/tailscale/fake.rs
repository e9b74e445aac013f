//! `FakeLocalApi`: an in-memory stand-in for tailscaled's LocalAPI, for unit tests of gateway
//! logic. It is a test double (named as such) and never talks to a network.
//!
//! Invariants (mirroring tailscaled, tailscale.md §2.3, §2.6): the serve-config ETag is the hex
//! SHA-256 of its JSON and `If-Match` is compared verbatim (mismatch ⇒ `PreconditionFailed`); a new
//! foreground session may not take a port already served; a session's `Foreground` entry vanishes
//! as soon as its [`IpnBus`] is dropped or the fake "daemon" restarts; every trait call counts
//! (so "mode=off makes zero LocalAPI calls" is checkable). Back-pressure: each session has a
//! bounded queue of [`SESSION_QUEUE`]; a session whose queue is full is disconnected, as tailscaled
//! disconnects slow readers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::api::{LocalApi, PeerAddr};
use super::bus::IpnBus;
use super::error::{LocalApiError, Result};
use super::serve::{ETag, ServeConfig};
use super::types::{CertPair, Notify, Prefs, Status, WhoIs};

/// Queue bound per fake bus session (tests publish a handful of messages).
pub const SESSION_QUEUE: usize = 64;

#[derive(Default)]
struct State {
    status: Status,
    prefs: Prefs,
    whois: HashMap<IpAddr, WhoIs>,
    certs: HashMap<String, CertPair>,
    serve: ServeConfig,
    sessions: HashMap<String, mpsc::Sender<Result<Notify>>>,
    next_session: u64,
}

impl State {
    fn drop_session(&mut self, id: &str) {
        self.sessions.remove(id);
        self.serve.foreground.remove(id);
    }
}

/// In-memory fake of the LocalAPI (see module docs).
#[derive(Clone, Default)]
pub struct FakeLocalApi {
    state: Arc<Mutex<State>>,
    calls: Arc<AtomicU64>,
}

impl std::fmt::Debug for FakeLocalApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeLocalApi")
            .field("calls", &self.call_count())
            .finish()
    }
}

/// Removes its session (and the session's Foreground entry) when the bus is dropped.
struct SessionGuard {
    id: String,
    state: Weak<Mutex<State>>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if let Some(state) = self.state.upgrade() {
            lock(&state).drop_session(&self.id);
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic in another test thread must not cascade: the state stays usable.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// The tailscaled ETag: hex SHA-256 of the config's JSON.
pub fn etag_of(cfg: &ServeConfig) -> ETag {
    let json = serde_json::to_vec(cfg).unwrap_or_default();
    ETag(hex::encode(Sha256::digest(json)))
}

impl FakeLocalApi {
    /// A fake answering `status` with `status`.
    pub fn new(status: Status) -> Self {
        let fake = Self::default();
        lock(&fake.state).status = status;
        fake
    }

    /// Number of LocalAPI calls made through the trait so far.
    pub fn call_count(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Replaces the status answer.
    pub fn set_status(&self, status: Status) {
        lock(&self.state).status = status;
    }

    /// Replaces the prefs answer.
    pub fn set_prefs(&self, prefs: Prefs) {
        lock(&self.state).prefs = prefs;
    }

    /// Registers the whois answer for `ip` (any port).
    pub fn insert_whois(&self, ip: IpAddr, who: WhoIs) {
        lock(&self.state).whois.insert(ip, who);
    }

    /// Registers the certificate answer for `domain`.
    pub fn insert_cert(&self, domain: &str, pair: CertPair) {
        lock(&self.state).certs.insert(domain.to_owned(), pair);
    }

    /// The current serve config (not counted as a call).
    pub fn serve_snapshot(&self) -> ServeConfig {
        lock(&self.state).serve.clone()
    }

    /// Writes the serve config as another LocalAPI client would (not counted, no checks).
    pub fn set_serve_as_foreign_client(&self, cfg: ServeConfig) {
        lock(&self.state).serve = cfg;
    }

    /// Ids of open bus sessions.
    pub fn live_sessions(&self) -> Vec<String> {
        lock(&self.state).sessions.keys().cloned().collect()
    }

    /// Sends `notify` to every open session; full queues are disconnected (slow readers).
    pub fn publish(&self, notify: Notify) {
        let mut st = lock(&self.state);
        let slow: Vec<String> = st
            .sessions
            .iter()
            .filter(|(_, tx)| tx.try_send(Ok(notify.clone())).is_err())
            .map(|(id, _)| id.clone())
            .collect();
        for id in slow {
            st.drop_session(&id);
        }
    }

    /// Simulates a tailscaled restart: every bus ends and all Foreground entries vanish.
    pub fn restart_daemon(&self) {
        let mut st = lock(&self.state);
        st.sessions.clear();
        st.serve.foreground.clear();
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }

    fn apply_serve(&self, cfg: &ServeConfig, if_match: Option<&ETag>) -> Result<()> {
        let mut st = lock(&self.state);
        if let Some(tag) = if_match.filter(|t| !t.0.is_empty()) {
            if *tag != etag_of(&st.serve) {
                return Err(LocalApiError::PreconditionFailed {
                    message: "etag mismatch".into(),
                });
            }
        }
        validate_update(&st.serve, cfg)?;
        st.serve = cfg.clone();
        Ok(())
    }

    fn open_session(&self) -> IpnBus {
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let mut st = lock(&self.state);
        st.next_session += 1;
        let id = format!("fake-session-{}", st.next_session);
        let first = Notify {
            session_id: Some(id.clone()),
            state: Some(st.status.backend_state.clone()),
            version: Some(st.status.version.clone()),
            ..Notify::default()
        };
        // The queue is empty and has room for the first message.
        let _ = tx.try_send(Ok(first));
        st.sessions.insert(id.clone(), tx);
        let guard = SessionGuard {
            id,
            state: Arc::downgrade(&self.state),
        };
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        IpnBus::new(Box::pin(stream), Some(Box::new(guard)))
    }
}

/// tailscaled's `validateServeConfigUpdate` rule the gateway depends on: a new foreground session
/// may not take a port already served by someone else.
fn validate_update(old: &ServeConfig, new: &ServeConfig) -> Result<()> {
    for (sid, fg) in &new.foreground {
        if old.foreground.contains_key(sid) {
            continue;
        }
        let taken = old
            .served_ports()
            .into_iter()
            .find(|(port, owner)| *owner != Some(sid.as_str()) && fg.tcp.contains_key(port));
        if let Some((port, _)) = taken {
            return Err(LocalApiError::Status {
                status: 500,
                message: format!("listener already exists for port {port}"),
            });
        }
    }
    Ok(())
}

fn not_found(what: &str) -> LocalApiError {
    LocalApiError::Status {
        status: 404,
        message: format!("no match for {what}"),
    }
}

impl LocalApi for FakeLocalApi {
    fn status(&self) -> BoxFuture<'_, Result<Status>> {
        self.count();
        let st = lock(&self.state).status.clone();
        Box::pin(async move { Ok(st) })
    }

    fn self_status(&self) -> BoxFuture<'_, Result<Status>> {
        self.count();
        let mut st = lock(&self.state).status.clone();
        st.peer.clear();
        Box::pin(async move { Ok(st) })
    }

    fn whois(&self, addr: PeerAddr) -> BoxFuture<'_, Result<WhoIs>> {
        self.count();
        let who = lock(&self.state).whois.get(&addr.ip()).cloned();
        Box::pin(async move { who.ok_or_else(|| not_found(&addr.to_string())) })
    }

    fn cert_pair<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, Result<CertPair>> {
        self.count();
        let pair = lock(&self.state).certs.get(domain).cloned();
        Box::pin(async move {
            pair.ok_or_else(|| LocalApiError::Status {
                status: 500,
                message: format!("invalid domain {domain:?}"),
            })
        })
    }

    fn serve_config(&self) -> BoxFuture<'_, Result<(ServeConfig, ETag)>> {
        self.count();
        let cfg = lock(&self.state).serve.clone();
        Box::pin(async move {
            let tag = etag_of(&cfg);
            Ok((cfg, tag))
        })
    }

    fn set_serve_config<'a>(
        &'a self,
        cfg: &'a ServeConfig,
        if_match: Option<&'a ETag>,
    ) -> BoxFuture<'a, Result<()>> {
        self.count();
        let result = self.apply_serve(cfg, if_match);
        Box::pin(async move { result })
    }

    fn watch_ipn_bus(&self, _mask: u64) -> BoxFuture<'_, Result<IpnBus>> {
        self.count();
        let bus = self.open_session();
        Box::pin(async move { Ok(bus) })
    }

    fn prefs(&self) -> BoxFuture<'_, Result<Prefs>> {
        self.count();
        let prefs = lock(&self.state).prefs.clone();
        Box::pin(async move { Ok(prefs) })
    }
}

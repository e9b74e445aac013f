//! The connection registry: who is connected with which role and scopes, event
//! fan-out with per-connection `seq`, slow-consumer handling, and presence.
//!
//! Back-pressure policy: each connection has a bounded outbound queue of
//! [`OUTBOUND_QUEUE`] frames. When it is full, drop-if-slow events (tick,
//! presence, health) are skipped for that connection; any other event closes it
//! with 1008 `slow consumer` (protocol.md §11). The hub never blocks on a client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::presence::Presence;
use crate::protocol::connect::Role;
use crate::protocol::errors::close;
use crate::protocol::frames::EventFrame;
use crate::protocol::scopes;

/// Outbound frames queued per connection before it counts as slow.
pub const OUTBOUND_QUEUE: usize = 256;

/// A frame queued for one connection.
#[derive(Debug, Clone)]
pub enum Outbound {
    Event(Arc<EventFrame>),
    /// A response completed after its request was handed off (e.g. `node.invoke`).
    /// Boxed so `Outbound` stays two words: each connection's queue block holds 32 of them.
    Reply(Box<String>),
}

/// Why the hub asked a connection to close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kick {
    pub code: u16,
    pub reason: String,
}

/// Registry view of one live connection.
pub struct ConnEntry {
    pub role: Role,
    pub scopes: Vec<String>,
    pub device_id: Option<String>,
    pub shared_secret: bool,
    tx: mpsc::Sender<Outbound>,
    kick: CancellationToken,
    kick_reason: Arc<Mutex<Option<Kick>>>,
}

/// What a connection keeps after registering.
pub struct Registration {
    pub id: u64,
    pub tx: mpsc::Sender<Outbound>,
    pub rx: mpsc::Receiver<Outbound>,
    pub kick: CancellationToken,
    kick_reason: Arc<Mutex<Option<Kick>>>,
}

impl Registration {
    pub fn kick_reason(&self) -> Kick {
        lock(&self.kick_reason).clone().unwrap_or(Kick {
            code: close::POLICY,
            reason: "closed".into(),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Who receives an event family (protocol.md §12.3); unknown ⇒ nobody.
fn audience(event: &str, e: &ConnEntry) -> bool {
    match event {
        "tick" | "presence" | "heartbeat" | "shutdown" | "health" => true,
        e_name if e_name.starts_with("device.pair.") || e_name.starts_with("node.pair.") => {
            e.role == Role::Operator && scopes::satisfies(&e.scopes, scopes::PAIRING)
        }
        _ => false,
    }
}

fn drop_if_slow(event: &str) -> bool {
    matches!(event, "tick" | "presence" | "health" | "heartbeat")
}

#[derive(Default)]
pub struct Hub {
    conns: Mutex<HashMap<u64, ConnEntry>>,
    next_id: AtomicU64,
    pub presence: Presence,
}

impl Hub {
    pub fn new(presence: Presence) -> Self {
        Hub {
            conns: Mutex::default(),
            next_id: AtomicU64::new(1),
            presence,
        }
    }

    pub fn register(
        &self,
        role: Role,
        scopes: Vec<String>,
        device_id: Option<String>,
        shared_secret: bool,
        parent: &CancellationToken,
    ) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let kick = parent.child_token();
        let kick_reason = Arc::new(Mutex::new(None));
        let entry = ConnEntry {
            role,
            scopes,
            device_id,
            shared_secret,
            tx: tx.clone(),
            kick: kick.clone(),
            kick_reason: kick_reason.clone(),
        };
        lock(&self.conns).insert(id, entry);
        Registration {
            id,
            tx,
            rx,
            kick,
            kick_reason,
        }
    }

    pub fn unregister(&self, id: u64) {
        lock(&self.conns).remove(&id);
    }

    pub fn count(&self) -> usize {
        lock(&self.conns).len()
    }

    /// Counts by role: (operators, nodes).
    pub fn counts_by_role(&self) -> (usize, usize) {
        let conns = lock(&self.conns);
        let nodes = conns.values().filter(|e| e.role == Role::Node).count();
        (conns.len() - nodes, nodes)
    }

    /// Sends an event to every connection in its audience.
    pub fn broadcast(&self, ev: EventFrame) {
        let ev = Arc::new(ev);
        let droppable = drop_if_slow(&ev.name);
        let conns = lock(&self.conns);
        for e in conns.values().filter(|e| audience(&ev.name, e)) {
            if let Err(mpsc::error::TrySendError::Full(_)) =
                e.tx.try_send(Outbound::Event(ev.clone()))
            {
                if !droppable {
                    kick_entry(e, close::POLICY, "slow consumer");
                }
            }
        }
    }

    /// Closes every connection matching `pred` with `code`/`reason`.
    pub fn kick_where(&self, code: u16, reason: &str, pred: impl Fn(&ConnEntry) -> bool) -> usize {
        let conns = lock(&self.conns);
        conns
            .values()
            .filter(|e| pred(e))
            .map(|e| kick_entry(e, code, reason))
            .count()
    }
}

fn kick_entry(e: &ConnEntry, code: u16, reason: &str) {
    *lock(&e.kick_reason) = Some(Kick {
        code,
        reason: reason.to_string(),
    });
    e.kick.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn fan_out_respects_audience_and_slow_consumers() {
        let hub = Hub::new(Presence::new(None));
        let root = CancellationToken::new();
        let mut op = hub.register(
            Role::Operator,
            vec!["operator.read".into()],
            None,
            true,
            &root,
        );
        let mut admin = hub.register(
            Role::Operator,
            vec!["operator.admin".into()],
            None,
            true,
            &root,
        );
        hub.broadcast(EventFrame::new("device.pair.requested", &json!({})));
        hub.broadcast(EventFrame::new("tick", &json!({"ts": 1})));
        hub.broadcast(EventFrame::new("mystery", &json!({})));
        let Some(Outbound::Event(first)) = admin.rx.recv().await else {
            panic!()
        };
        assert_eq!(first.name, "device.pair.requested");
        let Some(Outbound::Event(first)) = op.rx.recv().await else {
            panic!()
        };
        assert_eq!(
            first.name, "tick",
            "read-only operator gets no pairing events"
        );
        assert!(op.rx.try_recv().is_err(), "unknown events go nowhere");
        // Fill admin's queue with ticks: dropped, not kicked.
        for _ in 0..(OUTBOUND_QUEUE + 10) {
            hub.broadcast(EventFrame::new("tick", &json!({})));
        }
        assert!(!admin.kick.is_cancelled());
        hub.broadcast(EventFrame::new("device.pair.resolved", &json!({})));
        assert!(admin.kick.is_cancelled());
        assert_eq!(admin.kick_reason().reason, "slow consumer");
        hub.unregister(op.id);
        assert_eq!(hub.count(), 1);
    }
}

//! The live node registry and `node.invoke` routing: which nodes are connected
//! with which declared and approved commands, pending invokes awaiting
//! `node.invoke.result`, and idempotency-key de-duplication.
//!
//! Invariants: a pending invoke completes exactly once (result, timeout, or the
//! node disconnecting); the idempotency cache is bounded ([`IDEMPOTENCY_CAP`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::hub::Outbound;
use crate::protocol::frames::EventFrame;

/// Default gateway-side invoke timeout (protocol.md §18).
pub const DEFAULT_INVOKE_TIMEOUT_MS: u64 = 30_000;
/// Completed invoke results remembered for idempotent retries.
pub const IDEMPOTENCY_CAP: usize = 1024;

/// The outcome of one invoke, as the node reported it.
pub type InvokeResult = Result<Value, InvokeFailure>;

#[derive(Debug, Clone, PartialEq)]
pub enum InvokeFailure {
    /// The node answered `ok:false` with this error object.
    Node(Value),
    Timeout,
    Disconnected,
}

/// A connected node.
pub struct NodeConn {
    pub conn_id: u64,
    pub tx: mpsc::Sender<Outbound>,
    /// `node.list` fields describing the node.
    pub info: Value,
    pub declared: Vec<String>,
    pub effective: Vec<String>,
    pub connected_at_ms: i64,
}

struct Pending {
    node_id: String,
    done: Vec<oneshot::Sender<InvokeResult>>,
    key: Option<(String, String)>,
}

#[derive(Default)]
struct Inner {
    nodes: HashMap<String, NodeConn>,
    pending: HashMap<String, Pending>,
    by_key: HashMap<(String, String), String>,
    completed: HashMap<(String, String), InvokeResult>,
    completed_order: VecDeque<(String, String)>,
}

#[derive(Default)]
pub struct Nodes {
    inner: Mutex<Inner>,
}

/// How `start_invoke` went.
pub enum Started {
    /// Wait on this receiver.
    Waiting(oneshot::Receiver<InvokeResult>),
    /// A completed duplicate: the cached result.
    Done(InvokeResult),
    NotConnected,
    NotAllowed,
    Busy,
}

impl Nodes {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn connect(&self, node_id: &str, conn: NodeConn) {
        self.lock().nodes.insert(node_id.to_string(), conn);
    }

    /// Removes the node if `conn_id` still owns it and fails its pending invokes.
    pub fn disconnect(&self, node_id: &str, conn_id: u64) {
        let mut i = self.lock();
        if i.nodes.get(node_id).is_some_and(|n| n.conn_id == conn_id) {
            i.nodes.remove(node_id);
            let ids: Vec<String> = i
                .pending
                .iter()
                .filter(|(_, p)| p.node_id == node_id)
                .map(|(k, _)| k.clone())
                .collect();
            for id in ids {
                finish(&mut i, &id, Err(InvokeFailure::Disconnected));
            }
        }
    }

    pub fn set_effective(&self, node_id: &str, effective: Vec<String>) {
        if let Some(n) = self.lock().nodes.get_mut(node_id) {
            n.effective = effective;
        }
    }

    /// After an approval: effective = declared ∩ approved.
    pub fn refresh_effective(&self, node_id: &str, approved: &[String]) {
        if let Some(n) = self.lock().nodes.get_mut(node_id) {
            n.effective = n
                .declared
                .iter()
                .filter(|c| approved.contains(c))
                .cloned()
                .collect();
        }
    }

    /// Whether invoke `id` routed to `node_id` still awaits its result.
    pub fn is_pending(&self, node_id: &str, id: &str) -> bool {
        self.lock()
            .pending
            .get(id)
            .is_some_and(|p| p.node_id == node_id)
    }

    pub fn is_connected(&self, node_id: &str) -> bool {
        self.lock().nodes.contains_key(node_id)
    }

    /// Snapshot of connected nodes: id → (info, declared, effective, connectedAt).
    pub fn snapshot(&self) -> Vec<(String, Value, Vec<String>, i64)> {
        self.lock()
            .nodes
            .iter()
            .map(|(id, n)| {
                (
                    id.clone(),
                    n.info.clone(),
                    n.effective.clone(),
                    n.connected_at_ms,
                )
            })
            .collect()
    }

    /// Sends `node.invoke.request` to the node, registering a pending invoke.
    pub fn start_invoke(
        &self,
        node_id: &str,
        command: &str,
        params: Option<&Value>,
        timeout_ms: u64,
        key: Option<&str>,
    ) -> Started {
        let mut i = self.lock();
        let ck = key.map(|k| (node_id.to_string(), k.to_string()));
        if let Some(ck) = &ck {
            if let Some(r) = i.completed.get(ck) {
                return Started::Done(r.clone());
            }
            if let Some(id) = i.by_key.get(ck).cloned() {
                let (tx, rx) = oneshot::channel();
                if let Some(p) = i.pending.get_mut(&id) {
                    p.done.push(tx);
                    return Started::Waiting(rx);
                }
            }
        }
        let Some(n) = i.nodes.get(node_id) else {
            return Started::NotConnected;
        };
        if !n.effective.iter().any(|c| c == command) {
            return Started::NotAllowed;
        }
        let id = uuid::Uuid::new_v4().to_string();
        let mut payload =
            json!({"id": id, "nodeId": node_id, "command": command, "timeoutMs": timeout_ms});
        if let Some(p) = params {
            payload["paramsJSON"] = Value::String(p.to_string());
        }
        if let Some(k) = key {
            payload["idempotencyKey"] = Value::String(k.to_string());
        }
        let ev = Arc::new(EventFrame::new("node.invoke.request", &payload));
        if n.tx.try_send(Outbound::Event(ev)).is_err() {
            return Started::Busy;
        }
        let (tx, rx) = oneshot::channel();
        if let Some(ck) = &ck {
            i.by_key.insert(ck.clone(), id.clone());
        }
        i.pending.insert(
            id,
            Pending {
                node_id: node_id.to_string(),
                done: vec![tx],
                key: ck,
            },
        );
        Started::Waiting(rx)
    }

    /// Completes an invoke from `node.invoke.result`; false when unknown or late.
    pub fn complete(&self, node_id: &str, id: &str, result: InvokeResult) -> bool {
        let mut i = self.lock();
        if i.pending.get(id).is_none_or(|p| p.node_id != node_id) {
            return false;
        }
        finish(&mut i, id, result);
        true
    }

    /// Times out an invoke that is still pending.
    pub fn expire(&self, id: &str) {
        let mut i = self.lock();
        if i.pending.contains_key(id) {
            finish(&mut i, id, Err(InvokeFailure::Timeout));
        }
    }

    /// The invoke id registered for a key (for timeouts of joined waits).
    pub fn id_for_key(&self, node_id: &str, key: &str) -> Option<String> {
        self.lock()
            .by_key
            .get(&(node_id.to_string(), key.to_string()))
            .cloned()
    }
}

fn finish(i: &mut Inner, id: &str, result: InvokeResult) {
    let Some(p) = i.pending.remove(id) else {
        return;
    };
    if let Some(ck) = p.key {
        i.by_key.remove(&ck);
        if !matches!(result, Err(InvokeFailure::Disconnected)) {
            i.completed.insert(ck.clone(), result.clone());
            i.completed_order.push_back(ck);
            while i.completed_order.len() > IDEMPOTENCY_CAP {
                if let Some(old) = i.completed_order.pop_front() {
                    i.completed.remove(&old);
                }
            }
        }
    }
    for tx in p.done {
        let _ = tx.send(result.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(nodes: &Nodes, id: &str, cmds: &[&str]) -> mpsc::Receiver<Outbound> {
        let (tx, rx) = mpsc::channel(8);
        let effective: Vec<String> = cmds.iter().map(|s| s.to_string()).collect();
        nodes.connect(
            id,
            NodeConn {
                conn_id: 1,
                tx,
                info: json!({}),
                declared: effective.clone(),
                effective,
                connected_at_ms: 0,
            },
        );
        rx
    }

    fn invoke_id(rx: &mut mpsc::Receiver<Outbound>) -> String {
        let Outbound::Event(ev) = rx.try_recv().unwrap() else {
            panic!()
        };
        let v: Value = serde_json::from_str(&ev.with_seq(1)).unwrap();
        assert_eq!(v["event"], "node.invoke.request");
        v["payload"]["id"].as_str().unwrap().to_string()
    }

    #[tokio::test]
    async fn invoke_round_trip_and_idempotency() {
        let nodes = Nodes::default();
        let mut rx = node(&nodes, "n1", &["system.which"]);
        let Started::Waiting(w) = nodes.start_invoke(
            "n1",
            "system.which",
            Some(&json!({"bins": ["git"]})),
            1000,
            Some("k1"),
        ) else {
            panic!()
        };
        let Started::Waiting(dup) =
            nodes.start_invoke("n1", "system.which", None, 1000, Some("k1"))
        else {
            panic!()
        };
        let id = invoke_id(&mut rx);
        assert!(rx.try_recv().is_err(), "duplicate did not re-send");
        assert!(!nodes.complete("other", &id, Ok(json!(1))));
        assert!(nodes.complete("n1", &id, Ok(json!({"ok": true}))));
        assert_eq!(w.await.unwrap(), Ok(json!({"ok": true})));
        assert_eq!(dup.await.unwrap(), Ok(json!({"ok": true})));
        assert!(matches!(
            nodes.start_invoke("n1", "system.which", None, 1000, Some("k1")),
            Started::Done(Ok(_))
        ));
        assert!(
            !nodes.complete("n1", &id, Ok(json!(2))),
            "late results are ignored"
        );
    }

    #[tokio::test]
    async fn gating_and_disconnect() {
        let nodes = Nodes::default();
        let _rx = node(&nodes, "n1", &["system.which"]);
        assert!(matches!(
            nodes.start_invoke("n1", "system.run", None, 10, None),
            Started::NotAllowed
        ));
        assert!(matches!(
            nodes.start_invoke("n2", "system.which", None, 10, None),
            Started::NotConnected
        ));
        let Started::Waiting(w) = nodes.start_invoke("n1", "system.which", None, 10, None) else {
            panic!()
        };
        nodes.disconnect("n1", 1);
        assert_eq!(w.await.unwrap(), Err(InvokeFailure::Disconnected));
        assert!(!nodes.is_connected("n1"));
    }
}

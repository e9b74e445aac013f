//! Presence: who is around (protocol.md §19). Entries are keyed by device id,
//! else instance id, else connection id; they expire after [`TTL_MS`]; at most
//! [`MAX_ENTRIES`] are kept (oldest evicted). Every change bumps
//! `stateVersion.presence`; the serialised list is cached between changes.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use serde_json::{Map, Value};

use crate::protocol::frames::StateVersion;

/// Presence entries expire after 5 minutes without an update.
pub const TTL_MS: i64 = 5 * 60 * 1000;
/// Upper bound on entries (`src/infra/system-presence.ts`).
pub const MAX_ENTRIES: usize = 200;

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Map<String, Value>>,
    self_entry: Option<Map<String, Value>>,
    version: u64,
    health_version: u64,
    cached: Option<String>,
}

/// The presence table.
pub struct Presence {
    inner: Mutex<Inner>,
}

impl Default for Presence {
    fn default() -> Self {
        Presence::new(None)
    }
}

impl Presence {
    /// `self_entry`: the gateway's own entry, always listed first.
    pub fn new(self_entry: Option<Map<String, Value>>) -> Self {
        Presence {
            inner: Mutex::new(Inner {
                self_entry,
                version: 1,
                health_version: 1,
                ..Default::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state_version(&self) -> StateVersion {
        let i = self.lock();
        StateVersion {
            presence: i.version,
            health: i.health_version,
        }
    }

    /// Inserts or merges an entry; returns the new state version.
    pub fn upsert(&self, key: &str, fields: Map<String, Value>, now_ms: i64) -> StateVersion {
        let mut i = self.lock();
        prune(&mut i, now_ms);
        let e = i.entries.entry(key.to_string()).or_default();
        for (k, v) in fields {
            e.insert(k, v);
        }
        e.insert("ts".into(), Value::from(now_ms));
        if i.entries.len() > MAX_ENTRIES {
            evict_oldest(&mut i);
        }
        changed(&mut i)
    }

    /// Removes an entry; `None` when it was not present.
    pub fn remove(&self, key: &str) -> Option<StateVersion> {
        let mut i = self.lock();
        i.entries.remove(key)?;
        Some(changed(&mut i))
    }

    /// The presence list as JSON (self first, then newest first).
    pub fn list_json(&self, now_ms: i64) -> String {
        let mut i = self.lock();
        if prune(&mut i, now_ms) {
            changed(&mut i);
        }
        if let Some(c) = &i.cached {
            return c.clone();
        }
        let mut rows: Vec<&Map<String, Value>> = i.entries.values().collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.get("ts").and_then(Value::as_i64).unwrap_or(0)));
        let mut all: Vec<Value> = Vec::with_capacity(rows.len() + 1);
        if let Some(s) = &i.self_entry {
            let mut s = s.clone();
            s.insert("ts".into(), Value::from(now_ms));
            all.push(Value::Object(s));
        }
        all.extend(rows.into_iter().map(|r| Value::Object(r.clone())));
        let json = serde_json::to_string(&all).unwrap_or_else(|_| "[]".into());
        // The self entry's ts moves; cache only the peer part's shape for a second.
        if i.self_entry.is_none() {
            i.cached = Some(json.clone());
        }
        json
    }
}

fn changed(i: &mut Inner) -> StateVersion {
    i.version += 1;
    i.cached = None;
    StateVersion {
        presence: i.version,
        health: i.health_version,
    }
}

fn prune(i: &mut Inner, now_ms: i64) -> bool {
    let before = i.entries.len();
    i.entries
        .retain(|_, e| now_ms - e.get("ts").and_then(Value::as_i64).unwrap_or(0) < TTL_MS);
    before != i.entries.len()
}

fn evict_oldest(i: &mut Inner) {
    let oldest = i
        .entries
        .iter()
        .min_by_key(|(_, e)| e.get("ts").and_then(Value::as_i64).unwrap_or(0))
        .map(|(k, _)| k.clone());
    if let Some(k) = oldest {
        i.entries.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn upsert_versions_and_expiry() {
        let p = Presence::new(None);
        let v0 = p.state_version().presence;
        let v1 = p.upsert("dev1", fields(json!({"host": "a"})), 1000);
        assert!(v1.presence > v0);
        p.upsert("dev1", fields(json!({"text": "hi"})), 2000);
        let list: Value = serde_json::from_str(&p.list_json(2000)).unwrap();
        assert_eq!(list, json!([{"host": "a", "text": "hi", "ts": 2000}]));
        let list: Value = serde_json::from_str(&p.list_json(2000 + TTL_MS)).unwrap();
        assert_eq!(list, json!([]));
        assert!(p.remove("dev1").is_none());
    }

    #[test]
    fn bounded_to_max_entries() {
        let p = Presence::new(None);
        for n in 0..(MAX_ENTRIES + 5) {
            p.upsert(&format!("k{n}"), Map::new(), 1000 + n as i64);
        }
        let list: Vec<Value> = serde_json::from_str(&p.list_json(2000)).unwrap();
        assert_eq!(list.len(), MAX_ENTRIES);
    }
}

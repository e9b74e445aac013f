//! Pre-auth socket budget (protocol.md §1, threats.md RL-1), counted from **accept** until the
//! connection authenticates (`hello-ok`) or ends — HTTP probes, unfinished request heads and
//! upgraded-but-unauthenticated WebSockets alike.
//!
//! Invariants:
//! - at most `per_ip` live pre-auth sockets per client IP (IPv4 and IPv4-mapped IPv6 share one
//!   count); the next `per_ip` from that IP are admitted as *refusals* (HTTP 503, then closed within
//!   a short window) and any beyond those are refused outright (closed at once);
//! - at most `global_max` entries in total (live + refusals). When full, the oldest HTTP-phase
//!   entry of the IP holding the most HTTP-phase entries is evicted (its [`Permit::evicted`]
//!   token fires and its task closes the socket): a flood from a few addresses evicts itself, and
//!   a client that upgrades within milliseconds from another address is never the one evicted;
//!   when every entry is an upgraded handshake the new socket is refused;
//! - a [`Permit`] releases its slot exactly once: when dropped (at `hello-ok` or close) or when
//!   evicted, whichever comes first.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::auth::ratelimit::canonical_ip;

/// Pre-auth sockets may use at most 1/`FD_SHARE_DIVISOR` of the soft open-file limit, so the rest
/// stays for authenticated clients, the listeners, state files and the sidecar (RL-1: 1,100 idle
/// sockets under a 1024 limit used to stop authenticated clients).
pub const FD_SHARE_DIVISOR: u64 = 2;
/// Smallest global cap, whatever the fd limit says (a tiny limit must not refuse every socket).
const MIN_GLOBAL: usize = 16;

pub struct Budget {
    per_ip: usize,
    global_max: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_seq: u64,
    by_ip: HashMap<IpAddr, Counts>,
    /// Admission order (oldest first) of every entry still holding a slot.
    order: BTreeMap<u64, Entry>,
}

#[derive(Default, Clone)]
struct Counts {
    live: usize,
    refusing: usize,
    /// This IP's entries still in the HTTP phase (evictable), oldest first.
    http_phase: BTreeSet<u64>,
}

struct Entry {
    ip: IpAddr,
    refusal: bool,
    evict: CancellationToken,
}

/// Why no permit was granted: the socket is closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The IP already has `per_ip` live sockets and `per_ip` refusals in flight.
    PerIp,
    /// The global cap is full of upgraded handshakes (nothing evictable).
    Global,
}

/// One admitted socket's slot.
pub struct Permit {
    budget: Arc<Budget>,
    seq: u64,
    refusal: bool,
    evict: CancellationToken,
}

/// The global cap for a soft open-file limit `nofile`: `max`, but at most a
/// 1/[`FD_SHARE_DIVISOR`] share of the limit (never below [`MIN_GLOBAL`]).
pub fn global_cap(max: usize, nofile: u64) -> usize {
    let share = usize::try_from(nofile / FD_SHARE_DIVISOR).unwrap_or(usize::MAX);
    max.min(share).max(MIN_GLOBAL)
}

impl Budget {
    pub fn new(per_ip: usize, global_max: usize) -> Arc<Self> {
        Arc::new(Budget {
            per_ip: per_ip.max(1),
            global_max: global_max.max(1),
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a just-accepted socket from `ip` (live, or as a refusal), or refuses it.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refused> {
        let ip = canonical_ip(ip);
        let mut st = self.lock();
        let (live, refusing) = st.by_ip.get(&ip).map_or((0, 0), |c| (c.live, c.refusing));
        let refusal = if live < self.per_ip {
            false
        } else if refusing < self.per_ip {
            true
        } else {
            return Err(Refused::PerIp);
        };
        if st.order.len() >= self.global_max && !st.evict_oldest() {
            return Err(Refused::Global);
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        let evict = CancellationToken::new();
        let counts = st.by_ip.entry(ip).or_default();
        if refusal {
            counts.refusing += 1;
        } else {
            counts.live += 1;
        }
        counts.http_phase.insert(seq);
        let entry = Entry {
            ip,
            refusal,
            evict: evict.clone(),
        };
        st.order.insert(seq, entry);
        Ok(Permit {
            budget: self.clone(),
            seq,
            refusal,
            evict,
        })
    }

    /// Evicts up to `n` of the oldest HTTP-phase sockets (e.g. when `accept` runs out of file
    /// descriptors); returns how many.
    pub fn shed(&self, n: usize) -> usize {
        let mut st = self.lock();
        (0..n).take_while(|_| st.evict_oldest()).count()
    }

    /// Sockets holding a slot now (live and refusals).
    pub fn in_use(&self) -> usize {
        self.lock().order.len()
    }

    /// The global cap in force.
    pub fn global_max(&self) -> usize {
        self.global_max
    }
}

impl State {
    /// Evicts the oldest HTTP-phase entry of the IP with the most of them (ties: the oldest
    /// entry); fires its token.
    fn evict_oldest(&mut self) -> bool {
        let Some(seq) = self
            .by_ip
            .values()
            .filter_map(|c| Some((c.http_phase.len(), Reverse(*c.http_phase.first()?))))
            .max()
            .map(|(_, Reverse(seq))| seq)
        else {
            return false;
        };
        if let Some(e) = self.release(seq) {
            e.evict.cancel();
        }
        true
    }

    /// Marks `seq` upgraded: no longer evictable.
    fn mark_upgraded(&mut self, seq: u64) {
        if let Some(e) = self.order.get(&seq) {
            if let Some(c) = self.by_ip.get_mut(&e.ip) {
                c.http_phase.remove(&seq);
            }
        }
    }

    /// Moves live entry `seq` to `ip`'s count; `false` (nothing changed) when `ip` is at its cap.
    fn reattribute(&mut self, seq: u64, ip: IpAddr, per_ip: usize) -> bool {
        let Some(e) = self.order.get(&seq) else {
            return false;
        };
        let (old, refusal) = (e.ip, e.refusal);
        if old == ip || refusal {
            return old == ip;
        }
        if self.by_ip.get(&ip).is_some_and(|c| c.live >= per_ip) {
            return false;
        }
        let http_phase = self
            .by_ip
            .get_mut(&old)
            .map(|c| {
                c.live = c.live.saturating_sub(1);
                c.http_phase.remove(&seq)
            })
            .unwrap_or(false);
        if self
            .by_ip
            .get(&old)
            .is_some_and(|c| c.live == 0 && c.refusing == 0)
        {
            self.by_ip.remove(&old);
        }
        let c = self.by_ip.entry(ip).or_default();
        c.live += 1;
        if http_phase {
            c.http_phase.insert(seq);
        }
        if let Some(e) = self.order.get_mut(&seq) {
            e.ip = ip;
        }
        true
    }

    fn release(&mut self, seq: u64) -> Option<Entry> {
        let e = self.order.remove(&seq)?;
        if let Some(c) = self.by_ip.get_mut(&e.ip) {
            c.http_phase.remove(&seq);
            if e.refusal {
                c.refusing = c.refusing.saturating_sub(1);
            } else {
                c.live = c.live.saturating_sub(1);
            }
            if c.live == 0 && c.refusing == 0 {
                self.by_ip.remove(&e.ip);
            }
        }
        Some(e)
    }
}

impl Permit {
    /// Whether this socket is only admitted to be answered 503 and closed.
    pub fn is_refusal(&self) -> bool {
        self.refusal
    }

    /// Fires when the budget evicted this socket (close it).
    pub fn evicted(&self) -> CancellationToken {
        self.evict.clone()
    }

    /// Counts this socket under `ip` from now on: a userspace tailscaled forward identified by
    /// whois is charged to the tailnet node, not to loopback (ADR 0060). `false` when `ip` already
    /// has its `per_ip` live sockets (the caller refuses the request).
    pub fn attribute_to(&self, ip: IpAddr) -> bool {
        let per_ip = self.budget.per_ip;
        self.budget
            .lock()
            .reattribute(self.seq, canonical_ip(ip), per_ip)
    }

    /// Marks the socket as upgraded to a WebSocket: bounded by the handshake timeout from now on,
    /// it is no longer evicted for newer sockets.
    pub fn upgraded(&self) {
        self.budget.lock().mark_upgraded(self.seq);
    }
}

/// A connection's permit, shared with its requests (via request extensions) until an upgrade takes
/// it to the WebSocket; dropped with the connection otherwise.
#[derive(Clone)]
pub struct PermitSlot(Arc<Mutex<Option<Permit>>>);

impl PermitSlot {
    pub fn new(p: Permit) -> Self {
        PermitSlot(Arc::new(Mutex::new(Some(p))))
    }

    /// [`Permit::attribute_to`] on the permit still in the slot (`true` when none is left).
    pub fn attribute_to(&self, ip: IpAddr) -> bool {
        let g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.as_ref().is_none_or(|p| p.attribute_to(ip))
    }

    /// Takes the permit for a WebSocket upgrade (marking it upgraded); `None` if already taken.
    pub fn take_for_upgrade(&self) -> Option<Permit> {
        let p = self.0.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        p.upgraded();
        Some(p)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.budget.lock().release(self.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_forward_is_charged_to_its_tailnet_node() {
        let b = Budget::new(2, 100);
        let (lo, node) = (ip("127.0.0.1"), ip("100.64.0.4"));
        let p1 = b.admit(lo).unwrap();
        let p2 = b.admit(lo).unwrap();
        assert!(b.admit(lo).unwrap().is_refusal(), "loopback full");
        assert!(p1.attribute_to(node) && p2.attribute_to(node));
        assert!(
            !b.admit(lo).unwrap().is_refusal(),
            "loopback has room again"
        );
        let p3 = b.admit(lo).unwrap();
        assert!(!p3.attribute_to(node), "the node is at its cap");
        drop((p1, p2));
        assert!(p3.attribute_to(node));
        assert_eq!(
            b.in_use(),
            1,
            "only p3 holds a slot (the other admits were dropped)"
        );
    }

    #[test]
    fn per_ip_live_then_refusals_then_closed() {
        let b = Budget::new(2, 100);
        let a = ip("10.0.0.1");
        let p1 = b.admit(a).unwrap();
        let p2 = b.admit(ip("::ffff:10.0.0.1")).unwrap();
        assert!(!p1.is_refusal() && !p2.is_refusal());
        let r1 = b.admit(a).unwrap();
        let r2 = b.admit(a).unwrap();
        assert!(r1.is_refusal() && r2.is_refusal());
        assert_eq!(b.admit(a).err(), Some(Refused::PerIp));
        assert!(!b.admit(ip("10.0.0.2")).unwrap().is_refusal());
        drop(p1);
        assert!(
            !b.admit(a).unwrap().is_refusal(),
            "a freed live slot is reused"
        );
        drop((p2, r1, r2));
        assert_eq!(b.in_use(), 0);
    }

    #[test]
    fn global_cap_evicts_the_oldest_http_phase_socket_of_the_busiest_ip() {
        let b = Budget::new(10, 4);
        let lone = b.admit(ip("10.0.0.9")).unwrap();
        let f1 = b.admit(ip("10.0.0.1")).unwrap();
        let f2 = b.admit(ip("10.0.0.1")).unwrap();
        let up = b.admit(ip("10.0.0.2")).unwrap();
        up.upgraded();
        let f3 = b.admit(ip("10.0.0.1")).unwrap();
        assert!(
            f1.evicted().is_cancelled(),
            "the flooder's oldest goes first"
        );
        assert!(
            !lone.evicted().is_cancelled(),
            "older, but its IP holds one slot"
        );
        assert!(!f2.evicted().is_cancelled() && !up.evicted().is_cancelled());
        assert_eq!(b.in_use(), 4);
        drop(f1); // releasing an evicted permit does not free a second slot
        assert_eq!(b.in_use(), 4);
        for p in [&lone, &f2, &f3] {
            p.upgraded();
        }
        assert_eq!(b.admit(ip("10.0.0.5")).err(), Some(Refused::Global));
        drop(up);
        assert!(b.admit(ip("10.0.0.5")).is_ok());
    }

    #[test]
    fn shed_frees_oldest_first_and_cap_follows_the_fd_limit() {
        let b = Budget::new(10, 10);
        let p: Vec<Permit> = (1..=4)
            .map(|i| b.admit(ip(&format!("10.0.0.{i}"))).unwrap())
            .collect();
        assert_eq!(b.shed(2), 2);
        let fired: Vec<bool> = p.iter().map(|p| p.evicted().is_cancelled()).collect();
        assert_eq!(fired, [true, true, false, false]);
        assert_eq!(b.in_use(), 2);
        assert_eq!(global_cap(4096, 1024), 512);
        assert_eq!(global_cap(4096, 1 << 20), 4096);
        assert_eq!(global_cap(4096, 8), MIN_GLOBAL);
    }
}

//! Pre-auth socket budget (protocol.md §1, threats.md RL-1): at most N
//! unauthenticated sockets per client IP (excess: HTTP 503 before the upgrade)
//! and a global cap on sockets still in the handshake (excess: close 1013).
//! A [`Permit`] releases its slot when dropped (on `hello-ok` or close).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::auth::ratelimit::canonical_ip;

pub struct Budget {
    per_ip: usize,
    global_max: usize,
    global: AtomicUsize,
    by_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// Why no permit was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    PerIp,
    Global,
}

pub struct Permit {
    budget: Arc<Budget>,
    ip: IpAddr,
}

impl Budget {
    pub fn new(per_ip: usize, global_max: usize) -> Arc<Self> {
        Arc::new(Budget {
            per_ip,
            global_max,
            global: AtomicUsize::new(0),
            by_ip: Mutex::default(),
        })
    }

    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refused> {
        let ip = canonical_ip(ip);
        let mut map = self.by_ip.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= self.per_ip {
            return Err(Refused::PerIp);
        }
        if self.global.load(Ordering::Relaxed) >= self.global_max {
            return Err(Refused::Global);
        }
        *n += 1;
        self.global.fetch_add(1, Ordering::Relaxed);
        Ok(Permit {
            budget: self.clone(),
            ip,
        })
    }

    pub fn in_use(&self) -> usize {
        self.global.load(Ordering::Relaxed)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut map = self.budget.by_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
        self.budget.global.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_and_global_limits() {
        let b = Budget::new(2, 3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let c: IpAddr = "10.0.0.2".parse().unwrap();
        let p1 = b.acquire(a).unwrap();
        let _p2 = b.acquire("::ffff:10.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(b.acquire(a).err(), Some(Refused::PerIp));
        let _p3 = b.acquire(c).unwrap();
        assert_eq!(b.acquire(c).err(), Some(Refused::Global));
        drop(p1);
        let _p4 = b.acquire(a).unwrap();
        assert_eq!(b.in_use(), 3);
    }
}

//! Failed-credential rate limiter (protocol.md §21, threats.md RL-3): a sliding
//! window of failures per {scope, client key}; too many ⇒ lockout.
//!
//! Invariants: IPv4 and IPv4-mapped IPv6 forms share a bucket; memory is bounded
//! (idle buckets are pruned once the table grows past [`MAX_BUCKETS`]).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::file::RateLimitFile;

/// Buckets kept before pruning idle ones (bounds memory under IP rotation).
pub const MAX_BUCKETS: usize = 65_536;

/// The client key of a bucket: an IP, or a browser origin for loopback browsers.
pub fn client_key(ip: IpAddr, browser_origin: Option<&str>) -> String {
    let ip = canonical_ip(ip);
    match browser_origin {
        Some(origin) if ip.is_loopback() => format!("browser-origin:{origin}"),
        _ => ip.to_string(),
    }
}

/// IPv4-mapped IPv6 addresses become IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[derive(Default)]
struct Bucket {
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

/// A lockout in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    pub retry_after: Duration,
}

pub struct RateLimiter {
    max_attempts: usize,
    window: Duration,
    lockout: Duration,
    buckets: Mutex<HashMap<(&'static str, String), Bucket>>,
}

impl RateLimiter {
    pub fn new(cfg: &RateLimitFile) -> Self {
        RateLimiter {
            max_attempts: cfg.max_attempts.max(1) as usize,
            window: Duration::from_millis(cfg.window_ms),
            lockout: Duration::from_millis(cfg.lockout_ms),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(&'static str, String), Bucket>> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err` while the bucket is locked out.
    pub fn check(&self, scope: &'static str, key: &str, now: Instant) -> Result<(), Locked> {
        let map = self.lock();
        match map
            .get(&(scope, key.to_string()))
            .and_then(|b| b.locked_until)
        {
            Some(until) if until > now => Err(Locked {
                retry_after: until - now,
            }),
            _ => Ok(()),
        }
    }

    /// Records a wrong credential; returns the lockout if this failure caused one.
    pub fn record_failure(&self, scope: &'static str, key: &str, now: Instant) -> Option<Locked> {
        let mut map = self.lock();
        if map.len() >= MAX_BUCKETS {
            map.retain(|_, b| {
                b.locked_until.is_some_and(|u| u > now)
                    || b.failures
                        .back()
                        .is_some_and(|t| now.duration_since(*t) < self.window)
            });
        }
        let b = map.entry((scope, key.to_string())).or_default();
        while b
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            b.failures.pop_front();
        }
        b.failures.push_back(now);
        if b.failures.len() >= self.max_attempts {
            b.failures.clear();
            b.locked_until = Some(now + self.lockout);
            return Some(Locked {
                retry_after: self.lockout,
            });
        }
        None
    }

    /// A success resets the bucket.
    pub fn record_success(&self, scope: &'static str, key: &str) {
        self.lock().remove(&(scope, key.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_lock_out_for_five_minutes() {
        let rl = RateLimiter::new(&RateLimitFile::default());
        let t0 = Instant::now();
        for i in 0..9 {
            assert_eq!(
                rl.record_failure("shared", "1.2.3.4", t0 + Duration::from_millis(i)),
                None
            );
        }
        let locked = rl
            .record_failure("shared", "1.2.3.4", t0 + Duration::from_millis(9))
            .unwrap();
        assert_eq!(locked.retry_after, Duration::from_secs(300));
        assert!(rl
            .check("shared", "1.2.3.4", t0 + Duration::from_secs(299))
            .is_err());
        assert!(rl
            .check("shared", "1.2.3.4", t0 + Duration::from_secs(310))
            .is_ok());
        assert!(
            rl.check("device", "1.2.3.4", t0).is_ok(),
            "scopes are separate"
        );
    }

    #[test]
    fn failures_outside_the_window_expire_and_success_resets() {
        let rl = RateLimiter::new(&RateLimitFile::default());
        let t0 = Instant::now();
        for i in 0..9 {
            rl.record_failure("s", "k", t0 + Duration::from_secs(i));
        }
        assert_eq!(
            rl.record_failure("s", "k", t0 + Duration::from_secs(70)),
            None
        );
        rl.record_success("s", "k");
        for i in 0..9 {
            assert_eq!(
                rl.record_failure("s", "k", t0 + Duration::from_secs(80 + i)),
                None
            );
        }
    }

    #[test]
    fn mapped_ipv6_shares_the_ipv4_bucket() {
        let v4: IpAddr = "10.0.0.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        assert_eq!(client_key(v4, None), client_key(mapped, None));
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            client_key(lo, Some("http://evil.test")),
            "browser-origin:http://evil.test"
        );
    }
}

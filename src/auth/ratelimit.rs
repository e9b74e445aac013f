//! Failed-credential rate limiter (protocol.md §21, threats.md RL-3): a sliding
//! window of failures per {scope, client key}; too many ⇒ lockout. Loopback
//! (exempt from lockout) gets an escalating delay instead
//! (docs/decisions/0071-loopback-guess-delay.md).
//!
//! Invariants: IPv4 and IPv4-mapped IPv6 forms share a bucket; memory is bounded
//! (idle buckets are pruned once the table grows past [`MAX_BUCKETS`]); a
//! loopback bucket admits at most one attempt per current delay, and never
//! makes an attempt wait longer than [`LOOPBACK_MAX_DELAY`].

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::file::RateLimitFile;

/// Buckets kept before pruning idle ones (bounds memory under IP rotation).
pub const MAX_BUCKETS: usize = 65_536;
/// Loopback failures in the window answered without delay: a person's typos.
pub const LOOPBACK_FREE_FAILURES: usize = 5;
/// Delay after the free failures; doubles with every further failure in the window.
pub const LOOPBACK_BASE_DELAY: Duration = Duration::from_millis(250);
/// Cap of the delay and of any single wait: bounds guessing to one attempt per
/// this interval and the wait the right secret can see during an attack.
pub const LOOPBACK_MAX_DELAY: Duration = Duration::from_secs(2);

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
    /// Loopback: the earliest time the next attempt may be evaluated.
    next_slot: Option<Instant>,
}

impl Bucket {
    fn expire(&mut self, now: Instant, window: Duration) {
        while self
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            self.failures.pop_front();
        }
    }
}

/// The loopback delay after `failures` failures in the window.
pub fn loopback_delay(failures: usize) -> Duration {
    let Some(extra) = failures.checked_sub(LOOPBACK_FREE_FAILURES) else {
        return Duration::ZERO;
    };
    let factor = 1u32.checked_shl(extra.min(16) as u32).unwrap_or(u32::MAX);
    LOOPBACK_BASE_DELAY
        .saturating_mul(factor)
        .min(LOOPBACK_MAX_DELAY)
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

    /// Loopback: how long this attempt waits before its credential is evaluated, reserving
    /// the next slot; `Err` (no reservation) when the wait would exceed [`LOOPBACK_MAX_DELAY`].
    pub fn loopback_wait(
        &self,
        scope: &'static str,
        key: &str,
        now: Instant,
    ) -> Result<Duration, Locked> {
        let mut map = self.lock();
        let Some(b) = map.get_mut(&(scope, key.to_string())) else {
            return Ok(Duration::ZERO);
        };
        b.expire(now, self.window);
        let delay = loopback_delay(b.failures.len());
        if delay.is_zero() {
            return Ok(Duration::ZERO);
        }
        let slot = b.next_slot.filter(|s| *s > now).unwrap_or(now);
        let wait = slot - now;
        if wait > LOOPBACK_MAX_DELAY {
            return Err(Locked { retry_after: wait });
        }
        b.next_slot = Some(slot + delay);
        Ok(wait)
    }

    /// Loopback: records a wrong credential (feeds the delay, never locks out).
    pub fn record_loopback_failure(&self, scope: &'static str, key: &str, now: Instant) {
        let mut map = self.lock();
        self.prune(&mut map, now);
        let b = map.entry((scope, key.to_string())).or_default();
        b.expire(now, self.window);
        b.failures.push_back(now);
    }

    fn prune(&self, map: &mut HashMap<(&'static str, String), Bucket>, now: Instant) {
        if map.len() >= MAX_BUCKETS {
            map.retain(|_, b| {
                b.locked_until.is_some_and(|u| u > now)
                    || b.failures
                        .back()
                        .is_some_and(|t| now.duration_since(*t) < self.window)
            });
        }
    }

    /// Records a wrong credential; returns the lockout if this failure caused one.
    pub fn record_failure(&self, scope: &'static str, key: &str, now: Instant) -> Option<Locked> {
        let mut map = self.lock();
        self.prune(&mut map, now);
        let b = map.entry((scope, key.to_string())).or_default();
        b.expire(now, self.window);
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
    fn loopback_delay_escalates_to_the_cap() {
        let d = |n| loopback_delay(n).as_millis();
        assert_eq!((d(0), d(4), d(5), d(6), d(7)), (0, 0, 250, 500, 1000));
        assert_eq!((d(8), d(9), d(500)), (2000, 2000, 2000));
    }

    #[test]
    fn loopback_attempts_are_spaced_and_never_wait_past_the_cap() {
        let rl = RateLimiter::new(&RateLimitFile::default());
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        for i in 0..LOOPBACK_FREE_FAILURES as u64 {
            assert_eq!(rl.loopback_wait("s", "lo", at(i)), Ok(Duration::ZERO));
            rl.record_loopback_failure("s", "lo", at(i));
        }
        // Two parallel attempts: one goes now, the other waits for the next slot.
        assert_eq!(rl.loopback_wait("s", "lo", at(10)), Ok(Duration::ZERO));
        assert_eq!(
            rl.loopback_wait("s", "lo", at(10)),
            Ok(Duration::from_millis(250))
        );
        for i in 0..4 {
            rl.record_loopback_failure("s", "lo", at(20 + i));
        }
        assert_eq!(
            rl.loopback_wait("s", "lo", at(30)),
            Ok(Duration::from_millis(480)),
            "slots already reserved are kept"
        );
        let refused = rl.loopback_wait("s", "lo", at(30)).unwrap_err();
        assert!(refused.retry_after > LOOPBACK_MAX_DELAY, "{refused:?}");
        assert!(
            rl.check("s", "lo", at(30)).is_ok(),
            "loopback is never locked out"
        );
        // Failures expire with the window: the delay is gone a minute later.
        assert_eq!(rl.loopback_wait("s", "lo", at(61_000)), Ok(Duration::ZERO));
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

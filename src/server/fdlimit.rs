//! The open-file limit (threats.md RL-1): raised at start so idle floods meet the pre-auth budget
//! long before `accept` fails, and read to size that budget ([`super::budget::global_cap`]).
//!
//! Invariant: only the soft limit changes, and only upwards (never above the hard limit).

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Assumed soft limit when `getrlimit` fails (the common systemd/shell default).
pub const FALLBACK_NOFILE: u64 = 1024;

/// The soft and hard `RLIMIT_NOFILE` before and after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimits {
    pub soft_before: u64,
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and logs both.
pub fn raise() -> Option<NofileLimits> {
    let (soft_before, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("cannot read the open-file limit: {e}");
            return None;
        }
    };
    let target = hard.min(nr_open());
    let soft = if soft_before < target {
        match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
            Ok(()) => target,
            Err(e) => {
                tracing::warn!(soft_before, hard, "cannot raise the open-file limit: {e}");
                soft_before
            }
        }
    } else {
        soft_before
    };
    tracing::info!(soft_before, soft, hard, "open-file limit (RLIMIT_NOFILE)");
    Some(NofileLimits {
        soft_before,
        soft,
        hard,
    })
}

/// The kernel's per-process ceiling (`fs.nr_open`): an unlimited hard limit cannot be the soft one.
fn nr_open() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u64::MAX)
}

/// The soft open-file limit in force now.
pub fn soft() -> u64 {
    getrlimit(Resource::RLIMIT_NOFILE)
        .map(|(s, _)| s)
        .unwrap_or(FALLBACK_NOFILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_reaches_the_hard_limit_and_soft_reports_it() {
        let l = raise().expect("getrlimit works on Linux");
        assert!(l.soft >= l.soft_before);
        assert_eq!(l.soft, l.hard.min(nr_open()), "soft raised to hard");
        assert_eq!(soft(), l.soft);
    }
}

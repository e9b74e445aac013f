//! Rate-limited logging for lines an attacker can trigger at will (failed
//! credentials, denied calls: threats.md RL-3, RL-4): the first few lines of a
//! window are logged, the rest are counted and reported in one summary line
//! when the next window opens.
//!
//! Invariant: at most `per_window` lines plus one summary per window, whatever
//! the event rate; no event is lost from the count.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines logged per window before suppression.
pub const LINES_PER_WINDOW: u32 = 10;
/// Length of one window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// What the caller should log for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log the line; `suppressed` earlier lines of the previous window were dropped
    /// (log a summary first when non-zero).
    Log { suppressed: u64 },
    /// Drop the line (it is counted).
    Suppress,
}

struct State {
    window_start: Instant,
    logged: u32,
    suppressed: u64,
}

/// One throttle per kind of line.
pub struct LogThrottle {
    per_window: u32,
    window: Duration,
    state: Mutex<Option<State>>,
}

impl Default for LogThrottle {
    fn default() -> Self {
        LogThrottle::new(LINES_PER_WINDOW, WINDOW)
    }
}

impl LogThrottle {
    pub fn new(per_window: u32, window: Duration) -> Self {
        LogThrottle {
            per_window,
            window,
            state: Mutex::new(None),
        }
    }

    /// Decides for one event at `now`.
    pub fn check(&self, now: Instant) -> Verdict {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let st = guard.get_or_insert(State {
            window_start: now,
            logged: 0,
            suppressed: 0,
        });
        let mut carried = 0;
        if now.duration_since(st.window_start) >= self.window {
            carried = std::mem::take(&mut st.suppressed);
            st.window_start = now;
            st.logged = 0;
        }
        if st.logged < self.per_window {
            st.logged += 1;
            return Verdict::Log {
                suppressed: carried,
            };
        }
        st.suppressed += 1 + carried;
        Verdict::Suppress
    }
}

/// Logs `line` at INFO through `throttle`, with a summary of what was dropped before it.
#[macro_export]
macro_rules! throttled_info {
    ($throttle:expr, $what:literal, $($arg:tt)+) => {
        match $throttle.check(std::time::Instant::now()) {
            $crate::server::log_throttle::Verdict::Log { suppressed } => {
                if suppressed > 0 {
                    tracing::info!(suppressed, concat!("suppressed similar lines: ", $what));
                }
                tracing::info!($($arg)+);
            }
            $crate::server::log_throttle::Verdict::Suppress => {}
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_lines_then_one_summary_per_window() {
        let t = LogThrottle::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        let logged = (0..1000)
            .filter(|i| t.check(t0 + Duration::from_millis(*i)) != Verdict::Suppress)
            .count();
        assert_eq!(logged, 3);
        assert_eq!(
            t.check(t0 + Duration::from_secs(61)),
            Verdict::Log { suppressed: 997 }
        );
        assert_eq!(
            t.check(t0 + Duration::from_secs(62)),
            Verdict::Log { suppressed: 0 }
        );
    }
}

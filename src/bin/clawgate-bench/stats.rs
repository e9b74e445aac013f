//! Latency recording and the metric records every scenario produces.
//!
//! Latencies are recorded per task into an HDR histogram (nanoseconds, 3 significant digits) and
//! merged once at the end, so recording costs one array increment and no lock. A `Metric` is the
//! unit of every result: scenarios emit any number of them under stable dotted keys, and the report
//! renders whatever keys it finds, so new scenarios need no report changes.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency the histograms track; slower samples are clamped to it.
const MAX_TRACKED_NS: u64 = 60_000_000_000;

/// Per-task latency recorder.
pub struct Latencies {
    hist: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    pub fn new() -> Self {
        let hist = Histogram::new_with_bounds(1, MAX_TRACKED_NS, 3)
            .expect("constant histogram bounds (1 ns..60 s, 3 digits) are valid");
        Self { hist }
    }

    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.hist.saturating_record(ns.clamp(1, MAX_TRACKED_NS));
    }

    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so adding cannot go out of range.
        let _ = self.hist.add(&other.hist);
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Latency at quantile `q` (0..=1) in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1e6
    }
}

/// Whether a larger value of a metric is better (rates) or worse (times, memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
}

/// One measured number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metric {
    /// Stable key, e.g. `rpc.system-presence.c16.rate`; the report joins targets on it.
    pub key: String,
    /// Human label for the table.
    pub label: String,
    pub value: f64,
    pub unit: String,
    pub better: Better,
    /// Per-round values `value` was aggregated from (empty for single measurements).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<f64>,
}

impl Metric {
    pub fn new(
        key: impl Into<String>,
        label: impl Into<String>,
        value: f64,
        unit: &str,
        better: Better,
    ) -> Self {
        Self {
            key: key.into(),
            label: label.into(),
            value,
            unit: unit.to_owned(),
            better,
            samples: Vec::new(),
        }
    }
}

/// The rate / p50 / p99 triple for a throughput scenario with `ops` completions over `elapsed`.
pub fn rate_metrics(
    prefix: &str,
    label: &str,
    ops: u64,
    elapsed: Duration,
    lat: &Latencies,
) -> Vec<Metric> {
    let rate = ops as f64 / elapsed.as_secs_f64().max(1e-9);
    let mut m = vec![Metric::new(
        format!("{prefix}.rate"),
        format!("{label}: per second"),
        rate,
        "/s",
        Better::Higher,
    )];
    m.extend(latency_metrics(prefix, label, lat));
    m
}

/// The p50 / p99 pair (`{prefix}.p50_ms`, `{prefix}.p99_ms`).
pub fn latency_metrics(prefix: &str, label: &str, lat: &Latencies) -> Vec<Metric> {
    [("p50", 0.5), ("p99", 0.99)]
        .into_iter()
        .map(|(name, q)| {
            Metric::new(
                format!("{prefix}.{name}_ms"),
                format!("{label}: {name}"),
                lat.quantile_ms(q),
                "ms",
                Better::Lower,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_merge() {
        let mut a = Latencies::new();
        let mut b = Latencies::new();
        for ms in 1..=99u64 {
            a.record(Duration::from_millis(ms));
        }
        b.record(Duration::from_secs(10));
        a.merge(&b);
        assert_eq!(a.count(), 100);
        let p50 = a.quantile_ms(0.5);
        assert!((49.0..=51.0).contains(&p50), "p50 {p50}");
        assert!(a.quantile_ms(1.0) > 9_000.0);
    }
}

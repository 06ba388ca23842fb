//! Latency histograms: one [`Hist`] per load worker (nanoseconds, 3 significant digits),
//! merged after a run and summarised into the percentiles the report prints.

use std::time::Duration;

use anyhow::{Context as _, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

/// A latency histogram in nanoseconds.
pub(crate) type Hist = Histogram<u64>;

/// The largest latency a histogram tracks exactly; longer ones are recorded as this.
pub(crate) const MAX_TRACKED: Duration = Duration::from_secs(60);

/// An empty histogram covering 1 ns to [`MAX_TRACKED`] at 3 significant digits.
pub(crate) fn new_hist() -> Hist {
    // The bounds are constants that satisfy hdrhistogram's rules (low >= 1, high >= 2 * low,
    // sigfig <= 5), so construction cannot fail.
    Histogram::new_with_bounds(1, nanos(MAX_TRACKED), 3).expect("constant valid bounds")
}

/// Records one latency, clamped to the tracked range.
pub(crate) fn record(hist: &mut Hist, latency: Duration) {
    hist.saturating_record(nanos(latency).max(1));
}

/// Adds `other` into `into`.
///
/// # Errors
/// Only if the histograms had different bounds, which [`new_hist`] rules out.
pub(crate) fn merge(into: &mut Hist, other: &Hist) -> Result<()> {
    into.add(other).context("merging latency histograms")
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The percentiles of one measurement, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(crate) struct Summary {
    /// Recorded (successful) requests.
    pub(crate) count: u64,
    /// Mean latency.
    pub(crate) mean_us: f64,
    /// Median.
    pub(crate) p50_us: f64,
    /// 90th percentile.
    pub(crate) p90_us: f64,
    /// 99th percentile.
    pub(crate) p99_us: f64,
    /// 99.9th percentile.
    pub(crate) p999_us: f64,
    /// Largest latency.
    pub(crate) max_us: f64,
}

impl Summary {
    /// Summarises `hist` (all zeros when it is empty).
    pub(crate) fn of(hist: &Hist) -> Self {
        if hist.is_empty() {
            return Self::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Self {
            count: hist.len(),
            mean_us: hist.mean() / 1000.0,
            p50_us: us(hist.value_at_quantile(0.50)),
            p90_us: us(hist.value_at_quantile(0.90)),
            p99_us: us(hist.value_at_quantile(0.99)),
            p999_us: us(hist.value_at_quantile(0.999)),
            max_us: us(hist.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b * 0.002
    }

    #[test]
    fn merged_histograms_give_percentiles_of_the_union() -> Result<()> {
        let mut a = new_hist();
        let mut b = new_hist();
        for i in 1..=500u64 {
            record(&mut a, Duration::from_micros(i));
            record(&mut b, Duration::from_micros(500 + i));
        }
        merge(&mut a, &b)?;
        let s = Summary::of(&a);
        assert_eq!(s.count, 1000);
        assert!(close(s.p50_us, 500.0), "{s:?}");
        assert!(close(s.p99_us, 990.0), "{s:?}");
        assert!(close(s.max_us, 1000.0), "{s:?}");
        assert!(close(s.mean_us, 500.5), "{s:?}");
        Ok(())
    }

    #[test]
    fn empty_and_out_of_range() {
        assert_eq!(Summary::of(&new_hist()), Summary::default());
        let mut h = new_hist();
        record(&mut h, Duration::from_secs(3600));
        record(&mut h, Duration::ZERO);
        assert_eq!(h.len(), 2);
        assert!(Summary::of(&h).max_us >= 59_000_000.0);
    }
}

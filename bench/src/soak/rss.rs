//! Memory over the soak: `VmRSS` samples of one process and the leak rule.
//!
//! The rule ("RSS is flat"): with the *baseline* the first sample taken at or after 20% of the
//! run (the warm-up: connection pools, caches and allocator arenas have grown by then) and
//! *end* the last sample, taken right after the load stopped,
//! `end <= baseline + max(slack_kib, baseline * slack_percent / 100)`.
//! With the defaults (20 MiB, 50%) this is a generous check against leaks, not a benchmark.

use serde::Serialize;

/// The share of the run treated as warm-up before the baseline is taken.
pub(crate) const WARMUP_FRACTION: f64 = 0.2;

/// One sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Sample {
    /// Seconds since the load started.
    pub(crate) at_seconds: f64,
    /// `VmRSS`, KiB.
    pub(crate) kib: u64,
}

/// The samples of one process.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Series {
    /// In time order.
    pub(crate) samples: Vec<Sample>,
}

/// What the samples say.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct RssSummary {
    /// The first sample (at the start of the load), KiB.
    pub(crate) first_kib: u64,
    /// The baseline: first sample at or after the warm-up, KiB.
    pub(crate) baseline_kib: u64,
    /// When the baseline was taken, seconds into the run.
    pub(crate) baseline_at_seconds: f64,
    /// The largest sample, KiB.
    pub(crate) max_kib: u64,
    /// The last sample, KiB.
    pub(crate) end_kib: u64,
    /// How much `end` may exceed the baseline, KiB.
    pub(crate) allowed_growth_kib: u64,
    /// Whether `end <= baseline + allowed_growth`.
    pub(crate) flat: bool,
}

impl Series {
    /// Adds a sample.
    pub(crate) fn push(&mut self, at_seconds: f64, kib: u64) {
        self.samples.push(Sample { at_seconds, kib });
    }

    /// Applies the leak rule to a run of `run_seconds`; `None` without samples.
    pub(crate) fn summary(
        &self,
        run_seconds: f64,
        slack_kib: u64,
        slack_percent: f64,
    ) -> Option<RssSummary> {
        let first = self.samples.first()?;
        let end = self.samples.last()?;
        let warmup = run_seconds * WARMUP_FRACTION;
        let baseline = self
            .samples
            .iter()
            .find(|s| s.at_seconds >= warmup)
            .unwrap_or(end);
        let max_kib = self.samples.iter().map(|s| s.kib).max().unwrap_or(end.kib);
        let allowed_growth_kib = allowed_growth(baseline.kib, slack_kib, slack_percent);
        Some(RssSummary {
            first_kib: first.kib,
            baseline_kib: baseline.kib,
            baseline_at_seconds: baseline.at_seconds,
            max_kib,
            end_kib: end.kib,
            allowed_growth_kib,
            flat: end.kib <= baseline.kib.saturating_add(allowed_growth_kib),
        })
    }
}

/// `max(slack_kib, baseline * slack_percent / 100)`.
pub(crate) fn allowed_growth(baseline_kib: u64, slack_kib: u64, slack_percent: f64) -> u64 {
    let relative = (baseline_kib as f64 * slack_percent / 100.0).round() as u64;
    slack_kib.max(relative)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(f64, u64)]) -> Series {
        let mut s = Series::default();
        for &(t, kib) in points {
            s.push(t, kib);
        }
        s
    }

    #[test]
    fn baseline_is_the_first_sample_after_the_warmup() -> Result<(), String> {
        let s = series(&[
            (0.0, 5_000),
            (1.0, 30_000),
            (2.0, 40_000),
            (3.0, 41_000),
            (5.0, 42_000),
        ]);
        let sum = s.summary(10.0, 20 * 1024, 50.0).ok_or("no summary")?;
        assert_eq!(sum.first_kib, 5_000);
        assert_eq!(sum.baseline_kib, 40_000);
        assert_eq!(sum.baseline_at_seconds, 2.0);
        assert_eq!(sum.max_kib, 42_000);
        assert_eq!(sum.end_kib, 42_000);
        assert_eq!(sum.allowed_growth_kib, 20_480);
        assert!(sum.flat);
        Ok(())
    }

    #[test]
    fn growth_beyond_both_allowances_is_not_flat() -> Result<(), String> {
        // Small process: the absolute 20 MiB wins.
        let s = series(&[(0.0, 10_000), (2.0, 10_000), (10.0, 10_000 + 20_481)]);
        assert!(!s.summary(10.0, 20 * 1024, 50.0).ok_or("none")?.flat);
        let s = series(&[(0.0, 10_000), (2.0, 10_000), (10.0, 10_000 + 20_480)]);
        assert!(s.summary(10.0, 20 * 1024, 50.0).ok_or("none")?.flat);
        // Large process: 50% wins.
        let s = series(&[(2.0, 100_000), (10.0, 149_000)]);
        assert!(s.summary(10.0, 20 * 1024, 50.0).ok_or("none")?.flat);
        let s = series(&[(2.0, 100_000), (10.0, 151_000)]);
        assert!(!s.summary(10.0, 20 * 1024, 50.0).ok_or("none")?.flat);
        Ok(())
    }

    #[test]
    fn no_samples_no_summary() {
        assert!(Series::default().summary(1.0, 0, 0.0).is_none());
        assert_eq!(allowed_growth(1000, 0, 10.0), 100);
    }
}

//! Flags given in (fractional) seconds, as durations: shared by the benchmark's and the soak's
//! settings.

use std::time::Duration;

use anyhow::{Context as _, Result};

/// `value` seconds, or an error naming `flag` (negative, NaN, too large).
///
/// # Errors
/// A value no [`Duration`] can hold.
pub(crate) fn secs(value: f64, flag: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(value).with_context(|| format!("{flag} {value} is not a duration"))
}

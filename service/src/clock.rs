//! UTC timestamps in the text formats the `article_article` table uses.
//!
//! Django stores `create_time` in SQLite as `YYYY-MM-DD HH:MM:SS.ffffff` (UTC); the API shows
//! `YYYY-MM-DD HH:MM:SS`. Formatting is humantime's RFC 3339 with a space for the `T` and no
//! `Z`. The checks of stored text ([`is_valid_timestamp`], [`sqlite_canonical_len`]) stay
//! hand-written: they run on every row read, look at fixed byte positions without parsing into
//! a time, and must accept exactly what SQLite's `strftime` would print unchanged (years 1 to
//! 9999), which no date crate's parser promises.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The current time as seconds and microseconds since the Unix epoch.
pub fn now() -> (i64, u32) {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    (
        i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        since.subsec_micros(),
    )
}

/// Formats a Unix time as Django writes it to SQLite: `YYYY-MM-DD HH:MM:SS.ffffff`.
/// Times before 1970 (which nothing here makes) are written as the epoch.
pub fn format_django(secs: i64, micros: u32) -> String {
    let at = UNIX_EPOCH
        + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
        + Duration::from_micros(u64::from(micros));
    django(&humantime::format_rfc3339_micros(at).to_string())
}

/// Formats a Unix time as `YYYY-MM-DD HH:MM:SS` (before 1970: the epoch).
pub fn format_seconds(secs: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    django(&humantime::format_rfc3339_seconds(at).to_string())
}

/// `YYYY-MM-DDTHH:MM:SS[.ffffff]Z` as Django writes it: a space for the `T`, no `Z`.
fn django(rfc3339: &str) -> String {
    rfc3339
        .replacen('T', " ", 1)
        .trim_end_matches('Z')
        .to_owned()
}

/// The current time in Django's SQLite format.
pub fn now_django() -> String {
    let (secs, micros) = now();
    format_django(secs, micros)
}

/// Whether `s` is a plausible `YYYY-MM-DD HH:MM:SS` timestamp.
pub fn is_valid_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 19 {
        return false;
    }
    let shape_ok = b.iter().enumerate().all(|(i, c)| match i {
        4 | 7 => *c == b'-',
        10 => *c == b' ',
        13 | 16 => *c == b':',
        _ => c.is_ascii_digit(),
    });
    if !shape_ok {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(u32::MAX);
    let (month, day, hour, minute, second) =
        (num(5..7), num(8..10), num(11..13), num(14..16), num(17..19));
    (1..=12).contains(&month) && (1..=31).contains(&day) && hour < 24 && minute < 60 && second < 60
}

/// The length of `raw`'s `YYYY-MM-DD HH:MM:SS` prefix when SQLite's
/// `strftime('%Y-%m-%d %H:%M:%S', raw)` would give exactly that prefix, so the formatting can be
/// skipped: a valid date and time, optionally followed by `.` and digits well below the next
/// second. `None` when only SQLite can tell (other formats, time zones, impossible dates such as
/// February 30, fractions from .9994 up): then ask it.
///
/// Why: `strftime` costs about 4,000 instructions a row, 40% of a page read (callgrind), to
/// turn what Django and this service write into what they wrote minus the fraction.
pub fn sqlite_canonical_len(raw: &str) -> Option<usize> {
    let head = raw.get(..19)?;
    if !is_valid_timestamp(head) || !day_exists(head) {
        return None;
    }
    let rest = &raw[19..];
    if rest.is_empty() {
        return Some(19);
    }
    let fraction = rest.strip_prefix('.')?.as_bytes();
    if fraction.is_empty() || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // SQLite turns the time into milliseconds in floating point; whether a fraction just
    // under a whole second carries into the next one is its arithmetic's business (3.51 does
    // not carry .9997), so values that close are left to it.
    let first_four = (0..4).fold(0_u32, |acc, i| {
        acc * 10 + fraction.get(i).map_or(0, |d| u32::from(d - b'0'))
    });
    (first_four < 9994).then_some(19)
}

/// Whether the date of a shape-checked `YYYY-MM-DD...` exists (year 1 to 9999).
fn day_exists(s: &str) -> bool {
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(0);
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    year >= 1 && day <= days
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_seconds(0), "1970-01-01 00:00:00");
        assert_eq!(format_seconds(1_767_323_045), "2026-01-02 03:04:05");
        assert_eq!(format_django(951_782_400, 7), "2000-02-29 00:00:00.000007");
    }

    #[test]
    fn canonical_sqlite_timestamps_skip_strftime_and_the_rest_do_not() {
        for (raw, len) in [
            ("2026-01-02 03:04:05", Some(19)),
            ("2026-01-02 03:04:05.123456", Some(19)),
            ("2024-02-29 23:59:59.999300", Some(19)),
            // Close to the next second: left to SQLite.
            ("2026-01-02 03:04:05.9996", None),
            ("2026-01-02 03:04:05.99949", None),
            ("2023-02-29 00:00:00", None),
            ("2026-04-31 00:00:00", None),
            ("0000-01-01 00:00:00", None),
            ("2026-01-02T03:04:05", None),
            ("2026-01-02 03:04:05+02:00", None),
            ("2026-01-02 03:04:05.", None),
            ("2026-01-02 03:04:05.12x", None),
            ("2026-01-02 03:04", None),
            ("2460000.5", None),
            ("2026-01-02 03:04:0é", None),
        ] {
            assert_eq!(sqlite_canonical_len(raw), len, "{raw}");
        }
    }

    #[test]
    fn validates_timestamps() {
        assert!(is_valid_timestamp("2026-01-02 03:04:05"));
        assert!(!is_valid_timestamp("2026-13-02 03:04:05"));
        assert!(!is_valid_timestamp("2026-01-02T03:04:05"));
        assert!(!is_valid_timestamp("2026-01-02 03:04"));
    }
}

//! The gateway's own gRPC answers: a failure before the backend answered as a trailers-only
//! response (HTTP 200, `grpc-status` and `grpc-message` in the one header block), with the
//! gRPC code [`crate::error`]'s one table gives the same failure over REST; and the
//! `grpc-timeout` the backend is told.

use std::time::Duration;

use http::HeaderValue;
use tonic::{Status, body::Body};

use crate::error::Error;

/// `error` as a trailers-only gRPC response.
pub(super) fn error(error: &Error) -> http::Response<Body> {
    Status::new(error.code(), error.public_message()).into_http()
}

/// `error` as a trailers-only gRPC response, for the gateway's outer layers (the head limit).
pub(crate) fn error_response(error: &Error) -> axum::response::Response {
    self::error(error).map(axum::body::Body::new)
}

/// `left` as a `grpc-timeout` value: the finest unit that fits gRPC's 8 digits.
pub(super) fn encode_timeout(left: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let secs = u128::from(left.as_secs());
    let value = [
        (left.as_nanos(), 'n'),
        (left.as_micros(), 'u'),
        (left.as_millis(), 'm'),
        (secs, 'S'),
        (secs / 60, 'M'),
        (secs / 3600, 'H'),
    ]
    .into_iter()
    .find(|(n, _)| *n <= MAX)
    .map_or_else(|| format!("{MAX}H"), |(n, unit)| format!("{n}{unit}"));
    // Digits and one ASCII letter: always a valid header value.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("99999999H"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::parse_grpc_timeout;

    #[test]
    fn the_time_left_is_sent_in_the_finest_unit_that_fits() {
        for (left, sent) in [
            (Duration::from_nanos(5), "5n"),
            (Duration::from_millis(250), "250000u"),
            (Duration::from_secs(30), "30000000u"),
            (Duration::from_secs(3600), "3600000m"),
            (Duration::from_secs(200_000), "200000S"),
            (Duration::from_secs(u64::MAX), "99999999H"),
        ] {
            let value = encode_timeout(left);
            assert_eq!(value, sent, "{left:?}");
            assert!(parse_grpc_timeout(value.as_bytes()).is_some());
        }
    }
}

//! Request ids: every request carries an `X-Request-Id`, the client's when it is usable (1 to
//! 128 printable ASCII characters), else a new UUID v4 ([`request_id`], the one rule for both
//! binaries: the article service's gRPC port keeps ids by it too). It is forwarded to the
//! backend as `x-request-id` metadata ([`crate::metadata`]), returned in the response, and
//! recorded on the request's tracing span so every log line of the request carries it.
//!
//! A client's id is bounded and printable because it lands in every log line and metadata of
//! the call: an unbounded one would let one client bloat every log and header it touches.

use http::{HeaderMap, HeaderName, HeaderValue, Request};

/// The header (and metadata key) that carries the id.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id kept from a client.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The request's id: the client's `x-request-id` when it is 1 to [`MAX_REQUEST_ID_LEN`]
/// printable ASCII characters, else a new UUID v4.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(&X_REQUEST_ID)
        .filter(|v| {
            let bytes = v.as_bytes();
            !bytes.is_empty()
                && bytes.len() <= MAX_REQUEST_ID_LEN
                && bytes.iter().all(u8::is_ascii_graphic)
        })
        .cloned()
        .unwrap_or_else(|| {
            // A hyphenated UUID is always a valid header value.
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .unwrap_or(HeaderValue::from_static("invalid-request-id"))
        })
}

/// Sets the request's `x-request-id` by [`request_id`] (a `map_request` step, outermost).
pub(crate) fn assign<B>(mut request: Request<B>) -> Request<B> {
    let id = request_id(request.headers());
    request.headers_mut().insert(X_REQUEST_ID, id);
    request
}

/// The tracing span of one request: method, URI and request id, at INFO so that the id shows
/// on log lines with the default filter.
pub(crate) fn span<B>(request: &Request<B>) -> tracing::Span {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %request.method(),
        uri = %request.uri(),
        request_id = id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_when_printable_and_short_and_generated_otherwise() {
        let mut headers = HeaderMap::new();
        headers.insert(X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&headers), "abc-123");
        for bad in ["has space", "", &"x".repeat(MAX_REQUEST_ID_LEN + 1)] {
            headers.insert(
                X_REQUEST_ID,
                HeaderValue::from_str(bad).expect("a header value"),
            );
            assert_eq!(request_id(&headers).len(), 36, "{bad:?}");
        }
        assert_eq!(request_id(&HeaderMap::new()).len(), 36);
    }
}

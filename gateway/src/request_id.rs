//! Request ids: every request carries an `X-Request-Id` (the client's, else a generated UUID,
//! by tower-http's request-id layers in [`crate::app`]), forwarded to the backend as
//! `x-request-id` metadata ([`crate::metadata`]), returned in the response, and recorded on
//! the request's tracing span so every log line of the request carries it.

use http::{HeaderName, Request};

/// The header (and metadata key) that carries the id.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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

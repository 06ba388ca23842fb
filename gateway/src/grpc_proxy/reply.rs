//! The gateway's own gRPC answers: a failure before the backend answered as a trailers-only
//! response (HTTP 200, `grpc-status` and `grpc-message` in the one header block), with the
//! gRPC code [`crate::error`]'s one table gives the same failure over REST.

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

//! The gateway's one error type, and the one place where errors become HTTP responses.
//!
//! Every failure (a gateway-raised one such as an unknown path, or a status the backend
//! answered) is an [`Error`]. [`Error::into_response`] is the only code that picks an HTTP
//! status, through the single table [`http_status`], and writes the body shape
//! `{"code": <gRPC code>, "message": "...", "details": [...]}` that grpc-gateway clients expect.
//! Internal errors are logged in full there and answered with a generic message.

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;
use tonic::Code;

/// Everything that can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No route template matches the path.
    #[error("no route matches the path {0:?}")]
    NotFound(String),
    /// A template matches the path, but not for this HTTP method.
    #[error("method {method} is not allowed on this path")]
    MethodNotAllowed {
        /// The method asked for.
        method: http::Method,
        /// The methods the path allows, as the `Allow` header lists them.
        allow: HeaderValue,
    },
    /// The request does not map onto the request message (bad parameter, bad JSON, ...).
    #[error("{0}")]
    InvalidArgument(String),
    /// The request body is not JSON.
    #[error("unsupported content type {0:?}: the request body must be JSON (application/json)")]
    UnsupportedMediaType(String),
    /// The request body is larger than the configured limit.
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The query string is longer than the configured limit.
    #[error("the query string is longer than the limit of {limit} bytes")]
    UriTooLong {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The request line and headers together are larger than the configured limit.
    #[error("the request headers are larger than the limit of {limit} bytes")]
    HeadersTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The deadline (`Grpc-Timeout` or the default timeout) passed before the backend answered.
    #[error("the deadline expired before the backend answered")]
    DeadlineExceeded,
    /// Too many requests are in flight; this one is shed rather than queued.
    #[error("the gateway is overloaded, retry later")]
    Overloaded,
    /// The backend cannot be reached, or says it is not ready.
    #[error("{0}")]
    Unavailable(String),
    /// The backend answered with a non-OK status.
    #[error("{}", .0.status.message())]
    Backend(Box<BackendError>),
    /// A bug or an environment failure inside the gateway; never shown to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A status answered by the backend, with its details already rendered as JSON.
#[derive(Debug)]
pub struct BackendError {
    /// The status, with its metadata (headers and trailers of the call).
    pub status: tonic::Status,
    /// `google.rpc.Status.details`, each `Any` as proto3 JSON.
    pub details: Vec<serde_json::Value>,
}

/// The one table pairing gRPC codes with HTTP statuses, as `google/rpc/code.proto` documents.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        // 499 "Client Closed Request" (nginx) has no constant in `http`; it is a valid code.
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::BAD_REQUEST,
        Code::Aborted => StatusCode::CONFLICT,
        Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
    }
}

/// The JSON error body.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    code: i32,
    message: &'a str,
    details: &'a [serde_json::Value],
}

impl Error {
    /// The gRPC code this error carries, and the HTTP status answered.
    ///
    /// Gateway-raised errors take the nearest gRPC code; some answer a more precise HTTP status
    /// than the table gives for that code (405, 413, 414, 415, 431 are what HTTP clients and
    /// proxies act on).
    fn code_and_status(&self) -> (Code, StatusCode) {
        let code = match self {
            Self::NotFound(_) => Code::NotFound,
            Self::MethodNotAllowed { .. } => {
                return (Code::Unimplemented, StatusCode::METHOD_NOT_ALLOWED);
            }
            Self::InvalidArgument(_) => Code::InvalidArgument,
            Self::UnsupportedMediaType(_) => {
                return (Code::InvalidArgument, StatusCode::UNSUPPORTED_MEDIA_TYPE);
            }
            Self::PayloadTooLarge { .. } => {
                return (Code::ResourceExhausted, StatusCode::PAYLOAD_TOO_LARGE);
            }
            Self::UriTooLong { .. } => {
                return (Code::InvalidArgument, StatusCode::URI_TOO_LONG);
            }
            Self::HeadersTooLarge { .. } => {
                return (
                    Code::InvalidArgument,
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                );
            }
            Self::DeadlineExceeded => Code::DeadlineExceeded,
            Self::Overloaded | Self::Unavailable(_) => Code::Unavailable,
            Self::Backend(b) => b.status.code(),
            Self::Internal(_) => Code::Internal,
        };
        (code, http_status(code))
    }
}

impl From<BackendError> for Error {
    fn from(e: BackendError) -> Self {
        Self::Backend(Box::new(e))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (code, status) = self.code_and_status();
        let mut headers = HeaderMap::new();
        let message = match &self {
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "internal gateway error");
                "internal error".to_owned()
            }
            Self::Backend(b) => {
                crate::metadata::response_headers(b.status.metadata().clone(), &mut headers);
                tracing::debug!(code = ?code, message = b.status.message(), "backend error");
                b.status.message().to_owned()
            }
            Self::MethodNotAllowed { allow, .. } => {
                headers.insert(header::ALLOW, allow.clone());
                self.to_string()
            }
            other => other.to_string(),
        };
        let details = match &self {
            Self::Backend(b) => b.details.as_slice(),
            _ => &[],
        };
        let body = ErrorBody {
            code: code as i32,
            message: &message,
            details,
        };
        // Serializing a struct of a string, an int and JSON values cannot fail.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        (status, headers, bytes).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grpc_code_has_the_documented_http_status() {
        let table = [
            (Code::Ok, 200),
            (Code::Cancelled, 499),
            (Code::Unknown, 500),
            (Code::InvalidArgument, 400),
            (Code::DeadlineExceeded, 504),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::PermissionDenied, 403),
            (Code::ResourceExhausted, 429),
            (Code::FailedPrecondition, 400),
            (Code::Aborted, 409),
            (Code::OutOfRange, 400),
            (Code::Unimplemented, 501),
            (Code::Internal, 500),
            (Code::Unavailable, 503),
            (Code::DataLoss, 500),
            (Code::Unauthenticated, 401),
        ];
        for (code, status) in table {
            assert_eq!(http_status(code).as_u16(), status, "{code:?}");
        }
    }
}

//! The error a request is answered with, and the one place where errors become HTTP responses
//! (a failure to start is [`crate::startup::StartError`], which has no status).
//!
//! Every failure (a gateway-raised one such as an unknown path, or a status the backend
//! answered) is an [`Error`]. [`Error::into_response`] is the only code that picks an HTTP
//! status, through the single table [`http_status`] (the OpenAPI document's error
//! responses list their codes from it too), and writes the body in the
//! [`ErrorFormat`] the gateway was started with: by default google.rpc.Status as JSON
//! (`{"code": <gRPC code>, "message": "...", "details": [...]}`, grpc-gateway v2's and Envoy's
//! shape). Internal errors are logged in full there and answered with a generic message.
//!
//! The format reaches the renderer through a task-local set around each request
//! ([`error_format_layer`]), so every error answered anywhere in the router (a probe, a 405 on
//! a gateway path, a backend status) has the same shape without each caller passing it.

pub mod details;

use std::future::Future;

use axum::{
    extract::Request,
    middleware::Next,
    response::{IntoResponse, Response},
};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;
use tonic::Code;

/// The shape of error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ErrorFormat {
    /// google.rpc.Status as JSON: `{"code", "message", "details"}` (grpc-gateway v2, Envoy).
    #[default]
    Status,
    /// grpc-gateway v1's: the same plus `"error": <message>`.
    #[value(name = "grpc-gateway-v1")]
    GrpcGatewayV1,
    /// RFC 9457 problem details (`application/problem+json`): `type`, `title`, `status`,
    /// `detail`, with `code` and `details` as extension members.
    Problem,
}

tokio::task_local! {
    /// The format of the gateway serving the current request.
    static FORMAT: ErrorFormat;
}

/// The middleware that makes errors answered inside it take `format`.
pub(crate) fn error_format_layer(
    format: ErrorFormat,
) -> impl Fn(Request, Next) -> std::pin::Pin<Box<dyn Future<Output = Response> + Send>>
+ Clone
+ Send
+ Sync
+ 'static {
    move |request: Request, next: Next| Box::pin(FORMAT.scope(format, next.run(request)))
}

/// Everything that can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No route template matches the path.
    #[error("no route matches the path {0:?}")]
    NotFound(String),
    /// A template matches the path, but not for this HTTP method.
    #[error("method {method} is not allowed on this path")]
    MethodNotAllowed {
        method: http::Method,
        /// The methods the path allows, as the `Allow` header lists them.
        allow: HeaderValue,
    },
    /// The request does not map onto the request message (bad parameter, bad JSON, ...).
    #[error("{0}")]
    InvalidArgument(String),
    /// The request message breaks the API's field rules (`buf.validate`,
    /// `google.api.field_behavior`): answered with a `google.rpc.BadRequest` detail listing
    /// each field violation.
    #[error("{violations}")]
    InvalidFields {
        /// Every broken rule.
        violations: crate::constraints::Violations,
        /// How the detail's field names are written (as the responses' are).
        names: crate::json::JsonNames,
    },
    /// The request body is not JSON.
    #[error(
        "unsupported content type {0:?}: the request body must be JSON (application/json, \
         any +json type, or no content type)"
    )]
    UnsupportedMediaType(String),
    /// The request body did not arrive in time, or arrives too slowly.
    #[error("{0}")]
    BodyTooSlow(String),
    /// The request body is compressed in a way the gateway does not decode.
    #[error(
        "unsupported content encoding {0:?}: request bodies may be gzip, br, deflate, zstd or \
         identity"
    )]
    UnsupportedEncoding(String),
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
    /// The headers forwarded as metadata are larger than the backend would take.
    #[error(
        "the request headers forwarded to the backend (Authorization, Grpc-Metadata-*, ...) are \
         larger than the limit of {limit} bytes"
    )]
    MetadataTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The backend answered a message larger than the gateway reads: its fault (or the
    /// gateway's configuration), never the client's.
    #[error(
        "the backend's response is larger than the gateway's limit of {limit} bytes \
         (--max-response-bytes)"
    )]
    ResponseTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The deadline (`Grpc-Timeout` or the default timeout) passed before the backend answered.
    #[error("the deadline expired before the backend answered")]
    DeadlineExceeded,
    /// Every slot of a budget is taken ([`crate::admission`]); this call is shed rather than
    /// queued.
    #[error(
        "the gateway is overloaded: all {limit} {} slots are taken ({}), retry later",
        budget.name(),
        budget.flag()
    )]
    Overloaded {
        /// The budget whose slots are taken.
        budget: crate::admission::Budget,
        /// Its size.
        limit: usize,
    },
    /// The answers held for clients that have not read them yet fill the gateway's budget
    /// (`crate::buffers`); this one is shed rather than held.
    #[error(
        "the gateway's response buffers are full (--response-buffer-limit, {limit} bytes), \
         retry later"
    )]
    ResponseBuffersFull {
        /// The budget, in bytes.
        limit: usize,
    },
    /// The backend cannot be reached, or says it is not ready.
    #[error("{0}")]
    Unavailable(String),
    /// The request asks for what the gateway does not do (a Connect compression it does not
    /// know, a procedure it does not serve).
    #[error("{0}")]
    Unimplemented(String),
    /// The backend answered with a non-OK status.
    #[error("{}", .0.message)]
    Backend(Box<BackendError>),
    /// A bug or an environment failure inside the gateway; never shown to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A status answered by the backend, ready to answer: its details rendered as JSON, its
/// metadata as HTTP headers and trailers.
#[derive(Debug)]
pub struct BackendError {
    pub code: Code,
    pub message: String,
    /// `google.rpc.Status.details`, each `Any` as proto3 JSON.
    pub details: Vec<serde_json::Value>,
    /// The headers to answer with (`Grpc-Metadata-*`).
    pub headers: HeaderMap,
    /// The trailers to answer with (`Grpc-Trailer-*`; empty unless the client accepts them).
    pub trailers: HeaderMap,
}

/// The one table of gRPC codes, in code order (0 to 16): the canonical name
/// (`google/rpc/code.proto`), Connect's name (lower snake case, and `canceled` with one `l`),
/// and the HTTP status `google/rpc/code.proto` documents, which Connect's protocol chose too
/// (499 "Client Closed Request" for CANCELLED, as nginx names it).
const CODES: [(&str, &str, u16); 17] = [
    ("OK", "ok", 200),
    ("CANCELLED", "canceled", 499),
    ("UNKNOWN", "unknown", 500),
    ("INVALID_ARGUMENT", "invalid_argument", 400),
    ("DEADLINE_EXCEEDED", "deadline_exceeded", 504),
    ("NOT_FOUND", "not_found", 404),
    ("ALREADY_EXISTS", "already_exists", 409),
    ("PERMISSION_DENIED", "permission_denied", 403),
    ("RESOURCE_EXHAUSTED", "resource_exhausted", 429),
    ("FAILED_PRECONDITION", "failed_precondition", 400),
    ("ABORTED", "aborted", 409),
    ("OUT_OF_RANGE", "out_of_range", 400),
    ("UNIMPLEMENTED", "unimplemented", 501),
    ("INTERNAL", "internal", 500),
    ("UNAVAILABLE", "unavailable", 503),
    ("DATA_LOSS", "data_loss", 500),
    ("UNAUTHENTICATED", "unauthenticated", 401),
];

/// `code`'s row of [`CODES`].
fn row(code: Code) -> (&'static str, &'static str, u16) {
    // tonic's `Code` has exactly the 17 values 0 to 16; an unknown number is `Unknown`.
    usize::try_from(i32::from(code))
        .ok()
        .and_then(|i| CODES.get(i))
        .copied()
        .unwrap_or(CODES[2])
}

/// The HTTP status of a gRPC code, from the one table ([`CODES`]).
pub fn http_status(code: Code) -> StatusCode {
    StatusCode::from_u16(row(code).2).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Connect's HTTP status for a code (connectrpc.com/docs/protocol, "Error Codes"): Connect
/// chose the statuses of `google/rpc/code.proto`, so it is [`http_status`], the one table; a
/// test holds Connect's documented pairs against it.
pub fn connect_http_status(code: Code) -> StatusCode {
    http_status(code)
}

/// Connect's name of `code`, as its error JSON's `code` spells it, from the one table.
pub fn connect_code_name(code: Code) -> &'static str {
    row(code).1
}

/// The canonical name of a status code, as `google/rpc/code.proto` spells it, from the one
/// table: for the gateway and the article service (logs, metrics labels, the `articles`
/// client).
pub fn code_name(code: Code) -> &'static str {
    row(code).0
}

/// The names of the codes [`http_status`] answers with `status` (as `google/rpc/code.proto`
/// spells them: `INVALID_ARGUMENT`), in code order: what the OpenAPI document lists.
pub(crate) fn code_names_answered_with(status: StatusCode) -> Vec<String> {
    (0..=16)
        .map(Code::from_i32)
        .filter(|&code| http_status(code) == status)
        .map(|code| code_name(code).to_owned())
        .collect()
}

/// The JSON error body, in every format.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ErrorBody<'a> {
    /// `status` and `grpc-gateway-v1` (which adds `error`).
    Status {
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a str>,
        code: i32,
        message: &'a str,
        details: &'a [serde_json::Value],
    },
    /// RFC 9457.
    Problem {
        #[serde(rename = "type")]
        kind: &'static str,
        title: &'a str,
        status: u16,
        detail: &'a str,
        code: i32,
        details: &'a [serde_json::Value],
    },
}

impl<'a> ErrorBody<'a> {
    fn new(
        format: ErrorFormat,
        status: StatusCode,
        code: Code,
        message: &'a str,
        details: &'a [serde_json::Value],
    ) -> Self {
        let code = code as i32;
        match format {
            ErrorFormat::Status => Self::Status {
                error: None,
                code,
                message,
                details,
            },
            ErrorFormat::GrpcGatewayV1 => Self::Status {
                error: Some(message),
                code,
                message,
                details,
            },
            ErrorFormat::Problem => Self::Problem {
                // No URI of our own to point at: RFC 9457 says the title is then the status's.
                kind: "about:blank",
                title: status
                    .canonical_reason()
                    .unwrap_or(if status.as_u16() == 499 {
                        "Client Closed Request"
                    } else {
                        "Error"
                    }),
                status: status.as_u16(),
                detail: message,
                code,
                details,
            },
        }
    }
}

impl Error {
    /// The gRPC code this error carries, and the HTTP status answered.
    ///
    /// Gateway-raised errors take the nearest gRPC code; some answer a more precise HTTP status
    /// than the table gives for that code (405, 413, 414, 415, 431 are what HTTP clients and
    /// proxies act on; 502 when the backend's answer cannot be passed on).
    fn code_and_status(&self) -> (Code, StatusCode) {
        let code = match self {
            Self::NotFound(_) => Code::NotFound,
            Self::MethodNotAllowed { .. } => {
                return (Code::Unimplemented, StatusCode::METHOD_NOT_ALLOWED);
            }
            Self::InvalidArgument(_) | Self::InvalidFields { .. } => Code::InvalidArgument,
            Self::UnsupportedMediaType(_) | Self::UnsupportedEncoding(_) => {
                return (Code::InvalidArgument, StatusCode::UNSUPPORTED_MEDIA_TYPE);
            }
            Self::PayloadTooLarge { .. } => {
                return (Code::ResourceExhausted, StatusCode::PAYLOAD_TOO_LARGE);
            }
            Self::UriTooLong { .. } => {
                return (Code::InvalidArgument, StatusCode::URI_TOO_LONG);
            }
            Self::HeadersTooLarge { .. } | Self::MetadataTooLarge { .. } => {
                return (
                    Code::InvalidArgument,
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                );
            }
            Self::BodyTooSlow(_) => {
                return (Code::DeadlineExceeded, StatusCode::REQUEST_TIMEOUT);
            }
            Self::ResponseTooLarge { .. } => {
                // RESOURCE_EXHAUSTED is what gRPC clients report for a message over their
                // limit; the HTTP status says the fault is upstream, not the caller's (429).
                return (Code::ResourceExhausted, StatusCode::BAD_GATEWAY);
            }
            Self::DeadlineExceeded => Code::DeadlineExceeded,
            Self::Overloaded { .. } | Self::ResponseBuffersFull { .. } | Self::Unavailable(_) => {
                Code::Unavailable
            }
            Self::Unimplemented(_) => Code::Unimplemented,
            Self::Backend(b) => b.code,
            Self::Internal(_) => Code::Internal,
        };
        (code, http_status(code))
    }
}

impl Error {
    /// The gRPC code this error carries.
    pub(crate) fn code(&self) -> Code {
        self.code_and_status().0
    }

    /// The message a client may see: an internal error's is generic (and logged in full here).
    pub(crate) fn public_message(&self) -> String {
        match self {
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "internal gateway error");
                "internal error".to_owned()
            }
            other => other.to_string(),
        }
    }

    /// The error as google.rpc.Status JSON (`{"code", "message", "details"}`), for the error
    /// line that ends a stream (grpc-gateway's stream error shape, whatever the error format).
    pub(crate) fn status_json(&self) -> Vec<u8> {
        let code = self.code();
        let message = self.public_message();
        let own;
        let details = match self {
            Self::Backend(b) => b.details.as_slice(),
            Self::InvalidFields { violations, names } => {
                own = [bad_request(violations, *names)];
                own.as_slice()
            }
            _ => &[],
        };
        let body = ErrorBody::new(ErrorFormat::Status, StatusCode::OK, code, &message, details);
        // Serializing strings, integers and JSON values cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

/// `violations` as a `google.rpc.BadRequest` detail in proto3 JSON, its field names written
/// as `names` says (as a backend's details are).
fn bad_request(
    violations: &crate::constraints::Violations,
    names: crate::json::JsonNames,
) -> serde_json::Value {
    let list = match names {
        crate::json::JsonNames::Proto => "field_violations",
        crate::json::JsonNames::Camel => "fieldViolations",
    };
    let items: Vec<serde_json::Value> = violations
        .0
        .iter()
        .map(|v| serde_json::json!({"field": v.field, "description": v.description}))
        .collect();
    let mut object = serde_json::Map::new();
    object.insert(
        "@type".to_owned(),
        "type.googleapis.com/google.rpc.BadRequest".into(),
    );
    object.insert(list.to_owned(), items.into());
    serde_json::Value::Object(object)
}

impl From<BackendError> for Error {
    fn from(e: BackendError) -> Self {
        Self::Backend(Box::new(e))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (code, status) = self.code_and_status();
        let format = FORMAT.try_with(|f| *f).unwrap_or_default();
        let mut headers = HeaderMap::new();
        let (message, details, trailers) = match self {
            Self::Internal(_) => (self.public_message(), Vec::new(), HeaderMap::new()),
            Self::Backend(b) => {
                tracing::debug!(code = ?code, message = b.message, "backend error");
                let BackendError {
                    message,
                    details,
                    headers: metadata,
                    trailers,
                    ..
                } = *b;
                headers.extend(metadata);
                (message, details, trailers)
            }
            Self::InvalidFields {
                ref violations,
                names,
            } => (
                self.to_string(),
                vec![bad_request(violations, names)],
                HeaderMap::new(),
            ),
            Self::MethodNotAllowed { ref allow, .. } => {
                headers.insert(header::ALLOW, allow.clone());
                (self.to_string(), Vec::new(), HeaderMap::new())
            }
            other => (other.to_string(), Vec::new(), HeaderMap::new()),
        };
        let body = ErrorBody::new(format, status, code, &message, &details);
        // Serializing strings, integers and JSON values cannot fail.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(if format == ErrorFormat::Problem {
                "application/problem+json"
            } else {
                "application/json"
            }),
        );
        let mut response = (status, headers, bytes).into_response();
        crate::metadata::attach_trailers(&mut response, trailers);
        response
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

    /// Connect's documented table (connectrpc.com/docs/protocol#error-codes), pair by pair.
    #[test]
    fn every_connect_code_has_connects_http_status_and_name() {
        let table = [
            ("canceled", 499),
            ("unknown", 500),
            ("invalid_argument", 400),
            ("deadline_exceeded", 504),
            ("not_found", 404),
            ("already_exists", 409),
            ("permission_denied", 403),
            ("resource_exhausted", 429),
            ("failed_precondition", 400),
            ("aborted", 409),
            ("out_of_range", 400),
            ("unimplemented", 501),
            ("internal", 500),
            ("unavailable", 503),
            ("data_loss", 500),
            ("unauthenticated", 401),
        ];
        for (number, (name, status)) in (1..=16).zip(table) {
            let code = Code::from_i32(number);
            assert_eq!(connect_code_name(code), name, "{code:?}");
            assert_eq!(connect_http_status(code).as_u16(), status, "{name}");
        }
    }

    #[test]
    fn each_status_names_the_codes_the_table_answers_with_it() {
        assert_eq!(
            code_names_answered_with(StatusCode::BAD_REQUEST),
            ["INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE"]
        );
        assert_eq!(
            code_names_answered_with(StatusCode::INTERNAL_SERVER_ERROR),
            ["UNKNOWN", "INTERNAL", "DATA_LOSS"]
        );
        assert_eq!(
            code_names_answered_with(StatusCode::GATEWAY_TIMEOUT),
            ["DEADLINE_EXCEEDED"]
        );
        assert!(code_names_answered_with(StatusCode::PAYLOAD_TOO_LARGE).is_empty());
    }
}

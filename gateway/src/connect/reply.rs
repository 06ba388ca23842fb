//! A failed Connect call, in the protocol's two shapes: a unary answer (an HTTP status from
//! Connect's table, [`crate::error::connect_http_status`], and the error JSON
//! `{"code", "message", "details"}`, the backend's metadata as headers and `trailer-`
//! headers), and the end of a stream (`{"error": {...}, "metadata": {...}}` in an envelope
//! flagged end-of-stream, after HTTP 200).
//!
//! Every failure, the gateway's own and the backend's, goes through [`Failure`], so the code
//! names, the details' shape and the statuses are written in one place. A few of the gateway's
//! own refusals answer the status the protocol names rather than the code's: 404 for a
//! procedure not served (what Connect routers answer; clients read it as `unimplemented`), 415
//! for a content type or codec that is not Connect's, 405 for a GET of a method with side
//! effects.

use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Map, Value};
use tonic::{Code, metadata::MetadataMap};

use super::envelope;
use crate::{
    backend::{CallError, CallMetadata},
    calls::Calls,
    error::{self, Error},
    metadata,
};

/// A failed call, ready to be written either way.
#[derive(Debug)]
pub(super) struct Failure {
    code: Code,
    message: String,
    /// Connect's details (`type`, `value`, `debug`).
    details: Vec<Value>,
    /// The status answered instead of the code's, for the refusals the protocol names.
    status: Option<StatusCode>,
    /// `Allow`, for a 405.
    allow: Option<HeaderValue>,
    /// The backend's header metadata and trailers (boxed: most failures have none, and a
    /// `Result` carrying a failure stays small).
    metadata: Box<CallMetadata>,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self {
            code: error.code(),
            message: error.public_message(),
            details: Vec::new(),
            status: None,
            allow: None,
            metadata: Box::default(),
        }
    }
}

impl Failure {
    /// A call the backend (or the transport, or the deadline) failed, its details in Connect's
    /// shape.
    pub(super) fn from_call(calls: &Calls, error: CallError) -> Self {
        let (status, metadata) = error.into_parts();
        if calls.is_response_too_large(&status) {
            tracing::warn!(
                message = status.message(),
                "backend response over the limit"
            );
            return Error::ResponseTooLarge {
                limit: calls.max_response_bytes,
            }
            .into();
        }
        tracing::debug!(code = ?status.code(), message = status.message(), "backend error");
        Self {
            code: status.code(),
            message: status.message().to_owned(),
            details: error::details::connect(
                status.details(),
                &calls.pool,
                &calls.json.serialize_options(),
            ),
            status: None,
            allow: None,
            metadata: Box::new(metadata),
        }
    }

    /// A procedure the served descriptors do not have: never sent to the backend.
    pub(super) fn unknown_procedure(path: &str) -> Self {
        Self {
            status: Some(StatusCode::NOT_FOUND),
            ..Self::from(Error::Unimplemented(format!(
                "{} is not a procedure of the served API",
                path.trim_start_matches('/')
            )))
        }
    }

    /// A content type or codec that is not Connect's for this method.
    pub(super) fn unsupported_media_type(message: String) -> Self {
        Self {
            status: Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            ..Self::from(Error::InvalidArgument(message))
        }
    }

    /// A GET of a method that is not marked free of side effects.
    pub(super) fn get_not_allowed(method: &str) -> Self {
        Self {
            status: Some(StatusCode::METHOD_NOT_ALLOWED),
            allow: Some(HeaderValue::from_static("POST")),
            ..Self::from(Error::Unimplemented(format!(
                "{method} may have side effects (its idempotency_level is not \
                 NO_SIDE_EFFECTS): call it with POST"
            )))
        }
    }

    /// The same failure without the header metadata (already sent as a stream's headers).
    pub(super) fn without_headers(mut self) -> Self {
        self.metadata.headers = MetadataMap::new();
        self
    }

    /// Connect's `Error` JSON.
    fn error_json(&self) -> Value {
        let mut error = Map::new();
        error.insert(
            "code".to_owned(),
            error::connect_code_name(self.code).into(),
        );
        if !self.message.is_empty() {
            error.insert("message".to_owned(), self.message.clone().into());
        }
        if !self.details.is_empty() {
            error.insert("details".to_owned(), self.details.clone().into());
        }
        Value::Object(error)
    }

    /// The failure as a unary answer; for a GET, one no cache keeps (a 404 or a 501 is
    /// cacheable by default, and a transient failure must not be served again from a cache).
    pub(super) fn unary_response(self, get: bool) -> Response {
        let status = self
            .status
            .unwrap_or_else(|| error::connect_http_status(self.code));
        // Serializing strings and JSON values cannot fail.
        let body = serde_json::to_vec(&self.error_json()).unwrap_or_default();
        let mut headers = HeaderMap::new();
        metadata::connect_response_headers(
            &self.metadata.headers,
            &self.metadata.trailers,
            &mut headers,
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, allow);
        }
        if get && !headers.contains_key(header::CACHE_CONTROL) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        (status, headers, body).into_response()
    }

    /// The failure as the end of a stream: its error and the metadata that came with it.
    pub(super) fn end_stream(&self) -> Bytes {
        end_stream(
            Some(self),
            &[&self.metadata.headers, &self.metadata.trailers],
        )
    }
}

/// The end-of-stream message: the error, if any, and the trailing metadata.
pub(super) fn end_stream(failure: Option<&Failure>, metadata: &[&MetadataMap]) -> Bytes {
    let mut end = Map::new();
    if let Some(failure) = failure {
        end.insert("error".to_owned(), failure.error_json());
    }
    let metadata = metadata::connect_end_metadata(metadata);
    if !metadata.is_empty() {
        end.insert("metadata".to_owned(), Value::Object(metadata));
    }
    // Serializing strings and JSON values cannot fail.
    let json = serde_json::to_vec(&Value::Object(end)).unwrap_or_default();
    envelope::frame(envelope::END_STREAM, &json)
}

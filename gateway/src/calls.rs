//! What every transcoded call needs from the gateway, resolved once at start and shared by the
//! unary handler and by streams (which outlive their handler: a stream's body is read and
//! written after the handler has returned its response head).
//!
//! Also the pieces both kinds use: reading a bounded body, the response serializer chosen by
//! the system parameters, and a failed call turned into the gateway's error.

use std::borrow::Cow;

use axum::{
    body::Body,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use prost_reflect::{DescriptorPool, DynamicMessage, ReflectMessage, SerializeOptions};
use tonic::metadata::MetadataMap;

use crate::{
    backend::{Backend, CallError},
    error::{self, BackendError, Error},
    metadata,
    rules::Binding,
    transcode::{self, RequestOptions, SystemParams},
};

/// The shared settings of calls.
#[derive(Debug)]
pub(crate) struct Calls {
    /// Where calls go.
    pub(crate) backend: Backend,
    /// The API's descriptors, with the standard types.
    pub(crate) pool: DescriptorPool,
    /// How responses are written.
    pub(crate) serialize: SerializeOptions,
    /// How requests are read.
    pub(crate) request: RequestOptions,
    /// The largest request body (or streamed request message), in bytes.
    pub(crate) body_limit: usize,
    /// The largest metadata forwarded, in bytes as HTTP/2 counts a header list.
    pub(crate) max_metadata_bytes: usize,
}

impl Calls {
    /// The call's metadata from the request's headers and peer.
    ///
    /// # Errors
    /// [`Error::MetadataTooLarge`] past the limit.
    pub(crate) fn metadata(&self, parts: &http::request::Parts) -> Result<MetadataMap, Error> {
        let client = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0);
        let metadata = metadata::request_metadata(&parts.headers, client);
        if metadata::list_size(&metadata) > self.max_metadata_bytes {
            return Err(Error::MetadataTooLarge {
                limit: self.max_metadata_bytes,
            });
        }
        Ok(metadata)
    }

    /// The serializer for a request's response: enum numbers when `$alt` asks for them.
    pub(crate) fn serialize_for(&self, system: SystemParams) -> Cow<'_, SerializeOptions> {
        if system.enum_numbers {
            Cow::Owned(self.serialize.clone().use_enum_numbers(true))
        } else {
            Cow::Borrowed(&self.serialize)
        }
    }

    /// A failed call as the gateway's error: its details as JSON, its metadata as headers and
    /// (when the client reads them) trailers.
    pub(crate) fn error(
        &self,
        error: CallError,
        serialize: &SerializeOptions,
        accept_trailers: bool,
    ) -> Error {
        let (status, metadata) = error.into_parts();
        let mut headers = HeaderMap::new();
        metadata::response_headers(&metadata.headers, &mut headers);
        BackendError {
            code: status.code(),
            message: status.message().to_owned(),
            details: error::details::render(status.details(), &self.pool, serialize),
            headers,
            trailers: metadata::response_trailers(&metadata.trailers, accept_trailers),
        }
        .into()
    }
}

/// Reads the body up to `limit` bytes: a declared or actual larger body is a 413.
pub(crate) async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, Error> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Error::PayloadTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(Error::PayloadTooLarge { limit })
        }
        Err(e) => Err(Error::InvalidArgument(format!(
            "reading the request body failed: {e}"
        ))),
    }
}

/// A response message as a 200: JSON, or the raw bytes of an `HttpBody`.
pub(crate) fn message_response(
    message: &DynamicMessage,
    binding: &Binding,
    serialize: &SerializeOptions,
) -> Result<Response, Error> {
    if binding.response_body.is_none() && transcode::http_body::is_http_body(&message.descriptor())
    {
        let (content_type, data) = transcode::http_body::parts(message);
        let mut response = (StatusCode::OK, data).into_response();
        if let Ok(value) = HeaderValue::from_str(&content_type) {
            response.headers_mut().insert(header::CONTENT_TYPE, value);
        }
        return Ok(response);
    }
    let json =
        transcode::to_json(message, binding.response_body.as_ref(), serialize).map_err(|e| {
            Error::Internal(format!(
                "serializing {} as JSON: {e}",
                message.descriptor().full_name()
            ))
        })?;
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json,
    )
        .into_response())
}

//! What every transcoded call needs from the gateway, resolved once at start and shared by the
//! unary handler and by streams (which outlive their handler: a stream's body is read and
//! written after the handler has returned its response head).
//!
//! Also the pieces both kinds use: reading a bounded body (in size and in time), the response
//! serializer chosen by the system parameters, and a failed call turned into the gateway's
//! error.

use std::time::{Duration, Instant};

use axum::{
    body::Body,
    response::{IntoResponse, Response},
};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use tonic::metadata::MetadataMap;

use crate::{
    backend::{Backend, CallError},
    error::{self, BackendError, Error},
    json::{JsonNames, JsonOptions},
    metadata,
    routes::Route,
    transcode::{
        self, RequestOptions, SystemParams,
        multipart::{self, MAX_PARTS, Part},
        wire,
    },
};

/// The shared settings of calls.
#[derive(Debug)]
pub(crate) struct Calls {
    pub(crate) backend: Backend,
    /// The API's descriptors, with the standard types.
    pub(crate) pool: DescriptorPool,
    /// How responses are written.
    pub(crate) json: JsonOptions,
    /// How requests are read.
    pub(crate) request: RequestOptions,
    /// The largest request body (or streamed request message), in bytes.
    pub(crate) body_limit: usize,
    /// The largest metadata forwarded, in bytes as HTTP/2 counts a header list.
    pub(crate) max_metadata_bytes: usize,
    /// The largest response message read, in bytes.
    pub(crate) max_response_bytes: usize,
    /// How fast bodies must arrive.
    pub(crate) body_read: BodyRead,
    /// How long a Server-Sent Events stream may stay silent before a keep-alive comment.
    pub(crate) sse_keepalive: Option<std::time::Duration>,
    /// `Cache-Control` of successful `GET`/`HEAD` answers, per method.
    pub(crate) cache_control: crate::conditional::CacheControl,
}

impl Calls {
    /// The call's metadata from the request's headers and peer.
    ///
    /// # Errors
    /// [`Error::MetadataTooLarge`] past the limit; [`Error::InvalidArgument`] for a
    /// `Grpc-Metadata-` header HTTP/2 cannot carry.
    pub(crate) fn metadata(&self, parts: &http::request::Parts) -> Result<MetadataMap, Error> {
        let client = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0);
        let metadata = metadata::request_metadata(&parts.headers, client)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if metadata::list_size(&metadata) > self.max_metadata_bytes {
            return Err(Error::MetadataTooLarge {
                limit: self.max_metadata_bytes,
            });
        }
        Ok(metadata)
    }

    /// How a request's response is written: enum numbers when `$alt` asks for them.
    /// How a request's answers are written: its system parameters, and the partial response
    /// it asks for (`fields` or `X-Goog-FieldMask`), resolved against `route`'s answer.
    ///
    /// # Errors
    /// A field mask that names no field of the answer (a 400, before any call).
    pub(crate) fn serialize_for_request(
        &self,
        system: &SystemParams,
        headers: &HeaderMap,
        route: &Route,
    ) -> Result<Serialize, Error> {
        let mut serialize = self.serialize_for(system);
        let header = headers
            .get(transcode::fields::FIELD_MASK_HEADER)
            .map(|v| {
                v.to_str().map_err(|_| {
                    Error::InvalidArgument("X-Goog-FieldMask is not visible ASCII".to_owned())
                })
            })
            .transpose()?;
        // A raw body has no fields to select.
        if route.raw_response.is_none() {
            serialize.mask = transcode::fields::ResponseMask::from_request(
                system.fields.as_deref(),
                header,
                &route.binding.method.output(),
                route.binding.response_body.as_ref(),
            )?
            .map(std::sync::Arc::new);
        }
        if serialize.mask.is_some() {
            // A field left out must not come back as its default value: with a mask, defaults
            // are left out, as proto3 JSON does unless asked.
            serialize.wire.emit_defaults = false;
            serialize.reflect = serialize.reflect.skip_default_fields(true);
        }
        Ok(serialize)
    }

    pub(crate) fn serialize_for(&self, system: &SystemParams) -> Serialize {
        Serialize {
            mask: None,
            reflect: self
                .json
                .serialize_options()
                .use_enum_numbers(system.enum_numbers),
            wire: wire::Options {
                proto_names: self.json.names == JsonNames::Proto,
                emit_defaults: self.json.emit_defaults,
                enum_numbers: system.enum_numbers,
                stringify_64: true,
            },
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
        if self.is_response_too_large(&status) {
            tracing::warn!(
                message = status.message(),
                "backend response over the limit"
            );
            return Error::ResponseTooLarge {
                limit: self.max_response_bytes,
            };
        }
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

impl Calls {
    /// Whether `status` is tonic's own refusal of a response message over
    /// `max_response_bytes` (raised in this process, not sent by the backend). Tonic gives
    /// such a status no mark but its message, which names the limit: a backend's status can
    /// match only by repeating the gateway's limit to the byte.
    pub(crate) fn is_response_too_large(&self, status: &tonic::Status) -> bool {
        status.code() == tonic::Code::OutOfRange
            && status
                .message()
                .starts_with("Error, decoded message length too large")
            && status
                .message()
                .ends_with(&format!("the limit is: {} bytes", self.max_response_bytes))
    }
}

/// How fast a request body must arrive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyRead {
    /// The longest a whole body may take.
    pub(crate) timeout: Duration,
    /// The slowest average rate accepted once `grace` has passed, in bytes per second (0: any).
    pub(crate) min_rate: u64,
    /// How long a body may arrive slower than `min_rate` (a slow start, a TCP window opening).
    pub(crate) grace: Duration,
}

/// How often a body that sends nothing is checked against its rate.
const RATE_CHECK: Duration = Duration::from_millis(500);

impl Calls {
    /// Reads a request body whole, up to `body_limit` bytes (a declared or actual larger body
    /// is 413), within the [`BodyRead`] timeout and above its minimum rate (else 408), so a
    /// client trickling a body (one byte a second) cannot hold the connection's task, or a
    /// concurrency slot, for long.
    pub(crate) async fn read_body(&self, body: Body, headers: &HeaderMap) -> Result<Bytes, Error> {
        let limit = self.body_limit;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(Error::PayloadTooLarge { limit });
        }
        let read = self.body_read;
        let started = Instant::now();
        let deadline = started + read.timeout;
        let mut body = body;
        // The common body is one frame: kept as it is, copied only when a second one comes.
        let mut first: Option<Bytes> = None;
        let mut joined: Option<BytesMut> = None;
        let mut received = 0usize;
        loop {
            let wake = deadline.min(Instant::now() + RATE_CHECK);
            match tokio::time::timeout_at(wake.into(), body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    received += data.len();
                    if received > limit {
                        return Err(Error::PayloadTooLarge { limit });
                    }
                    match (&mut first, &mut joined) {
                        (None, _) => first = Some(data),
                        (Some(head), None) => {
                            let mut all = BytesMut::with_capacity(head.len() + data.len());
                            all.extend_from_slice(head);
                            all.extend_from_slice(&data);
                            joined = Some(all);
                        }
                        (Some(_), Some(all)) => all.extend_from_slice(&data),
                    }
                }
                Ok(Some(Err(e))) => {
                    return Err(Error::InvalidArgument(format!(
                        "reading the request body failed: {e}"
                    )));
                }
                Ok(None) => {
                    return Ok(match (joined, first) {
                        (Some(all), _) => all.freeze(),
                        (None, Some(head)) => head,
                        (None, None) => Bytes::new(),
                    });
                }
                Err(_) => {}
            }
            read.check(started, received)?;
        }
    }
}

impl Calls {
    /// Reads the parts of a `multipart/form-data` body: each part up to `body_limit` bytes
    /// (the whole form up to [`MAX_PARTS`] times that), within the [`BodyRead`] timeout and
    /// above its minimum rate, as [`Calls::read_body`] reads one body.
    pub(crate) async fn read_form(
        &self,
        body: Body,
        headers: &HeaderMap,
        boundary: String,
    ) -> Result<Vec<Part>, Error> {
        let whole = self.body_limit.saturating_mul(MAX_PARTS);
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > whole as u64) {
            return Err(Error::PayloadTooLarge { limit: whole });
        }
        multipart::read(paced(body, self.body_read), boundary, self.body_limit).await
    }
}

/// `body`'s data as it arrives, failing with a [`Error::BodyTooSlow`] when it takes longer
/// than the [`BodyRead`] timeout or arrives slower than its rate.
fn paced(
    body: Body,
    read: BodyRead,
) -> impl futures::Stream<Item = Result<Bytes, Error>> + Send + 'static {
    async_stream::stream! {
        let started = Instant::now();
        let deadline = started + read.timeout;
        let mut body = body;
        let mut received = 0usize;
        loop {
            let wake = deadline.min(Instant::now() + RATE_CHECK);
            match tokio::time::timeout_at(wake.into(), body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        received += data.len();
                        yield Ok(data);
                    }
                }
                Ok(Some(Err(e))) => {
                    yield Err(Error::InvalidArgument(format!(
                        "reading the request body failed: {e}"
                    )));
                    return;
                }
                Ok(None) => return,
                Err(_) => {}
            }
            if let Err(e) = read.check(started, received) {
                yield Err(e);
                return;
            }
        }
    }
}

impl BodyRead {
    /// Whether a body that started at `started` and has brought `received` bytes so far is
    /// still in time and fast enough.
    fn check(&self, started: Instant, received: usize) -> Result<(), Error> {
        let elapsed = started.elapsed();
        if elapsed >= self.timeout {
            return Err(Error::BodyTooSlow(format!(
                "the request body did not arrive within {}s",
                self.timeout.as_secs_f64()
            )));
        }
        if self.min_rate > 0
            && elapsed > self.grace
            && (received as f64) < self.min_rate as f64 * elapsed.as_secs_f64()
        {
            return Err(Error::BodyTooSlow(format!(
                "the request body arrives slower than {} bytes per second",
                self.min_rate
            )));
        }
        Ok(())
    }
}

/// How one request's responses are written, by either writer (the same choices).
#[derive(Debug, Clone)]
pub(crate) struct Serialize {
    /// prost-reflect's, for `DynamicMessage`s (error details, what the plan leaves to it).
    pub(crate) reflect: SerializeOptions,
    /// The wire writer's.
    pub(crate) wire: wire::Options,
    /// The partial response asked for, if any.
    pub(crate) mask: Option<std::sync::Arc<transcode::fields::ResponseMask>>,
}

impl Serialize {
    /// The JSON of one response message of `route`.
    pub(crate) fn json(&self, route: &Route, bytes: &[u8]) -> Result<Vec<u8>, Error> {
        let descriptor = route.binding.method.output();
        let masked;
        let bytes = match &self.mask {
            Some(mask) => {
                masked = mask.apply(bytes, &descriptor)?;
                &masked[..]
            }
            None => bytes,
        };
        transcode::wire_to_json(
            bytes,
            &transcode::Output {
                descriptor: &descriptor,
                plan: &route.plan,
                response_body: route.binding.response_body.as_ref(),
                wire: &self.wire,
                reflect: &self.reflect,
            },
        )
        .map_err(|e| Error::Internal(e.to_string()))
    }
}

/// A response message of `route` (its wire bytes) decoded, for what needs it whole.
pub(crate) fn decode_response(route: &Route, bytes: &[u8]) -> Result<DynamicMessage, Error> {
    transcode::decode(&route.binding.method.output(), bytes)
        .map_err(|e| Error::Internal(e.to_string()))
}

/// A response message (its wire bytes) as a 200: JSON, or the raw bytes of an `HttpBody`.
pub(crate) fn message_response(
    message: &[u8],
    route: &Route,
    serialize: &Serialize,
) -> Result<Response, Error> {
    let (content_type, body) = message_body(message, route, serialize)?;
    let mut response = (StatusCode::OK, body).into_response();
    if let Some(value) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    Ok(response)
}

/// The body [`message_response`] answers with, and its content type (`None`: a raw body whose
/// content type is no valid header value).
pub(crate) fn message_body(
    message: &[u8],
    route: &Route,
    serialize: &Serialize,
) -> Result<(Option<HeaderValue>, Bytes), Error> {
    if let Some(source) = &route.raw_response {
        let message = decode_response(route, message)?;
        let (content_type, data) = transcode::http_body::response_parts(&message, source);
        return Ok((HeaderValue::from_str(&content_type).ok(), data));
    }
    let json = serialize.json(route, message)?;
    Ok((
        Some(HeaderValue::from_static("application/json")),
        Bytes::from(json),
    ))
}

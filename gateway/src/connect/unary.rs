//! Connect's unary calls: a `POST` whose body is the request message (`application/json` or
//! `application/proto`, maybe compressed with `Content-Encoding`), and a `GET` whose query
//! carries it (`encoding`, `message`, `base64`, `compression`), for methods marked
//! `idempotency_level = NO_SIDE_EFFECTS`. Both become one unary gRPC call, as a REST call
//! does: the same budget slot, deadline, retry on another replica (a GET only: it has no
//! effect to repeat), and the same guard against clients hanging up ([`crate::detach`]).
//!
//! The answer is the message in the request's codec, the backend's header metadata as
//! headers and its trailers as `trailer-` headers; compressed by the gateway's compression
//! layer when the client's `Accept-Encoding` asks, as every whole answer is.
//!
//! **Caching a GET.** The answer says `Vary: Accept-Encoding` (the compression layer picks
//! the encoding from it). Its freshness is the backend's to state: a `cache-control` header
//! metadata from the backend goes out as the `Cache-Control` header. Without one the gateway
//! sends `Cache-Control: no-cache`, not a lifetime of its own: it cannot know how long an
//! answer stays true (an `ArticleList` changes with the next write), so a cache may keep the
//! answer but must ask again before using it; a weak `ETag` (a hash of the answer) makes
//! that revalidation cheap, answered 304 with no body when nothing changed. A request with
//! `Authorization` is never stored by a shared cache under these rules (RFC 9111 section 3.5;
//! unless the backend's own `cache-control` says `public`), so one user's answer is not served
//! to another. Errors to a GET are `no-store`.

use axum::{
    body::Body,
    extract::Request,
    response::{IntoResponse as _, Response},
};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header, request::Parts, uri::PathAndQuery};
use prost_reflect::{DynamicMessage, Value};
use sha2::{Digest as _, Sha256};

use super::{
    codec::{Codec, Compression},
    procedures::{self, Call},
    reply::Failure,
};
use crate::{
    admission::Budget,
    backend::{CallOptions, UnaryResponse},
    detach::Detached,
    error::Error,
    metadata,
};

/// `idempotency_level = NO_SIDE_EFFECTS` in `google/protobuf/descriptor.proto`.
const NO_SIDE_EFFECTS: i32 = 1;

/// Whether the method is marked free of side effects, which a GET needs.
fn has_no_side_effects(method: &prost_reflect::MethodDescriptor) -> bool {
    matches!(
        method
            .options()
            .get_field_by_name("idempotency_level")
            .as_deref(),
        Some(Value::EnumNumber(NO_SIDE_EFFECTS))
    )
}

/// `POST /{service}/{method}` with a bare message.
pub(super) async fn post(call: Call, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let procedures = &call.procedures.0;
    // The deadline is fixed when the request arrives, as for REST.
    let options = procedures::timeout(&parts.headers, procedures.timeout).map(CallOptions::within);
    // The body is read before any answer, refusals included: an HTTP/1.1 client still writing
    // a body the server has not read sees its connection close (EPIPE) rather than the answer.
    let body = procedures.calls.read_body(body, &parts.headers).await;
    let essence = procedures::content_type_essence(&parts.headers).unwrap_or_default();
    let Some(codec) = Codec::of_unary(essence) else {
        return Failure::unsupported_media_type(format!("unsupported content type {essence:?}"))
            .unary_response(false);
    };
    if call.method.is_client_streaming() || call.method.is_server_streaming() {
        return Failure::unsupported_media_type(format!(
            "{} streams: call it with application/connect+json or application/connect+proto",
            call.method.full_name()
        ))
        .unary_response(false);
    }
    let answer = async {
        procedures::check_protocol_version(&parts.headers)?;
        let options = options?;
        // Still there after the decompression layer: an encoding it does not decode.
        if let Some(encoding) = parts.headers.get(header::CONTENT_ENCODING)
            && !encoding.as_bytes().eq_ignore_ascii_case(b"identity")
        {
            return Err(Error::Unimplemented(format!(
                "unsupported Content-Encoding {:?}: supported are gzip, br, deflate, zstd and \
                 identity",
                String::from_utf8_lossy(encoding.as_bytes())
            ))
            .into());
        }
        let message = codec.decode(call.method.input(), &body?, &procedures.calls)?;
        invoke(&call, &parts, message, options, false).await
    }
    .await;
    match answer {
        Ok(answer) => success(&call, codec, answer, false, &parts),
        Err(failure) => failure.unary_response(false),
    }
}

/// `GET /{service}/{method}?connect=v1&encoding=...&message=...`.
pub(super) async fn get(call: Call, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    if call.method.is_client_streaming()
        || call.method.is_server_streaming()
        || !has_no_side_effects(&call.method)
    {
        return Failure::get_not_allowed(call.method.full_name()).unary_response(true);
    }
    let query = parts.uri.query().unwrap_or_default();
    let procedures = &call.procedures.0;
    if query.len() > procedures.max_query_length {
        return Failure::from(Error::UriTooLong {
            limit: procedures.max_query_length,
        })
        .unary_response(true);
    }
    let params = match GetParams::parse(query) {
        Ok(params) => params,
        Err(failure) => return failure.unary_response(true),
    };
    let codec = params.codec;
    let answer = async {
        let timeout = procedures::timeout(&parts.headers, procedures.timeout)?;
        let options = CallOptions::within(timeout);
        let limit = procedures.calls.body_limit;
        let compressed = params.message.len();
        if compressed > limit {
            return Err(Error::PayloadTooLarge { limit }.into());
        }
        let bytes = params.compression.decompress(params.message, limit)?;
        let message = codec.decode(call.method.input(), &bytes, &procedures.calls)?;
        invoke(&call, &parts, message, options, true).await
    }
    .await;
    match answer {
        Ok(answer) => success(&call, codec, answer, true, &parts),
        Err(failure) => failure.unary_response(true),
    }
}

/// What a GET's query says.
struct GetParams {
    codec: Codec,
    compression: Compression,
    message: Bytes,
}

impl GetParams {
    fn parse(query: &str) -> Result<Self, Failure> {
        let (mut encoding, mut message, mut base64, mut compression) = (None, None, false, None);
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "encoding" => encoding = Some(decoded(value)?),
                "message" => message = Some(decoded_bytes(value)),
                "base64" => base64 = value == "1",
                "compression" => compression = Some(decoded(value)?),
                // `connect=v1` and the query parameters of others (cache busters, ...).
                _ => {}
            }
        }
        let Some(encoding) = encoding else {
            return Err(Failure::unsupported_media_type(
                "a Connect GET needs encoding=json or encoding=proto".to_owned(),
            ));
        };
        let Some(codec) = Codec::named(&encoding) else {
            return Err(Failure::unsupported_media_type(format!(
                "unsupported encoding {encoding:?}: json or proto"
            )));
        };
        let compression = Compression::named(compression.as_deref())?;
        let message = message.unwrap_or_default();
        let message = if base64 {
            // URL-safe, padded or not.
            let trimmed: &[u8] = message
                .strip_suffix(b"==")
                .or_else(|| message.strip_suffix(b"="))
                .unwrap_or(&message);
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(trimmed)
                .map_err(|e| {
                    Error::InvalidArgument(format!("the message parameter is not base64: {e}"))
                })?
        } else {
            message
        };
        Ok(Self {
            codec,
            compression,
            message: Bytes::from(message),
        })
    }
}

/// A query value, percent-decoded (`+` is a space, as form encoding has it).
fn decoded_bytes(value: &str) -> Vec<u8> {
    let spaced = value.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).collect()
}

fn decoded(value: &str) -> Result<String, Failure> {
    String::from_utf8(decoded_bytes(value))
        .map_err(|_| Error::InvalidArgument("a query parameter is not UTF-8".to_owned()).into())
}

/// Calls the method with `message`, holding a unary slot until the backend answers.
async fn invoke(
    call: &Call,
    parts: &Parts,
    message: DynamicMessage,
    options: CallOptions,
    idempotent: bool,
) -> Result<UnaryResponse, Failure> {
    let procedures = &call.procedures.0;
    let calls = &procedures.calls;
    // Expired already (`Connect-Timeout-Ms: 0`, or a body that took the time): no replica is
    // picked, so none counts a call it never got.
    if options.deadline <= std::time::Instant::now() {
        return Err(Error::DeadlineExceeded.into());
    }
    let metadata = call.procedures.metadata(parts)?;
    // Taken once the body is in, as for REST: a slow body holds its connection, not a slot.
    let permit = procedures.admission.admit(Budget::Unary)?;
    let options = options
        .idempotent(idempotent)
        .max_response_bytes(calls.max_response_bytes);
    let path = PathAndQuery::try_from(parts.uri.path())
        .map_err(|e| Error::InvalidArgument(format!("invalid path: {e}")))?;
    let request = tonic::Request::from_parts(metadata, tonic::Extensions::default(), message);
    let pending = calls.backend.unary(path, request, options);
    // A client that hangs up does not cancel the call (see `detach`): the deadline bounds it.
    let answer = Detached::new(async move {
        let answer = pending.await;
        drop(permit);
        answer
    })
    .await;
    answer.map_err(|e| Failure::from_call(calls, e))
}

/// The answer: the message in `codec`, the metadata as headers; for a GET, the caching headers
/// and a 304 when the client's `If-None-Match` names the same answer.
fn success(call: &Call, codec: Codec, answer: UnaryResponse, get: bool, parts: &Parts) -> Response {
    let calls = &call.procedures.0.calls;
    let UnaryResponse { message, metadata } = answer;
    let body = match codec.encode(&call.method.output(), message, calls) {
        Ok(body) => body,
        Err(error) => return Failure::from(error).unary_response(get),
    };
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    metadata::connect_response_headers(&metadata.headers, &metadata.trailers, headers);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(codec.unary_content_type()),
    );
    if get {
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        if !headers.contains_key(header::CACHE_CONTROL) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        }
        let digest = Sha256::digest(&body);
        let tag: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        // Weak: the compression layer may send the same answer gzip-encoded, and a strong
        // validator would have to differ between the two encodings.
        let opaque = format!("\"{tag}\"");
        let unchanged = parts
            .headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim() == "*" || v.trim().trim_start_matches("W/") == opaque);
        if let Ok(value) = HeaderValue::from_str(&format!("W/{opaque}")) {
            headers.insert(header::ETAG, value);
        }
        if unchanged {
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            return response;
        }
    }
    *response.body_mut() = Body::from(body);
    response.into_response()
}

//! The request handler: every request that is not for a gateway path is matched against the
//! route table, transcoded into a call (unary here, streaming in [`crate::stream`]), and its
//! answer transcoded back. One fallback handler rather than axum routes: axum's path router
//! cannot express `{name=shelves/*}`, `**` or `:verb`.

use std::{sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{Request, State},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::{HeaderValue, Method, header};

use crate::{
    admission::{Admission, Budget},
    backend::{CallOptions, UnaryResponse},
    calls::{Calls, message_body, message_response},
    conditional,
    detach::Detached,
    error::Error,
    metadata,
    metrics::RouteSlot,
    routes::{Lookup, RouteTable},
    rules::BodyRule,
    stream,
    template::split_request_path,
    transcode,
};

/// What every request needs, resolved once at start.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Shared with the version's Connect procedures, which leave REST the paths it routes.
    pub(crate) table: Arc<RouteTable>,
    /// What calls need; shared with streams, which outlive their handler.
    pub(crate) calls: Arc<Calls>,
    pub(crate) max_query_length: usize,
    pub(crate) timeout: Duration,
    pub(crate) stream_timeout: Duration,
    /// The call budgets: a unary call holds a unary slot until it ends, a stream a stream
    /// slot until it ends.
    pub(crate) admission: Admission,
}

/// The fallback handler: every request not for a gateway path.
pub(crate) async fn transcode_request(
    State(shared): State<Arc<Shared>>,
    request: Request,
) -> Response {
    let head = request.method() == Method::HEAD;
    let mut response = match transcode_call(&shared, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    if head {
        // HEAD answers GET's headers, including its length, without the body.
        let length = http_body::Body::size_hint(response.body()).exact();
        *response.body_mut() = Body::empty();
        // A 204 says it has no body: no length either (RFC 9110, section 8.6).
        if let Some(length) = length.filter(|_| response.status() != http::StatusCode::NO_CONTENT) {
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
    }
    response
}

async fn transcode_call(shared: &Shared, request: Request) -> Result<Response, Error> {
    let (mut parts, body) = request.into_parts();
    // Still there after the decompression layer: an encoding it does not decode.
    if let Some(encoding) = parts.headers.get(header::CONTENT_ENCODING)
        && !encoding.as_bytes().eq_ignore_ascii_case(b"identity")
    {
        return Err(Error::UnsupportedEncoding(
            String::from_utf8_lossy(encoding.as_bytes()).into_owned(),
        ));
    }
    let timeout = metadata::grpc_timeout(&parts.headers)
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    if let Some(query) = parts.uri.query()
        && query.len() > shared.max_query_length
    {
        return Err(Error::UriTooLong {
            limit: shared.max_query_length,
        });
    }
    let path = parts.uri.path().to_owned();
    let (raw_segments, verb) = split_request_path(&path, |v| shared.table.has_verb(v));
    let segments = raw_segments
        .iter()
        .map(|s| transcode::path_segment(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::InvalidArgument(format!("{e} in the request path {path:?}")))?;

    // A WebSocket upgrade goes to the streaming route of its path, whatever that route's
    // HTTP method; without one, the request is served as the plain GET it also is.
    let mut websocket = stream::is_websocket_upgrade(&parts);
    let mut lookup = Lookup::NotFound;
    if websocket {
        lookup = shared.table.lookup_stream(&segments, verb);
        websocket = matches!(lookup, Lookup::Found { .. });
    }
    if !websocket {
        lookup = shared.table.lookup(&parts.method, &segments, verb);
    }
    let (route, captures) = match lookup {
        Lookup::Found {
            route,
            mut captures,
        } => {
            // Reserved expansion (google/api/http.proto): a multi-segment variable keeps `%2F`
            // as sent, since decoded it would read as a separator between segments, unless the
            // configuration says `fully_decode_reserved_expansion`. Rare, so the segments are
            // decoded again only when one carries it.
            if !route.binding.fully_decode_reserved_expansion
                && raw_segments.iter().any(|s| transcode::has_encoded_slash(s))
            {
                let reserved = raw_segments
                    .iter()
                    .map(|s| transcode::reserved_path_segment(s))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| {
                        Error::InvalidArgument(format!("{e} in the request path {path:?}"))
                    })?;
                route
                    .binding
                    .template
                    .recapture_multi_segment(&reserved, &mut captures);
            }
            (route, captures)
        }
        Lookup::MethodNotAllowed(allow) => {
            return Err(Error::MethodNotAllowed {
                method: parts.method,
                allow,
            });
        }
        Lookup::NotFound => return Err(Error::NotFound(path)),
    };
    RouteSlot::record(&parts.extensions, route.binding.method.full_name());
    // What the head alone refuses is refused before a byte of the body is read or decompressed.
    if let Some(check) = &shared.calls.request.head_check {
        check.run(&route.binding.method, &parts.headers)?;
    }

    if route.binding.is_streaming() {
        // A stream's own budget: however many idle, they leave the unary slots alone.
        let permit = match shared.admission.admit(Budget::Stream) {
            Ok(permit) => permit,
            // An `EventSource` refused with a 503 never comes back: told to retry, it does.
            Err(error) if !websocket && stream::wants_events(route, &parts.headers) => {
                return Ok(stream::retry_later(&error));
            }
            Err(error) => return Err(error),
        };
        // The call's deadline is fixed here, once, and owned by the call from now on.
        let options = CallOptions::within(timeout.unwrap_or(shared.stream_timeout))
            .max_response_bytes(shared.calls.max_response_bytes);
        let call = stream::StreamCall {
            calls: Arc::clone(&shared.calls),
            route: route.clone(),
            captures,
            options,
            permit,
        };
        return if websocket {
            stream::websocket(call, &mut parts).await
        } else {
            stream::serve(call, parts, body).await
        };
    }
    // A GET or HEAD has no effect to repeat: it may be sent again to another replica.
    let options = CallOptions::within(timeout.unwrap_or(shared.timeout))
        .idempotent(matches!(parts.method, Method::GET | Method::HEAD))
        .max_response_bytes(shared.calls.max_response_bytes);
    let calls = &shared.calls;

    let raw = route.raw_request.as_ref();
    // From the head alone too: metadata HTTP/2 forbids or that is over the limit.
    let metadata = calls.metadata(&parts)?;
    let content_type = parts.headers.get(header::CONTENT_TYPE);
    // A form, on a route whose body holds a file: read part by part.
    let form = match &route.form {
        Some(form) => transcode::multipart::boundary(content_type)?.map(|b| (form, b)),
        None => None,
    };
    let (body, form_parts) = match (&route.binding.body, form) {
        // A body on a route without one is ignored, as grpc-gateway does.
        (BodyRule::None, _) => (Bytes::new(), None),
        (_, Some((form, boundary))) => (
            Bytes::new(),
            Some((form, calls.read_form(body, &parts.headers, boundary).await?)),
        ),
        _ => (calls.read_body(body, &parts.headers).await?, None),
    };
    // Taken once the body is in: a slow body holds its connection, never a slot (as nginx
    // reads the body before it passes the request on).
    let permit = shared.admission.admit(Budget::Unary)?;
    if !body.is_empty() && raw.is_none() {
        transcode::check_content_type(content_type)?;
    }
    let json_body = if raw.is_some() { &[][..] } else { &body[..] };
    let read = matches!(parts.method, Method::GET | Method::HEAD);
    // A write without credentials: the backend authenticates it before any field rule is
    // told (the rules stay the backend's to check as well).
    let rules = if !matches!(parts.method, Method::GET | Method::HEAD)
        && !parts.headers.contains_key(header::AUTHORIZATION)
    {
        transcode::Rules::Defer
    } else {
        transcode::Rules::Check
    };
    let (mut message, system) = transcode::request_message_with(
        &route.binding,
        captures,
        parts.uri.query(),
        json_body,
        &calls.request,
        // A form's fields are in only once its parts are.
        if form_parts.is_some() {
            transcode::Rules::Defer
        } else {
            rules
        },
    )?;
    if let Some((form, form_parts)) = form_parts {
        transcode::multipart::fill(&mut message, form, form_parts)?;
        if rules == transcode::Rules::Check {
            transcode::check_rules(&message, &calls.request)?;
        }
    } else if let Some(target) = &raw {
        let content_type = content_type
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        transcode::http_body::fill(&mut message, target, content_type, body);
    }
    if !read {
        conditional::if_match(&parts.headers, &mut message)?;
    }
    let serialize = calls.serialize_for_request(&system, &parts.headers, route)?;

    let accept_trailers = metadata::accepts_trailers(&parts.headers);
    let grpc_request = tonic::Request::from_parts(metadata, tonic::Extensions::default(), message);
    // The call holds the slot until it ends, and a client that hangs up does not cancel it
    // (see `detach`); the deadline still bounds it, the slot bounds how many run.
    let call = calls
        .backend
        .unary(route.grpc_path.clone(), grpc_request, options);
    let answer = Detached::new(async move {
        let answer = call.await;
        drop(permit);
        answer
    })
    .await;
    let UnaryResponse { message, metadata } =
        answer.map_err(|e| calls.error(e, &serialize.reflect, accept_trailers))?;

    let mut response = if read {
        // A validator for caches and conditional requests (`conditional`).
        let (content_type, body) = message_body(&message, route, &serialize)?;
        let etag = conditional::etag(&route.binding.method.output(), &message, &body);
        let mut response = (http::StatusCode::OK, body).into_response();
        let headers = response.headers_mut();
        if let Some(content_type) = content_type {
            headers.insert(header::CONTENT_TYPE, content_type);
        }
        headers.insert(header::ETAG, etag);
        if let Some(value) = calls.cache_control.get(route.binding.method.full_name()) {
            headers.insert(header::CACHE_CONTROL, value.clone());
        }
        response
    } else {
        message_response(&message, route, &serialize)?
    };
    metadata::response_headers(&metadata.headers, response.headers_mut());
    transcode::status::apply(&mut response, route.success, &metadata.headers);
    metadata::attach_trailers(
        &mut response,
        metadata::response_trailers(&metadata.trailers, accept_trailers),
    );
    Ok(response)
}

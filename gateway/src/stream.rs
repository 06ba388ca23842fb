//! Streaming methods over HTTP: server, client and bidirectional streaming, over HTTP/1.1
//! (chunked) and HTTP/2, and over a WebSocket ([`websocket`]).
//!
//! - The request: one message from the path, query and body for a method that does not
//!   stream its requests; otherwise the body read as a sequence of JSON messages, each fed to
//!   the call as soon as it is complete ([`reader`]).
//! - The response: one message for a method that does not stream its responses, answered as a
//!   unary one; otherwise each message written and flushed as it arrives, in the framing the
//!   request's `Accept` chooses ([`framing`]), or as raw bytes for `google.api.HttpBody`
//!   (the output, or the `response_body` field of that type).
//!
//! The response head waits for the first message (or the end, or the failure), so a call that
//! fails at once answers its own HTTP status with the backend's header metadata, as
//! grpc-gateway does; a failure after that is written in the stream. The deadline bounds the
//! whole stream; the client going away drops the body, which drops the call (the backend sees
//! RST_STREAM); backpressure is HTTP's and HTTP/2's own (a message is read from the backend
//! only once the previous one is written). A stream holds its stream slot (`--stream-limit`,
//! [`crate::admission`]) until it ends, and never a unary one.
//!
//! Server-Sent Events differ, for browsers and the proxies in front of them:
//!
//! - the head goes as soon as the backend accepts the call (its response headers arrive), not
//!   at the first event, which may be minutes away for a caught-up watcher; a call the backend
//!   refuses at once (a trailers-only answer) still answers its own HTTP status;
//! - a `: keep-alive` comment is written whenever the stream has been silent for
//!   `--sse-keepalive`, since proxies cut streams idle for 60 s (NDJSON and JSON arrays get
//!   none: a comment would corrupt them);
//! - while no backend is up (UNAVAILABLE before the call is accepted), the answer is a 200
//!   stream of one `event: error` after a `retry:` line, then the end: `EventSource` never
//!   retries after a non-200 answer, but reconnects after a stream ends, with the
//!   `Last-Event-ID` it had, so a watcher outlives a backend restart and misses nothing.
//!
//! `HEAD` on a streaming route answers its head (status, content type) at once, from the route
//! and `Accept` alone: the request is checked as a `GET`'s would be, but no call is made, since
//! a `HEAD` would otherwise hold a backend stream open until its first message.

mod framing;
mod reader;
mod resume;
mod websocket;

use std::{sync::Arc, time::Duration};

use ::http_body::Frame;
use axum::{body::Body, response::Response};
use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _, future::BoxFuture, stream::BoxStream};
use http::{HeaderValue, Method, header, request::Parts};
use http_body_util::StreamBody;
use prost_reflect::DynamicMessage;
use tokio::sync::oneshot;
use tonic::{Code, Status};

pub(crate) use resume::follows_resume_convention;
pub(crate) use websocket::websocket;

use crate::{
    admission::Slot,
    backend::{CallError, CallOptions, ResponseStream},
    calls::{Calls, Serialize},
    error::Error,
    metadata,
    routes::Route,
    rules::BodyRule,
    transcode::{self, http_body},
};
use framing::Framing;
use reader::Decoder;

/// A streaming call on its way: what the handler resolved.
#[derive(Debug)]
pub(crate) struct StreamCall {
    pub(crate) calls: Arc<Calls>,
    pub(crate) route: Route,
    pub(crate) captures: Vec<String>,
    pub(crate) options: CallOptions,
    pub(crate) permit: Slot,
}

/// Whether the request asks to become a WebSocket (`GET` with `Upgrade: websocket`).
pub(crate) fn is_websocket_upgrade(parts: &Parts) -> bool {
    parts.method == Method::GET
        && parts
            .headers
            .get(header::UPGRADE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// The error a failed call answers: the request reader's when it has failed (its error reset
/// the backend stream, so the call's own error only echoes it), else `call`'s.
fn call_failed(failed: &mut BoxFuture<'static, Error>, call: impl FnOnce() -> Error) -> Error {
    failed.now_or_never().unwrap_or_else(call)
}

/// A future that completes with the reader's error, or never when there is no reader.
fn failure_of(receiver: Option<oneshot::Receiver<Error>>) -> BoxFuture<'static, Error> {
    Box::pin(async move {
        match receiver {
            Some(receiver) => match receiver.await {
                Ok(error) => error,
                // The reader ended without an error: nothing will come.
                Err(_) => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    })
}

/// Serves a streaming method over plain HTTP.
pub(crate) async fn serve(call: StreamCall, parts: Parts, body: Body) -> Result<Response, Error> {
    let StreamCall {
        calls,
        route,
        captures,
        options,
        permit,
    } = call;
    let method = route.binding.method.clone();
    let query = resume::query_with_last_event_id(
        &route.binding,
        &parts.headers,
        parts.uri.query().map(str::to_owned),
    );
    let serialize = calls.serialize_for_request(
        &transcode::system_params(query.as_deref())?,
        &parts.headers,
        &route,
    )?;
    let accept_trailers = metadata::accepts_trailers(&parts.headers);
    let content_type = parts.headers.get(header::CONTENT_TYPE);
    let raw = route.raw_request.clone().map(|target| {
        let content_type = content_type
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (target, content_type)
    });
    // A form, on a route whose body holds a file.
    let boundary = match &route.form {
        Some(_) if !matches!(route.binding.body, BodyRule::None) => {
            transcode::multipart::boundary(content_type)?
        }
        _ => None,
    };
    if raw.is_none() && boundary.is_none() && !matches!(route.binding.body, BodyRule::None) {
        transcode::check_content_type(content_type)?;
    }
    let decoder = Decoder {
        calls: Arc::clone(&calls),
        route: route.clone(),
        captures,
        query,
        raw,
    };

    let framing = Framing::from_accept(&parts.headers);
    let raw_out = route.raw_response.is_some();
    let streams_events = wants_events(&route, &parts.headers);

    if parts.method == Method::HEAD {
        // Checked as the GET would be, with no body read and no call made.
        if decoder.raw.is_none()
            && !method.is_client_streaming()
            && matches!(route.binding.body, BodyRule::None)
        {
            decoder.decode(b"")?;
        }
        return Ok(head_only(&method, framing, raw_out));
    }

    let streamed_form = boundary.clone().zip(
        route
            .form
            .as_ref()
            .and_then(|f| f.streamed())
            .map(|(part, _)| part.to_owned()),
    );
    let (requests, failure): (BoxStream<'static, Result<DynamicMessage, Status>>, _) =
        if method.is_client_streaming() {
            let (tx, rx) = oneshot::channel();
            let requests = match streamed_form {
                Some((boundary, part)) => {
                    reader::form_messages(body, decoder, boundary, part, tx).boxed()
                }
                None => reader::messages(body, decoder, tx).boxed(),
            };
            (requests, Some(rx))
        } else if let (Some(boundary), Some(form)) = (boundary, &route.form) {
            let form_parts = calls.read_form(body, &parts.headers, boundary).await?;
            let message = decoder.decode_form(form, form_parts)?;
            (
                futures::stream::once(std::future::ready(Ok(message))).boxed(),
                None,
            )
        } else {
            let bytes = match route.binding.body {
                BodyRule::None => Bytes::new(),
                _ => calls.read_body(body, &parts.headers).await?,
            };
            let message = decoder.decode(&bytes)?;
            (
                futures::stream::once(std::future::ready(Ok(message))).boxed(),
                None,
            )
        };
    let mut failed = failure_of(failure);

    let request = tonic::Request::from_parts(
        calls.metadata(&parts)?,
        tonic::Extensions::default(),
        requests,
    );
    let to_error = |e: CallError, failed: &mut BoxFuture<'static, Error>| {
        call_failed(failed, || {
            calls.error(e, &serialize.reflect, accept_trailers)
        })
    };
    let started = tokio::select! {
        started = calls.backend.streaming(route.grpc_path.clone(), request, options) => started,
        error = &mut failed => return Err(error),
    };
    let mut stream = match started {
        Ok(stream) => stream,
        Err(e) => {
            let error = to_error(e, &mut failed);
            if streams_events && error.code() == Code::Unavailable {
                return Ok(retry_later(&error));
            }
            return Err(error);
        }
    };
    // Events: the head goes now, the first message is read by the body.
    let first = if streams_events {
        None
    } else {
        let first = tokio::select! {
            first = stream.message() => first,
            error = &mut failed => return Err(error),
        };
        Some(first.map_err(|e| to_error(e, &mut failed))?)
    };

    if !method.is_server_streaming() {
        return single_response(
            &calls,
            stream,
            first.flatten(),
            &route,
            &serialize,
            accept_trailers,
        )
        .await;
    }

    let mut response = Response::new(Body::empty());
    let content_type = match (&first, &route.raw_response) {
        (Some(Some(message)), Some(source)) => {
            let message = crate::calls::decode_response(&route, message)?;
            HeaderValue::from_str(&http_body::response_parts(&message, source).0)
                .unwrap_or(HeaderValue::from_static("application/octet-stream"))
        }
        (_, Some(_)) => HeaderValue::from_static("application/octet-stream"),
        (_, None) => framing.content_type(),
    };
    stream_headers(&mut response, Some(content_type));
    metadata::response_headers(stream.headers(), response.headers_mut());
    let event_id = (framing == Framing::Sse && !raw_out && route.binding.response_body.is_none())
        .then(|| resume::event_id_field(&method.output()))
        .flatten();
    let writer = Writer {
        event_id,
        keepalive: if streams_events {
            calls.sse_keepalive
        } else {
            None
        },
        calls,
        route,
        serialize,
        framing,
        raw_out,
        accept_trailers,
    };
    *response.body_mut() = Body::new(StreamBody::new(
        writer.frames(stream, first, failed, permit),
    ));
    Ok(response)
}

/// Sets the headers of a streamed response: its content type (when known before the first
/// message), and no buffering on the way.
fn stream_headers<B>(response: &mut Response<B>, content_type: Option<HeaderValue>) {
    let headers = response.headers_mut();
    if let Some(content_type) = content_type {
        headers.insert(header::CONTENT_TYPE, content_type);
    }
    // Intermediaries must pass each message on as it comes (nginx buffers otherwise).
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        http::HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
}

/// The answer to `HEAD` on a streaming route: what its `GET` would answer before its first
/// message. An `HttpBody` download's content type comes with its first message, so it has none.
fn head_only(
    method: &prost_reflect::MethodDescriptor,
    framing: Framing,
    raw_out: bool,
) -> Response {
    // A body of unknown length, so that no `Content-Length: 0` is claimed for it.
    let mut response = Response::new(Body::new(StreamBody::new(futures::stream::empty::<
        Result<Frame<Bytes>, std::io::Error>,
    >())));
    if method.is_server_streaming() {
        stream_headers(&mut response, (!raw_out).then(|| framing.content_type()));
    } else {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    response
}

/// How long an `EventSource` waits before it reconnects after [`retry_later`].
const SSE_RETRY: Duration = Duration::from_secs(1);

/// Whether a request for `route` asks for its messages as Server-Sent Events.
pub(crate) fn wants_events(route: &crate::routes::Route, headers: &http::HeaderMap) -> bool {
    route.binding.method.is_server_streaming()
        && route.raw_response.is_none()
        && Framing::from_accept(headers) == Framing::Sse
}

/// The answer to an event stream that cannot start now (no backend is up, or no stream slot is
/// free): a 200 stream that says when to reconnect (`retry:`), carries the error as its one
/// `event: error`, and ends, so that the browser reconnects (with its `Last-Event-ID`) instead
/// of giving up on a 503.
pub(crate) fn retry_later(error: &Error) -> Response {
    tracing::debug!(error = %error, "no backend for an event stream: the client is told to retry");
    let mut out = Vec::new();
    framing::sse_retry(SSE_RETRY, &mut out);
    Framing::Sse.error(&error.status_json(), &mut out);
    let mut response = Response::new(Body::from(out));
    stream_headers(&mut response, Some(Framing::Sse.content_type()));
    response
}

/// The answer of a client-streaming call: its one message, as a unary call answers.
async fn single_response(
    calls: &Calls,
    mut stream: ResponseStream,
    first: Option<Bytes>,
    route: &Route,
    serialize: &Serialize,
    accept_trailers: bool,
) -> Result<Response, Error> {
    let to_error = |e: CallError| calls.error(e, &serialize.reflect, accept_trailers);
    let Some(message) = first else {
        return Err(Error::Internal(format!(
            "{} ended without a response message",
            route.binding.method.full_name()
        )));
    };
    if stream.message().await.map_err(to_error)?.is_some() {
        return Err(Error::Internal(format!(
            "{} answered two messages to a call with one response",
            route.binding.method.full_name()
        )));
    }
    let trailers = stream.trailers().await;
    let mut response = crate::calls::message_response(&message, route, serialize)?;
    metadata::response_headers(stream.headers(), response.headers_mut());
    transcode::status::apply(&mut response, route.success, stream.headers());
    metadata::attach_trailers(
        &mut response,
        metadata::response_trailers(&trailers, accept_trailers),
    );
    Ok(response)
}

/// Writes a response stream's messages.
struct Writer {
    calls: Arc<Calls>,
    route: Route,
    serialize: Serialize,
    framing: Framing,
    /// `google.api.HttpBody` messages (or fields, see [`http_body::raw_response`]): their raw
    /// data, no framing.
    raw_out: bool,
    accept_trailers: bool,
    /// The field written as each Server-Sent Event's `id:` ([`resume`]).
    event_id: Option<prost_reflect::FieldDescriptor>,
    /// How long the stream may stay silent before a keep-alive comment (events only).
    keepalive: Option<Duration>,
}

/// What came while the body waited for the next message.
enum Waited {
    Message(Option<Bytes>),
    Failed(Error),
    Silent,
}

impl Writer {
    /// The body frames: each message as it comes (`first` when it was read before the head),
    /// keep-alives while the stream is silent, then the end (and the trailers), or the error.
    /// A failure the framing cannot carry aborts the body.
    fn frames(
        self,
        mut stream: ResponseStream,
        first: Option<Option<Bytes>>,
        mut failed: BoxFuture<'static, Error>,
        permit: Slot,
    ) -> impl futures::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send + 'static {
        async_stream::stream! {
            let _permit = permit;
            let mut sent: u64 = 0;
            let mut next = first;
            // Only polled while the client takes what is written: a client that does not read
            // gets no keep-alives queued for it.
            let silence = tokio::time::sleep(self.keepalive.unwrap_or(Duration::MAX));
            tokio::pin!(silence);
            loop {
                let message = match next.take() {
                    Some(message) => message,
                    None => {
                        let waited = tokio::select! {
                            read = stream.message() => match read {
                                Ok(message) => Waited::Message(message),
                                Err(e) => Waited::Failed(self.calls.error(e, &self.serialize.reflect, false)),
                            },
                            error = &mut failed => Waited::Failed(error),
                            () = &mut silence, if self.keepalive.is_some() => Waited::Silent,
                        };
                        match waited {
                            Waited::Message(message) => message,
                            Waited::Silent => {
                                self.rearm(silence.as_mut());
                                yield Ok(Frame::data(Bytes::from_static(framing::SSE_KEEP_ALIVE)));
                                continue;
                            }
                            Waited::Failed(error) => {
                                tracing::debug!(error = %error, sent, "stream failed");
                                let mut out = Vec::new();
                                if !self.raw_out && self.framing.error(&error.status_json(), &mut out) {
                                    yield Ok(Frame::data(Bytes::from(out)));
                                } else {
                                    yield Err(std::io::Error::other(format!("the stream failed after it began: {error}")));
                                }
                                return;
                            }
                        }
                    }
                };
                let Some(message) = message else {
                    let mut out = Vec::new();
                    if !self.raw_out {
                        self.framing.end(sent, &mut out);
                    }
                    if !out.is_empty() {
                        yield Ok(Frame::data(Bytes::from(out)));
                    }
                    let trailers = stream.trailers().await;
                    let trailers = metadata::response_trailers(&trailers, self.accept_trailers);
                    if !trailers.is_empty() {
                        yield Ok(Frame::trailers(trailers));
                    }
                    return;
                };
                match self.write(&message, sent) {
                    Ok(bytes) => {
                        self.rearm(silence.as_mut());
                        yield Ok(Frame::data(bytes));
                    }
                    Err(e) => {
                        yield Err(e);
                        return;
                    }
                }
                sent += 1;
            }
        }
    }

    /// Starts the silence over: something was just written.
    fn rearm(&self, silence: std::pin::Pin<&mut tokio::time::Sleep>) {
        if let Some(keepalive) = self.keepalive {
            silence.reset(tokio::time::Instant::now() + keepalive);
        }
    }

    fn write(&self, message: &[u8], index: u64) -> Result<Bytes, std::io::Error> {
        let decoded =
            || crate::calls::decode_response(&self.route, message).map_err(std::io::Error::other);
        if let Some(source) = &self.route.raw_response {
            return Ok(http_body::response_parts(&decoded()?, source).1);
        }
        let json = self
            .serialize
            .json(&self.route, message)
            .map_err(std::io::Error::other)?;
        let mut out = Vec::with_capacity(json.len() + 32);
        // Only the resume convention's event id needs the message whole.
        if let Some(field) = &self.event_id
            && let Some(id) = resume::event_id(&decoded()?, field)
        {
            self.framing.event_id(&id, &mut out);
        }
        self.framing.message(index, &json, &mut out);
        Ok(Bytes::from(out))
    }
}

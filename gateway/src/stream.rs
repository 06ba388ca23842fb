//! Streaming methods over HTTP: server, client and bidirectional streaming, over HTTP/1.1
//! (chunked) and HTTP/2, and over a WebSocket ([`websocket`]).
//!
//! - The request: one message from the path, query and body for a method that does not
//!   stream its requests; otherwise the body read as a sequence of JSON messages, each fed to
//!   the call as soon as it is complete ([`reader`]).
//! - The response: one message for a method that does not stream its responses, answered as a
//!   unary one; otherwise each message written and flushed as it arrives, in the framing the
//!   request's `Accept` chooses ([`framing`]), or as raw bytes for `google.api.HttpBody`.
//!
//! The response head waits for the first message (or the end, or the failure), so a call that
//! fails at once answers its own HTTP status with the backend's header metadata, as
//! grpc-gateway does; a failure after that is written in the stream. The deadline bounds the
//! whole stream; the client going away drops the body, which drops the call (the backend sees
//! RST_STREAM); backpressure is HTTP's and HTTP/2's own (a message is read from the backend
//! only once the previous one is written). A stream holds its stream slot (`--stream-limit`,
//! [`crate::admission`]) until it ends, and never a unary one.

mod framing;
mod reader;
mod resume;
mod websocket;

use std::sync::Arc;

use ::http_body::Frame;
use axum::{body::Body, response::Response};
use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _, future::BoxFuture, stream::BoxStream};
use http::{HeaderValue, Method, header, request::Parts};
use http_body_util::StreamBody;
use prost_reflect::DynamicMessage;
use tokio::sync::oneshot;
use tonic::Status;

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
    let serialize = calls.serialize_for(transcode::system_params(query.as_deref())?);
    let accept_trailers = metadata::accepts_trailers(&parts.headers);
    let content_type = parts.headers.get(header::CONTENT_TYPE);
    let raw = route.raw_request.clone().map(|target| {
        let content_type = content_type
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (target, content_type)
    });
    if raw.is_none() && !matches!(route.binding.body, BodyRule::None) {
        transcode::check_content_type(content_type)?;
    }
    let decoder = Decoder {
        calls: Arc::clone(&calls),
        route: route.clone(),
        captures,
        query,
        raw,
    };

    let (requests, failure): (BoxStream<'static, Result<DynamicMessage, Status>>, _) =
        if method.is_client_streaming() {
            let (tx, rx) = oneshot::channel();
            (reader::messages(body, decoder, tx).boxed(), Some(rx))
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
    let mut stream = started.map_err(|e| to_error(e, &mut failed))?;
    let first = tokio::select! {
        first = stream.message() => first,
        error = &mut failed => return Err(error),
    };
    let first = first.map_err(|e| to_error(e, &mut failed))?;

    if !method.is_server_streaming() {
        return single_response(&calls, stream, first, &route, &serialize, accept_trailers).await;
    }

    let raw_out = route.raw_response;
    let framing = Framing::from_accept(&parts.headers);
    let mut response = Response::new(Body::empty());
    let content_type = match (&first, raw_out) {
        (Some(message), true) => {
            let message = crate::calls::decode_response(&route, message)?;
            HeaderValue::from_str(&http_body::parts(&message).0)
                .unwrap_or(HeaderValue::from_static("application/octet-stream"))
        }
        (None, true) => HeaderValue::from_static("application/octet-stream"),
        (_, false) => framing.content_type(),
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    // Intermediaries must pass each message on as it comes (nginx buffers otherwise).
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response.headers_mut().insert(
        http::HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    metadata::response_headers(stream.headers(), response.headers_mut());
    let event_id = (framing == Framing::Sse && !raw_out && route.binding.response_body.is_none())
        .then(|| resume::event_id_field(&method.output()))
        .flatten();
    let writer = Writer {
        event_id,
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
    /// `google.api.HttpBody` messages: their raw data, no framing.
    raw_out: bool,
    accept_trailers: bool,
    /// The field written as each Server-Sent Event's `id:` ([`resume`]).
    event_id: Option<prost_reflect::FieldDescriptor>,
}

impl Writer {
    /// The body frames: each message as it comes, then the end (and the trailers), or the
    /// error. A failure the framing cannot carry aborts the body.
    fn frames(
        self,
        mut stream: ResponseStream,
        first: Option<Bytes>,
        mut failed: BoxFuture<'static, Error>,
        permit: Slot,
    ) -> impl futures::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send + 'static {
        async_stream::stream! {
            let _permit = permit;
            let mut sent: u64 = 0;
            let mut next = first;
            loop {
                let Some(message) = next.take() else {
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
                    Ok(bytes) => yield Ok(Frame::data(bytes)),
                    Err(e) => {
                        yield Err(e);
                        return;
                    }
                }
                sent += 1;
                let error = tokio::select! {
                    read = stream.message() => match read {
                        Ok(message) => {
                            next = message;
                            continue;
                        }
                        Err(e) => self.calls.error(e, &self.serialize.reflect, false),
                    },
                    error = &mut failed => error,
                };
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

    fn write(&self, message: &[u8], index: u64) -> Result<Bytes, std::io::Error> {
        let decoded =
            || crate::calls::decode_response(&self.route, message).map_err(std::io::Error::other);
        if self.raw_out {
            return Ok(http_body::parts(&decoded()?).1);
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

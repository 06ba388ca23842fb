//! Connect's streams (`application/connect+json`, `application/connect+proto`): client, server
//! and bidirectional, over HTTP/2, and client and server streams over HTTP/1.1 too (Connect
//! needs no trailers: the end of the stream is a message). Each request envelope becomes a
//! message of the backend's gRPC stream as soon as it is whole; each backend message is
//! written in an envelope as it arrives, and the stream ends with the end-of-stream message:
//! the error, if any, and the trailers as `metadata`.
//!
//! As for a REST stream ([`crate::stream`]): the call holds a `--stream-limit` slot until it
//! ends, its deadline is `Connect-Timeout-Ms` else `--stream-timeout`, a client going away
//! cancels the backend call, a message is read from the backend only once the previous one
//! was taken, and each request message is bounded by `--body-limit` (decompressed too). A
//! request message that cannot be read aborts the call (the backend never takes the earlier
//! ones for a whole stream) and ends the answer with that error.
//!
//! Every failure is answered in the stream's terms, HTTP 200 and an end-of-stream error, as
//! Connect asks: a client reads a stream's outcome there, whatever the HTTP version.

use std::sync::Arc;

use axum::{body::Body, extract::Request, response::Response};
use bytes::Bytes;
use futures::{Stream, StreamExt as _, stream::BoxStream};
use http::{HeaderValue, header, uri::PathAndQuery};
use http_body_util::BodyExt as _;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tokio::sync::oneshot;
use tonic::Status;

use super::{
    codec::{Codec, Compression, SUPPORTED},
    envelope::{self, Reader},
    procedures::{self, Call},
    reply::{self, Failure},
};
use crate::{
    admission::{Budget, Slot},
    backend::{CallOptions, ResponseStream},
    calls::Calls,
    error::Error,
    metadata,
};

/// Messages smaller than this go uncompressed: gzip's header alone is 18 bytes, and small
/// messages do not shrink.
const COMPRESS_FROM: usize = 1024;

/// Serves a Connect stream.
pub(super) async fn serve(call: Call, request: Request) -> Response {
    let essence = procedures::content_type_essence(request.headers()).unwrap_or_default();
    let codec = match Codec::of_stream(essence) {
        None => Err(format!(
            "unsupported content type {essence:?}: application/connect+json or \
             application/connect+proto"
        )),
        Some(_) if !call.method.is_client_streaming() && !call.method.is_server_streaming() => {
            Err(format!(
                "{} is unary: call it with application/json or application/proto",
                call.method.full_name()
            ))
        }
        Some(codec) => Ok(codec),
    };
    let codec = match codec {
        Ok(codec) => codec,
        Err(message) => {
            call.procedures.drain(request).await;
            return Failure::unsupported_media_type(message).unary_response(false);
        }
    };
    let send = Compression::accepted(
        request
            .headers()
            .get("connect-accept-encoding")
            .and_then(|v| v.to_str().ok()),
    );
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(codec.stream_content_type()),
    );
    headers.insert(
        "connect-accept-encoding",
        HeaderValue::from_static(SUPPORTED),
    );
    if send == Compression::Gzip {
        headers.insert(
            "connect-content-encoding",
            HeaderValue::from_static(send.name()),
        );
    }
    // Proxies must pass each message on as it comes.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    let frames: BoxStream<'static, Bytes> = match start(&call, codec, request).await {
        Ok((stream, failed, permit)) => {
            metadata::connect_response_headers(
                stream.headers(),
                &tonic::metadata::MetadataMap::new(),
                response.headers_mut(),
            );
            Box::pin(frames(call, codec, send, stream, failed, permit))
        }
        Err(failure) => Box::pin(futures::stream::once(std::future::ready(
            failure.end_stream(),
        ))),
    };
    *response.body_mut() = Body::from_stream(frames.map(Ok::<_, std::convert::Infallible>));
    response
}

/// Where a request stream reports the message it could not read.
type Failed = oneshot::Receiver<Failure>;

/// Starts the backend call; completes when the backend has answered its headers.
async fn start(
    call: &Call,
    codec: Codec,
    request: Request,
) -> Result<(ResponseStream, Failed, Slot), Failure> {
    let procedures = &call.procedures.0;
    let calls = Arc::clone(&procedures.calls);
    let (parts, body) = request.into_parts();
    let checked = (|| {
        procedures::check_protocol_version(&parts.headers)?;
        let timeout = procedures::timeout(&parts.headers, procedures.stream_timeout)?;
        // Expired already: no replica is picked, so none counts a call it never got.
        if timeout.is_zero() {
            return Err(Error::DeadlineExceeded);
        }
        let receive = Compression::named(
            parts
                .headers
                .get("connect-content-encoding")
                .and_then(|v| v.to_str().ok()),
        )?;
        let metadata = call.procedures.metadata(&parts)?;
        // A stream's own budget: however many idle, they leave the unary slots alone.
        let permit = procedures.admission.admit(Budget::Stream)?;
        let path = PathAndQuery::try_from(parts.uri.path())
            .map_err(|e| Error::InvalidArgument(format!("invalid path: {e}")))?;
        Ok::<_, Error>((timeout, receive, metadata, permit, path))
    })();
    let (timeout, receive, metadata, permit, path) = match checked {
        Ok(checked) => checked,
        Err(error) => {
            // Read (within the body limit) before answering: an HTTP/1.1 client still
            // writing would see the connection close rather than the answer.
            let _ = calls.read_body(body, &parts.headers).await;
            return Err(error.into());
        }
    };
    let options = CallOptions::within(timeout).max_response_bytes(calls.max_response_bytes);
    // A server stream's one request message is read whole before the call (bounded as any
    // body): over HTTP/1.1, an answer that ends before the request's last bytes were read
    // makes hyper close the connection under a client still writing them (EPIPE).
    let body = if call.method.is_client_streaming() {
        body
    } else {
        match calls.read_body(body, &parts.headers).await {
            Ok(bytes) => Body::from(bytes),
            Err(error) => return Err(error.into()),
        }
    };
    let (report, mut failed) = oneshot::channel();
    let requests = messages(
        body,
        Decoder {
            calls: Arc::clone(&calls),
            input: call.method.input(),
            codec,
            compression: receive,
        },
        report,
    );
    let request = tonic::Request::from_parts(metadata, tonic::Extensions::default(), requests);
    let started = tokio::select! {
        started = calls.backend.streaming(path, request, options) => started,
        Ok(failure) = &mut failed => return Err(failure),
    };
    match started {
        Ok(stream) => Ok((stream, failed, permit)),
        Err(error) => Err(failed
            .try_recv()
            .unwrap_or_else(|_| Failure::from_call(&calls, error))),
    }
}

/// How request envelopes become messages.
struct Decoder {
    calls: Arc<Calls>,
    input: MessageDescriptor,
    codec: Codec,
    compression: Compression,
}

impl Decoder {
    fn decode(&self, envelope: envelope::Envelope) -> Result<DynamicMessage, Error> {
        if envelope.flags & envelope::END_STREAM != 0 {
            return Err(Error::InvalidArgument(
                "a request message is flagged end-of-stream, which only responses use".to_owned(),
            ));
        }
        let payload = if envelope.flags & envelope::COMPRESSED != 0 {
            if self.compression == Compression::Identity {
                return Err(Error::InvalidArgument(
                    "a request message is flagged compressed without a Connect-Content-Encoding"
                        .to_owned(),
                ));
            }
            self.compression
                .decompress(envelope.payload, self.calls.body_limit)?
        } else {
            envelope.payload
        };
        self.codec.decode(self.input.clone(), &payload, &self.calls)
    }
}

/// The request's messages, each as soon as its envelope is whole. A failure is reported on
/// `report`, then ends the stream with an `Err`, which aborts the backend call.
fn messages(
    mut body: Body,
    decoder: Decoder,
    report: oneshot::Sender<Failure>,
) -> impl Stream<Item = Result<DynamicMessage, Status>> + Send + 'static {
    async_stream::stream! {
        let mut reader = Reader::new(decoder.calls.body_limit);
        let failure: Error = 'read: loop {
            loop {
                match reader.next() {
                    Ok(Some(envelope)) => match decoder.decode(envelope) {
                        Ok(message) => yield Ok(message),
                        Err(error) => break 'read error,
                    },
                    Ok(None) => break,
                    Err(error) => break 'read error,
                }
            }
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        reader.push(&data);
                    }
                }
                Some(Err(error)) => {
                    break 'read Error::InvalidArgument(format!(
                        "reading the request body failed: {error}"
                    ));
                }
                None if reader.has_partial() => {
                    break 'read Error::InvalidArgument(
                        "the request body ends inside a message envelope".to_owned(),
                    );
                }
                None => return,
            }
        };
        let status = Status::cancelled("the request stream could not be read");
        let _ = report.send(Failure::from(failure));
        yield Err(status);
    }
}

/// The answer's envelopes: each message as it comes, then the end of the stream.
fn frames(
    call: Call,
    codec: Codec,
    send: Compression,
    mut stream: ResponseStream,
    mut failed: Failed,
    permit: Slot,
) -> impl Stream<Item = Bytes> + Send + 'static {
    async_stream::stream! {
        // Held until the last envelope is written (or the client goes).
        let _permit = permit;
        let calls = Arc::clone(&call.procedures.0.calls);
        let output = call.method.output();
        loop {
            match stream.message().await {
                Ok(Some(message)) => match codec.encode(&output, message, &calls) {
                    Ok(payload) => {
                        if send == Compression::Gzip && payload.len() >= COMPRESS_FROM {
                            yield envelope::frame(envelope::COMPRESSED, &send.compress(&payload));
                        } else {
                            yield envelope::frame(0, &payload);
                        }
                    }
                    Err(error) => {
                        yield Failure::from(error).end_stream();
                        return;
                    }
                },
                Ok(None) => {
                    let trailers = stream.trailers().await;
                    yield reply::end_stream(None, &[&trailers]);
                    return;
                }
                Err(error) => {
                    // The header metadata went out as headers already.
                    let failure = failed
                        .try_recv()
                        .unwrap_or_else(|_| Failure::from_call(&calls, error).without_headers());
                    yield failure.end_stream();
                    return;
                }
            }
        }
    }
}

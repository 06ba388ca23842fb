//! A streamed request: the body read as a sequence of JSON messages (newline-delimited or
//! just concatenated, as grpc-gateway reads them), each fed to the call as soon as it is
//! complete, never the whole body at once. The body limit applies to each message.
//!
//! A message that does not parse ends the call with an error, not a half-close: the reader
//! reports the error and yields an `Err`, which aborts the call (see
//! [`crate::backend::StreamCodec`]), so the backend cannot take the messages before it for a
//! complete request; the caller answers the error.

use std::sync::Arc;

use axum::body::Body;
use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt as _};
use prost_reflect::DynamicMessage;
use serde::de::IgnoredAny;
use tokio::sync::oneshot;
use tonic::Status;

use crate::{
    calls::Calls,
    error::Error,
    routes::Route,
    transcode::{
        self,
        http_body::{self, RawBody},
        multipart,
    },
};

/// Turns request bytes into request messages for one route: the path variables and query
/// parameters merged into each, as for a unary request.
#[derive(Debug, Clone)]
pub(crate) struct Decoder {
    pub(crate) calls: Arc<Calls>,
    pub(crate) route: Route,
    pub(crate) captures: Vec<String>,
    pub(crate) query: Option<String>,
    /// For an `HttpBody` request: where the raw bytes go, and their content type.
    pub(crate) raw: Option<(RawBody, String)>,
}

impl Decoder {
    /// One request message from one JSON text (empty: path and query only), or from raw bytes
    /// for an `HttpBody` request.
    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<DynamicMessage, Error> {
        let json = if self.raw.is_some() { &[][..] } else { bytes };
        let (mut message, _) = transcode::request_message(
            &self.route.binding,
            self.captures.clone(),
            self.query.as_deref(),
            json,
            &self.calls.request,
        )?;
        if let Some((target, content_type)) = &self.raw {
            http_body::fill(
                &mut message,
                target,
                content_type,
                Bytes::copy_from_slice(bytes),
            );
        }
        Ok(message)
    }

    /// One request message from a form's parts (and the path and query), its field rules
    /// checked once the parts are in.
    pub(crate) fn decode_form(
        &self,
        form: &multipart::Form,
        parts: Vec<multipart::Part>,
    ) -> Result<DynamicMessage, Error> {
        let (mut message, _) = transcode::request_message_with(
            &self.route.binding,
            self.captures.clone(),
            self.query.as_deref(),
            b"",
            &self.calls.request,
            transcode::Rules::Defer,
        )?;
        multipart::fill(&mut message, form, parts)?;
        transcode::check_rules(&message, &self.calls.request)?;
        Ok(message)
    }
}

/// Where a reader reports the error that ends its stream.
pub(crate) type Failure = oneshot::Sender<Error>;

/// The messages of `body`, read as they arrive; a bad one is sent to `failure`, and the
/// stream aborts the call.
pub(crate) fn messages(
    body: Body,
    decoder: Decoder,
    failure: Failure,
) -> impl Stream<Item = Result<DynamicMessage, Status>> + Send + 'static {
    async_stream::stream! {
        let limit = decoder.calls.body_limit;
        let mut body = body.into_data_stream();
        let mut buffer = BytesMut::new();
        let mut ended = false;
        let error = 'read: loop {
            if decoder.raw.is_some() {
                // An HttpBody upload: each chunk as it comes is one message.
                match body.next().await {
                    Some(Ok(chunk)) => match decoder.decode(&chunk) {
                        Ok(message) => yield Ok(message),
                        Err(e) => break 'read e,
                    },
                    Some(Err(e)) => break 'read read_failed(&e),
                    None => return,
                }
                continue;
            }
            // Every complete message in the buffer, then more bytes.
            loop {
                let Some(start) = buffer.iter().position(|b| !b.is_ascii_whitespace()) else {
                    buffer.clear();
                    break;
                };
                let mut values =
                    serde_json::Deserializer::from_slice(&buffer[start..]).into_iter::<IgnoredAny>();
                match values.next() {
                    Some(Ok(_)) => {
                        let end = start + values.byte_offset();
                        if end - start > limit {
                            break 'read Error::PayloadTooLarge { limit };
                        }
                        match decoder.decode(&buffer[start..end]) {
                            Ok(message) => yield Ok(message),
                            Err(e) => break 'read e,
                        }
                        buffer.advance(end);
                    }
                    Some(Err(e)) if e.is_eof() && !ended => {
                        if buffer.len() - start > limit {
                            break 'read Error::PayloadTooLarge { limit };
                        }
                        break;
                    }
                    Some(Err(e)) => {
                        break 'read Error::InvalidArgument(format!("invalid JSON message in the request stream: {e}"));
                    }
                    None => {
                        buffer.clear();
                        break;
                    }
                }
            }
            if ended {
                return;
            }
            match body.next().await {
                Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                Some(Err(e)) => break 'read read_failed(&e),
                None => ended = true,
            }
        };
        let _ = failure.send(error);
        yield Err(aborted());
    }
}

/// The messages of a `multipart/form-data` upload to a client-streaming `HttpBody` method:
/// the file of part `part` chunk by chunk as it arrives (with the part's content type), never
/// whole; any other part is an error that aborts the call, as a bad message does.
pub(crate) fn form_messages(
    body: Body,
    decoder: Decoder,
    boundary: String,
    part: String,
    failure: Failure,
) -> impl Stream<Item = Result<DynamicMessage, Status>> + Send + 'static {
    async_stream::stream! {
        let limit = decoder.calls.body_limit;
        let mut form = multer::Multipart::new(
            multipart::one_frame_at_a_time(body.into_data_stream()),
            boundary,
        );
        let error = 'read: {
            let mut field = match form.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => {
                    break 'read Error::InvalidArgument(format!(
                        "the form has no part {part:?}: send the file in it"
                    ));
                }
                Err(e) => break 'read multipart::error(e, limit),
            };
            let content_type = match multipart::part_head(&field) {
                Ok((name, _)) if name != part => {
                    break 'read Error::InvalidArgument(format!(
                        "unknown form part {name:?}; the form takes {part:?}"
                    ));
                }
                Ok((_, content_type)) => multipart::file_type(content_type.as_deref()).to_owned(),
                Err(e) => break 'read e,
            };
            let mut decoder = decoder;
            if let Some((_, raw_type)) = &mut decoder.raw {
                *raw_type = content_type;
            }
            loop {
                match field.chunk().await {
                    Ok(Some(chunk)) => match decoder.decode(&chunk) {
                        Ok(message) => yield Ok(message),
                        Err(e) => break 'read e,
                    },
                    Ok(None) => break,
                    Err(e) => break 'read multipart::error(e, limit),
                }
            }
            // The form is locked while a part is held.
            drop(field);
            match form.next_field().await {
                Ok(None) => return,
                Ok(Some(extra)) => Error::InvalidArgument(format!(
                    "unknown form part {:?} after the file; the form takes {part:?} alone",
                    extra.name().unwrap_or_default()
                )),
                Err(e) => multipart::error(e, limit),
            }
        };
        let _ = failure.send(error);
        yield Err(aborted());
    }
}

/// The item that aborts a call whose request stream went wrong.
pub(crate) fn aborted() -> Status {
    Status::cancelled("the request stream was aborted")
}

fn read_failed(error: &axum::Error) -> Error {
    Error::InvalidArgument(format!("reading the request body failed: {error}"))
}

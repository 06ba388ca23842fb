//! Streaming methods over a WebSocket: `GET` with `Upgrade: websocket` on the method's path,
//! whatever HTTP method its rule names (a browser can only open a WebSocket with a GET).
//! Browsers get bidirectional streaming this way, which grpc-gateway has never offered.
//!
//! - Each text (or binary) frame from the client is one JSON request message, merged with the
//!   path variables and query parameters as any request is; an empty text frame ends the
//!   request stream (a half-close: WebSocket has none of its own, and after a close frame no
//!   more messages may come back). A method that does not stream its requests takes its one
//!   message from the path and query.
//! - Each response message is one text frame (the message's JSON).
//! - The end: a close frame 1000 `OK`. A failure: a last text frame `{"error": {"code",
//!   "message", "details"}}`, then a close frame with code 4000 + the gRPC code and the
//!   message as its reason (cut to the 123 bytes a reason may have).
//! - The client's close frame, the connection going away, or a bad request message cancels
//!   the call.
//!
//! What a socket may hold is bounded as a body is: a message (and a frame) over `--body-limit`
//! closes the socket with 1009 (message too big), after an error frame, as soon as its size
//! passes the limit, however it is fragmented. A ping is answered before the next frame is
//! read, so a client that sends pings and never reads its pongs finds its own writes stalled
//! (TCP's backpressure) instead of the gateway queueing pongs for it.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{
        FromRequestParts,
        ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade},
    },
    response::Response,
};
use futures::{SinkExt as _, StreamExt as _, stream::BoxStream, stream::SplitSink};
use http::request::Parts;
use prost_reflect::DynamicMessage;
use tokio::{
    sync::{Mutex, mpsc, oneshot},
    task::JoinHandle,
};
use tokio_tungstenite::tungstenite;
use tonic::{Status, metadata::MetadataMap};

use super::{
    StreamCall, failure_of,
    reader::{self, Decoder},
};
use crate::{calls::Serialize, error::Error, transcode};

/// The largest close reason, in bytes (RFC 6455 section 5.5: 125 bytes less the code).
const MAX_REASON: usize = 123;
/// The largest payload of a control frame (ping, pong, close; RFC 6455 section 5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;
/// The close code of a message too big to process (RFC 6455 section 7.4.1).
const MESSAGE_TOO_BIG: u16 = 1009;
/// How long the last frames (the error, the close) may take to go out: a client that does
/// not read must not hold the call's permit past its end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The socket's sending half, shared by the call's writer and the reader, which flushes
/// pongs.
type Sink = Arc<Mutex<SplitSink<WebSocket, Message>>>;

/// The reading task, ended with the call.
struct Reader(JoinHandle<()>);

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Whether `error` is tungstenite's refusal of a message or frame over the limit.
fn too_big(error: &axum::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|e| e.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}

/// Answers the upgrade and runs the call on the socket.
pub(crate) async fn websocket(call: StreamCall, parts: &mut Parts) -> Result<Response, Error> {
    let limit = call.calls.body_limit;
    let upgrade = WebSocketUpgrade::from_request_parts(parts, &())
        .await
        .map_err(|e| {
            Error::InvalidArgument(format!("invalid WebSocket upgrade: {}", e.body_text()))
        })?
        // Not tungstenite's 64 MiB: a message is a request body, and the body limit holds
        // (a frame may still be a control frame's 125 bytes, whatever the limit).
        .max_message_size(limit)
        .max_frame_size(limit.max(MAX_CONTROL_PAYLOAD));
    let query = parts.uri.query().map(str::to_owned);
    let serialize = call.calls.serialize_for_request(
        &transcode::system_params(query.as_deref())?,
        &parts.headers,
        &call.route,
    )?;
    let decoder = Decoder {
        calls: call.calls.clone(),
        route: call.route.clone(),
        captures: call.captures.clone(),
        query,
        raw: None,
    };
    // A method with one request message gets it now, so a bad one is a plain 400.
    let single = if call.route.binding.method.is_client_streaming() {
        None
    } else {
        Some(decoder.decode(b"")?)
    };
    let metadata = call.calls.metadata(parts)?;
    Ok(upgrade.on_upgrade(move |socket| async move {
        run(socket, call, decoder, single, metadata, serialize).await;
    }))
}

async fn run(
    socket: WebSocket,
    call: StreamCall,
    decoder: Decoder,
    single: Option<DynamicMessage>,
    metadata: MetadataMap,
    serialize: Serialize,
) {
    let StreamCall {
        calls,
        route,
        options,
        permit,
        ..
    } = call;
    let _permit = permit;
    let limit = calls.body_limit;
    let (sink, mut source) = socket.split();
    let sink: Sink = Arc::new(Mutex::new(sink));
    let (failure, failed) = oneshot::channel::<Error>();
    let mut failed = failure_of(Some(failed));
    // One message read ahead of the call at most: the socket's own backpressure.
    let (messages, received) = mpsc::channel::<Result<DynamicMessage, Status>>(1);
    let mut messages = Some(messages);
    let requests: BoxStream<'static, Result<DynamicMessage, Status>> = match single {
        Some(message) => futures::stream::once(std::future::ready(Ok(message))).boxed(),
        None => tokio_stream::wrappers::ReceiverStream::new(received).boxed(),
    };
    let streams_requests = route.binding.method.is_client_streaming();
    // Its own task, so that it can wait for a pong to go out while the call writes; ends when
    // the client closes or goes away; a bad message is sent to `failure`.
    let pongs = Arc::clone(&sink);
    let mut reading = Reader(tokio::spawn(async move {
        // Bounded by the client: it ends when the client closes or the connection goes.
        loop {
            let frame = match source.next().await {
                Some(Ok(frame)) => frame,
                Some(Err(e)) if too_big(&e) => {
                    // Told before the call is aborted, so that the call's end names it.
                    let _ = failure.send(Error::PayloadTooLarge { limit });
                    if let Some(sender) = messages.take() {
                        let _ = sender.send(Err(reader::aborted())).await;
                    }
                    let never: std::convert::Infallible = std::future::pending().await;
                    match never {}
                }
                Some(Err(_)) | None => break,
            };
            let bytes = match frame {
                Message::Text(text) if text.trim().is_empty() => {
                    // The half-close: the request stream ends.
                    messages = None;
                    continue;
                }
                Message::Text(text) => text.as_bytes().to_vec(),
                Message::Binary(data) => data.to_vec(),
                Message::Close(_) => break,
                // tungstenite queued the pong (only the latest, if several wait): it goes
                // out before the next frame is read.
                Message::Ping(_) => {
                    if pongs.lock().await.flush().await.is_err() {
                        break;
                    }
                    continue;
                }
                Message::Pong(_) => continue,
            };
            let Some(sender) = messages.as_ref().filter(|_| streams_requests) else {
                continue;
            };
            match decoder.decode(&bytes) {
                Ok(message) => {
                    if sender.send(Ok(message)).await.is_err() {
                        messages = None;
                    }
                }
                Err(e) => {
                    let _ = failure.send(e);
                    // Aborted, not ended: the messages before are no complete request.
                    let _ = sender.send(Err(reader::aborted())).await;
                    // The call is ending with the error; nothing more is read.
                    let never: std::convert::Infallible = std::future::pending().await;
                    match never {}
                }
            }
        }
        // Closed or gone before its half-close: the call is aborted, not ended.
        if let Some(sender) = messages.take() {
            let _ = sender.try_send(Err(reader::aborted()));
        }
    }));

    let request = tonic::Request::from_parts(metadata, tonic::Extensions::default(), requests);
    let outcome: Result<Option<()>, Error> = async {
        let mut stream = tokio::select! {
            started = calls.backend.streaming(
                route.grpc_path.clone(),
                request,
                options,
            ) => started.map_err(|e| super::call_failed(&mut failed, || calls.error(e, &serialize.reflect, false)))?,
            error = &mut failed => return Err(error),
            _ = &mut reading.0 => return Ok(None),
        };
        loop {
            let next = tokio::select! {
                next = stream.message() => next,
                error = &mut failed => return Err(error),
                _ = &mut reading.0 => return Ok(None),
            };
            let next =
                next.map_err(|e| super::call_failed(&mut failed, || calls.error(e, &serialize.reflect, false)))?;
            let Some(message) = next else {
                return Ok(Some(()));
            };
            let json = serialize.json(&route, &message)?;
            let text = String::from_utf8(json)
                .map_err(|e| Error::Internal(format!("a stream message is not UTF-8: {e}")))?;
            let sent = tokio::select! {
                sent = async { sink.lock().await.send(Message::Text(Utf8Bytes::from(text))).await } => sent,
                _ = &mut reading.0 => return Ok(None),
            };
            if sent.is_err() {
                // The client is gone: dropping the stream cancels the call.
                return Ok(None);
            }
        }
    }
    .await;

    let close = match outcome {
        // The client closed (its close frame is answered by the WebSocket itself) or went
        // away: the call is dropped, nothing more to say.
        Ok(None) => return,
        Ok(Some(())) => CloseFrame {
            code: 1000,
            reason: Utf8Bytes::from_static("OK"),
        },
        Err(error) => {
            let json = error.status_json();
            let mut frame = b"{\"error\":".to_vec();
            frame.extend_from_slice(&json);
            frame.push(b'}');
            if let Ok(text) = String::from_utf8(frame) {
                let _ = send_last(&sink, Message::Text(Utf8Bytes::from(text))).await;
            }
            let (code, reason) = match error {
                Error::PayloadTooLarge { limit } => (
                    MESSAGE_TOO_BIG,
                    format!("a message is larger than the limit of {limit} bytes"),
                ),
                error => (4000 + error.code() as u16, error.public_message()),
            };
            CloseFrame {
                code,
                reason: Utf8Bytes::from(self::reason(&reason)),
            }
        }
    };
    let _ = send_last(&sink, Message::Close(Some(close))).await;
}

/// Sends one of the last frames, within [`CLOSE_TIMEOUT`].
async fn send_last(sink: &Sink, message: Message) -> Result<(), ()> {
    let send = async { sink.lock().await.send(message).await.map_err(|_| ()) };
    tokio::time::timeout(CLOSE_TIMEOUT, send)
        .await
        .unwrap_or(Err(()))
}

/// `message` cut to a close reason's size, at a character boundary.
fn reason(message: &str) -> String {
    let mut end = message.len().min(MAX_REASON);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].to_owned()
}

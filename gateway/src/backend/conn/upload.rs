//! The relay of a request body to its backend stream, paced by HTTP/2 flow control.
//!
//! h2's `SendStream::send_data` takes any amount of data and queues in memory whatever the
//! backend has not made room for yet. So the relay asks for room first
//! (`reserve_capacity`, then `poll_capacity`) and sends no more than it was given; the
//! next chunk of the body is read only once the previous one is sent. A backend that reads
//! slowly, or not at all, thus slows the client's upload down to its own pace (through the
//! gateway's reading of the client connection), and the gateway holds at most one chunk of
//! an upload however large it is.
//!
//! A body ready at once (a unary call's one message, already in memory) is written from the
//! caller's task; any other goes on in a task of its own, which stops when the body ends or
//! fails, when the backend resets the stream, or when the call is abandoned (its future or
//! response body dropped).

use bytes::Bytes;
use futures::FutureExt as _;
use h2::SendStream;
use http_body::{Body as _, Frame};
use http_body_util::BodyExt as _;
use tokio::sync::oneshot;
use tonic::{Status, body::Body};

use super::Slot;

/// Writes `body` to `stream`: its first frame from this task, when it is ready now (all of a
/// unary call's body); the rest from a task of its own, paced by the backend's window.
pub(super) fn send_body(
    mut body: Body,
    mut stream: SendStream<Bytes>,
    slot: Slot,
    abandoned: oneshot::Receiver<()>,
) {
    let first = match body.frame().now_or_never() {
        Some(Some(Ok(frame))) => frame,
        Some(None) => {
            let _ = stream.send_data(Bytes::new(), true);
            return;
        }
        Some(Some(Err(status))) => {
            reset(&mut stream, &status);
            return;
        }
        None => {
            tokio::spawn(relay(body, stream, None, slot, abandoned));
            return;
        }
    };
    // The first frame is in memory already: writing it without waiting for room holds no
    // more than is held now.
    let end = body.is_end_stream();
    if write_now(&mut stream, first, end).is_err() || end {
        return;
    }
    match body.frame().now_or_never() {
        // A unary call: its body ended with its one message.
        Some(None) => {
            let _ = stream.send_data(Bytes::new(), true);
        }
        Some(Some(Err(status))) => reset(&mut stream, &status),
        Some(Some(Ok(frame))) => {
            tokio::spawn(relay(body, stream, Some(frame), slot, abandoned));
        }
        None => {
            tokio::spawn(relay(body, stream, None, slot, abandoned));
        }
    }
}

/// Relays the rest of `body` (after `pending`, a frame already read) within the backend's
/// window. Bounded by the body, which ends or fails; a reset stream or an abandoned call
/// stops it too.
async fn relay(
    mut body: Body,
    mut stream: SendStream<Bytes>,
    mut pending: Option<Frame<Bytes>>,
    _slot: Slot,
    mut abandoned: oneshot::Receiver<()>,
) {
    loop {
        let frame = match pending.take() {
            Some(frame) => Some(Ok(frame)),
            None => tokio::select! {
                frame = body.frame() => frame,
                // The backend reset the stream (or the connection went): stop reading the source.
                _ = futures::future::poll_fn(|cx| stream.poll_reset(cx)) => return,
                _ = &mut abandoned => return,
            },
        };
        match frame {
            Some(Ok(frame)) => {
                let end = body.is_end_stream();
                let written = match frame.into_data() {
                    Ok(data) => write_paced(&mut stream, data, end, &mut abandoned).await,
                    Err(frame) => write_now(&mut stream, frame, end),
                };
                if written.is_err() || end {
                    return;
                }
            }
            None => {
                let _ = stream.send_data(Bytes::new(), true);
                return;
            }
            Some(Err(status)) => {
                reset(&mut stream, &status);
                return;
            }
        }
    }
}

/// Sends `data` as the backend makes room for it, never more than it made room for.
async fn write_paced(
    stream: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
    abandoned: &mut oneshot::Receiver<()>,
) -> Result<(), ()> {
    if data.is_empty() {
        return stream.send_data(data, end).map_err(drop);
    }
    // Bounded by the data: each round sends at least one byte of it.
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let mut room = stream.capacity();
        if room == 0 {
            room = tokio::select! {
                room = futures::future::poll_fn(|cx| stream.poll_capacity(cx)) => match room {
                    Some(Ok(room)) => room,
                    // Reset or closed: nothing more can be sent.
                    Some(Err(_)) | None => return Err(()),
                },
                _ = &mut *abandoned => return Err(()),
            };
        }
        let chunk = data.split_to(room.min(data.len()));
        stream
            .send_data(chunk, end && data.is_empty())
            .map_err(drop)?;
    }
    Ok(())
}

/// Writes a frame at once: data already in memory, or trailers.
fn write_now(stream: &mut SendStream<Bytes>, frame: Frame<Bytes>, end: bool) -> Result<(), ()> {
    match frame.into_data() {
        Ok(data) => stream.send_data(data, end).map_err(drop),
        Err(frame) => match frame.into_trailers() {
            Ok(trailers) => stream.send_trailers(trailers).map_err(drop),
            Err(_) => Ok(()),
        },
    }
}

/// A request body that failed (the gateway aborts a call so, [`crate::backend::StreamCodec`]):
/// the stream is reset with INTERNAL_ERROR, as hyper does. Not CANCEL, which a tonic server
/// reads as the clean end of its request stream.
fn reset(stream: &mut SendStream<Bytes>, status: &Status) {
    tracing::debug!(%status, "request body failed: resetting the backend stream");
    stream.send_reset(h2::Reason::INTERNAL_ERROR);
}

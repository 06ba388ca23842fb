//! A proxied call's response body: the backend's frames as they come, bounded by the call's
//! deadline, holding the call's slot ([`crate::admission`]) until it is done.
//!
//! Hand-written because the deadline must end the call in gRPC's terms, not by cutting the
//! connection: past it, the backend's body is dropped (which resets its stream: the backend
//! stops working on the call) and the client gets trailers with DEADLINE_EXCEEDED. A backend
//! body that fails (a reset stream, a lost connection) likewise ends with trailers carrying
//! the status, rather than a reset that clients report without a code; and a backend whose
//! answer ends with no status at all (no `grpc-status` in its head nor its trailers) gets one
//! added (INTERNAL), so that every proxied call ends with a status a client can read.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as _, Frame};
use tokio::time::Sleep;
use tonic::{Status, body::Body};

use crate::admission::Slot;

/// See the module docs.
pub(super) struct Proxied {
    /// The backend's body; `None` once done (dropping it early resets the backend stream).
    inner: Option<Body>,
    deadline: Pin<Box<Sleep>>,
    /// Whether the client has a status: in the response head (trailers-only) or in trailers
    /// already passed on.
    status_sent: bool,
    _permit: Slot,
}

impl Proxied {
    pub(super) fn new(
        inner: Body,
        deadline: tokio::time::Instant,
        permit: Slot,
        status_in_head: bool,
    ) -> Self {
        let done = inner.is_end_stream();
        Self {
            inner: (!done).then_some(inner),
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            status_sent: status_in_head,
            _permit: permit,
        }
    }

    /// Ends the call with `status` in the trailers, dropping the backend's body.
    fn end_with(&mut self, status: &Status) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.inner = None;
        let mut trailers = HeaderMap::new();
        add_status(status, &mut trailers);
        self.status_sent = true;
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }
}

/// The status a backend answer without one ends with.
fn no_status() -> Status {
    Status::internal("the backend ended the call without a status")
}

fn add_status(status: &Status, trailers: &mut HeaderMap) {
    if status.add_header(trailers).is_err() {
        // Only a message that cannot be a header value fails: the code alone still goes.
        let _ = Status::new(status.code(), "").add_header(trailers);
    }
}

impl http_body::Body for Proxied {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            if !this.status_sent {
                return this.end_with(&no_status());
            }
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let frame = match frame.into_trailers() {
                    Ok(mut trailers) => {
                        this.inner = None;
                        this.status_sent = true;
                        if !trailers.contains_key("grpc-status") {
                            add_status(&no_status(), &mut trailers);
                        }
                        Frame::trailers(trailers)
                    }
                    Err(frame) => frame,
                };
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(None) => {
                this.inner = None;
                if !this.status_sent {
                    return this.end_with(&no_status());
                }
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(status))) => {
                tracing::debug!(%status, "proxied call's backend body failed");
                return this.end_with(&Status::new(status.code(), "the backend call failed"));
            }
            Poll::Pending => {}
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return this.end_with(&Status::deadline_exceeded(
                "the deadline expired before the backend answered",
            ));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_none() && self.status_sent
    }
}

//! A proxied call's response body: the backend's frames as they come, bounded by the call's
//! deadline, holding the call's concurrency permit until it is done.
//!
//! Hand-written because the deadline must end the call in gRPC's terms, not by cutting the
//! connection: past it, the backend's body is dropped (which resets its stream: the backend
//! stops working on the call) and the client gets trailers with DEADLINE_EXCEEDED. A backend
//! body that fails (a reset stream, a lost connection) likewise ends with trailers carrying
//! the status, rather than a reset that clients report without a code.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as _, Frame};
use tokio::{sync::OwnedSemaphorePermit, time::Sleep};
use tonic::{Status, body::Body};

/// See the module docs.
pub(super) struct Proxied {
    /// The backend's body; `None` once done (dropping it early resets the backend stream).
    inner: Option<Body>,
    deadline: Pin<Box<Sleep>>,
    _permit: OwnedSemaphorePermit,
}

impl Proxied {
    pub(super) fn new(
        inner: Body,
        deadline: tokio::time::Instant,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        let done = inner.is_end_stream();
        Self {
            inner: (!done).then_some(inner),
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            _permit: permit,
        }
    }

    /// Ends the call with `status` in the trailers, dropping the backend's body.
    fn end_with(&mut self, status: &Status) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.inner = None;
        let mut trailers = HeaderMap::new();
        if status.add_header(&mut trailers).is_err() {
            // Only a message that cannot be a header value fails: the code alone still goes.
            let _ = Status::new(status.code(), "").add_header(&mut trailers);
        }
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
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
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if frame.is_trailers() {
                    this.inner = None;
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(None) => {
                this.inner = None;
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
        self.inner.is_none()
    }
}

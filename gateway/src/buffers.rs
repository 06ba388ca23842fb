//! The response buffer budget: how many bytes of whole answers (a unary call's JSON, the
//! OpenAPI document) the gateway may hold, in all, for clients that have not read them yet.
//!
//! A unary answer is transcoded whole before its first byte is sent, so a client that asks for
//! a 4 MiB page and never reads it makes the gateway hold 4 MiB until the connection goes;
//! 150 such clients held 650 MiB. The budget bounds that: an answer of at least
//! [`ACCOUNTED_FROM`] bytes takes its length from a process-wide byte semaphore, and one that
//! does not fit is answered 503 at once (it is shed like a request over `--concurrency-limit`).
//! What a stuck client holds is also bounded in time: each connection counts its accounted
//! answers and when one last moved ([`Unsent`]), and the connection server closes a connection
//! whose answers have not moved for its send timeout (`crate::server`). That catches an HTTP/2
//! client that keeps its connection busy but never opens a stream's flow-control window, which
//! a stalled socket alone would not show. A stream's messages take no share of the budget (one
//! at a time is read from the backend, as the client takes them), but one larger than a piece
//! counts among its connection's unsent answers while it waits, for the same reason.
//!
//! The body is handed to hyper in copied [`CHUNK`]-byte pieces, and the whole buffer and its
//! share of the budget go together when the last piece has been taken: slices of the one
//! buffer would keep all of it alive for as long as hyper still queues any of them, long after
//! the budget was given back. The copy costs a `memcpy` of large answers only; small ones
//! (most answers) pass through untouched. Hand-written because no tower or tower-http layer
//! accounts response memory across requests.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse as _, Response},
};
use bytes::{Buf as _, Bytes};
use http_body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Error;

/// Answers smaller than this are not accounted: their bytes are a rounding error next to the
/// connection's own buffers, and skipping them keeps the common case free.
pub const ACCOUNTED_FROM: usize = 64 * 1024;

/// The piece handed to hyper at a time, copied out of the whole answer.
const CHUNK: usize = 16 * 1024;

/// The byte budget, shared by every request of every descriptor version.
#[derive(Debug, Clone)]
pub struct ResponseBudget {
    bytes: Arc<Semaphore>,
    limit: usize,
}

impl ResponseBudget {
    /// A budget of `limit` bytes (at least one answer of the largest accounted size fits: a
    /// smaller budget would refuse every large answer).
    #[must_use]
    pub fn new(limit: usize) -> Self {
        let limit = limit.clamp(ACCOUNTED_FROM, Semaphore::MAX_PERMITS);
        Self {
            bytes: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    /// The bytes held right now, for tests and metrics.
    #[must_use]
    pub fn held(&self) -> usize {
        self.limit - self.bytes.available_permits()
    }

    fn take(&self, length: usize) -> Option<OwnedSemaphorePermit> {
        let permits = u32::try_from(length).ok()?;
        Arc::clone(&self.bytes).try_acquire_many_owned(permits).ok()
    }
}

/// One connection's accounted answers: how many are not wholly handed to the connection yet,
/// and when one last was given a piece. Put in each request's extensions by the connection
/// server, which reads [`Unsent::stuck_for`].
#[derive(Debug)]
pub struct Unsent {
    answers: AtomicUsize,
    /// Milliseconds since `epoch`.
    moved_at: AtomicU64,
    epoch: Instant,
}

impl Unsent {
    /// A connection's count, its times measured from `epoch`.
    #[must_use]
    pub fn new(epoch: Instant) -> Self {
        Self {
            answers: AtomicUsize::new(0),
            moved_at: AtomicU64::new(0),
            epoch,
        }
    }

    /// How long the connection has had answers waiting that did not move (zero when none
    /// waits).
    #[must_use]
    pub fn stuck_for(&self) -> Duration {
        if self.answers.load(Ordering::Acquire) == 0 {
            return Duration::ZERO;
        }
        let moved = Duration::from_millis(self.moved_at.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(moved)
    }

    fn moved(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.moved_at.store(now, Ordering::Relaxed);
    }
}

/// The middleware: an answer of known length from [`ACCOUNTED_FROM`] bytes up takes its share
/// of the budget for as long as it is unsent, or is answered 503.
pub(crate) async fn account(
    State(budget): State<ResponseBudget>,
    request: Request,
    next: Next,
) -> Response {
    let unsent = request.extensions().get::<Arc<Unsent>>().cloned();
    let response = next.run(request).await;
    let Some(length) = http_body::Body::size_hint(response.body()).exact() else {
        // A stream: no share of the budget (its messages are read from the backend one at a
        // time, as the client takes them), but a large message the client does not take
        // still counts as an unsent answer of its connection while it waits.
        if unsent.is_none() {
            return response;
        }
        return response.map(|body| Body::new(Accounted::stream(body, unsent)));
    };
    let Ok(length) = usize::try_from(length) else {
        return response;
    };
    if length < ACCOUNTED_FROM {
        return response;
    }
    let Some(permit) = budget.take(length) else {
        tracing::warn!(
            length,
            limit = budget.limit,
            "response buffers full: answer shed"
        );
        return Error::ResponseBuffersFull {
            limit: budget.limit,
        }
        .into_response();
    };
    response.map(|body| Body::new(Accounted::whole(body, length, permit, unsent)))
}

/// A body handed out piece by piece: a whole answer holds its share of the budget, and its
/// place among its connection's unsent answers, until its last byte is taken; a stream's
/// message larger than a piece holds that place while it waits to be taken.
struct Accounted {
    inner: Body,
    /// The frame being handed out, piece by piece.
    pending: Bytes,
    /// A whole answer's bytes not yet handed out, the pending ones included; `None` for a
    /// stream.
    remaining: Option<usize>,
    permit: Option<OwnedSemaphorePermit>,
    /// Its connection's count.
    unsent: Option<Arc<Unsent>>,
    /// Whether it is counted there now.
    counted: bool,
}

impl Accounted {
    fn whole(
        inner: Body,
        length: usize,
        permit: OwnedSemaphorePermit,
        unsent: Option<Arc<Unsent>>,
    ) -> Self {
        let mut body = Self {
            inner,
            pending: Bytes::new(),
            remaining: Some(length),
            permit: Some(permit),
            unsent,
            counted: false,
        };
        body.count();
        body
    }

    fn stream(inner: Body, unsent: Option<Arc<Unsent>>) -> Self {
        Self {
            inner,
            pending: Bytes::new(),
            remaining: None,
            permit: None,
            unsent,
            counted: false,
        }
    }

    /// Counts it among its connection's unsent answers, from now.
    fn count(&mut self) {
        if let Some(unsent) = &self.unsent
            && !self.counted
        {
            unsent.answers.fetch_add(1, Ordering::AcqRel);
            unsent.moved();
            self.counted = true;
        }
    }

    /// Nothing of it waits any more: its share of the budget and its place in the
    /// connection's count go.
    fn release(&mut self) {
        self.permit = None;
        if let Some(unsent) = &self.unsent
            && self.counted
        {
            unsent.answers.fetch_sub(1, Ordering::AcqRel);
            self.counted = false;
        }
    }
}

impl Drop for Accounted {
    fn drop(&mut self) {
        self.release();
    }
}

impl http_body::Body for Accounted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        // Bounded by the body's frames: each pass either hands out a piece or polls the next.
        loop {
            if !this.pending.is_empty() {
                let piece = if this.pending.len() <= CHUNK {
                    std::mem::take(&mut this.pending)
                } else {
                    let piece = Bytes::copy_from_slice(&this.pending[..CHUNK]);
                    this.pending.advance(CHUNK);
                    piece
                };
                if let Some(unsent) = &this.unsent {
                    unsent.moved();
                }
                let done = match &mut this.remaining {
                    Some(remaining) => {
                        *remaining = remaining.saturating_sub(piece.len());
                        *remaining == 0
                    }
                    None => true,
                };
                if this.pending.is_empty() && done {
                    // The whole answer's buffer (or the message's) is gone with the last
                    // piece: so is what it held.
                    this.release();
                }
                return Poll::Ready(Some(Ok(Frame::data(piece))));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        if data.len() > CHUNK {
                            this.count();
                        }
                        this.pending = data;
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Poll::Ready(None) => {
                    this.release();
                    return Poll::Ready(None);
                }
                other => return other,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(remaining) => SizeHint::with_exact(remaining as u64),
            None => {
                let inner = self.inner.size_hint();
                let pending = self.pending.len() as u64;
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower().saturating_add(pending));
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper.saturating_add(pending));
                }
                hint
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;

    #[tokio::test]
    async fn an_answer_holds_its_share_until_its_last_byte_is_taken() {
        let budget = ResponseBudget::new(1024 * 1024);
        let data = Bytes::from(vec![7u8; 200 * 1024]);
        let permit = budget.take(data.len());
        let Some(permit) = permit else {
            panic!("no permit");
        };
        let mut body = Accounted::whole(Body::from(data.clone()), data.len(), permit, None);
        assert_eq!(budget.held(), 200 * 1024);
        let first = body.frame().await;
        let first = first.and_then(|f| f.ok()).and_then(|f| f.into_data().ok());
        assert_eq!(first.map(|b| b.len()), Some(CHUNK));
        assert_eq!(budget.held(), 200 * 1024, "still held while unsent");
        let rest = body.collect().await.map(|c| c.to_bytes().len()).ok();
        assert_eq!(rest, Some(200 * 1024 - CHUNK));
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn an_answer_over_what_is_left_is_refused() {
        let budget = ResponseBudget::new(100 * 1024);
        let held = budget.take(80 * 1024);
        assert!(held.is_some());
        assert!(budget.take(80 * 1024).is_none());
        drop(held);
        assert!(budget.take(80 * 1024).is_some());
    }
}

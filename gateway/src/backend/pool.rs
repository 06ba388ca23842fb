//! The HTTP/2 connections one replica's calls of one kind share, and which of them takes a
//! call: the first, from a rotating start, with a stream slot free ([`super::conn`]).
//!
//! Unary calls and long-lived streams get pools of their own, so that streams, however many
//! and however idle, never hold the stream slots unary calls need:
//! - unary calls: `--backend-connections` connections, used in turn; should all of them be
//!   at the backend's stream limit (a burst over `connections * MAX_CONCURRENT_STREAMS`), more
//!   are opened, up to [`MAX_CONNECTIONS_FOR_CALLS`], rather than queueing the call;
//! - streams (transcoded server, client and bidirectional streams, and proxied gRPC calls that
//!   stream or that the descriptors do not name): connections opened as streams need them,
//!   up to `--backend-stream-connections`, each carrying as many streams as the backend allows
//!   (and at most [`super::conn::STREAMS_PER_CONNECTION`]).
//!
//! With every slot of every connection the pool may have in use, a call is refused at once
//! ([`super::conn::CapacityError`], answered UNAVAILABLE) rather than queued: a queued call
//! would wait behind streams that may last an hour, and only time out. A busy backend is not
//! a failing one: the refusal never counts against the replica.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures::future::BoxFuture;
use http::Uri;
use tonic::body::Body;
use tower::BoxError;

use super::conn::{CapacityError, Connection, Profile, Reserved, ResponseBody};

/// The most connections to one replica for unary calls, whatever `--backend-connections`
/// says: 32 carry 2,048 calls at once to a backend allowing 64 streams a connection (a
/// common setting), as many as the defaults of `--concurrency-limit` let in for REST and for
/// proxied gRPC together. Past the first `--backend-connections`, they are opened only when
/// all those before are full.
pub(super) const MAX_CONNECTIONS_FOR_CALLS: usize = 32;

/// The connections of one kind of call to one replica, as a tower service. Clones share them.
#[derive(Clone)]
pub(super) struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    uri: Uri,
    connect_timeout: Duration,
    profile: Profile,
    /// `"call"` or `"stream"`, for the refusal's message.
    what: &'static str,
    /// Only ever grows (up to `max`), so a position names one connection for good.
    connections: Mutex<Vec<Connection>>,
    max: usize,
    /// How many of the first connections are used in turn (for calls: those made up front;
    /// for streams: all there may be).
    rotated: usize,
    next: AtomicUsize,
}

impl Pool {
    /// `count` lazily made connections for unary calls to `uri`, used in turn, and more (up
    /// to [`MAX_CONNECTIONS_FOR_CALLS`]) only while those are full.
    pub(super) fn for_calls(uri: &Uri, connect_timeout: Duration, count: usize) -> Option<Self> {
        let count = count.max(1);
        let connections = (0..count)
            .map(|_| Connection::lazy(uri, connect_timeout, Profile::CALLS))
            .collect::<Option<Vec<_>>>()?;
        Some(Self::new(
            uri,
            connect_timeout,
            Profile::CALLS,
            "call",
            connections,
            count.max(MAX_CONNECTIONS_FOR_CALLS),
        ))
    }

    /// Connections for streams to `uri`, opened as streams need them, at most `max`.
    pub(super) fn for_streams(uri: &Uri, connect_timeout: Duration, max: usize) -> Option<Self> {
        // Checked once here, so that growing the pool later cannot fail.
        Connection::lazy(uri, connect_timeout, Profile::STREAMS)?;
        Some(Self::new(
            uri,
            connect_timeout,
            Profile::STREAMS,
            "stream",
            Vec::new(),
            max.max(1),
        ))
    }

    fn new(
        uri: &Uri,
        connect_timeout: Duration,
        profile: Profile,
        what: &'static str,
        connections: Vec<Connection>,
        max: usize,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                uri: uri.clone(),
                connect_timeout,
                profile,
                what,
                rotated: if connections.is_empty() {
                    max
                } else {
                    connections.len()
                },
                connections: Mutex::new(connections),
                max,
                next: AtomicUsize::new(0),
            }),
        }
    }
}

impl Shared {
    fn connections(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection with a free stream slot, and the slot: the first of the existing ones
    /// from a rotating start, else a new one while the pool may grow.
    async fn reserve(&self) -> Result<(Connection, Reserved), BoxError> {
        let existing = self.connections().clone();
        // The rotation spreads calls over the first connections (for calls, those made up
        // front); those opened because they were full are tried after them, in order.
        let rotated = self.rotated.min(existing.len()).max(1);
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..existing.len() {
            let at = if i < rotated {
                (start + i) % rotated
            } else {
                i
            };
            let connection = &existing[at];
            if let Some(reserved) = connection.reserve().await? {
                return Ok((connection.clone(), reserved));
            }
        }
        let mut seen = existing.len();
        // Bounded: each round tries a connection not tried before, of which there are at
        // most `max`.
        loop {
            let next = {
                let mut connections = self.connections();
                if let Some(added) = connections.get(seen) {
                    // Another call opened it meanwhile: it may have room.
                    Some(added.clone())
                } else if connections.len() < self.max {
                    let added = Connection::lazy(&self.uri, self.connect_timeout, self.profile);
                    if let Some(added) = &added {
                        connections.push(added.clone());
                    }
                    added
                } else {
                    None
                }
            };
            let Some(connection) = next else {
                return Err(CapacityError {
                    what: self.what,
                    connections: seen,
                }
                .into());
            };
            seen += 1;
            if let Some(reserved) = connection.reserve().await? {
                return Ok((connection, reserved));
            }
        }
    }
}

impl tower::Service<http::Request<Body>> for Pool {
    type Response = http::Response<ResponseBody>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // A slot is taken in the call, never waited for.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let (connection, reserved) = shared.reserve().await?;
            connection.send(reserved, request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt as _;

    use super::*;
    use crate::backend::conn::tests::{request, spawn_h2_server};

    #[tokio::test]
    async fn unary_calls_over_full_connections_open_another_rather_than_wait() {
        let uri = spawn_h2_server(2).await;
        let pool = Pool::for_calls(&uri, Duration::from_secs(1), 1).expect("pool");
        let mut open = Vec::new();
        for _ in 0..5 {
            let answered =
                tokio::time::timeout(Duration::from_secs(2), pool.clone().oneshot(request(None)))
                    .await
                    .expect("not queued")
                    .expect("answered");
            open.push(answered);
        }
        assert_eq!(pool.shared.connections().len(), 3);
    }

    #[tokio::test]
    async fn streams_past_the_bound_are_refused_at_once() {
        let uri = spawn_h2_server(2).await;
        let pool = Pool::for_streams(&uri, Duration::from_secs(1), 2).expect("pool");
        assert!(
            pool.shared.connections().is_empty(),
            "opened on demand only"
        );
        let mut open = Vec::new();
        for _ in 0..4 {
            open.push(pool.clone().oneshot(request(None)).await.expect("answered"));
        }
        let refused =
            tokio::time::timeout(Duration::from_secs(2), pool.clone().oneshot(request(None)))
                .await
                .expect("refused at once, not queued")
                .err()
                .expect("refused");
        let full = refused
            .downcast_ref::<CapacityError>()
            .expect("a capacity error");
        assert_eq!((full.what, full.connections), ("stream", 2));
    }
}

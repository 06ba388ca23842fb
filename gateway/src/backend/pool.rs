//! The HTTP/2 connections one replica's calls of one kind share, and which of them takes a
//! call: the first, from a rotating start, with a stream slot free ([`super::conn`]).
//!
//! Unary calls and long-lived streams get pools of their own, so that streams, however many
//! and however idle, never hold the stream slots unary calls need:
//! - unary calls: `--backend-connections` connections, fixed, used in turn;
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
    next: AtomicUsize,
}

impl Pool {
    /// `count` lazily made connections for unary calls to `uri`, never more.
    pub(super) fn fixed(uri: &Uri, connect_timeout: Duration, count: usize) -> Option<Self> {
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
            count,
        ))
    }

    /// Connections for streams to `uri`, opened as streams need them, at most `max`.
    pub(super) fn on_demand(uri: &Uri, connect_timeout: Duration, max: usize) -> Option<Self> {
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
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..existing.len() {
            let connection = &existing[(start + i) % existing.len()];
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

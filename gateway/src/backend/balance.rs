//! Spreading calls over several replicas of one gRPC server: which replica takes the next
//! attempt of a call ([`Balancer::pick`]); the attempts themselves are [`super::call`]'s.
//!
//! Hand-written rather than tower's `balance::p2c::Balance` over a `Discover` stream of
//! `Change::Insert`/`Change::Remove` (or tonic's `Channel::balance_channel`, which wraps the
//! same), because the gateway needs four things that balancer cannot give:
//! 1. a retry must go to *another* replica, and p2c has no way to leave out the one that just
//!    failed;
//! 2. with no healthy replica, `Balance::poll_ready` stays pending until one is inserted, so a
//!    request would wait for its deadline instead of being answered 503 at once;
//! 3. `Balance` is not `Clone`: sharing it across requests needs a `Buffer` task and queue in
//!    front of tonic's channels, which already have one each;
//! 4. the metrics count calls per replica, so the caller must know which replica served.
//!
//! Each replica's connections are lazily made and remade on failure by the transport
//! ([`super::transport`]: our own HTTP/2 connection for `http://`, tonic's `Channel` for
//! `https://`), and health comes from `grpc.health.v1` ([`super::health`]).
//!
//! Selection is power-of-two-choices on in-flight counts, without a random source: the two
//! candidates are consecutive healthy replicas from a rotating cursor and the less loaded one
//! wins (the first on a tie), which under even load is plain round-robin.
//!
//! What takes a replica out, as Envoy's outlier detection and health checking do it: a health
//! answer other than SERVING (or UNIMPLEMENTED), at once; `failure_threshold` health checks
//! in a row without an answer, or `failure_threshold` calls in a row failing at the transport
//! (a slow check under load, or one reset connection, is not a dead replica); no more than
//! `max_ejection_percent` of the replicas by call failures. When every replica is out, calls
//! go to all of them rather than none ("panic routing"): a down replica may still answer, a
//! 503 from the gateway surely helps no one.
//!
//! Each replica has `connections` HTTP/2 connections for unary calls, used in turn, so a
//! connection that closes (a GOAWAY) takes only its share of the calls; up to
//! `stream_connections` more for streams, opened as they are needed ([`super::pool`]), so that
//! long-lived streams never take the stream slots unary calls need; and one more for its
//! health checks, which therefore never wait behind the load they are checking. A call
//! refused because every slot is taken, or because the client's request cannot be sent, never
//! counts against the replica ([`super::transport::blames_backend`]).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use tokio::{sync::watch, task::AbortHandle};
use tonic::{Status, body::Body};
use tower::ServiceExt as _;

use super::setup::SetupError;
use super::{
    StreamingCall, health,
    replica::{BalanceOptions, Fleet, InFlight, ReplicaState, ReplicaStatus},
    transport::{Carries, GrpcService, Lazy, blames_backend, transport_status},
};

/// Which of a replica's connections a call goes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallKind {
    /// A unary call: the connections for calls.
    Unary,
    /// A stream, which may last long: the connections for streams.
    Stream,
}

/// The replica picked for one attempt.
pub(super) struct Picked {
    /// Its position, to leave it out of a retry.
    pub(super) index: usize,
    /// Its transport.
    pub(super) service: GrpcService,
    in_flight: InFlight,
}

impl Picked {
    /// The call reached the replica and was answered: its run of transport failures ends.
    pub(super) fn answered(&self) {
        self.in_flight.0.answered();
    }
}

/// One replica: its URI, its connections and its state.
struct Replica {
    uri: String,
    /// The transports for unary calls, used in turn (one pool of connections for `http://`).
    calls: Vec<GrpcService>,
    /// The transports for streams, used in turn (one pool for `http://`).
    streams: Vec<GrpcService>,
    next: AtomicUsize,
    /// The connection of the health checks.
    health: GrpcService,
    state: Arc<ReplicaState>,
}

impl Replica {
    /// The next transport for a call of this kind.
    fn service(&self, kind: CallKind) -> GrpcService {
        let services = match kind {
            CallKind::Unary => &self.calls,
            CallKind::Stream => &self.streams,
        };
        let next = self.next.fetch_add(1, Ordering::Relaxed);
        services[next % services.len()].clone()
    }
}

/// The replicas and their watchers. The watchers are aborted when it is dropped, that is when
/// the last clone of the [`super::Backend`] goes.
pub(super) struct Balancer {
    replicas: Vec<Replica>,
    cursor: AtomicUsize,
    retries: AtomicU64,
    /// How many replicas have had their first health check.
    checked: watch::Receiver<usize>,
    watchers: Vec<AbortHandle>,
}

impl Balancer {
    /// Connects lazily to every URI and starts one health watcher per replica.
    pub(super) fn start<S: AsRef<str>>(
        uris: &[S],
        options: &BalanceOptions,
    ) -> Result<Self, SetupError> {
        if uris.is_empty() {
            return Err(SetupError::NoReplicas);
        }
        // Both tonic's lazy channels and the watchers spawn tasks on the current runtime.
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| SetupError::NoRuntime)?;
        let fleet = Arc::new(Fleet::new(uris.len(), options));
        let mut replicas = Vec::with_capacity(uris.len());
        for (index, uri) in uris.iter().enumerate() {
            let uri = uri.as_ref();
            let state = fleet
                .state(index)
                .map(Arc::clone)
                .ok_or(SetupError::NoReplicas)?;
            let _entered = runtime.enter();
            let transports = |carries| {
                Ok::<Vec<GrpcService>, SetupError>(
                    Lazy::for_replica(uri, options.connect_timeout, options.tls.as_ref(), carries)?
                        .into_iter()
                        .map(|transport| replica_service(transport, uri, index, Arc::clone(&fleet)))
                        .collect(),
                )
            };
            let calls = transports(Carries::Calls {
                connections: options.connections.max(1),
            })?;
            let streams = transports(Carries::Streams {
                connections: options.stream_connections.max(1),
            })?;
            let health = Lazy::new(uri, options.connect_timeout, options.tls.as_ref())?
                .boxed(transport_status);
            replicas.push(Replica {
                uri: uri.to_owned(),
                calls,
                streams,
                next: AtomicUsize::new(0),
                health,
                state,
            });
        }
        let (checked_tx, checked) = watch::channel(0usize);
        let checked_tx = Arc::new(checked_tx);
        let watchers = replicas
            .iter()
            .enumerate()
            .map(|(index, replica)| {
                health::spawn(
                    &runtime,
                    health::Watched {
                        uri: replica.uri.clone(),
                        service: replica.health.clone(),
                        fleet: Arc::clone(&fleet),
                        index,
                        checked: Arc::clone(&checked_tx),
                    },
                    options,
                )
            })
            .collect();
        Ok(Self {
            replicas,
            cursor: AtomicUsize::new(0),
            retries: AtomicU64::new(0),
            checked,
            watchers,
        })
    }

    /// The configured URIs, in order.
    pub(super) fn uris(&self) -> Vec<&str> {
        self.replicas.iter().map(|r| r.uri.as_str()).collect()
    }

    /// A transport to each replica, in order (its connections for unary calls).
    pub(super) fn replica_services(&self) -> Vec<GrpcService> {
        self.replicas
            .iter()
            .map(|r| r.service(CallKind::Unary))
            .collect()
    }

    pub(super) fn statuses(&self) -> Vec<ReplicaStatus> {
        self.replicas
            .iter()
            .map(|r| ReplicaStatus {
                uri: r.uri.clone(),
                up: r.state.is_up(),
                health: r.state.why(),
                in_flight: r.state.load(),
                calls: r.state.calls.load(Ordering::Relaxed),
            })
            .collect()
    }

    pub(super) fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    fn any_up(&self) -> bool {
        self.replicas.iter().any(|r| r.state.is_up())
    }

    /// Counts an attempt sent again to another replica.
    pub(super) fn count_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// How many replicas there are.
    pub(super) fn len(&self) -> usize {
        self.replicas.len()
    }

    /// The URI of the replica at `index`, for logs.
    pub(super) fn uri(&self, index: usize) -> &str {
        self.replicas.get(index).map_or("", |r| r.uri.as_str())
    }

    /// Completes once every replica has had its first health check.
    pub(super) fn first_round(&self) -> BoxFuture<'static, ()> {
        let mut checked = self.checked.clone();
        let count = self.replicas.len();
        Box::pin(async move {
            // An error means the watchers are gone: nothing left to wait for.
            let _ = checked.wait_for(|n| *n >= count).await;
        })
    }

    /// A transport that sends each call to one healthy replica, without retries.
    pub(super) fn grpc_service(self: &Arc<Self>) -> GrpcService {
        GrpcService::new(PickService(Arc::clone(self)))
    }

    /// Picks a healthy replica not in `tried` for one attempt of a call of this `kind`,
    /// counted in flight until the returned guard is dropped.
    pub(super) fn pick(&self, tried: &[usize], kind: CallKind) -> Option<Picked> {
        let index = self.choose(tried)?;
        let replica = &self.replicas[index];
        Some(Picked {
            index,
            service: replica.service(kind),
            in_flight: replica.state.begin(),
        })
    }

    /// A healthy replica not in `tried`: the less loaded of the next two. With none healthy,
    /// any replica not in `tried` (panic routing).
    fn choose(&self, tried: &[usize]) -> Option<usize> {
        let panic = !self.any_up();
        let candidates: Vec<usize> = (0..self.replicas.len())
            .filter(|i| !tried.contains(i) && (panic || self.replicas[*i].state.is_up()))
            .collect();
        match candidates.as_slice() {
            [] => None,
            [only] => Some(*only),
            _ => {
                let start = self.cursor.fetch_add(1, Ordering::Relaxed);
                let first = candidates[start % candidates.len()];
                let second = candidates[(start + 1) % candidates.len()];
                if self.replicas[second].state.load() < self.replicas[first].state.load() {
                    Some(second)
                } else {
                    Some(first)
                }
            }
        }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        for watcher in &self.watchers {
            watcher.abort();
        }
    }
}

/// A replica's connection, boxed: a transport failure counts against the replica (at the
/// threshold the [`Fleet`] may take it out; the watcher brings it back on its next good
/// answer) and becomes `UNAVAILABLE`, whatever code tonic would pick, so that an idempotent
/// call is retried elsewhere. That includes `CANCELLED`: hyper reports a connection that
/// closed mid-call (a replica killed under load) as canceled.
///
/// Not a transport failure ([`blames_backend`]): tonic's channel enforcing the call's
/// `grpc-timeout` (its `TimeoutExpired` becomes DEADLINE_EXCEEDED), every stream slot in use
/// (UNAVAILABLE, and an idempotent call is retried elsewhere), a request the client made
/// unsendable (INVALID_ARGUMENT); the replica stays up. The deadline of [`super::call`] and a
/// client hanging up drop the call's future instead, so they never reach this mapping.
fn replica_service(transport: Lazy, uri: &str, index: usize, fleet: Arc<Fleet>) -> GrpcService {
    let uri = uri.to_owned();
    transport.boxed(move |error| {
        if !blames_backend(&error) {
            return transport_status(error);
        }
        let status = transport_status(error);
        // An expired deadline is the call's, not the replica's.
        if status.code() == tonic::Code::DeadlineExceeded {
            return status;
        }
        fleet.call_failed(index, &uri, status.code());
        Status::unavailable("the backend is unavailable")
    })
}

/// [`Balancer::grpc_service`]: one healthy replica per call, counted in flight there until the
/// response body is done; over its connections for streams when the request is marked
/// [`StreamingCall`].
#[derive(Clone)]
struct PickService(Arc<Balancer>);

impl tower::Service<http::Request<Body>> for PickService {
    type Response = http::Response<Body>;
    type Error = Status;
    type Future = BoxFuture<'static, Result<Self::Response, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        // Readiness is the picked replica's, awaited in `call`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let balancer = Arc::clone(&self.0);
        let kind = if request.extensions().get::<StreamingCall>().is_some() {
            CallKind::Stream
        } else {
            CallKind::Unary
        };
        Box::pin(async move {
            let picked = balancer
                .pick(&[], kind)
                .ok_or_else(|| Status::unavailable("no backend is available"))?;
            let response = picked.service.clone().oneshot(request).await?;
            // A stream (a proxied gRPC call, a reflection session) stays in flight on its
            // replica until its body ends or is dropped, not only until its headers.
            Ok(response.map(|body| {
                Body::new(http_body_util::BodyExt::map_frame(body, move |frame| {
                    let _in_flight = &picked;
                    frame
                }))
            }))
        })
    }
}

//! The backend: one generic unary gRPC call over any tower service, to one server or to
//! several replicas.
//!
//! A [`Backend`] is a cloneable gRPC transport. Built from a URI it is an HTTP/2 connection to
//! a remote server ([`transport`]; connected lazily, so the gateway starts while the backend
//! is down); built from any other service (for example the server's own tonic
//! `Routes`) it calls the gRPC service in memory, with no socket. Built with
//! [`Backend::balanced`] it spreads calls over several replicas ([`balance`]) and leaves out
//! those whose `grpc.health.v1` check answers anything but SERVING ([`health`]; a server with
//! no health service is up while its connection is).
//!
//! A call reads straight: the handler hands [`Backend::unary`] the request and its
//! [`CallOptions`] (the deadline, whether it may be repeated); [`call`] owns the deadline and
//! the retries; the balancer only picks a replica; the replica's connection carries the call. The
//! codec is [`DynamicCodec`], so no method needs generated client code.
//!
//! Only a transport failure (a refused or lost connection) marks a replica down between
//! health checks. A deadline, a cancellation, a client that went away, any status the
//! backend answers, a backend with every stream it allows in use, or a request that HTTP/2
//! cannot carry because of what the client sent never does.
//!
//! Unary calls and streams go over separate connections to each replica ([`pool`]), so that
//! streams cannot starve unary calls of stream slots; a call finding no slot free is answered
//! UNAVAILABLE at once, never queued.

mod balance;
mod call;
mod codec;
mod conn;
mod health;
mod pool;
mod replica;
mod setup;
mod tls;
mod transport;

use std::{fmt, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::uri::PathAndQuery;
use prost_reflect::DynamicMessage;
use tonic::{Status, transport::Channel};

pub use call::{
    CallError, CallMetadata, CallOptions, DEFAULT_MAX_RESPONSE_BYTES, ResponseStream, UnaryResponse,
};
pub use codec::{
    DynamicCodec, DynamicDecoder, DynamicEncoder, RawCodec, RawDecoder, StreamCodec, StreamEncoder,
};
pub use health::Readiness;
pub use replica::{BalanceOptions, ReplicaStatus, default_connections};
pub use setup::SetupError;
pub use tls::BackendTls;
pub use tower::BoxError;
pub use transport::GrpcService;

use balance::Balancer;
use call::Inner;
use transport::{Lazy, box_service, transport_status};

/// Marks a request sent through [`Backend::grpc_service`] as a stream (a proxied gRPC call
/// that streams, or that the descriptors do not name): over several replicas it goes over the
/// replica's connections for streams, never taking the stream slots unary calls need.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamingCall;

/// Where gRPC calls go.
#[derive(Clone)]
pub struct Backend {
    inner: Inner,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Single(_) => f.debug_struct("Backend").finish_non_exhaustive(),
            Inner::Balanced(balancer) => f
                .debug_struct("Backend")
                .field("replicas", &balancer.uris())
                .finish_non_exhaustive(),
        }
    }
}

impl Backend {
    /// A backend reached through a tonic channel.
    pub fn from_channel(channel: Channel) -> Self {
        Self::from_service(channel)
    }

    /// A lazily connected channel to `uri` (`http://host:port`). A connection attempt gives up
    /// after `connect_timeout`, so calls to a dead backend fail fast with `UNAVAILABLE`.
    ///
    /// # Errors
    /// When `uri` is not a valid URI.
    pub fn connect_lazy(uri: &str, connect_timeout: Duration) -> Result<Self, SetupError> {
        Ok(Self {
            inner: Inner::Single(Lazy::new(uri, connect_timeout, None)?.boxed(transport_status)),
        })
    }

    /// Several replicas of one gRPC server (`http://host:port` or `https://host:port` each),
    /// lazily connected, balanced and health-checked as [`BalanceOptions`] say.
    ///
    /// Each replica has a background health watcher that asks its `grpc.health.v1.Health/Check`
    /// every `health_interval`; a replica counts as up only while the answer is SERVING, so
    /// until its first check it gets no calls (await [`Backend::health_checked`] to know the
    /// first round is done). The watchers stop when the last clone of the backend is dropped.
    ///
    /// # Errors
    /// When `uris` is empty or one is invalid, when the TLS options cannot be loaded, or when
    /// called outside a Tokio runtime (the watchers are spawned on it).
    pub fn balanced<S: AsRef<str>>(
        uris: &[S],
        options: &BalanceOptions,
    ) -> Result<Self, SetupError> {
        let balancer = Balancer::start(uris, options)?;
        Ok(Self {
            inner: Inner::Balanced(Arc::new(balancer)),
        })
    }

    /// A backend that is any HTTP/2 gRPC service, such as tonic's `Routes` for in-process
    /// calls.
    pub fn from_service<S, B>(service: S) -> Self
    where
        S: tower::Service<http::Request<tonic::body::Body>, Response = http::Response<B>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self {
            inner: Inner::Single(box_service(service, transport_status)),
        }
    }

    /// The boxed transport, for other generated clients (reflection, health) and the gRPC
    /// proxy. Over several replicas, each call goes to one healthy replica (without retries),
    /// counted in flight there until its response body is done, over its connections for
    /// streams if the request's extensions hold [`StreamingCall`].
    pub fn grpc_service(&self) -> GrpcService {
        match &self.inner {
            Inner::Single(service) => service.clone(),
            Inner::Balanced(balancer) => balancer.grpc_service(),
        }
    }

    /// Each replica as a backend of its own, in the order given (a single transport: itself).
    /// For calls that must reach one server in particular, such as reading descriptors by
    /// reflection from the first replica that answers.
    pub fn replicas(&self) -> Vec<Backend> {
        match &self.inner {
            Inner::Single(_) => vec![self.clone()],
            Inner::Balanced(balancer) => balancer
                .replica_services()
                .into_iter()
                .map(|service| Backend {
                    inner: Inner::Single(service),
                })
                .collect(),
        }
    }

    /// The state of each replica (empty for a single transport, which is not health-checked).
    pub fn replica_statuses(&self) -> Vec<ReplicaStatus> {
        match &self.inner {
            Inner::Single(_) => Vec::new(),
            Inner::Balanced(balancer) => balancer.statuses(),
        }
    }

    /// How many calls were sent again to another replica after failing with `UNAVAILABLE`.
    pub fn retries(&self) -> u64 {
        match &self.inner {
            Inner::Single(_) => 0,
            Inner::Balanced(balancer) => balancer.retries(),
        }
    }

    /// Completes once every replica has had its first health check (at once for a single
    /// transport). Each check is bounded by its timeout, so this completes in bounded time.
    pub fn health_checked(&self) -> BoxFuture<'static, ()> {
        match &self.inner {
            Inner::Single(_) => Box::pin(std::future::ready(())),
            Inner::Balanced(balancer) => balancer.first_round(),
        }
    }

    /// Calls the unary method at `path` (`/package.Service/Method`) within `options.deadline`;
    /// the answer is the message's wire bytes. Fails with the status the backend answered (and
    /// the metadata it sent), `DEADLINE_EXCEEDED` once the deadline passes, or a status made
    /// from a transport failure (`UNAVAILABLE` at once when no replica is up).
    ///
    /// Over several replicas, an idempotent call failing with `UNAVAILABLE` is sent again to
    /// another replica ([`call`] says when).
    pub fn unary(
        &self,
        path: PathAndQuery,
        request: tonic::Request<DynamicMessage>,
        options: CallOptions,
    ) -> BoxFuture<'static, Result<UnaryResponse, CallError>> {
        Box::pin(call::unary(self.inner.clone(), path, request, options))
    }

    /// Starts a streaming call (any kind) at `path`, sending the request's messages as they
    /// come, within `options.deadline` (answers are wire bytes); completes with the
    /// response headers. An `Err` request item aborts the call ([`StreamCodec`]); dropping the
    /// returned stream cancels it (the backend sees RST_STREAM).
    pub fn streaming<S>(
        &self,
        path: PathAndQuery,
        request: tonic::Request<S>,
        options: CallOptions,
    ) -> BoxFuture<'static, Result<ResponseStream, CallError>>
    where
        S: futures::Stream<Item = Result<DynamicMessage, Status>> + Send + 'static,
    {
        Box::pin(call::streaming(self.inner.clone(), path, request, options))
    }

    /// Whether the backend can take calls, and why, for `/readyz`.
    ///
    /// Over several replicas, answers from the watchers' last checks: ready while any replica
    /// is up. A single transport is asked now: ready when its `grpc.health.v1` answers
    /// SERVING, or UNIMPLEMENTED (no health service: the answer itself shows the server is
    /// reachable).
    pub fn readiness(&self) -> BoxFuture<'static, Readiness> {
        match &self.inner {
            Inner::Single(service) => Box::pin(health::check_single(service.clone())),
            Inner::Balanced(balancer) => {
                Box::pin(std::future::ready(Readiness::of(balancer.statuses())))
            }
        }
    }
}

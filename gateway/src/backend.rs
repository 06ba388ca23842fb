//! The backend: one generic unary gRPC call over any tower service, to one server or to
//! several replicas.
//!
//! A [`Backend`] is a cloneable gRPC transport. Built from a tonic [`Channel`] it is a pooled
//! HTTP/2 connection to a remote server (connected lazily, so the gateway starts while the
//! backend is down); built from any other service (for example the server's own tonic
//! `Routes`) it calls the gRPC service in memory, with no socket. Built with
//! [`Backend::balanced`] it spreads calls over several replicas ([`balance`]), leaves out those
//! whose `grpc.health.v1` check does not answer SERVING ([`health`]), and sends an idempotent
//! call that failed with `UNAVAILABLE` again to another replica ([`Backend::unary_idempotent`]).
//! The codec is [`DynamicCodec`], so no method needs generated client code.

mod balance;
mod codec;
mod health;
mod tls;

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use base64::Engine;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::uri::PathAndQuery;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use tonic::{
    Code, Status,
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tower::util::BoxCloneSyncService;

pub use balance::{BalanceOptions, ReplicaStatus};
pub use codec::{DynamicCodec, DynamicDecoder, DynamicEncoder};
pub use tls::BackendTls;

use crate::error::{BackendError, Error};
use balance::Balancer;

/// A boxed error, as tonic's transport traits use it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The shape every backend transport is boxed into.
///
/// Its error is a [`Status`]: a transport failure (connection refused, reset, timeout) is
/// logged in full where it happens and becomes a status with a generic message, so no address
/// or OS error reaches clients. (A boxed `dyn Error` here would also trip a rustc limitation:
/// futures holding it cannot be proven `Send` inside axum handlers.)
pub type GrpcService = BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    Status,
>;

/// Where gRPC calls go.
#[derive(Clone)]
pub struct Backend {
    inner: Inner,
}

/// One transport, or several balanced replicas.
#[derive(Clone)]
enum Inner {
    /// A channel or an in-memory service: every call goes there, no health watching.
    Single(GrpcService),
    /// Several replicas, health-checked and balanced.
    Balanced(Arc<Balancer>),
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
    pub fn connect_lazy(uri: &str, connect_timeout: Duration) -> Result<Self, Error> {
        Ok(Self::from_channel(
            endpoint(uri, connect_timeout, None)?.connect_lazy(),
        ))
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
    pub fn balanced<S: AsRef<str>>(uris: &[S], options: &BalanceOptions) -> Result<Self, Error> {
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

    /// The boxed transport, for other generated clients (reflection, health). Over several
    /// replicas, each call goes to one healthy replica (without retries).
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

    /// Calls the unary method at `path` (`/package.Service/Method`), decoding the answer as
    /// `output`, once. Fails with the status the backend answered, or one made from a
    /// transport failure (`UNAVAILABLE` at once when no replica is up).
    pub fn unary(
        &self,
        path: PathAndQuery,
        request: tonic::Request<DynamicMessage>,
        output: MessageDescriptor,
    ) -> BoxFuture<'static, Result<tonic::Response<DynamicMessage>, Status>> {
        match &self.inner {
            Inner::Single(service) => unary_on(service.clone(), path, request, output),
            Inner::Balanced(balancer) => balancer.clone().unary(path, request, output, false),
        }
    }

    /// Like [`Backend::unary`], for a call that is safe to send twice (it backs a GET or HEAD).
    ///
    /// Over several replicas, a call failing with `UNAVAILABLE` is sent again to another
    /// healthy replica, at most once per replica and while the request's `grpc-timeout`
    /// leaves time. Both kinds of `UNAVAILABLE` are retried: a transport failure (connection
    /// refused or reset, the replica died mid-call, whether or not it had processed the call),
    /// and one the replica answered itself (for example its database pool is exhausted),
    /// because another replica may well succeed and the call has no effect to repeat.
    pub fn unary_idempotent(
        &self,
        path: PathAndQuery,
        request: tonic::Request<DynamicMessage>,
        output: MessageDescriptor,
    ) -> BoxFuture<'static, Result<tonic::Response<DynamicMessage>, Status>> {
        match &self.inner {
            Inner::Single(service) => unary_on(service.clone(), path, request, output),
            Inner::Balanced(balancer) => balancer.clone().unary(path, request, output, true),
        }
    }

    /// Asks the backend's `grpc.health.v1.Health/Check` about the whole server.
    ///
    /// Over several replicas, answers from the watchers' last checks: SERVING while any replica
    /// is up, else NOT_SERVING.
    ///
    /// Fails with the status of the call (including `UNIMPLEMENTED` when the backend has no
    /// health service).
    pub fn health(&self) -> BoxFuture<'static, Result<ServingStatus, Status>> {
        let service = match &self.inner {
            Inner::Single(service) => service.clone(),
            Inner::Balanced(balancer) => {
                let status = if balancer.any_up() {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                return Box::pin(std::future::ready(Ok(status)));
            }
        };
        Box::pin(check_health(service, String::new()))
    }
}

/// A lazily connectable endpoint for `uri`, with TLS for `https://` URIs.
fn endpoint(
    uri: &str,
    connect_timeout: Duration,
    tls: Option<&BackendTls>,
) -> Result<Endpoint, Error> {
    let endpoint = Endpoint::from_shared(uri.to_owned())
        .map_err(|e| Error::InvalidArgument(format!("invalid backend URI {uri:?}: {e}")))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true);
    tls::configure(endpoint, uri, tls)
}

/// Boxes `service`, turning its transport errors into statuses with `on_error`.
fn box_service<S, B, F>(service: S, on_error: F) -> GrpcService
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
    F: Fn(BoxError) -> Status + Clone + Send + Sync + 'static,
{
    let service = tower::ServiceBuilder::new()
        .map_err(move |e: S::Error| on_error(e.into()))
        .map_response(|r: http::Response<B>| r.map(tonic::body::Body::new))
        .service(service);
    BoxCloneSyncService::new(service)
}

/// One unary call on one transport.
fn unary_on(
    service: GrpcService,
    path: PathAndQuery,
    request: tonic::Request<DynamicMessage>,
    output: MessageDescriptor,
) -> BoxFuture<'static, Result<tonic::Response<DynamicMessage>, Status>> {
    let mut grpc = tonic::client::Grpc::new(service);
    // Boxed as `Send` here, where the service type is concrete: left to inference inside
    // axum's handler bounds, rustc fails to prove the future `Send` (a higher-ranked
    // lifetime limitation with `dyn Error` conversions).
    Box::pin(async move {
        grpc.ready().await.map_err(|e| transport_status(e.into()))?;
        grpc.unary(request, path, DynamicCodec::new(output)).await
    })
}

/// `grpc.health.v1.Health/Check` for `service` (`""`: the whole server).
async fn check_health(transport: GrpcService, service: String) -> Result<ServingStatus, Status> {
    let response = HealthClient::new(transport)
        .check(HealthCheckRequest { service })
        .await?;
    Ok(response.into_inner().status())
}

/// The request's deadline as `grpc-timeout` metadata carries it, for retries to shorten.
fn request_timeout(request: &tonic::Request<DynamicMessage>) -> Option<Duration> {
    // Read in place: this runs on every balanced call.
    request
        .metadata()
        .get("grpc-timeout")
        .and_then(|value| crate::metadata::parse_grpc_timeout(value.as_bytes()))
}

/// Whether a failed call is worth sending to another replica when it is idempotent.
fn retryable(status: &Status) -> bool {
    status.code() == Code::Unavailable
}

/// When a retry must give up: the time left of the request's deadline, measured from `started`.
fn remaining(timeout: Option<Duration>, started: Instant) -> Option<Duration> {
    timeout.map(|t| t.saturating_sub(started.elapsed()))
}

/// A transport failure as a status: the code tonic would pick (`UNAVAILABLE` for a refused
/// connection, `CANCELLED` for tonic's own timeout), a generic message, the details logged.
fn transport_status(error: BoxError) -> Status {
    let status = match error.downcast::<Status>() {
        // Already a status (another layer mapped it): keep it.
        Ok(status) => return *status,
        Err(error) => {
            let status = Status::from_error(error);
            tracing::warn!(code = ?status.code(), error = %status, "backend transport failure");
            status
        }
    };
    let message = match status.code() {
        tonic::Code::Unavailable => "the backend is unavailable",
        tonic::Code::Cancelled => "the backend call was cancelled",
        _ => "the backend call failed",
    };
    Status::new(status.code(), message)
}

/// `google.rpc.Status`, as carried in the `grpc-status-details-bin` trailer. Declared here
/// because no dependency generates it and only its outer shape is needed.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

/// Turns a failed call's status into the gateway error, its details rendered as JSON: as the
/// message when `pool` knows the type, else as `{"@type", "value": base64}`.
pub fn status_error(status: Status, pool: &DescriptorPool, options: &SerializeOptions) -> Error {
    let details = decode_details(status.details(), pool, options);
    BackendError { status, details }.into()
}

fn decode_details(
    bytes: &[u8],
    pool: &DescriptorPool,
    options: &SerializeOptions,
) -> Vec<serde_json::Value> {
    if bytes.is_empty() {
        return Vec::new();
    }
    let Ok(status) = RpcStatus::decode(bytes) else {
        tracing::debug!("grpc-status-details-bin is not a google.rpc.Status; dropped");
        return Vec::new();
    };
    status
        .details
        .iter()
        .map(|any| any_json(any, pool, options))
        .collect()
}

fn any_json(
    any: &prost_types::Any,
    pool: &DescriptorPool,
    options: &SerializeOptions,
) -> serde_json::Value {
    let type_name = any.type_url.rsplit('/').next().unwrap_or_default();
    let decoded = pool
        .get_message_by_name(type_name)
        .and_then(|desc| DynamicMessage::decode(desc, any.value.as_slice()).ok())
        .and_then(|msg| {
            msg.serialize_with_options(serde_json::value::Serializer, options)
                .ok()
        });
    let mut object = serde_json::Map::new();
    object.insert("@type".to_owned(), any.type_url.clone().into());
    match decoded {
        Some(serde_json::Value::Object(fields)) => object.extend(fields),
        // Well-known types with a non-object JSON form nest it under "value", as proto3 JSON
        // does for `Any`.
        Some(other) => {
            object.insert("value".to_owned(), other);
        }
        None => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&any.value);
            object.insert("value".to_owned(), b64.into());
        }
    }
    serde_json::Value::Object(object)
}

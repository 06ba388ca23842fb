//! The transport under every call: how a backend URI becomes a lazily connected tower
//! service ([`conn`](super::conn) and [`pool`](super::pool) for `http://`, tonic's channel
//! with TLS for `https://`), how its failures become statuses that say nothing of addresses or
//! OS errors, and which failures are the backend's ([`blames_backend`]).

use std::time::Duration;

use bytes::Bytes;
use tonic::{
    Code, Status,
    transport::{Channel, Endpoint},
};
use tower::{BoxError, util::BoxCloneSyncService};

use super::setup::SetupError;
use super::{conn, pool, tls, tls::BackendTls};

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

/// A lazily connected transport to `uri`: an HTTP/2 [`conn::Connection`] of our own, or a
/// [`pool::Pool`] of them, for `http://`; tonic's channel (with TLS) for `https://`.
#[derive(Clone)]
pub(super) enum Lazy {
    Plain(conn::Connection),
    Pooled(pool::Pool),
    Tls(Channel),
}

/// What a replica's connections carry.
#[derive(Debug, Clone, Copy)]
pub(super) enum Carries {
    /// Unary calls, over this many connections (more only while all are full).
    Calls { connections: usize },
    /// Streams, over connections opened as needed, at most this many.
    Streams { connections: usize },
}

impl Lazy {
    /// Must be called within a Tokio runtime (tonic's channel spawns its worker at once).
    pub(super) fn new(
        uri: &str,
        connect_timeout: Duration,
        tls: Option<&BackendTls>,
    ) -> Result<Self, SetupError> {
        let endpoint = endpoint(uri, connect_timeout, tls)?;
        if tls::is_secure(uri) {
            return Ok(Self::Tls(endpoint.connect_lazy()));
        }
        conn::Connection::lazy(endpoint.uri(), connect_timeout, conn::Profile::CALLS)
            .map(Self::Plain)
            .ok_or_else(|| no_host(uri))
    }

    /// The transports of one replica's calls of one kind, to be used in turn: one pool of
    /// our own connections for `http://`; for `https://`, as many tonic channels as the pool
    /// would have at most (a channel cannot say how many streams its connection has free, so
    /// there streams and unary calls are only kept apart).
    pub(super) fn for_replica(
        uri: &str,
        connect_timeout: Duration,
        tls: Option<&BackendTls>,
        carries: Carries,
    ) -> Result<Vec<Self>, SetupError> {
        let endpoint = endpoint(uri, connect_timeout, tls)?;
        let (Carries::Calls { connections } | Carries::Streams { connections }) = carries;
        if tls::is_secure(uri) {
            return Ok((0..connections.max(1))
                .map(|_| Self::Tls(endpoint.connect_lazy()))
                .collect());
        }
        let pool = match carries {
            Carries::Calls { connections } => {
                pool::Pool::for_calls(endpoint.uri(), connect_timeout, connections)
            }
            Carries::Streams { connections } => {
                pool::Pool::for_streams(endpoint.uri(), connect_timeout, connections)
            }
        };
        Ok(vec![Self::Pooled(pool.ok_or_else(|| no_host(uri))?)])
    }

    /// Boxed, turning its transport errors into statuses with `on_error`.
    pub(super) fn boxed<F>(self, on_error: F) -> GrpcService
    where
        F: Fn(BoxError) -> Status + Clone + Send + Sync + 'static,
    {
        match self {
            Self::Plain(connection) => box_service(connection, on_error),
            Self::Pooled(pool) => box_service(pool, on_error),
            Self::Tls(channel) => box_service(channel, on_error),
        }
    }
}

fn no_host(uri: &str) -> SetupError {
    SetupError::Uri {
        uri: uri.to_owned(),
        why: "no host".to_owned(),
    }
}

/// A lazily connectable endpoint for `uri`, with TLS for `https://` URIs.
fn endpoint(
    uri: &str,
    connect_timeout: Duration,
    tls: Option<&BackendTls>,
) -> Result<Endpoint, SetupError> {
    let endpoint = Endpoint::from_shared(uri.to_owned())
        .map_err(|e| SetupError::Uri {
            uri: uri.to_owned(),
            why: e.to_string(),
        })?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true);
    tls::configure(endpoint, uri, tls)
}

/// Boxes `service`, turning its transport errors into statuses with `on_error`.
pub(super) fn box_service<S, B, F>(service: S, on_error: F) -> GrpcService
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

/// Whether a transport error is tonic's channel enforcing the call's `grpc-timeout` (the
/// call ran out of time; the replica did nothing wrong). tonic reports it as an error of the
/// channel (`TimeoutExpired`, which `Status::from_error` turns into CANCELLED), not as
/// DEADLINE_EXCEEDED.
fn expired(error: &BoxError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error.as_ref());
    // Bounded by the length of the source chain.
    while let Some(e) = source {
        if e.is::<tonic::TimeoutExpired>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Whether a failure says anything against the backend: not when the call ran out of time,
/// when the backend is busy (every stream it allows in use: [`conn::CapacityError`]), nor
/// when the request could not be sent for what the client put in it
/// ([`conn::MalformedRequest`]). Only a failure that does may count towards taking a replica
/// out.
pub(super) fn blames_backend(error: &BoxError) -> bool {
    !(expired(error) || error.is::<conn::CapacityError>() || error.is::<conn::MalformedRequest>())
}

/// A transport failure as a status: DEADLINE_EXCEEDED for an expired timeout, UNAVAILABLE for
/// a backend with no stream free, INVALID_ARGUMENT for a request HTTP/2 cannot carry, else the
/// code tonic would pick (`UNAVAILABLE` for a refused connection), with a generic message; the
/// details are logged.
pub(super) fn transport_status(error: BoxError) -> Status {
    if expired(&error) {
        return Status::deadline_exceeded("the deadline expired before the backend answered");
    }
    if let Some(full) = error.downcast_ref::<conn::CapacityError>() {
        tracing::warn!(error = %full, "backend at its stream limit: call refused");
        return Status::unavailable(format!(
            "the backend's {} capacity is exhausted: every {} slot the gateway may open to it \
             is in use; try again later",
            full.what, full.what
        ));
    }
    if let Some(malformed) = error.downcast_ref::<conn::MalformedRequest>() {
        tracing::debug!(error = %malformed, "request refused before the backend");
        return Status::invalid_argument(format!(
            "the request's metadata cannot be forwarded: {}",
            malformed.why
        ));
    }
    if let Some(refused) = error.downcast_ref::<conn::ConnectError>() {
        tracing::warn!(error = %refused, "backend transport failure");
        return Status::unavailable("the backend is unavailable");
    }
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
        Code::Unavailable => "the backend is unavailable",
        Code::Cancelled => "the backend call was cancelled",
        _ => "the backend call failed",
    };
    Status::new(status.code(), message)
}

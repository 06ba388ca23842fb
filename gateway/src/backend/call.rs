//! One unary call from start to end: the one owner of its deadline, its attempts (a retry on
//! another replica for an idempotent call), and the response's metadata kept as the backend
//! sent it (headers apart from trailers).
//!
//! The deadline is an instant fixed when the request arrived ([`CallOptions`]). It bounds the
//! whole call, retries included, and each attempt tells the backend the time left in
//! `grpc-timeout`. An expired deadline is DEADLINE_EXCEEDED, whichever side noticed first,
//! and never counts against a replica.
//!
//! The call goes through tonic's `server_streaming` client rather than `unary`: the wire is
//! the same (one message each way), but `unary` merges the trailers into the header metadata,
//! so a trailer would overwrite a header of the same name.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures::Stream;
use http::uri::PathAndQuery;
use prost_reflect::DynamicMessage;
use tonic::{Code, Status, metadata::MetadataMap};

use super::{
    balance::{Balancer, CallKind, Picked},
    codec::{RawCodec, StreamCodec},
    transport::GrpcService,
};

/// Where a call goes: one transport, or several balanced replicas.
#[derive(Clone)]
pub(super) enum Inner {
    /// A channel or an in-memory service: every call goes there, no health watching.
    Single(GrpcService),
    /// Several replicas, health-checked and balanced.
    Balanced(Arc<Balancer>),
}

/// How one call is made.
#[derive(Debug, Clone, Copy)]
pub struct CallOptions {
    /// When the call must have been answered.
    pub deadline: Instant,
    /// Whether the call may be sent twice (it backs a GET or HEAD): over several replicas, an
    /// `UNAVAILABLE` is then retried on another one.
    pub idempotent: bool,
    /// The largest response message read, in bytes: a larger one fails the call with
    /// `OUT_OF_RANGE` (tonic's decode limit) before it is buffered.
    pub max_response_bytes: usize,
}

/// The response message limit of [`CallOptions::within`]: what grpc-go, grpcio and tonic
/// clients accept by default, so a backend that serves them serves the gateway.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

impl CallOptions {
    /// A call that must be answered within `timeout` from now, not to be repeated.
    pub fn within(timeout: Duration) -> Self {
        let now = Instant::now();
        Self {
            // A timeout too large to add (e.g. 99999999H) is as good as none.
            deadline: now
                .checked_add(timeout)
                .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600)),
            idempotent: false,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// The same call, marked safe (or not) to send twice.
    #[must_use]
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// The same call, reading response messages of up to `bytes`.
    #[must_use]
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }
}

/// The metadata of a call's response, as the backend sent it.
#[derive(Debug, Clone, Default)]
pub struct CallMetadata {
    /// The response headers (for a trailers-only response, the one header block).
    pub headers: MetadataMap,
    /// The trailers, after the message.
    pub trailers: MetadataMap,
}

/// A call's answer.
#[derive(Debug)]
pub struct UnaryResponse {
    /// The response message, as the backend encoded it.
    pub message: Bytes,
    /// Its headers and trailers.
    pub metadata: CallMetadata,
}

/// A failed call: the status, and the metadata the backend sent with it. Boxed: it travels
/// through every `Result` of the call path, and the success type is the common one.
#[derive(Debug)]
pub struct CallError(Box<(Status, CallMetadata)>);

impl From<Status> for CallError {
    /// A status answered before any response headers (a trailers-only response, or one the
    /// transport made up): whatever metadata it has came in the one header block.
    fn from(status: Status) -> Self {
        let headers = status.metadata().clone();
        let metadata = CallMetadata {
            headers,
            trailers: MetadataMap::new(),
        };
        Self(Box::new((status, metadata)))
    }
}

impl CallError {
    /// The status (its own metadata is not read: [`CallError::into_parts`] gives it sorted
    /// into headers and trailers).
    pub fn status(&self) -> &Status {
        &self.0.0
    }

    /// The status and the headers and trailers that came with it.
    pub fn into_parts(self) -> (Status, CallMetadata) {
        *self.0
    }

    /// A status that came in the trailers, after `headers`.
    fn after_headers(status: Status, headers: MetadataMap) -> Self {
        let trailers = status.metadata().clone();
        Self(Box::new((status, CallMetadata { headers, trailers })))
    }

    fn deadline_exceeded() -> Self {
        Status::deadline_exceeded("the deadline expired before the backend answered").into()
    }
}

/// Runs the call on `backend` within `options.deadline`.
pub(super) async fn unary(
    backend: Inner,
    path: PathAndQuery,
    request: tonic::Request<DynamicMessage>,
    options: CallOptions,
) -> Result<UnaryResponse, CallError> {
    let deadline = tokio::time::Instant::from_std(options.deadline);
    let attempts = attempts(&backend, path, request, options);
    tokio::time::timeout_at(deadline, attempts)
        .await
        .unwrap_or_else(|_| Err(CallError::deadline_exceeded()))
}

/// The attempts of one call: one on a single transport; over replicas, one per replica at
/// most while each fails with `UNAVAILABLE` and the call is idempotent.
async fn attempts(
    backend: &Inner,
    path: PathAndQuery,
    request: tonic::Request<DynamicMessage>,
    options: CallOptions,
) -> Result<UnaryResponse, CallError> {
    let (metadata, _, message) = request.into_parts();
    let balancer = match backend {
        Inner::Single(service) => {
            let request = with_deadline(metadata, message, options.deadline)?;
            return attempt(service.clone(), path, request, options).await;
        }
        Inner::Balanced(balancer) => balancer,
    };
    let attempts = if options.idempotent {
        balancer.len()
    } else {
        1
    };
    let mut parts = Some((metadata, message));
    let mut tried: Vec<usize> = Vec::with_capacity(attempts);
    let mut last: Option<CallError> = None;
    // Bounded by the number of replicas: each is tried once at most.
    while tried.len() < attempts {
        let Some(picked) = balancer.pick(&tried, CallKind::Unary) else {
            break;
        };
        // The last possible attempt takes the request; earlier ones send a copy.
        let (metadata, message) = match parts.take() {
            Some(p) if tried.len() + 1 < attempts => {
                let copy = p.clone();
                parts = Some(p);
                copy
            }
            Some(p) => p,
            None => break,
        };
        if !tried.is_empty() {
            balancer.count_retry();
        }
        tried.push(picked.index);
        let request = with_deadline(metadata, message, options.deadline)?;
        let result = attempt(picked.service.clone(), path.clone(), request, options).await;
        // Any answer but a transport failure (which the replica's connection counts itself)
        // ends the replica's run of failures.
        if result
            .as_ref()
            .map_or_else(|e| e.status().code() != Code::Unavailable, |_| true)
        {
            picked.answered();
        }
        match result {
            Err(e) if e.status().code() == Code::Unavailable => {
                tracing::warn!(
                    replica = balancer.uri(picked.index),
                    method = path.path(),
                    message = e.status().message(),
                    retry = tried.len() < attempts,
                    "backend call unavailable"
                );
                last = Some(e);
            }
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| Status::unavailable("no backend is available").into()))
}

/// The request of one attempt, telling the backend the time left (`grpc-timeout`); an
/// attempt with no time left is not made.
fn with_deadline(
    metadata: MetadataMap,
    message: DynamicMessage,
    deadline: Instant,
) -> Result<tonic::Request<DynamicMessage>, CallError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(CallError::deadline_exceeded());
    }
    let mut request = tonic::Request::from_parts(metadata, tonic::Extensions::default(), message);
    request.set_timeout(left);
    Ok(request)
}

/// One attempt on one transport.
async fn attempt(
    service: GrpcService,
    path: PathAndQuery,
    request: tonic::Request<DynamicMessage>,
    options: CallOptions,
) -> Result<UnaryResponse, CallError> {
    let mut grpc =
        tonic::client::Grpc::new(service).max_decoding_message_size(options.max_response_bytes);
    grpc.ready().await?;
    let response = grpc.server_streaming(request, path, RawCodec).await?;
    let (headers, mut stream, _) = response.into_parts();
    let message = match stream.message().await {
        Ok(Some(message)) => message,
        Ok(None) => {
            let status = Status::internal("the backend ended a unary call without a message");
            return Err(CallError::after_headers(status, headers));
        }
        Err(status) => return Err(CallError::after_headers(in_transit(status), headers)),
    };
    match stream.message().await {
        Ok(None) => {}
        Ok(Some(_)) => {
            let status = Status::internal("the backend answered a unary call with two messages");
            return Err(CallError::after_headers(status, headers));
        }
        Err(status) => return Err(CallError::after_headers(in_transit(status), headers)),
    }
    // The stream has ended, so the trailers are already in: this does not wait.
    let trailers = match stream.trailers().await {
        Ok(trailers) => trailers.unwrap_or_default(),
        Err(status) => return Err(CallError::after_headers(status, headers)),
    };
    Ok(UnaryResponse {
        message,
        metadata: CallMetadata { headers, trailers },
    })
}

/// A unary answer's body failing because the connection broke under it (the replica died or
/// closed the connection after the headers: an I/O error or a GOAWAY, which tonic reports as
/// UNKNOWN or INTERNAL) is UNAVAILABLE, as a failure before the headers is: the backend said
/// nothing, and an idempotent call may be retried on another replica. A status the backend
/// sent stays as it is.
fn in_transit(status: Status) -> Status {
    let mut source = std::error::Error::source(&status);
    while let Some(error) = source {
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            if h2.is_io() || h2.is_go_away() {
                tracing::warn!(error = %h2, "the backend's connection broke under an answer");
                return Status::unavailable("the backend's connection broke before it answered");
            }
            break;
        }
        if error.is::<std::io::Error>() {
            tracing::warn!(error = %error, "the backend's connection broke under an answer");
            return Status::unavailable("the backend's connection broke before it answered");
        }
        source = error.source();
    }
    status
}

/// A streaming call's answer: its headers, then its messages as they arrive, then its
/// trailers. Each read is bounded by the call's deadline; dropping it cancels the call.
pub struct ResponseStream {
    headers: MetadataMap,
    inner: tonic::Streaming<Bytes>,
    deadline: tokio::time::Instant,
    /// The replica serving it, counted in flight until the stream goes.
    _picked: Option<Picked>,
}

impl std::fmt::Debug for ResponseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseStream")
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl ResponseStream {
    /// The response header metadata.
    pub fn headers(&self) -> &MetadataMap {
        &self.headers
    }

    /// The next message; `None` once the call has ended well (then [`Self::trailers`]).
    ///
    /// # Errors
    /// The status the call failed with (DEADLINE_EXCEEDED once the deadline passes), with the
    /// headers and trailers that came with it.
    pub async fn message(&mut self) -> Result<Option<Bytes>, CallError> {
        match tokio::time::timeout_at(self.deadline, self.inner.message()).await {
            Ok(Ok(message)) => Ok(message),
            Ok(Err(status)) => Err(CallError::after_headers(status, self.headers.clone())),
            Err(_) => Err(CallError::after_headers(
                Status::deadline_exceeded("the deadline expired before the stream ended"),
                self.headers.clone(),
            )),
        }
    }

    /// The trailers, once [`Self::message`] has returned `None` (empty before).
    pub async fn trailers(&mut self) -> MetadataMap {
        match tokio::time::timeout_at(self.deadline, self.inner.trailers()).await {
            Ok(Ok(Some(trailers))) => trailers,
            _ => MetadataMap::new(),
        }
    }
}

/// Starts a streaming call (client, server or bidirectional: the wire is the same) on one
/// replica, over its connections for streams, sending `requests` as they come; completes when
/// the response headers arrive. Never retried: a stream cannot be replayed.
pub(super) async fn streaming<S>(
    backend: Inner,
    path: PathAndQuery,
    mut request: tonic::Request<S>,
    options: CallOptions,
) -> Result<ResponseStream, CallError>
where
    S: Stream<Item = Result<DynamicMessage, Status>> + Send + 'static,
{
    let (service, picked) = match &backend {
        Inner::Single(service) => (service.clone(), None),
        Inner::Balanced(balancer) => {
            let picked = balancer
                .pick(&[], CallKind::Stream)
                .ok_or_else(|| Status::unavailable("no backend is available"))?;
            (picked.service.clone(), Some(picked))
        }
    };
    let left = options.deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(CallError::deadline_exceeded());
    }
    request.set_timeout(left);
    let deadline = tokio::time::Instant::from_std(options.deadline);
    let start = async {
        let mut grpc =
            tonic::client::Grpc::new(service).max_decoding_message_size(options.max_response_bytes);
        grpc.ready().await?;
        let response = grpc.streaming(request, path, StreamCodec).await?;
        Ok::<_, CallError>(response)
    };
    let response = tokio::time::timeout_at(deadline, start)
        .await
        .unwrap_or_else(|_| Err(CallError::deadline_exceeded()))?;
    let (headers, inner, _) = response.into_parts();
    Ok(ResponseStream {
        headers,
        inner,
        deadline,
        _picked: picked,
    })
}

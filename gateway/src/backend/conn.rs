//! One plain-text HTTP/2 connection to a backend, made on the first call and made again after
//! it fails, driven through the `h2` crate; and the stream slots it has for calls.
//!
//! Hand-written rather than tonic's `Channel`, because of what a call costs there: a `Channel`
//! is a `Buffer` whose worker task forwards each call to hyper's HTTP/2 client, which hands it
//! to its connection task and spawns one more task to pipe the request body: three hand-offs
//! between tasks (often between threads) before the first byte is written, each a wake-up. Here
//! the caller's own task opens the stream and writes a body that is ready at once (a unary
//! call's one message), and reads the answer; the connection's task only moves frames to and
//! from the socket. Only a body that is not ready at once (a client-streaming call) gets a task
//! of its own to relay the rest ([`upload`], which waits for flow-control capacity, so an upload
//! is never held in the gateway's memory).
//!
//! It keeps what the gateway relied on from tonic's channel: a lazy connection (the gateway
//! starts while the backend is down), a connect timeout, `TCP_NODELAY`, HTTP/2 window and
//! header-list settings, a new connection after the old one failed or was closed by a
//! GOAWAY, and cancellation: dropping a call's future or its response body resets the stream
//! (the backend sees RST_STREAM). A refused connection fails the call with UNAVAILABLE. `https://`
//! backends still go through tonic's channel (see [`super::tls`]).
//!
//! A connection never queues a call: each call takes one of its stream slots
//! ([`Connection::reserve`]), of which it has as many as the backend's
//! `SETTINGS_MAX_CONCURRENT_STREAMS` allows (learnt before the first call, by a PING after the
//! handshake) and its [`Profile`] carries; with none free the caller goes elsewhere
//! ([`super::pool`]) or is answered at once ([`CapacityError`]). Left to itself, h2 would queue
//! a stream over the limit until one ends, which for a connection full of long-lived streams
//! is the whole deadline.
//!
//! A request HTTP/2 cannot carry because of what the client put in it (a connection-specific
//! header in its metadata) is refused before it is sent ([`MalformedRequest`]): it says
//! nothing of the backend, so it must never count against it.

mod upload;

use std::{
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Bytes;
use futures::future::BoxFuture;
use h2::{RecvStream, client::SendRequest};
use http::{HeaderMap, Uri, header, uri::PathAndQuery};
use http_body::{Body as _, Frame};
use tokio::{net::TcpStream, sync::oneshot};
use tonic::body::Body;

use tower::BoxError;

const MAX_HEADER_LIST: u32 = 16 * 1024;
const MAX_SEND_BUFFER: usize = 1024 * 1024;
/// The streams assumed allowed until the backend's SETTINGS say otherwise (RFC 9113 asks
/// servers to allow at least 100); only used if its PING answer is late.
const INITIAL_MAX_STREAMS: usize = 100;

/// What a connection is for: its receive windows, and the most streams it carries at once
/// (fewer if the backend allows fewer).
#[derive(Debug, Clone, Copy)]
pub(super) struct Profile {
    /// The receive window of each stream: what the backend may send a stream before the
    /// gateway has read it.
    pub(super) stream_window: u32,
    /// The receive window of the whole connection.
    pub(super) connection_window: u32,
    /// The most streams open on the connection at once.
    pub(super) max_streams: usize,
}

impl Profile {
    /// Unary calls (and health checks): hyper's client windows, which the gateway had through
    /// tonic, so a response of a few MiB arrives without waiting on window updates. A unary
    /// response is read whole at once, so one stream's bytes never sit in the connection
    /// window for long.
    pub(super) const CALLS: Self = Self {
        stream_window: 2 * 1024 * 1024,
        connection_window: 5 * 1024 * 1024,
        max_streams: usize::MAX,
    };

    /// Long-lived streams, whose reader may stop reading (a client that does not read its
    /// stream): the connection window holds every stream's whole window
    /// (`connection_window >= stream_window * max_streams`), so however many streams leave
    /// their bytes unread, the others still get theirs; and the bytes held for one stream
    /// are bounded by its window (64 KiB, HTTP/2's default, what grpc-go starts with).
    pub(super) const STREAMS: Self = Self {
        stream_window: 64 * 1024,
        connection_window: 64 * 1024 * STREAMS_PER_CONNECTION as u32,
        max_streams: STREAMS_PER_CONNECTION,
    };
}

/// The most streams a connection for streams carries, whatever the backend allows: 100, the
/// least RFC 9113 asks servers to allow, and so the least most servers do.
pub(super) const STREAMS_PER_CONNECTION: usize = 100;

/// A lazily made HTTP/2 connection to one `http://host:port`, as a tower service. Clones share
/// the connection.
#[derive(Clone)]
pub(super) struct Connection {
    shared: Arc<Shared>,
}

struct Shared {
    /// `host:port`, to connect to.
    address: String,
    /// `http://host:port`, put in front of each request's path.
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    connect_timeout: Duration,
    profile: Profile,
    /// The live connection, if any. Held only to clone or replace it, never across an await.
    current: Mutex<Option<Live>>,
    /// Taken while connecting, so that calls arriving together make one connection. A call
    /// that arrived before an attempt failed fails with it (`failed_attempts`)
    /// rather than queueing for an attempt of its own (a backend that drops SYNs would
    /// otherwise hold each waiting call for a whole connect timeout in turn).
    connecting: tokio::sync::Mutex<()>,
    failed_attempts: AtomicU64,
}

/// A connection's sender, whether its task has ended, and its streams in use.
#[derive(Clone)]
struct Live {
    sender: SendRequest<Bytes>,
    closed: Arc<AtomicBool>,
    /// Streams taken on this connection and not yet given back ([`Slot`]).
    open: Arc<AtomicUsize>,
}

impl Live {
    fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    /// A stream slot, unless `max_streams` of this profile or the backend's own limit are
    /// taken.
    fn take_slot(&self, profile: Profile) -> Option<Slot> {
        let limit = self
            .sender
            .current_max_send_streams()
            .min(profile.max_streams);
        let mut open = self.open.load(Ordering::Acquire);
        // Bounded: each retry follows another caller's change of the count.
        loop {
            if open >= limit {
                return None;
            }
            match self.open.compare_exchange_weak(
                open,
                open + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Some(Slot {
                        _guard: Arc::new(SlotGuard(Arc::clone(&self.open))),
                    });
                }
                Err(now) => open = now,
            }
        }
    }
}

/// One stream's place on a connection, held by its response body and its request relay
/// (cloned), and given back when both are gone: by then h2 has closed or reset the stream.
#[derive(Clone)]
pub(super) struct Slot {
    _guard: Arc<SlotGuard>,
}

struct SlotGuard(Arc<AtomicUsize>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A stream slot taken on a live connection, for one call.
pub(super) struct Reserved {
    live: Live,
    slot: Slot,
}

/// A connection could not be made; the call never reached the backend.
#[derive(Debug, thiserror::Error)]
#[error("connecting to the backend at {address}: {source}")]
pub(super) struct ConnectError {
    address: String,
    #[source]
    source: std::io::Error,
}

/// Every stream the backend allows is in use on every connection the call may use: the
/// backend is busy, not failing.
#[derive(Debug, thiserror::Error)]
#[error("every {what} slot of the backend's {connections} connection(s) is in use")]
pub(super) struct CapacityError {
    /// What the connections carry: `"stream"` (long-lived streams) or `"call"` (unary calls).
    pub(super) what: &'static str,
    pub(super) connections: usize,
}

/// A request HTTP/2 cannot carry because of what the client sent: a connection-specific
/// header (HTTP/2 forbids them, RFC 9113 §8.2.2), which the client put in the call's metadata.
#[derive(Debug, thiserror::Error)]
#[error("the request cannot be sent over HTTP/2: {why}")]
pub(super) struct MalformedRequest {
    pub(super) why: String,
}

impl Connection {
    /// A connection to `uri` (`http://host:port`) for what `profile` says, made on the first
    /// call.
    pub(super) fn lazy(uri: &Uri, connect_timeout: Duration, profile: Profile) -> Option<Self> {
        let authority = uri.authority()?.clone();
        let port = authority.port_u16().unwrap_or(80);
        Some(Self {
            shared: Arc::new(Shared {
                address: format!("{}:{port}", authority.host()),
                scheme: http::uri::Scheme::HTTP,
                authority,
                connect_timeout,
                profile,
                current: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                failed_attempts: AtomicU64::new(0),
            }),
        })
    }

    /// A stream slot on this connection, connecting first if there is no live connection;
    /// `None` when every slot it has is taken (a full connection is never waited on).
    ///
    /// # Errors
    /// When the connection cannot be made.
    pub(super) async fn reserve(&self) -> Result<Option<Reserved>, BoxError> {
        let live = self.shared.sender().await?;
        Ok(live
            .take_slot(self.shared.profile)
            .map(|slot| Reserved { live, slot }))
    }

    /// Sends `request` on the slot `reserved` (from this connection's [`Self::reserve`]).
    pub(super) fn send(
        &self,
        reserved: Reserved,
        request: http::Request<Body>,
    ) -> BoxFuture<'static, Result<http::Response<ResponseBody>, BoxError>> {
        Box::pin(Arc::clone(&self.shared).send(reserved, request))
    }
}

impl Shared {
    fn live(&self) -> Option<Live> {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        current.as_ref().filter(|live| live.is_open()).cloned()
    }

    /// Forgets `failed` (not a newer connection that replaced it in the meantime).
    fn forget(&self, failed: &Live) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current
            .as_ref()
            .is_some_and(|live| Arc::ptr_eq(&live.closed, &failed.closed))
        {
            *current = None;
        }
    }

    /// The live connection, made first if there is none.
    async fn sender(&self) -> Result<Live, BoxError> {
        if let Some(live) = self.live() {
            return Ok(live);
        }
        let failed_before = self.failed_attempts.load(Ordering::Acquire);
        let _connecting = self.connecting.lock().await;
        // Another call may have connected while this one waited, or failed to.
        if let Some(live) = self.live() {
            return Ok(live);
        }
        if self.failed_attempts.load(Ordering::Acquire) != failed_before {
            return Err(ConnectError {
                address: self.address.clone(),
                source: std::io::Error::other("the connection attempt made meanwhile failed"),
            }
            .into());
        }
        match self.connect().await {
            Ok(live) => {
                *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(live.clone());
                Ok(live)
            }
            Err(error) => {
                self.failed_attempts.fetch_add(1, Ordering::AcqRel);
                Err(error)
            }
        }
    }

    async fn connect(&self) -> Result<Live, BoxError> {
        let connect_error = |source| ConnectError {
            address: self.address.clone(),
            source,
        };
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.address))
            .await
            .map_err(|_| connect_error(std::io::ErrorKind::TimedOut.into()))?
            .map_err(connect_error)?;
        tcp.set_nodelay(true).map_err(connect_error)?;
        let (sender, mut connection) = h2::client::Builder::new()
            .enable_push(false)
            .initial_window_size(self.profile.stream_window)
            .initial_connection_window_size(self.profile.connection_window)
            .initial_max_send_streams(INITIAL_MAX_STREAMS)
            .max_header_list_size(MAX_HEADER_LIST)
            .max_send_buffer_size(MAX_SEND_BUFFER)
            .handshake::<_, Bytes>(tcp)
            .await?;
        let ping = connection.ping_pong();
        let closed = Arc::new(AtomicBool::new(false));
        let on_close = Arc::clone(&closed);
        let address = self.address.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(backend = address, %error, "backend connection ended");
            }
            on_close.store(true, Ordering::Release);
        });
        // The backend's SETTINGS come before its answer to a PING: once answered, its
        // MAX_CONCURRENT_STREAMS is known, so the first calls cannot overshoot it.
        if let Some(mut ping) = ping {
            let answered =
                tokio::time::timeout(self.connect_timeout, ping.ping(h2::Ping::opaque())).await;
            if !matches!(answered, Ok(Ok(_))) {
                tracing::debug!(
                    backend = self.address,
                    "no PING answer after the handshake: assuming {INITIAL_MAX_STREAMS} streams"
                );
            }
        }
        Ok(Live {
            sender,
            closed,
            open: Arc::new(AtomicUsize::new(0)),
        })
    }

    async fn send(
        self: Arc<Self>,
        reserved: Reserved,
        request: http::Request<Body>,
    ) -> Result<http::Response<ResponseBody>, BoxError> {
        let Reserved { live, slot } = reserved;
        check_headers(request.headers())?;
        let mut sender = match live.sender.clone().ready().await {
            Ok(sender) => sender,
            Err(error) => {
                self.forget(&live);
                return Err(error.into());
            }
        };
        let (mut parts, body) = request.into_parts();
        parts.uri = self.absolute(&parts.uri)?;
        let end = body.is_end_stream();
        let (response, stream) =
            match sender.send_request(http::Request::from_parts(parts, ()), end) {
                Ok(sent) => sent,
                Err(error) if refused_as_malformed(&error) => {
                    return Err(MalformedRequest {
                        why: error.to_string(),
                    }
                    .into());
                }
                Err(error) => {
                    // A GOAWAY or a closed connection: the next call makes a new one.
                    self.forget(&live);
                    return Err(error.into());
                }
            };
        // Dropped with the call (before its answer) or with its response body: the relay
        // of the request body stops then, whatever it waits for.
        let (abandon, abandoned) = oneshot::channel();
        if !end {
            upload::send_body(body, stream, slot.clone(), abandoned);
        }
        let response = response.await?;
        Ok(response.map(|stream| ResponseBody::new(stream, slot, abandon)))
    }

    /// `path` with this backend's scheme and authority, as HTTP/2 requests carry them.
    fn absolute(&self, uri: &Uri) -> Result<Uri, BoxError> {
        let path = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        Ok(Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()?)
    }
}

/// Refuses the headers h2 refuses (RFC 9113 §8.2.2: connection-specific fields, and `TE`
/// other than `trailers`), naming the one found, before h2 sees them.
fn check_headers(headers: &HeaderMap) -> Result<(), MalformedRequest> {
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::HeaderName::from_static("keep-alive"),
        header::HeaderName::from_static("proxy-connection"),
    ] {
        if headers.contains_key(&name) {
            return Err(MalformedRequest {
                why: format!("{name:?} is a connection-specific header, which HTTP/2 forbids"),
            });
        }
    }
    if let Some(te) = headers.get(header::TE)
        && te != "trailers"
    {
        return Err(MalformedRequest {
            why: "\"te\" may only be \"trailers\" over HTTP/2".to_owned(),
        });
    }
    Ok(())
}

/// Whether h2 refused to send a request for what it holds (its "malformed headers" user
/// error): the request's fault, not the connection's. h2 offers no `is_user`; a user error is
/// the one kind that is neither I/O, GOAWAY, RST_STREAM nor a bare reason.
fn refused_as_malformed(error: &h2::Error) -> bool {
    !error.is_io()
        && !error.is_go_away()
        && !error.is_reset()
        && error.reason().is_none()
        && error.to_string().contains("malformed")
}

impl tower::Service<http::Request<Body>> for Connection {
    type Response = http::Response<ResponseBody>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // HTTP/2 multiplexes: a free stream is taken in the call, never waited for.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let connection = self.clone();
        Box::pin(async move {
            let Some(reserved) = connection.reserve().await? else {
                return Err(CapacityError {
                    what: "call",
                    connections: 1,
                }
                .into());
            };
            connection.send(reserved, request).await
        })
    }
}

/// A response body read in the caller's task. Dropping it before the end resets the stream.
pub(super) struct ResponseBody {
    stream: RecvStream,
    state: BodyState,
    /// Its stream's slot on the connection.
    _slot: Slot,
    /// Dropped with the body: the request body's relay, if still running, stops.
    _abandon: oneshot::Sender<()>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyState {
    Data,
    Trailers,
    Done,
}

impl ResponseBody {
    fn new(stream: RecvStream, slot: Slot, abandon: oneshot::Sender<()>) -> Self {
        let state = if stream.is_end_stream() {
            BodyState::Done
        } else {
            BodyState::Data
        };
        Self {
            stream,
            state,
            _slot: slot,
            _abandon: abandon,
        }
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = &mut *self;
        if this.state == BodyState::Data {
            match ready!(this.stream.poll_data(cx)) {
                Some(Ok(data)) => {
                    // The window opens again as soon as the bytes are handed on: the gateway
                    // bounds what it buffers itself (`--max-response-bytes`).
                    let _ = this.stream.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(error)) => {
                    this.state = BodyState::Done;
                    return Poll::Ready(Some(Err(error)));
                }
                None => this.state = BodyState::Trailers,
            }
        }
        if this.state == BodyState::Trailers {
            let trailers = ready!(this.stream.poll_trailers(cx));
            this.state = BodyState::Done;
            return Poll::Ready(match trailers {
                Ok(Some(trailers)) => Some(Ok(Frame::trailers(trailers))),
                Ok(None) => None,
                Err(error) => Some(Err(error)),
            });
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.state == BodyState::Done
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::backend::transport::{blames_backend, transport_status};
    use tower::ServiceExt as _;

    /// An HTTP/2 server on loopback answering every request 200 with an empty body, allowing
    /// `max_streams` streams at once. Its task ends with the test's runtime.
    pub(in crate::backend) async fn spawn_h2_server(max_streams: u32) -> Uri {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            // Bounded by the test: the runtime ends with it.
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(mut connection) = h2::server::Builder::new()
                        .max_concurrent_streams(max_streams)
                        .handshake::<_, Bytes>(tcp)
                        .await
                    else {
                        return;
                    };
                    while let Some(Ok((_request, mut respond))) = connection.accept().await {
                        // Headers only, the stream left open: it keeps its slot.
                        let _ = respond.send_response(http::Response::new(()), false);
                        tokio::spawn(async move {
                            std::future::pending::<()>().await;
                            drop(respond);
                        });
                    }
                });
            }
        });
        format!("http://{addr}").parse().expect("URI")
    }

    pub(in crate::backend) fn request(
        header: Option<(&'static str, &'static str)>,
    ) -> http::Request<Body> {
        let mut request = http::Request::post("/telemetry.v1.Sensors/GetReading")
            .body(Body::empty())
            .expect("request");
        if let Some((name, value)) = header {
            request.headers_mut().insert(
                http::HeaderName::from_static(name),
                http::HeaderValue::from_static(value),
            );
        }
        request
    }

    #[tokio::test]
    async fn a_connection_specific_header_is_refused_as_invalid_argument_and_blames_no_backend() {
        let uri = spawn_h2_server(10).await;
        let connection =
            Connection::lazy(&uri, Duration::from_secs(1), Profile::CALLS).expect("connection");
        for (name, value) in [
            ("proxy-connection", "x"),
            ("connection", "close"),
            ("keep-alive", "5"),
            ("upgrade", "h2c"),
            ("transfer-encoding", "chunked"),
            ("te", "gzip"),
        ] {
            let error = connection
                .clone()
                .oneshot(request(Some((name, value))))
                .await
                .err()
                .expect("refused");
            assert!(!blames_backend(&error), "{name}: {error}");
            let status = transport_status(error);
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{name}");
            assert!(status.message().contains(name), "{}", status.message());
        }
        // The connection was not given up for it: the next call goes over it.
        let response = connection
            .clone()
            .oneshot(request(None))
            .await
            .expect("answered");
        assert_eq!(response.status(), http::StatusCode::OK);
    }

    #[tokio::test]
    async fn a_full_connection_refuses_at_once_with_a_capacity_error_that_blames_no_backend() {
        let uri = spawn_h2_server(2).await;
        let connection =
            Connection::lazy(&uri, Duration::from_secs(1), Profile::STREAMS).expect("connection");
        let mut open = Vec::new();
        for _ in 0..2 {
            open.push(
                connection
                    .clone()
                    .oneshot(request(None))
                    .await
                    .expect("answered"),
            );
        }
        let refused = tokio::time::timeout(
            Duration::from_secs(2),
            connection.clone().oneshot(request(None)),
        )
        .await
        .expect("refused at once, not queued")
        .err()
        .expect("refused");
        assert!(!blames_backend(&refused), "{refused}");
        assert_eq!(transport_status(refused).code(), tonic::Code::Unavailable);
        // A stream that goes gives its slot back.
        drop(open.pop());
        let response = connection
            .clone()
            .oneshot(request(None))
            .await
            .expect("answered");
        assert_eq!(response.status(), http::StatusCode::OK);
    }

    #[test]
    fn the_windows_for_streams_hold_every_streams_whole_window() {
        let streams = Profile::STREAMS;
        assert!(
            u64::from(streams.connection_window)
                >= u64::from(streams.stream_window) * streams.max_streams as u64
        );
    }
}

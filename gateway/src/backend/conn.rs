//! One plain-text HTTP/2 connection to a backend, made on the first call and made again after
//! it fails, driven through the `h2` crate.
//!
//! Hand-written rather than tonic's `Channel`, because of what a call costs there: a `Channel`
//! is a `Buffer` whose worker task forwards each call to hyper's HTTP/2 client, which hands it
//! to its connection task and spawns one more task to pipe the request body: three hand-offs
//! between tasks (often between threads) before the first byte is written, each a wake-up. Here
//! the caller's own task opens the stream and writes a body that is ready at once (a unary
//! call's one message), and reads the answer; the connection's task only moves frames to and
//! from the socket. Only a body that is not ready at once (a client-streaming call) gets a task
//! of its own to pipe the rest.
//!
//! It keeps what the gateway relied on from tonic's channel: a lazy connection (the gateway
//! starts while the backend is down), a connect timeout, `TCP_NODELAY`, hyper's HTTP/2 window
//! and header-list settings, a new connection after the old one failed or was closed by a
//! GOAWAY, and cancellation: dropping a call's future or its response body resets the stream
//! (the backend sees RST_STREAM). A refused connection fails the call with UNAVAILABLE. `https://`
//! backends still go through tonic's channel (see [`super::tls`]).

use std::{
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Bytes;
use futures::{FutureExt as _, future::BoxFuture};
use h2::{RecvStream, SendStream, client::SendRequest};
use http::{Uri, uri::PathAndQuery};
use http_body::{Body as _, Frame};
use http_body_util::BodyExt as _;
use tokio::net::TcpStream;
use tonic::{Status, body::Body};

use tower::BoxError;

/// hyper's client defaults, which the gateway had through tonic: a response of a few MiB
/// arrives without waiting on window updates.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;
const MAX_HEADER_LIST: u32 = 16 * 1024;
const MAX_SEND_BUFFER: usize = 1024 * 1024;

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
    /// The live connection, if any. Held only to clone or replace it, never across an await.
    current: Mutex<Option<Live>>,
    /// Taken while connecting, so that calls arriving together make one connection. A call
    /// that arrived before an attempt failed fails with it (`failed_attempts`)
    /// rather than queueing for an attempt of its own (a backend that drops SYNs would
    /// otherwise hold each waiting call for a whole connect timeout in turn).
    connecting: tokio::sync::Mutex<()>,
    failed_attempts: AtomicU64,
}

/// A connection's sender and whether its task has ended.
#[derive(Clone)]
struct Live {
    sender: SendRequest<Bytes>,
    closed: Arc<AtomicBool>,
}

impl Live {
    fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }
}

/// A connection could not be made; the call never reached the backend.
#[derive(Debug, thiserror::Error)]
#[error("connecting to the backend at {address}: {source}")]
pub(super) struct ConnectError {
    address: String,
    #[source]
    source: std::io::Error,
}

impl Connection {
    /// A connection to `uri` (`http://host:port`), made on the first call.
    pub(super) fn lazy(uri: &Uri, connect_timeout: Duration) -> Option<Self> {
        let authority = uri.authority()?.clone();
        let port = authority.port_u16().unwrap_or(80);
        Some(Self {
            shared: Arc::new(Shared {
                address: format!("{}:{port}", authority.host()),
                scheme: http::uri::Scheme::HTTP,
                authority,
                connect_timeout,
                current: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                failed_attempts: AtomicU64::new(0),
            }),
        })
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
        let (sender, connection) = h2::client::Builder::new()
            .enable_push(false)
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_header_list_size(MAX_HEADER_LIST)
            .max_send_buffer_size(MAX_SEND_BUFFER)
            .handshake::<_, Bytes>(tcp)
            .await?;
        let closed = Arc::new(AtomicBool::new(false));
        let on_close = Arc::clone(&closed);
        let address = self.address.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(backend = address, %error, "backend connection ended");
            }
            on_close.store(true, Ordering::Release);
        });
        Ok(Live { sender, closed })
    }

    async fn send(
        self: Arc<Self>,
        request: http::Request<Body>,
    ) -> Result<http::Response<ResponseBody>, BoxError> {
        let live = self.sender().await?;
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
                Err(error) => {
                    // A GOAWAY or a closed connection: the next call makes a new one.
                    self.forget(&live);
                    return Err(error.into());
                }
            };
        if !end {
            send_body(body, stream);
        }
        let response = response.await?;
        Ok(response.map(ResponseBody::new))
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

impl tower::Service<http::Request<Body>> for Connection {
    type Response = http::Response<ResponseBody>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // HTTP/2 multiplexes: readiness (a free stream) is awaited in the call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(Arc::clone(&self.shared).send(request))
    }
}

/// Writes `body` to `stream`: what is ready now from this task, the rest (a body that waits
/// on its source, as a client-streaming call's does) from a task of its own.
fn send_body(mut body: Body, mut stream: SendStream<Bytes>) {
    loop {
        match body.frame().now_or_never() {
            Some(Some(Ok(frame))) => {
                if write_frame(&mut stream, frame, body.is_end_stream()).is_err() {
                    return;
                }
            }
            Some(None) => {
                // The stream may have ended with the last frame already.
                let _ = stream.send_data(Bytes::new(), true);
                return;
            }
            Some(Some(Err(status))) => {
                reset(&mut stream, &status);
                return;
            }
            None => {
                tokio::spawn(pipe(body, stream));
                return;
            }
        }
    }
}

async fn pipe(mut body: Body, mut stream: SendStream<Bytes>) {
    // Bounded by the body, which ends or fails; a reset stream stops it too.
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            // The backend reset the stream (or the connection went): stop reading the source.
            _ = futures::future::poll_fn(|cx| stream.poll_reset(cx)) => return,
        };
        match frame {
            Some(Ok(frame)) => {
                if write_frame(&mut stream, frame, body.is_end_stream()).is_err() {
                    return;
                }
            }
            None => {
                let _ = stream.send_data(Bytes::new(), true);
                return;
            }
            Some(Err(status)) => {
                reset(&mut stream, &status);
                return;
            }
        }
    }
}

fn write_frame(stream: &mut SendStream<Bytes>, frame: Frame<Bytes>, end: bool) -> Result<(), ()> {
    match frame.into_data() {
        Ok(data) => stream.send_data(data, end).map_err(drop),
        Err(frame) => match frame.into_trailers() {
            Ok(trailers) => stream.send_trailers(trailers).map_err(drop),
            Err(_) => Ok(()),
        },
    }
}

/// A request body that failed (the gateway aborts a call so, [`super::StreamCodec`]): the
/// stream is reset with INTERNAL_ERROR, as hyper does. Not CANCEL, which a tonic server reads
/// as the clean end of its request stream.
fn reset(stream: &mut SendStream<Bytes>, status: &Status) {
    tracing::debug!(%status, "request body failed: resetting the backend stream");
    stream.send_reset(h2::Reason::INTERNAL_ERROR);
}

/// A response body read in the caller's task. Dropping it before the end resets the stream.
pub(super) struct ResponseBody {
    stream: RecvStream,
    state: BodyState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyState {
    Data,
    Trailers,
    Done,
}

impl ResponseBody {
    fn new(stream: RecvStream) -> Self {
        let state = if stream.is_end_stream() {
            BodyState::Done
        } else {
            BodyState::Data
        };
        Self { stream, state }
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

//! Accepting connections and serving each with hyper-util's auto builder (HTTP/1.1 and h2c),
//! under the connection-level limits, with a graceful drain at shutdown.
//!
//! axum's own `serve` exposes no hyper settings; serving connections directly sets the
//! header-size limits and HTTP/1's header read timeout (slowloris), and bounds the drain.
//!
//! Idle sockets are closed, as nginx closes them: a connection that sends no byte within the
//! header read timeout (hyper's own timeout only starts with the first byte, and its HTTP
//! version detection waits without one), and one with no traffic either way for the idle
//! timeout (nginx's `keepalive_timeout`: 75 s). Past `max_connections` open at once, the one
//! idle the longest is closed for each new one, so a flood of silent sockets cannot exhaust the
//! process's file descriptors and lock real clients out. Closing is hyper's graceful shutdown:
//! a request in progress still gets its answer. A client that reads nothing of what it is sent
//! cannot hold its connection (and the answer buffered for it) that way: once the connection's
//! writes have made no progress for the send timeout (nginx's `send_timeout`), it is closed at
//! once, graceful or not; so is one whose answers have not moved for that long (an HTTP/2
//! client can keep its socket busy and still never open a stream's window: see
//! [`crate::buffers`]). Hand-written because neither hyper-util nor tower-http tracks
//! connections. [`ConnectionGuard`] lends the same guards to a server that runs its own
//! connections (the article service's tonic server), and there an accept that fails for want
//! of descriptors also closes the idlest connection.
//!
//! The head limit is enforced twice: hyper bounds its HTTP/1 read buffer and HTTP/2's header
//! list (a head that overflows them gets hyper's own `431`, empty body, and bounds memory), but
//! the buffer bound is only checked while a head is incomplete, so a head that arrives in one
//! read can pass it. [`limit_head`] then measures each request's head exactly and answers 431
//! in the gateway's error shape (a gRPC status for a gRPC or gRPC-Web call).

use std::{
    collections::HashMap,
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{ConnectInfo, Request, State},
    middleware::{self, Next},
    response::{IntoResponse as _, Response},
};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto::Builder,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::{Notify, watch},
};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::{
    buffers::Unsent,
    error::Error,
    grpc_proxy::{self, Protocol},
    limits::{
        DEFAULT_DRAIN_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
        DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_QUERY_LENGTH,
        DEFAULT_SEND_TIMEOUT,
    },
};

/// hyper refuses an HTTP/1 read buffer smaller than this.
const MIN_HTTP1_BUFFER: usize = 8192;

/// How long a client may take to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection-level settings of [`serve_with`].
#[derive(Clone)]
pub struct ServeOptions {
    /// The largest request head accepted, in bytes: HTTP/1's read buffer (at least 8 KiB,
    /// hyper's minimum) and HTTP/2's `SETTINGS_MAX_HEADER_LIST_SIZE`. Larger: 431.
    pub max_header_bytes: usize,
    /// How long in-flight requests may run once shutdown starts; connections still open after
    /// it are closed.
    pub drain_timeout: Duration,
    /// TLS on the listener (see [`super::tls`]); plain HTTP when `None`.
    pub tls: Option<TlsAcceptor>,
    /// How long a client may take to send its first byte and each request's head.
    pub header_read_timeout: Duration,
    /// How long a connection may go without a byte either way before it is closed.
    pub idle_timeout: Duration,
    /// How long a connection's writes may make no progress before it is closed at once.
    pub send_timeout: Duration,
    /// How many connections may be open at once; past it, the idlest is closed.
    pub max_connections: usize,
    /// The longest query string the gateway takes (checked per request, 414): HTTP/1's read
    /// buffer makes room for it beside the head limit, which counts the head without it.
    pub max_query_length: usize,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("max_header_bytes", &self.max_header_bytes)
            .field("drain_timeout", &self.drain_timeout)
            .field("tls", &self.tls.is_some())
            .field("header_read_timeout", &self.header_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("send_timeout", &self.send_timeout)
            .field("max_connections", &self.max_connections)
            .field("max_query_length", &self.max_query_length)
            .finish()
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            tls: None,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_query_length: DEFAULT_MAX_QUERY_LENGTH,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes: then stops accepting (new
/// connections are refused once the listener is dropped), lets in-flight requests finish
/// within `options.drain_timeout`, and returns. Each request carries the peer address as
/// [`ConnectInfo`] (for `X-Forwarded-For`).
///
/// # Errors
/// None today: accept errors are logged and retried. The `Result` leaves room for fatal ones.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        // Room for twice the head limit: a head over the limit but within the buffer reaches
        // `limit_head` and gets the JSON 431; only a larger one gets hyper's own, empty 431.
        // The buffer grows only as a connection's data needs it.
        .max_buf_size(
            options
                .max_header_bytes
                .max(MIN_HTTP1_BUFFER)
                .saturating_mul(2)
                .saturating_add(options.max_query_length),
        );
    builder
        .http2()
        .timer(TokioTimer::new())
        // Twice the limit, as for HTTP/1: `limit_head` answers what lies between.
        .max_header_list_size(
            u32::try_from(options.max_header_bytes.saturating_mul(2)).unwrap_or(u32::MAX),
        );
    let router = router.layer(middleware::from_fn_with_state(
        options.max_header_bytes,
        limit_head,
    ));
    let (drain_tx, drain_rx) = watch::channel(false);
    let open = Arc::new(Open::default());
    let epoch = Instant::now();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_failed(&open, &e).await;
                    continue;
                }
            },
        };
        // Responses go out in one or two writes; without TCP_NODELAY a second small write can
        // wait for the client's delayed ACK (Nagle), adding ~40 ms.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let conn = open.add(options.max_connections, epoch);
        let unsent = Arc::clone(&conn.state.unsent);
        let service = router
            .clone()
            .map_request(move |mut request: http::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.extensions_mut().insert(Arc::clone(&unsent));
                request
            });
        let service = TowerToHyperService::new(service);
        let builder = builder.clone();
        let watcher = drain_rx.clone();
        let limits = Timeouts {
            header_read: options.header_read_timeout,
            idle: options.idle_timeout,
            send: options.send_timeout,
        };
        match options.tls.clone() {
            None => {
                tokio::spawn(async move {
                    // Nothing at all within the header timeout: no client, just a socket.
                    let mut first = [0u8; 1];
                    let spoke = tokio::select! {
                        peeked = tokio::time::timeout(limits.header_read, stream.peek(&mut first)) => {
                            peeked.is_ok()
                        }
                        () = conn.state.close.notified() => false,
                    };
                    if !spoke {
                        tracing::debug!(peer = %peer, "no byte within the header read timeout");
                        return;
                    }
                    let io = Tracked::new(stream, &conn);
                    serve_connection(&builder, watcher, io, service, peer, &conn, limits).await;
                });
            }
            Some(acceptor) => {
                // The handshake runs in the connection's task, so a slow client holds up only
                // itself, and is bounded by a timeout.
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    match handshake {
                        Ok(Ok(tls)) => {
                            let io = Tracked::new(tls, &conn);
                            serve_connection(&builder, watcher, io, service, peer, &conn, limits)
                                .await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
    // Refuse new connections from here on.
    drop(listener);
    tracing::info!(connections = open.len(), "draining in-flight requests");
    let _ = drain_tx.send(true);
    if tokio::time::timeout(options.drain_timeout, open.emptied())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout = ?options.drain_timeout,
            "connections still open after the drain timeout were closed"
        );
    }
    Ok(())
}

/// The timeouts of one connection.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    header_read: Duration,
    idle: Duration,
    send: Duration,
}

/// Serves one connection (plain TCP or TLS) until it closes; closes it gracefully when the
/// server drains, when it is idle for `idle`, or when told to make room; and at once when its
/// writes have been stuck for `send`.
async fn serve_connection<I, S>(
    builder: &Builder<TokioExecutor>,
    drain: watch::Receiver<bool>,
    io: I,
    service: S,
    peer: std::net::SocketAddr,
    conn: &Registered,
    timeouts: Timeouts,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<http::Request<Incoming>, Response = Response>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    tokio::pin!(connection);
    let mut drain = drain;
    let mut closing = false;
    let check = timeouts
        .idle
        .min(timeouts.send)
        .min(Duration::from_secs(1))
        .max(Duration::from_millis(10));
    // Bounded by the connection: every arm but the first only starts its graceful close, or
    // ends the connection.
    loop {
        let why = tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = drain.changed(), if !closing => "the server is shutting down",
            () = conn.state.close.notified(), if !closing => "closing the idlest connection to make room",
            () = tokio::time::sleep(check) => {
                if conn.write_stuck_for() >= timeouts.send
                    || conn.state.unsent.stuck_for() >= timeouts.send
                {
                    // A graceful close would wait for the very answer the client does not
                    // read: the connection goes now, and with it what it holds.
                    tracing::info!(
                        peer = %peer,
                        timeout = ?timeouts.send,
                        "closing a connection whose client reads nothing (send timeout)"
                    );
                    return;
                }
                if closing || conn.idle_for() < timeouts.idle {
                    continue;
                }
                "closing an idle connection"
            }
        };
        tracing::debug!(peer = %peer, why);
        // A request in progress still gets its answer; then the connection closes.
        connection.as_mut().graceful_shutdown();
        closing = true;
    }
}

/// The open connections, for the cap and the drain.
#[derive(Default)]
struct Open {
    next_id: AtomicU64,
    connections: Mutex<HashMap<u64, Arc<ConnState>>>,
    /// Notified when the last connection goes.
    empty: Notify,
}

/// One open connection's state.
struct ConnState {
    /// When it last read or wrote a byte, in milliseconds since the server started.
    last_activity: AtomicU64,
    /// Since when its writes have been waiting for the client to read, in milliseconds since
    /// the server started plus one; 0 while they are not.
    write_stuck_since: AtomicU64,
    /// Its answers that wait to be handed to it whole ([`crate::buffers`]).
    unsent: Arc<Unsent>,
    epoch: Instant,
    /// Notified to close it.
    close: Notify,
}

impl ConnState {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_activity.store(self.now(), Ordering::Relaxed);
    }

    /// Records how a write went: progress clears the stuck mark, a wait sets it (once).
    fn wrote(&self, polled: &Poll<io::Result<usize>>) {
        match polled {
            Poll::Ready(Ok(n)) if *n > 0 => {
                self.touch();
                self.unstuck();
            }
            Poll::Pending => self.stuck(),
            Poll::Ready(_) => {}
        }
    }

    /// Records how a flush went: waiting marks the connection stuck (a TLS stream's flush is
    /// where its records wait for the socket); finishing clears nothing, since a plain socket's
    /// flush is always done at once, stuck or not.
    fn flushed(&self, polled: &Poll<io::Result<()>>) {
        if polled.is_pending() {
            self.stuck();
        }
    }

    fn unstuck(&self) {
        self.write_stuck_since.store(0, Ordering::Relaxed);
    }

    fn stuck(&self) {
        let since = self.now().saturating_add(1);
        // Only the first wait marks it: the mark says since when, not since the last poll.
        let _ =
            self.write_stuck_since
                .compare_exchange(0, since, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// A connection's registration: removed from [`Open`] when dropped.
struct Registered {
    id: u64,
    state: Arc<ConnState>,
    open: Arc<Open>,
}

impl Registered {
    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.state.last_activity.load(Ordering::Relaxed));
        self.state.epoch.elapsed().saturating_sub(last)
    }

    /// How long its writes have been waiting for the client to read (zero when they are not).
    fn write_stuck_for(&self) -> Duration {
        match self.state.write_stuck_since.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => self
                .state
                .epoch
                .elapsed()
                .saturating_sub(Duration::from_millis(since - 1)),
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut connections = self
            .open
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        connections.remove(&self.id);
        if connections.is_empty() {
            self.open.empty.notify_waiters();
        }
    }
}

impl Open {
    fn len(&self) -> usize {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Completes once no connection is open.
    async fn emptied(&self) {
        // Bounded by the connections: each pass waits for one to go.
        loop {
            let notified = self.empty.notified();
            if self.len() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Registers a new connection; at the cap, tells the one idle the longest to close.
    fn add(self: &Arc<Self>, max: usize, epoch: Instant) -> Registered {
        let state = Arc::new(ConnState {
            last_activity: AtomicU64::new(0),
            write_stuck_since: AtomicU64::new(0),
            unsent: Arc::new(Unsent::new(epoch)),
            epoch,
            close: Notify::new(),
        });
        state.touch();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut connections = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if connections.len() >= max.max(1) {
            tell_idlest_to_close(&connections);
        }
        connections.insert(id, Arc::clone(&state));
        Registered {
            id,
            state,
            open: Arc::clone(self),
        }
    }
}

/// Tells the connection idle the longest to close, and never picks it again.
fn tell_idlest_to_close(connections: &HashMap<u64, Arc<ConnState>>) {
    let idlest = connections
        .values()
        .min_by_key(|c| c.last_activity.load(Ordering::Relaxed));
    if let Some(idlest) = idlest {
        // `notify_one` keeps the permit if the connection is not waiting right now.
        idlest.close.notify_one();
        idlest.last_activity.store(u64::MAX, Ordering::Relaxed);
    }
}

/// An I/O stream that records when it last moved a byte (see [`ConnectionGuard::track`]).
pub struct Tracked<I> {
    inner: I,
    state: Arc<ConnState>,
}

impl<I> Tracked<I> {
    fn new(inner: I, conn: &Registered) -> Self {
        Self {
            inner,
            state: Arc::clone(&conn.state),
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.state.touch();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.state.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.state.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.state.flushed(&polled);
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Answers 431 when the request's head (request line and headers, as HTTP/1 writes them, the
/// query string left out: it has a limit of its own) is larger than `limit` bytes.
async fn limit_head(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let line = request.method().as_str().len() + request.uri().path().len() + " HTTP/1.1\r\n".len();
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + ": \r\n".len())
        .sum();
    if line + headers > limit {
        let error = Error::HeadersTooLarge { limit };
        // A gRPC client reads a status, not a JSON body.
        if Protocol::of(request.headers()).is_grpc() {
            return grpc_proxy::error_response(&error);
        }
        return error.into_response();
    }
    next.run(request).await
}

/// A failed `accept`: per-connection errors are skipped at once. Any other (too many open
/// files, no memory) would fail again at once, spinning a core, and leaves the waiting clients
/// unserved: it closes the idlest connection, to free a descriptor, and pauses
/// [`ACCEPT_BACKOFF`].
async fn accept_failed(open: &Open, e: &io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::warn!(
        error = %e,
        open = open.len(),
        "accept failed; closing the idlest connection, retrying in {ACCEPT_BACKOFF:?}"
    );
    tell_idlest_to_close(
        &open
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}

impl<I: tonic::transport::server::Connected> tonic::transport::server::Connected for Tracked<I> {
    type ConnectInfo = I::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<I> std::fmt::Debug for Tracked<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracked").finish_non_exhaustive()
    }
}

/// How long an accept that failed for want of descriptors (or memory) waits before the next
/// one: long enough not to spin, short enough that the descriptor freed meanwhile (by closing
/// the idlest connection) is soon used.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The guards of [`serve_with`] for a server that serves its connections itself (the article
/// service's tonic server): the same first-byte and idle timeouts, the same cap that closes the
/// idlest connection, and an accept that never spins when descriptors run out.
///
/// Each accepted connection is [`admit`](Self::admit)ted, waits for its
/// [`first_byte`](Admitted::first_byte), is served through [`track`](Admitted::track)'s
/// stream, and is closed gracefully once [`should_close`](Admitted::should_close) completes.
#[derive(Clone)]
pub struct ConnectionGuard {
    open: Arc<Open>,
    epoch: Instant,
    max_connections: usize,
    header_read_timeout: Duration,
    idle_timeout: Duration,
}

impl std::fmt::Debug for ConnectionGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionGuard")
            .field("open", &self.open.len())
            .field("max_connections", &self.max_connections)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

impl ConnectionGuard {
    /// Guards with these limits (see [`ServeOptions`] for what each means).
    pub fn new(
        max_connections: usize,
        header_read_timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            open: Arc::new(Open::default()),
            epoch: Instant::now(),
            max_connections,
            header_read_timeout,
            idle_timeout,
        }
    }

    /// Registers a connection just accepted; at the cap, the one idle the longest is told to
    /// close. It counts as open until the returned [`Admitted`] is dropped.
    pub fn admit(&self) -> Admitted {
        Admitted {
            conn: self.open.add(self.max_connections, self.epoch),
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
        }
    }

    /// How many connections are open.
    pub fn open_connections(&self) -> usize {
        self.open.len()
    }

    /// Completes once no connection is open.
    pub async fn emptied(&self) {
        self.open.emptied().await;
    }

    /// A failed `accept`, handled as [`serve_with`] handles its own: see [`accept_failed`].
    pub async fn accept_failed(&self, e: &io::Error) {
        accept_failed(&self.open, e).await;
    }
}

/// One connection under a [`ConnectionGuard`].
pub struct Admitted {
    conn: Registered,
    header_read_timeout: Duration,
    idle_timeout: Duration,
}

impl std::fmt::Debug for Admitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admitted")
            .field("id", &self.conn.id)
            .field("idle_for", &self.conn.idle_for())
            .finish()
    }
}

impl Admitted {
    /// Waits for the client's first byte: `false` when none came within the header read
    /// timeout (no client, just a socket) or the connection was told to close meanwhile.
    pub async fn first_byte(&self, stream: &tokio::net::TcpStream) -> bool {
        let mut first = [0u8; 1];
        tokio::select! {
            peeked = tokio::time::timeout(self.header_read_timeout, stream.peek(&mut first)) => {
                matches!(peeked, Ok(Ok(n)) if n > 0)
            }
            () = self.conn.state.close.notified() => false,
        }
    }

    /// `io`, recording each byte it moves as this connection's activity.
    pub fn track<I>(&self, io: I) -> Tracked<I> {
        Tracked::new(io, &self.conn)
    }

    /// Completes, saying why, once the connection should close gracefully: it has had no
    /// traffic for the idle timeout, or it was told to make room.
    pub async fn should_close(&self) -> &'static str {
        let check = self
            .idle_timeout
            .min(Duration::from_secs(1))
            .max(Duration::from_millis(10));
        // Bounded by the connection: the caller drops this future when the connection ends.
        loop {
            tokio::select! {
                () = self.conn.state.close.notified() => {
                    return "closing the idlest connection to make room";
                }
                () = tokio::time::sleep(check) => {
                    if self.conn.idle_for() >= self.idle_timeout {
                        return "closing an idle connection";
                    }
                }
            }
        }
    }
}

//! Accepting connections and serving each with hyper-util's auto builder (HTTP/1.1 and h2c),
//! under the connection-level limits, with a graceful drain at shutdown.
//!
//! axum's own `serve` exposes no hyper settings; serving connections directly sets the
//! header-size limits and HTTP/1's header read timeout (slowloris), and bounds the drain.
//!
//! The head limit is enforced twice: hyper bounds its HTTP/1 read buffer and HTTP/2's header
//! list (a head that overflows them gets hyper's own `431`, empty body, and bounds memory), but
//! the buffer bound is only checked while a head is incomplete, so a head that arrives in one
//! read can pass it. [`limit_head`] then measures each request's head exactly and answers 431
//! in the gateway's error shape.

use std::{future::Future, io, time::Duration};

use axum::{
    Router,
    extract::{ConnectInfo, Request, State},
    middleware::{self, Next},
    response::{IntoResponse as _, Response},
};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto::Builder, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::error::Error;

/// The default limit on a request's head (request line and headers), in bytes: 64 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// The default time in-flight requests get to finish once shutdown starts: 30 s.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an HTTP/1 client may take to send a request's head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
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
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("max_header_bytes", &self.max_header_bytes)
            .field("drain_timeout", &self.drain_timeout)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            tls: None,
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
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(options.max_header_bytes.max(MIN_HTTP1_BUFFER));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX));
    let router = router.layer(middleware::from_fn_with_state(
        options.max_header_bytes,
        limit_head,
    ));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
        };
        // Responses go out in one or two writes; without TCP_NODELAY a second small write can
        // wait for the client's delayed ACK (Nagle), adding ~40 ms.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let service = router
            .clone()
            .map_request(move |mut request: http::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let service = TowerToHyperService::new(service);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        match options.tls.clone() {
            None => {
                tokio::spawn(async move {
                    serve_connection(&builder, watcher, stream, service, peer).await;
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
                            serve_connection(&builder, watcher, tls, service, peer).await;
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
    tracing::info!(
        connections = graceful.count(),
        "draining in-flight requests"
    );
    if tokio::time::timeout(options.drain_timeout, graceful.shutdown())
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

/// Serves one connection (plain TCP or TLS) until it closes, watched by the graceful drain.
async fn serve_connection<I, S>(
    builder: &Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    io: I,
    service: S,
    peer: std::net::SocketAddr,
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
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
    }
}

/// Answers 431 when the request's head (request line and headers, as HTTP/1 writes them) is
/// larger than `limit` bytes.
async fn limit_head(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let line = request.method().as_str().len()
        + request
            .uri()
            .path_and_query()
            .map_or(1, |p| p.as_str().len())
        + " HTTP/1.1\r\n".len();
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + ": \r\n".len())
        .sum();
    if line + headers > limit {
        return Error::HeadersTooLarge { limit }.into_response();
    }
    next.run(request).await
}

/// A failed `accept`: per-connection errors are skipped; others (such as too many open
/// files) are logged and retried after a pause, as hyper's and axum's servers do.
async fn accept_failed(e: &io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

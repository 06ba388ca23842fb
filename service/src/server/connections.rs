//! The gRPC port's connections, under the gateway's guards ([`ConnectionGuard`]): a client
//! that sends no byte within the header read timeout is closed, so is a connection with no
//! traffic either way for the idle timeout, past the connection cap the one idle the longest
//! is closed for each new one, and an accept that fails (too many open files) closes the idlest
//! and pauses instead of retrying at once. tonic's own accept loop has none of these: it
//! retries a failing accept at once, spinning a core while sockets hold every descriptor.
//!
//! Each connection is served by a tonic server of its own (a clone of one [`Router`], given
//! that one connection): tonic keeps every setting and layer it applies per connection (the
//! h2 settings, the rapid-reset guard, `grpc-timeout`, the peer address), and its graceful
//! shutdown, triggered by that connection's own signal, closes one connection the way the
//! gateway closes its own: a call in progress still gets its answer.
//!
//! [`Router`]: tonic::transport::server::Router

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use articles_gateway::server::{ConnectionGuard, Tracked};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{oneshot, watch},
};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How the gRPC port guards its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a new connection may stay silent before it is closed.
    pub header_read_timeout: Duration,
    /// How long a connection may go without a byte either way before it is closed gracefully.
    pub idle_timeout: Duration,
    /// How many connections may be open at once; past it, the idlest is closed.
    pub max_connections: usize,
}

/// The default [`ConnectionLimits::header_read_timeout`]: gRPC and gRPC-Web clients speak as
/// soon as they connect.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The default [`ConnectionLimits::idle_timeout`]: longer than the gateway's 75 s, since gRPC
/// clients (the gateway among them) keep pooled connections open between calls, and each close
/// makes them connect again.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// The default [`ConnectionLimits::max_connections`], the gateway's.
pub const DEFAULT_MAX_CONNECTIONS: usize = articles_gateway::limits::DEFAULT_MAX_CONNECTIONS;

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// The signal that closes one connection gracefully.
pub(super) type Closing = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Accepts on `listener` until `shutdown` completes, serving each connection with
/// `serve_one(io, closing)` (a tonic server that closes the connection gracefully once
/// `closing` completes); then stops accepting, tells every connection to close, and waits for
/// all of them (a watch ends at shutdown, so each call does).
pub(super) async fn serve<S, Fut>(
    listener: TcpListener,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
    serve_one: S,
) where
    S: Fn(Served, Closing) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), tonic::transport::Error>> + Send + 'static,
{
    let guard = ConnectionGuard::new(
        limits.max_connections,
        limits.header_read_timeout,
        limits.idle_timeout,
    );
    let serve_one = Arc::new(serve_one);
    let (drain_tx, drain_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    // Bounded by `shutdown`; a failing accept pauses (see `accept_failed`).
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    guard.accept_failed(&e).await;
                    continue;
                }
            },
        };
        // Without TCP_NODELAY each multi-frame HTTP/2 answer waits ~40 ms for the peer's
        // delayed ACK (Nagle): the benchmark found every call floored at 44 ms.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let admitted = Arc::new(guard.admit());
        let serve_one = Arc::clone(&serve_one);
        let mut drain = drain_rx.clone();
        tokio::spawn(async move {
            let spoke = tokio::select! {
                spoke = admitted.first_byte(&stream) => spoke,
                _ = drain.wait_for(|stop| *stop) => false,
            };
            if !spoke {
                tracing::debug!(%peer, "no byte within the header read timeout");
                return;
            }
            let (gone_tx, gone_rx) = oneshot::channel();
            let io = Served {
                io: admitted.track(stream),
                _gone: gone_tx,
            };
            let closing = {
                let admitted = Arc::clone(&admitted);
                Box::pin(async move {
                    let why = tokio::select! {
                        why = admitted.should_close() => why,
                        _ = drain.wait_for(|stop| *stop) => "the server is shutting down",
                        // The connection ended by itself: its server has nothing left to do.
                        _ = gone_rx => return,
                    };
                    tracing::debug!(%peer, why);
                })
            };
            if let Err(e) = serve_one(io, closing).await {
                tracing::debug!(%peer, error = %e, "connection failed");
            }
        });
    }
    // Refuse new connections from here on.
    drop(listener);
    tracing::info!(
        connections = guard.open_connections(),
        "draining in-flight calls"
    );
    let _ = drain_tx.send(true);
    guard.emptied().await;
}

/// An accepted connection as its tonic server sees it: tracked for the idle timeout and the
/// cap, and telling, when dropped (the connection ended), that its server can stop.
pub(super) struct Served {
    io: Tracked<TcpStream>,
    _gone: oneshot::Sender<()>,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served").finish_non_exhaustive()
    }
}

impl Connected for Served {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl AsyncRead for Served {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Served {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Descriptors kept for everything but client connections (database files and sockets, the
/// other listeners, logs), at most half the limit.
const RESERVED_DESCRIPTORS: u64 = 64;

/// Raises the soft open-files limit to the hard one (the default soft limit, often 1024, is
/// far below what the cap allows), and returns the limit in force, if known.
pub(super) fn raise_open_files_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            tracing::debug!(limit, "open files limit");
            Some(limit)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open files limit");
            None
        }
    }
}

/// The connection cap the open files `limit` allows: `wanted`, or less when the descriptors
/// left after [`RESERVED_DESCRIPTORS`] (shared with `--rest`'s connections when `shared`) are
/// fewer. Past the cap the idlest connection is closed, which keeps accepting; past the limit
/// every accept fails.
pub(super) fn connection_cap(wanted: usize, limit: Option<u64>, shared: bool) -> usize {
    let Some(limit) = limit else {
        return wanted;
    };
    let available = limit.saturating_sub(RESERVED_DESCRIPTORS.min(limit / 2));
    let available = if shared { available / 2 } else { available };
    let cap = usize::try_from(available).unwrap_or(usize::MAX).max(1);
    if cap < wanted {
        tracing::warn!(
            limit,
            wanted,
            cap,
            "the open files limit is below --grpc-max-client-connections: capping gRPC \
             connections at {cap}"
        );
        cap
    } else {
        wanted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_descriptors_for_the_rest() {
        assert_eq!(connection_cap(10_000, None, false), 10_000);
        assert_eq!(connection_cap(10_000, Some(1_048_576), true), 10_000);
        assert_eq!(connection_cap(10_000, Some(1024), false), 960);
        assert_eq!(connection_cap(10_000, Some(1024), true), 480);
        assert_eq!(connection_cap(10_000, Some(64), false), 32);
        assert_eq!(connection_cap(10_000, Some(1), false), 1);
    }
}

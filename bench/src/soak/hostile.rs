//! The soak's hostile mode (`bench soak --hostile`): mixed into the normal load, the traffic
//! that one unauthenticated client used to take the REST side down with (bodies trickled a
//! byte at a time, sockets that never speak, clients hanging up mid-call, deadlines that have
//! already expired). The soak passes only if the well-behaved clients see no failure at all;
//! what the hostile clients get is counted, not judged.
//!
//! Every loop here stops at the soak's deadline (or its stop flag), and each hostile client
//! is a bounded number of sockets.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    task::JoinSet,
    time::Instant,
};

use super::worker::Control;

/// Sockets trickling bodies.
const SLOW_BODIES: usize = 32;
/// Sockets that never send a byte.
const SILENT_SOCKETS: usize = 128;
/// Requests per round whose clients hang up at once.
const HANG_UPS_PER_ROUND: usize = 50;

/// What the hostile clients did.
#[derive(Debug, Default)]
pub(crate) struct Hostile {
    /// Connections opened.
    pub(crate) connections: AtomicU64,
    /// Connections the gateway closed (or answered and closed).
    pub(crate) closed_by_server: AtomicU64,
    /// Requests whose client hung up right after sending.
    pub(crate) hang_ups: AtomicU64,
    /// Requests sent with an expired deadline.
    pub(crate) expired: AtomicU64,
}

impl Hostile {
    /// One line for the report.
    pub(crate) fn render(&self) -> String {
        format!(
            "hostile clients: {} connections opened, {} closed by the gateway, {} hang-ups, {} \
             expired deadlines",
            self.connections.load(Ordering::Relaxed),
            self.closed_by_server.load(Ordering::Relaxed),
            self.hang_ups.load(Ordering::Relaxed),
            self.expired.load(Ordering::Relaxed),
        )
    }
}

fn running(control: &Control) -> bool {
    Instant::now() < control.deadline && !control.stop.load(Ordering::Relaxed)
}

/// Starts every hostile client against the gateway at `addr`; they end with the soak.
pub(crate) fn spawn(
    addr: SocketAddr,
    control: &Arc<Control>,
    hostile: &Arc<Hostile>,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for _ in 0..SLOW_BODIES {
        set.spawn(slow_body(addr, Arc::clone(control), Arc::clone(hostile)));
    }
    for _ in 0..SILENT_SOCKETS {
        set.spawn(silent_socket(
            addr,
            Arc::clone(control),
            Arc::clone(hostile),
        ));
    }
    set.spawn(hang_ups(addr, Arc::clone(control), Arc::clone(hostile)));
    set.spawn(expired_deadlines(
        addr,
        Arc::clone(control),
        Arc::clone(hostile),
    ));
    set
}

async fn connect(addr: SocketAddr, hostile: &Hostile) -> Option<TcpStream> {
    let socket = TcpStream::connect(addr).await.ok()?;
    hostile.connections.fetch_add(1, Ordering::Relaxed);
    Some(socket)
}

/// A `POST /articles` declaring 100 kB and sending a byte every half second, again and again.
async fn slow_body(addr: SocketAddr, control: Arc<Control>, hostile: Arc<Hostile>) {
    while running(&control) {
        let Some(mut socket) = connect(addr, &hostile).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let head = b"POST /articles HTTP/1.1\r\nhost: soak\r\ncontent-type: application/json\r\n\
                     content-length: 100000\r\n\r\n{";
        if socket.write_all(head).await.is_err() {
            continue;
        }
        while running(&control) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if socket.write_all(b" ").await.is_err() {
                hostile.closed_by_server.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
}

/// A socket that says nothing; reconnected when the gateway closes it.
async fn silent_socket(addr: SocketAddr, control: Arc<Control>, hostile: Arc<Hostile>) {
    while running(&control) {
        let Some(mut socket) = connect(addr, &hostile).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut buf = [0u8; 64];
        match tokio::time::timeout_at(control.deadline, socket.read(&mut buf)).await {
            Ok(_) => {
                hostile.closed_by_server.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => return,
        }
    }
}

/// Rounds of requests to a slow-ish list whose clients hang up as soon as they are sent.
async fn hang_ups(addr: SocketAddr, control: Arc<Control>, hostile: Arc<Hostile>) {
    while running(&control) {
        let round = (0..HANG_UPS_PER_ROUND).map(|_| {
            let hostile = Arc::clone(&hostile);
            async move {
                if let Some(mut socket) = connect(addr, &hostile).await {
                    let request =
                        b"GET /articles?page=1&page_size=100 HTTP/1.1\r\nhost: soak\r\n\r\n";
                    if socket.write_all(request).await.is_ok() {
                        hostile.hang_ups.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        futures::future::join_all(round).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Requests whose deadline has passed (`Grpc-Timeout: 0S`) or passes at once (1 ms).
async fn expired_deadlines(addr: SocketAddr, control: Arc<Control>, hostile: Arc<Hostile>) {
    let mut socket: Option<TcpStream> = None;
    let mut n: u64 = 0;
    while running(&control) {
        if socket.is_none() {
            socket = connect(addr, &hostile).await;
        }
        let Some(s) = socket.as_mut() else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        n += 1;
        let timeout = if n.is_multiple_of(2) { "0S" } else { "1m" };
        let request = format!(
            "GET /articles?page=1&page_size=100 HTTP/1.1\r\nhost: soak\r\ngrpc-timeout: {timeout}\r\n\r\n"
        );
        let mut buf = [0u8; 4096];
        let answered = s.write_all(request.as_bytes()).await.is_ok()
            && tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
                .await
                .is_ok_and(|r| r.is_ok_and(|n| n > 0));
        if answered {
            hostile.expired.fetch_add(1, Ordering::Relaxed);
        } else {
            socket = None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

//! The gRPC port's connection guards, on the real binary: silent sockets closed after the
//! header read timeout, the idlest connection closed past the cap, and no spinning when the
//! open files limit is reached; real gRPC clients served meanwhile.

use std::time::{Duration, Instant};

use articles_proto::article::v1::{self as pb, article_service_client::ArticleServiceClient};
use tokio::{io::AsyncReadExt as _, net::TcpStream};
use tonic::transport::Channel;

use crate::support::{Stack, TestDb};

/// Opens up to `n` TCP connections to `stack`'s gRPC port that never send a byte, stopping at
/// the first that the port does not take within 2 s (its accept queue is full).
async fn silent_sockets(stack: &Stack, n: usize) -> Vec<TcpStream> {
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(stack.addr())).await {
            Ok(connected) => sockets.push(connected.expect("connect")),
            Err(_) => break,
        }
    }
    sockets
}

/// Whether the server closed `socket` (end of stream or reset) within `within`.
async fn closed_within(socket: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(within, socket.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// A real gRPC call on a new connection succeeds within `within`; the client, whose
/// connection stays open while it is held.
async fn served(stack: &Stack, within: Duration) -> ArticleServiceClient<Channel> {
    let call = async {
        let mut client = stack.client().await;
        client
            .article_detail(pb::ArticleDetailRequest { pk: 1 })
            .await
            .expect("ArticleDetail");
        client
    };
    tokio::time::timeout(within, call)
        .await
        .expect("a new gRPC client is served in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_on_the_grpc_port_are_closed_after_the_header_read_timeout() {
    let db = TestDb::sqlite();
    let stack = Stack::on(&db)
        .demo(3)
        .process(&["--grpc-header-read-timeout", "500ms"])
        .start()
        .await;
    let started = Instant::now();
    let mut sockets = silent_sockets(&stack, 20).await;
    assert_eq!(sockets.len(), 20);
    // A client that speaks is served while they wait.
    served(&stack, Duration::from_secs(5)).await;
    for (i, socket) in sockets.iter_mut().enumerate() {
        assert!(
            closed_within(socket, Duration::from_secs(5)).await,
            "silent socket {i} still open after {:?}",
            started.elapsed()
        );
    }
    served(&stack, Duration::from_secs(5)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_the_idlest_grpc_connection_is_closed_for_a_new_client() {
    let db = TestDb::sqlite();
    let stack = Stack::on(&db)
        .demo(3)
        .process(&["--grpc-max-client-connections", "4"])
        .start()
        .await;
    // The connection of the start's health check is gone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut sockets = Vec::new();
    for _ in 0..4 {
        sockets.extend(silent_sockets(&stack, 1).await);
        // Each a little idler than the next.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The cap is full of silent sockets (closed only after the default 10 s): each new client
    // closes the idlest, and is served; the clients stay connected.
    let mut clients = Vec::new();
    for (i, socket) in sockets.iter_mut().enumerate() {
        clients.push(served(&stack, Duration::from_secs(5)).await);
        assert!(
            closed_within(socket, Duration::from_secs(2)).await,
            "silent socket {i}, the idlest, is closed to make room"
        );
    }
    // The clients that came in are still connected, and served.
    for client in &mut clients {
        let call = client.article_detail(pb::ArticleDetailRequest { pk: 1 });
        tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .expect("in time")
            .expect("ArticleDetail");
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_open_files_limit_the_service_does_not_spin_and_serves_again() {
    const LIMIT: u64 = 64;
    let db = TestDb::sqlite();
    let stack = Stack::on(&db).demo(3).open_files_limit(LIMIT).start().await;
    // More silent sockets than the process has descriptors for.
    let sockets = silent_sockets(&stack, 3 * usize::try_from(LIMIT).expect("small")).await;
    assert!(
        u64::try_from(sockets.len()).expect("small") > LIMIT,
        "only {} connections taken",
        sockets.len()
    );
    // Let the service take what it can of them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (cpu_before, wall_before) = (stack.cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu, wall) = (stack.cpu_time() - cpu_before, wall_before.elapsed());
    assert!(
        cpu.as_secs_f64() < 0.1 * wall.as_secs_f64(),
        "the service used {cpu:?} of CPU in {wall:?} with its descriptors taken by silent sockets"
    );
    // A client that speaks is served even while they are open (the idlest makes room)...
    served(&stack, Duration::from_secs(10)).await;
    drop(sockets);
    // ... and once they go.
    served(&stack, Duration::from_secs(10)).await;
    stack.stop().await;
}

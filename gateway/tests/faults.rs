//! Faults: a client that goes away lets its unary call finish (no reset), and the real `articles-gateway`
//! binary shuts down gracefully on SIGTERM (in-flight requests finish, new ones are refused,
//! exit status 0). Slow backends and deadlines are in `errors`; a backend that goes down and
//! comes back is in the service's `faults_backend_restart` (it needs the real service).

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use articles_gateway::{Backend, GatewayBuilder};
use http::StatusCode;
use tokio::net::TcpListener;
use tonic::{Status, service::Routes};

use crate::support::{
    Spawned, library_descriptor_bytes, library_pool, spawn_echo_backend, spawn_gateway,
    spawn_gateway_with,
};

/// What the slow backend saw of its one call.
#[derive(Debug, Default)]
struct Probe {
    started: AtomicBool,
    completed: AtomicBool,
    dropped_before_completion: AtomicBool,
}

/// Marks the probe when the handler's future is dropped before it completed.
struct DropGuard(Arc<Probe>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.0.completed.load(Ordering::SeqCst) {
            self.0
                .dropped_before_completion
                .store(true, Ordering::SeqCst);
        }
    }
}

/// A gRPC backend whose every call takes 5 s, recording whether it was cancelled.
async fn spawn_slow_backend(probe: Arc<Probe>) -> (String, tokio::sync::oneshot::Sender<()>) {
    let service = tower::service_fn(move |_request: http::Request<axum::body::Body>| {
        let probe = probe.clone();
        async move {
            probe.started.store(true, Ordering::SeqCst);
            let guard = DropGuard(probe.clone());
            tokio::time::sleep(Duration::from_secs(5)).await;
            probe.completed.store(true, Ordering::SeqCst);
            drop(guard);
            Ok::<_, Infallible>(Status::unavailable("too late").into_http::<tonic::body::Body>())
        }
    });
    let routes = Routes::from(axum::Router::new().fallback_service(service));
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    let url = match listener.local_addr() {
        Ok(a) => format!("http://{a}"),
        Err(e) => panic!("{e}"),
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let _ = tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            })
            .await;
    });
    (url, tx)
}

#[tokio::test]
async fn a_client_that_hangs_up_lets_its_unary_call_finish_without_a_reset() {
    let probe = Arc::new(Probe::default());
    let (url, _stop) = spawn_slow_backend(probe.clone()).await;
    let backend = match Backend::connect_lazy(&url, Duration::from_secs(1)) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    let router = match GatewayBuilder::new()
        .descriptors(library_pool())
        .backend(backend)
        .build()
    {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let gateway = spawn_gateway(router).await;
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
    {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let gave_up = client.get(gateway.url("/v1/shelves/1")).send().await;
    assert!(
        gave_up.as_ref().is_err_and(reqwest::Error::is_timeout),
        "{gave_up:?}"
    );
    drop(client);
    // The call is not reset (a flood of resets makes servers close the connection under
    // everyone's calls): it runs to its end, within its deadline.
    let deadline = Instant::now() + Duration::from_secs(8);
    while !probe.completed.load(Ordering::SeqCst) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        probe.started.load(Ordering::SeqCst),
        "the call never started"
    );
    assert!(
        probe.completed.load(Ordering::SeqCst),
        "the backend call did not finish"
    );
    assert!(!probe.dropped_before_completion.load(Ordering::SeqCst));
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_refuses_new_ones_and_exits_0() {
    let pool = library_pool();
    let echo = spawn_echo_backend(&pool).await;
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let descriptors = dir.path().join("library.binpb");
    if let Err(e) = std::fs::write(&descriptors, library_descriptor_bytes()) {
        panic!("{e}");
    }
    let port = free_port();
    let mut child = match tokio::process::Command::new(env!("CARGO_BIN_EXE_articles-gateway"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--backend", &format!("http://{}", echo.addr)])
        .arg("--descriptor-set")
        .arg(&descriptors)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let base = format!("http://127.0.0.1:{port}");
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let mut up = false;
    for _ in 0..100 {
        if client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the gateway binary never answered /healthz");

    let in_flight = tokio::spawn({
        let client = client.clone();
        let url = format!("{base}/v1/shelves/1");
        async move {
            client
                .get(url)
                .header("grpc-metadata-x-echo-delay-ms", "1500")
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let Some(pid) = child.id() else {
        panic!("the gateway exited early");
    };
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    assert!(killed.is_ok_and(|s| s.success()), "kill -TERM failed");
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A new connection during the drain: refused, or at most a clean 503.
    let fresh = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    match fresh.get(format!("{base}/v1/shelves/2")).send().await {
        Err(e) => assert!(e.is_connect(), "not refused: {e}"),
        Ok(r) => assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE),
    }

    let finished = match in_flight.await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => panic!("the in-flight request failed: {e}"),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(finished.status(), StatusCode::OK);
    let status = match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => panic!("{e}"),
        Err(_) => panic!("the gateway did not exit within 10 s of SIGTERM"),
    };
    assert!(status.success(), "exit status {status:?}");
}

/// A gateway in front of the echo backend with these connection settings.
async fn gateway_with(options: articles_gateway::server::ServeOptions) -> (Spawned, Spawned) {
    let pool = library_pool();
    let backend = spawn_echo_backend(&pool).await;
    let channel = match Backend::connect_lazy(&backend.url(""), Duration::from_secs(1)) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let router = match GatewayBuilder::new()
        .descriptors(pool)
        .backend(channel)
        .build()
    {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    (spawn_gateway_with(router, options).await, backend)
}

/// Reads until the peer closes (`true`) or `within` passes (`false`).
async fn closed_within(socket: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt as _;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    // Bounded by the deadline.
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

async fn connect(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    match tokio::net::TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => panic!("connect: {e}"),
    }
}

#[tokio::test]
async fn a_socket_that_sends_nothing_is_closed_after_the_header_timeout() {
    let (gateway, _backend) = gateway_with(articles_gateway::server::ServeOptions {
        header_read_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let mut silent = connect(gateway.addr).await;
    assert!(closed_within(&mut silent, Duration::from_secs(3)).await);
}

#[tokio::test]
async fn a_keep_alive_connection_is_closed_once_idle() {
    use tokio::io::AsyncWriteExt as _;
    let (gateway, _backend) = gateway_with(articles_gateway::server::ServeOptions {
        idle_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let mut socket = connect(gateway.addr).await;
    if let Err(e) = socket
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
    {
        panic!("{e}");
    }
    // The answer comes, then nothing: the idle connection is closed.
    assert!(closed_within(&mut socket, Duration::from_secs(3)).await);
}

#[tokio::test]
async fn past_the_connection_cap_the_idlest_connection_makes_room() {
    let (gateway, _backend) = gateway_with(articles_gateway::server::ServeOptions {
        max_connections: 3,
        ..Default::default()
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(connect(gateway.addr).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A real client still gets in, and is answered.
    let r = match reqwest::get(gateway.url("/healthz")).await {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(r.status(), StatusCode::OK);
    // The oldest silent socket was closed to make room for it.
    assert!(closed_within(&mut silent[0], Duration::from_secs(3)).await);
}

#[tokio::test]
async fn the_query_limit_is_its_own_not_the_head_limit() {
    let pool = library_pool();
    let backend = spawn_echo_backend(&pool).await;
    let channel = match Backend::connect_lazy(&backend.url(""), Duration::from_secs(1)) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let limit = 48 * 1024;
    let router = match GatewayBuilder::new()
        .descriptors(pool)
        .backend(channel)
        .max_query_length(limit)
        .unknown_query_params(articles_gateway::transcode::Unknown::Ignore)
        .build()
    {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    // A 16 KiB head limit and a 48 KiB query limit: a 40 KiB query is within both.
    let gateway = spawn_gateway_with(
        router,
        articles_gateway::server::ServeOptions {
            max_header_bytes: 16 * 1024,
            max_query_length: limit,
            ..Default::default()
        },
    )
    .await;
    let client = reqwest::Client::new();
    let long = format!("/v1/shelves/1?note={}", "x".repeat(40 * 1024));
    let r = match client.get(gateway.url(&long)).send().await {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(r.status(), StatusCode::OK);
    let longer = format!("/v1/shelves/1?note={}", "x".repeat(limit));
    let r = match client.get(gateway.url(&longer)).send().await {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(r.status(), StatusCode::URI_TOO_LONG);
    assert_eq!(r.headers()["content-type"], "application/json");
}

/// Issue 11, finding 11: hyper answers a head larger than its read buffer itself, with an
/// empty body. The buffer leaves room for twice the head limit, so a head over the limit is
/// answered by the gateway, in its JSON error shape, over HTTP/1.1 as over HTTP/2.
#[tokio::test]
async fn a_head_over_the_limit_gets_the_json_error_shape() {
    let (gateway, _backend) = gateway_with(articles_gateway::server::ServeOptions {
        max_header_bytes: 16 * 1024,
        ..Default::default()
    })
    .await;
    let h2 = match reqwest::Client::builder().http2_prior_knowledge().build() {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    for (version, client) in [("HTTP/1.1", reqwest::Client::new()), ("HTTP/2", h2)] {
        // Within the limit: served.
        let r = match client
            .get(gateway.url("/v1/shelves/1"))
            .header("x-note", "x".repeat(12 * 1024))
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => panic!("{version}: {e}"),
        };
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        // 30 KiB: over the 16 KiB limit, past where hyper's buffer used to end (24 KiB).
        let r = match client
            .get(gateway.url("/v1/shelves/1"))
            .header("x-note", "x".repeat(30 * 1024))
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => panic!("{version}: {e}"),
        };
        assert_eq!(
            r.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "{version}"
        );
        assert_eq!(r.headers()["content-type"], "application/json", "{version}");
        let body: serde_json::Value = match r.json().await {
            Ok(b) => b,
            Err(e) => panic!("{version}: {e}"),
        };
        assert_eq!(body["code"], 3, "{version}: {body}");
    }
}

/// A gRPC backend that answers every call with one `library.v1.Shelf` whose `theme` is
/// `bytes` long, and no health service.
async fn spawn_large_answer_backend(bytes: usize) -> Spawned {
    use prost::Message as _;
    let pool = library_pool();
    let Some(shelf) = pool.get_message_by_name("library.v1.Shelf") else {
        panic!("no Shelf in the fixture");
    };
    let mut message = prost_reflect::DynamicMessage::new(shelf);
    message.set_field_by_name("theme", prost_reflect::Value::String("t".repeat(bytes)));
    let encoded = message.encode_to_vec();
    let mut framed = Vec::with_capacity(encoded.len() + 5);
    framed.push(0);
    framed.extend_from_slice(
        &u32::try_from(encoded.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    framed.extend_from_slice(&encoded);
    let framed = bytes::Bytes::from(framed);
    let service = tower::service_fn(move |_request: http::Request<axum::body::Body>| {
        let framed = framed.clone();
        async move {
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            let frames = futures::stream::iter([
                Ok::<_, Infallible>(http_body::Frame::data(framed)),
                Ok(http_body::Frame::trailers(trailers)),
            ]);
            let body = axum::body::Body::new(http_body_util::StreamBody::new(frames));
            let mut response = http::Response::new(body);
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/grpc"),
            );
            Ok::<_, Infallible>(response)
        }
    });
    crate::support::spawn_grpc(Routes::from(axum::Router::new().fallback_service(service))).await
}

/// A gateway in front of [`spawn_large_answer_backend`] with `budget` bytes for answers its
/// clients have not read, and these connection settings.
async fn large_answers_gateway(
    answer: usize,
    budget: usize,
    options: articles_gateway::server::ServeOptions,
) -> (Spawned, Spawned) {
    let backend = spawn_large_answer_backend(answer).await;
    let channel = match Backend::connect_lazy(&backend.url(""), Duration::from_secs(1)) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let router = match GatewayBuilder::new()
        .descriptors(library_pool())
        .backend(channel)
        .response_buffer_limit(budget)
        .build()
    {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    (spawn_gateway_with(router, options).await, backend)
}

/// Sends a request whose answer is large from a socket with a tiny receive buffer, and never
/// reads: what the kernel's send buffer does not take of the answer stays in the gateway (the
/// buffer grows to about 2.5 MiB on loopback, against a tiny receive window).
async fn ask_and_never_read(gateway: &Spawned) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt as _;
    let socket = match tokio::net::TcpSocket::new_v4() {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    if let Err(e) = socket.set_recv_buffer_size(4096) {
        panic!("{e}");
    }
    let mut stream = match socket.connect(gateway.addr).await {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    if let Err(e) = stream
        .write_all(b"GET /v1/shelves/s HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
    {
        panic!("{e}");
    }
    stream
}

#[tokio::test]
async fn answers_held_for_clients_that_read_nothing_are_bounded_and_freed_by_the_send_timeout() {
    let options = articles_gateway::server::ServeOptions {
        send_timeout: Duration::from_secs(2),
        ..articles_gateway::server::ServeOptions::default()
    };
    // Room for one 3.5 MiB answer, not two.
    let answer = 3 * 1024 * 1024 + 512 * 1024;
    let (gateway, _backend) = large_answers_gateway(answer, 4 * 1024 * 1024, options).await;
    let client = reqwest::Client::new();
    let url = gateway.url("/v1/shelves/s");

    let mut stuck = ask_and_never_read(&gateway).await;
    // Once the stuck client's answer is held, another large answer does not fit: 503 at once.
    let started = Instant::now();
    let mut refused = None;
    // Bounded: 50 tries, 20 s.
    for _ in 0..50 {
        if started.elapsed() > Duration::from_secs(20) {
            break;
        }
        let response = match client.get(&url).send().await {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(response.text().await.unwrap_or_default());
            break;
        }
        let status = response.status();
        assert_eq!(status, StatusCode::OK, "{:?}", response.text().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(refused) = refused else {
        panic!("a second large answer was never refused while the first was held");
    };
    assert!(
        refused.contains("response buffers are full") && refused.contains("\"code\":14"),
        "{refused}"
    );
    // An answer under 64 KiB is not counted: the gateway's own probe still answers.
    let small = client.get(gateway.url("/healthz")).send().await;
    assert_eq!(small.map(|r| r.status()).ok(), Some(StatusCode::OK));

    // The send timeout closes the stuck connection, and its answer goes with it: read only
    // once it has passed, the connection ends before the whole answer.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let received = read_until_closed(&mut stuck, Duration::from_secs(10)).await;
    assert!(
        received.is_some_and(|n| n < answer),
        "a connection whose client read nothing for the send timeout was not cut: {received:?}"
    );
    let response = client.get(&url).send().await;
    let response = match response {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(response.status(), StatusCode::OK);
    let length = response.bytes().await.map(|b| b.len()).unwrap_or(0);
    assert!(length > answer, "{length}");
}

/// The bytes read until the peer closed (or reset) the connection, or `None` when it is still
/// open after `within`.
async fn read_until_closed(socket: &mut tokio::net::TcpStream, within: Duration) -> Option<usize> {
    use tokio::io::AsyncReadExt as _;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    let deadline = tokio::time::Instant::now() + within;
    // Bounded by the deadline.
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(total),
            Ok(Ok(n)) => total += n,
            Err(_) => return None,
        }
    }
}

/// Asks `path` of a gateway (send timeout 1 s, 1 MiB answers) over HTTP/2 from a client whose
/// socket reads what comes but whose windows never open past the first KiB, and tells whether
/// the gateway closed the connection within 8 s of the response head.
async fn cut_when_the_window_never_opens(path: &str) -> bool {
    let options = articles_gateway::server::ServeOptions {
        send_timeout: Duration::from_secs(1),
        ..articles_gateway::server::ServeOptions::default()
    };
    let (gateway, _backend) = large_answers_gateway(1024 * 1024, 64 * 1024 * 1024, options).await;
    let tcp = match tokio::net::TcpStream::connect(gateway.addr).await {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let handshake = h2::client::Builder::new()
        .initial_window_size(1024)
        .initial_connection_window_size(1024)
        .handshake::<_, bytes::Bytes>(tcp)
        .await;
    let (mut sender, connection) = match handshake {
        Ok(pair) => pair,
        Err(e) => panic!("{e}"),
    };
    let connection = tokio::spawn(connection);
    let request = match http::Request::get(gateway.url(path)).body(()) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let (response, _) = match sender.send_request(request, true) {
        Ok(pair) => pair,
        Err(e) => panic!("{e}"),
    };
    let head = match tokio::time::timeout(Duration::from_secs(10), response).await {
        Ok(Ok(r)) => r,
        other => panic!("no response head: {other:?}"),
    };
    assert_eq!(head.status(), StatusCode::OK);
    // The body is never read (its capacity never released): the answer cannot move.
    let _body = head.into_body();
    tokio::time::timeout(Duration::from_secs(8), connection)
        .await
        .is_ok()
}

#[tokio::test]
async fn an_http2_client_that_never_opens_its_window_is_cut_after_the_send_timeout() {
    assert!(
        cut_when_the_window_never_opens("/v1/shelves/s").await,
        "a connection whose answer did not move for the send timeout stayed open"
    );
}

#[tokio::test]
async fn an_http2_client_that_never_opens_a_streams_window_is_cut_after_the_send_timeout() {
    // The backend's one message (a Shelf) reads as a Book of WatchBooks, 1 MiB long.
    assert!(
        cut_when_the_window_never_opens("/v1/shelves/s/books:watch").await,
        "a connection whose stream message did not move for the send timeout stayed open"
    );
}

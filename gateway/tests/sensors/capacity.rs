//! The backend's stream slots, flow-control windows and upload pacing, in front of a
//! `telemetry.v1.Sensors` backend of its own ([`Held`]) that holds what the tests need held:
//! watch streams that stay open after their first reading, a download that floods as fast as
//! it is read, and an upload it reads only once told to. No health service, no reflection.
//!
//! - idle streams past the backend's `MAX_CONCURRENT_STREAMS` never delay a unary call, and a
//!   stream past the gateway's bound is answered 503 at once;
//! - a stream whose client stops reading never stalls the other streams of its connection;
//! - an upload into a backend that reads nothing stops the client's sending after a bounded
//!   number of bytes, and completes once the backend reads;
//! - a request that HTTP/2 cannot carry because of its metadata is a 400, never a failure of
//!   the backend.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use articles_gateway::{Backend, BalanceOptions, GatewayBuilder, backend::DynamicCodec};
use axum::body::Body;
use bytes::Bytes;
use futures::{StreamExt as _, future::BoxFuture, stream::BoxStream};
use http::StatusCode;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, Value};
use serde_json::Value as Json;
use tokio::{io::AsyncWriteExt as _, sync::watch};
use tonic::{Status, service::Routes};

use super::{backend::telemetry_pool, ok};
use crate::support::{Spawned, json, send, spawn_gateway, spawn_grpc_with};

/// One chunk of the flooding download: 64 KiB.
const FLOOD_CHUNK: usize = 64 * 1024;
/// The most chunks one flooding download sends (8 MiB... 125 MiB: far more than any buffer
/// between it and a client that does not read).
const FLOOD_CHUNKS: usize = 2000;

/// What the backend did, and the switch that lets it read uploads.
#[derive(Debug)]
struct HeldState {
    /// Chunks the flooding downloads have handed to their streams.
    flooded: AtomicUsize,
    /// Uploads are read only once this is true.
    read_uploads: watch::Sender<bool>,
}

/// The backend: `GetReading` answers at once; `WatchReadings` sends one reading and then
/// holds the stream open; `ExportCsv` floods for sensor `flood` and sends three short lines
/// otherwise; `UploadLog` reads its request only once `read_uploads` is set, then answers
/// the byte count.
#[derive(Debug, Clone)]
struct Held {
    pool: DescriptorPool,
    state: Arc<HeldState>,
}

impl tower::Service<http::Request<Body>> for Held {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let pool = self.pool.clone();
        let state = Arc::clone(&self.state);
        Box::pin(async move {
            let Some(method) = method_of(&pool, request.uri().path()) else {
                return Ok(Status::unimplemented("no such method").into_http::<Body>());
            };
            // Every method through tonic's streaming server: the wire of a unary call is the
            // same (one message each way).
            let mut grpc = tonic::server::Grpc::new(DynamicCodec::new(method.input()));
            let service = HeldMethods { method, state };
            Ok(grpc.streaming(service, request).await.map(Body::new))
        })
    }
}

fn method_of(pool: &DescriptorPool, path: &str) -> Option<MethodDescriptor> {
    let (service, method) = path.trim_start_matches('/').split_once('/')?;
    pool.get_service_by_name(service)?
        .methods()
        .find(|m| m.name() == method)
}

fn sensor_of(message: &DynamicMessage) -> String {
    match message.get_field_by_name("sensor").as_deref() {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

struct HeldMethods {
    method: MethodDescriptor,
    state: Arc<HeldState>,
}

type Replies = BoxStream<'static, Result<DynamicMessage, Status>>;

impl tonic::server::StreamingService<DynamicMessage> for HeldMethods {
    type Response = DynamicMessage;
    type ResponseStream = Replies;
    type Future = BoxFuture<'static, Result<tonic::Response<Replies>, Status>>;

    fn call(&mut self, request: tonic::Request<tonic::Streaming<DynamicMessage>>) -> Self::Future {
        let method = self.method.clone();
        let state = Arc::clone(&self.state);
        Box::pin(async move {
            let mut incoming = request.into_inner();
            let output = method.output();
            let replies: Replies = match method.name() {
                "GetReading" | "WatchReadings" => {
                    let query = incoming
                        .message()
                        .await?
                        .ok_or_else(|| Status::invalid_argument("no query"))?;
                    let mut reading = DynamicMessage::new(output);
                    reading.set_field_by_name("sensor", Value::String(sensor_of(&query)));
                    let first = futures::stream::once(std::future::ready(Ok(reading)));
                    if method.name() == "GetReading" {
                        first.boxed()
                    } else {
                        // Idle after its first reading, until the client goes.
                        first.chain(futures::stream::pending()).boxed()
                    }
                }
                "ExportCsv" => {
                    let query = incoming
                        .message()
                        .await?
                        .ok_or_else(|| Status::invalid_argument("no query"))?;
                    let chunk = move |data: Bytes| {
                        let mut chunk = DynamicMessage::new(output.clone());
                        chunk.set_field_by_name("content_type", Value::String("text/csv".into()));
                        chunk.set_field_by_name("data", Value::Bytes(data));
                        Ok(chunk)
                    };
                    if sensor_of(&query) == "flood" {
                        let data = Bytes::from(vec![b'x'; FLOOD_CHUNK]);
                        futures::stream::iter(0..FLOOD_CHUNKS)
                            .map(move |_| {
                                state.flooded.fetch_add(1, Ordering::SeqCst);
                                chunk(data.clone())
                            })
                            .boxed()
                    } else {
                        futures::stream::iter(["a\n", "b\n", "c\n"])
                            .map(move |line| chunk(Bytes::from_static(line.as_bytes())))
                            .boxed()
                    }
                }
                "UploadLog" => {
                    let mut read = state.read_uploads.subscribe();
                    // Bounded by the test, which sets it or drops the backend.
                    let _ = read.wait_for(|read| *read).await;
                    let mut bytes = 0usize;
                    while let Some(chunk) = incoming.message().await? {
                        if let Some(Value::Bytes(data)) = chunk.get_field_by_name("data").as_deref()
                        {
                            bytes += data.len();
                        }
                    }
                    let mut summary = DynamicMessage::new(output);
                    summary.set_field_by_name(
                        "count",
                        Value::I32(i32::try_from(bytes).unwrap_or(i32::MAX)),
                    );
                    futures::stream::once(std::future::ready(Ok(summary))).boxed()
                }
                other => return Err(Status::unimplemented(format!("no method {other}"))),
            };
            Ok(tonic::Response::new(replies))
        })
    }
}

/// The held backend (allowing `max_streams` streams per connection, if given) and a gateway
/// over a balanced backend to it with these options.
struct Stack {
    gateway: Spawned,
    backend: Backend,
    state: Arc<HeldState>,
    _server: Spawned,
}

impl Stack {
    fn url(&self, path: &str) -> String {
        self.gateway.url(path)
    }

    fn all_up(&self) -> bool {
        let statuses = self.backend.replica_statuses();
        !statuses.is_empty() && statuses.iter().all(|r| r.up)
    }
}

async fn spawn(max_streams: Option<u32>, options: BalanceOptions) -> Stack {
    let pool = telemetry_pool();
    let state = Arc::new(HeldState {
        flooded: AtomicUsize::new(0),
        read_uploads: watch::channel(false).0,
    });
    let routes = Routes::from(axum::Router::new().fallback_service(Held {
        pool: pool.clone(),
        state: Arc::clone(&state),
    }));
    let server = spawn_grpc_with(routes, max_streams).await;
    let options = BalanceOptions {
        health_interval: Duration::from_millis(50),
        ..options
    };
    let backend = ok(
        Backend::balanced(&[server.url("")], &options),
        "balanced backend",
    );
    backend.health_checked().await;
    let router = ok(
        GatewayBuilder::new()
            .descriptors(pool)
            .backend(backend.clone())
            .timeout(Duration::from_secs(10))
            .build(),
        "gateway",
    );
    Stack {
        gateway: spawn_gateway(router).await,
        backend,
        state,
        _server: server,
    }
}

/// Waits (at most `limit`) until `counter` has not moved for half a second; answers its value.
async fn settled(counter: impl Fn() -> usize, limit: Duration) -> usize {
    let start = Instant::now();
    let mut last = counter();
    let mut still_since = Instant::now();
    // Bounded by `limit`.
    while start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = counter();
        if now != last {
            last = now;
            still_since = Instant::now();
        } else if still_since.elapsed() >= Duration::from_millis(500) {
            break;
        }
    }
    last
}

#[tokio::test]
async fn idle_streams_past_the_backends_stream_limit_never_delay_a_unary_call_and_one_past_the_bound_is_refused_at_once()
 {
    // 4 streams per connection, 2 connections for streams: room for 8 streams.
    let stack = spawn(
        Some(4),
        BalanceOptions {
            connections: 1,
            stream_connections: 2,
            ..BalanceOptions::default()
        },
    )
    .await;
    let client = reqwest::Client::new();
    let watch = |i: usize| {
        client
            .get(stack.url(&format!("/v1/sensors/w{i}/readings:watch")))
            .send()
    };
    let mut watchers = Vec::new();
    for i in 0..8 {
        // The head comes with the first reading; the stream then stays open, idle.
        let watcher = ok(
            ok(
                tokio::time::timeout(Duration::from_secs(5), watch(i)).await,
                &format!("watcher {i} was not answered in 5 s"),
            ),
            "watch",
        );
        assert_eq!(watcher.status(), StatusCode::OK, "watcher {i}");
        watchers.push(watcher);
    }

    // Every stream slot the backend allows on the stream connections is taken: a unary call
    // still goes at once, over its own connection.
    let start = Instant::now();
    let reading = ok(
        tokio::time::timeout(
            Duration::from_secs(5),
            client.get(stack.url("/v1/sensors/s1/reading")).send(),
        )
        .await,
        "the unary call was not answered in 5 s",
    );
    let reading = ok(reading, "unary call");
    assert_eq!(reading.status(), StatusCode::OK);
    assert_eq!(json(reading).await["sensor"], "s1");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );

    // One stream more than the bound: refused at once, not queued.
    let start = Instant::now();
    let refused = ok(
        tokio::time::timeout(Duration::from_secs(5), watch(8)).await,
        "the stream past the bound was not answered in 5 s",
    );
    let refused = ok(refused, "watch past the bound");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = json(refused).await;
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("stream capacity is exhausted"), "{body}");
    // A busy backend is not a failing one.
    assert!(stack.all_up(), "{:?}", stack.backend.replica_statuses());

    // A stream that ends gives its slot back.
    drop(watchers.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    // Bounded by the deadline: the gateway notices the client went away within it.
    while Instant::now() < deadline {
        let again = ok(
            tokio::time::timeout(Duration::from_secs(5), watch(9)).await,
            "watch again",
        );
        status = ok(again, "watch again").status();
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_stream_whose_client_stops_reading_never_stalls_the_other_streams_of_its_connection() {
    // Everything on one connection: the unread streams and the one that must go on share it.
    let stack = spawn(
        None,
        BalanceOptions {
            connections: 1,
            stream_connections: 1,
            ..BalanceOptions::default()
        },
    )
    .await;
    let mut unread = Vec::new();
    for _ in 0..6 {
        let socket = ok(tokio::net::TcpSocket::new_v4(), "socket");
        // A small receive buffer: the client's side holds little of what it does not read.
        ok(socket.set_recv_buffer_size(4096), "SO_RCVBUF");
        let mut stream = ok(socket.connect(stack.gateway.addr).await, "connect");
        ok(
            stream
                .write_all(b"GET /v1/sensors/flood/readings.csv HTTP/1.1\r\nhost: gateway\r\n\r\n")
                .await,
            "request",
        );
        unread.push(stream);
    }
    // Until every buffer between the backend and the clients that do not read is full.
    let flooded = settled(
        || stack.state.flooded.load(Ordering::SeqCst),
        Duration::from_secs(30),
    )
    .await;
    assert!(
        flooded < FLOOD_CHUNKS * 6,
        "the floods were read: {flooded}"
    );

    let client = reqwest::Client::new();
    let probe = ok(
        tokio::time::timeout(Duration::from_secs(5), async {
            let response = send(client.get(stack.url("/v1/sensors/probe/readings.csv"))).await;
            let status = response.status();
            (status, response.text().await)
        })
        .await,
        "a stream beside the unread ones stalled",
    );
    assert_eq!(probe.0, StatusCode::OK);
    assert_eq!(ok(probe.1, "probe body"), "a\nb\nc\n");
    drop(unread);
}

#[tokio::test]
async fn an_upload_into_a_backend_that_reads_nothing_stops_the_client_after_bounded_bytes_and_completes_once_it_reads()
 {
    const CHUNKS: usize = 1024;
    let stack = spawn(None, BalanceOptions::default()).await;
    let produced = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&produced);
    let chunk = Bytes::from(vec![b'l'; 64 * 1024]);
    let body = futures::stream::iter(0..CHUNKS).map(move |_| {
        counted.fetch_add(chunk.len(), Ordering::SeqCst);
        Ok::<_, Infallible>(chunk.clone())
    });
    let client = ok(
        reqwest::Client::builder().http2_prior_knowledge().build(),
        "h2 client",
    );
    let upload = tokio::spawn(
        client
            .post(stack.url("/v1/logs"))
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    );
    let total = CHUNKS * 64 * 1024;
    let sent = settled(|| produced.load(Ordering::SeqCst), Duration::from_secs(30)).await;
    // What the windows and buffers between the client and the backend hold, no more.
    assert!(
        sent < 16 * 1024 * 1024,
        "{sent} of {total} bytes taken from a client whose backend reads nothing"
    );

    stack.state.read_uploads.send_replace(true);
    let response = ok(
        ok(
            tokio::time::timeout(Duration::from_secs(60), upload).await,
            "the upload did not complete in 60 s once read",
        ),
        "upload task",
    );
    let response = ok(response, "upload");
    assert_eq!(response.status(), StatusCode::OK);
    let summary: Json = json(response).await;
    assert_eq!(summary["count"], total, "{summary}");
}

#[tokio::test]
async fn a_connection_specific_header_in_the_metadata_is_refused_400_and_never_counts_against_the_backend()
 {
    let stack = spawn(None, BalanceOptions::default()).await;
    let client = reqwest::Client::new();
    // More than the failure threshold (3) in a row.
    for _ in 0..6 {
        let response = send(
            client
                .get(stack.url("/v1/sensors/s1/reading"))
                .header("grpc-metadata-proxy-connection", "x"),
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = json(response).await;
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("proxy-connection"),
            "{body}"
        );
    }
    assert!(stack.all_up(), "{:?}", stack.backend.replica_statuses());
    let response = send(client.get(stack.url("/v1/sensors/s1/reading"))).await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// A `ReadingQuery` or a `Reading` for `sensor`, and the descriptor of the other message.
fn sensor_message(name: &str, sensor: &str) -> DynamicMessage {
    let Some(descriptor) = telemetry_pool().get_message_by_name(name) else {
        panic!("no message {name}");
    };
    let mut message = DynamicMessage::new(descriptor);
    message.set_field_by_name("sensor", Value::String(sensor.into()));
    message
}

/// A gRPC call through the gateway's port: `path` with a query for `sensor`, answered as a
/// stream of readings.
async fn proxied(
    channel: &tonic::transport::Channel,
    path: &'static str,
    sensor: &str,
) -> Result<tonic::Streaming<DynamicMessage>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    ok(grpc.ready().await, "ready");
    let Some(reading) = telemetry_pool().get_message_by_name("telemetry.v1.Reading") else {
        panic!("no Reading");
    };
    grpc.server_streaming(
        tonic::Request::new(sensor_message("telemetry.v1.ReadingQuery", sensor)),
        http::uri::PathAndQuery::from_static(path),
        DynamicCodec::new(reading),
    )
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn idle_proxied_grpc_streams_never_delay_unary_calls_and_one_past_the_bound_is_unavailable_at_once()
 {
    const WATCH: &str = "/telemetry.v1.Sensors/WatchReadings";
    const GET: &str = "/telemetry.v1.Sensors/GetReading";
    let stack = spawn(
        Some(4),
        BalanceOptions {
            connections: 1,
            stream_connections: 2,
            ..BalanceOptions::default()
        },
    )
    .await;
    let endpoint = ok(
        tonic::transport::Channel::from_shared(stack.url("")),
        "endpoint",
    );
    let channel = ok(endpoint.connect().await, "connect");
    let mut watchers = Vec::new();
    for i in 0..8 {
        let mut watcher = ok(
            ok(
                tokio::time::timeout(
                    Duration::from_secs(5),
                    proxied(&channel, WATCH, &format!("w{i}")),
                )
                .await,
                &format!("proxied watcher {i} was not answered in 5 s"),
            ),
            "proxied watch",
        );
        assert!(ok(watcher.message().await, "first reading").is_some());
        watchers.push(watcher);
    }

    // A unary method the descriptors name goes over the connections for unary calls.
    let start = Instant::now();
    let mut unary = ok(
        ok(
            tokio::time::timeout(Duration::from_secs(5), proxied(&channel, GET, "s1")).await,
            "the proxied unary call was not answered in 5 s",
        ),
        "proxied unary call",
    );
    let answer = ok(unary.message().await, "reading");
    assert_eq!(answer.map(|m| sensor_of(&m)).as_deref(), Some("s1"));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );

    let start = Instant::now();
    let refused = ok(
        tokio::time::timeout(Duration::from_secs(5), proxied(&channel, WATCH, "w8")).await,
        "the proxied stream past the bound was not answered in 5 s",
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    let Err(status) = refused else {
        panic!("a stream past the bound was served");
    };
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("stream capacity is exhausted"),
        "{status:?}"
    );
    assert!(stack.all_up(), "{:?}", stack.backend.replica_statuses());
    drop(watchers);
}

//! One port for REST, gRPC and gRPC-Web: real gRPC clients (tonic, a raw HTTP/2 client, a raw
//! HTTP/1.1 gRPC-Web-text client, Connect's gRPC-Web transport from node) call
//! `telemetry.v1.Sensors` through the gateway's listener, and get what the backend answers
//! directly: headers, messages, trailers and error details byte for byte; streams of every
//! kind; deadlines, cancellation and the limits enforced by the gateway in gRPC's terms.

use std::{sync::atomic::Ordering, time::Duration};

use articles_gateway::backend::{DynamicCodec, StreamCodec};
use base64::Engine as _;
use bytes::{BufMut as _, Bytes, BytesMut};
use http::StatusCode;
use http_body_util::{BodyExt as _, Full};
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor, Value};
use tonic::{
    Code, Status,
    metadata::{MetadataMap, MetadataValue},
    transport::Channel,
};

use super::{Stack, backend::telemetry_pool, ok, spawn, spawn_with};
use crate::support::{NodeNeeds, node_test, send};

const GET_READING: &str = "/telemetry.v1.Sensors/GetReading";
const WATCH_READINGS: &str = "/telemetry.v1.Sensors/WatchReadings";
const UPLOAD_READINGS: &str = "/telemetry.v1.Sensors/UploadReadings";
const RELAY: &str = "/telemetry.v1.Sensors/Relay";

fn message(name: &str, fields: &[(&str, Value)]) -> DynamicMessage {
    let pool = telemetry_pool();
    let Some(descriptor) = pool.get_message_by_name(name) else {
        panic!("no message {name}");
    };
    let mut message = DynamicMessage::new(descriptor);
    for (field, value) in fields {
        message.set_field_by_name(field, value.clone());
    }
    message
}

fn descriptor(name: &str) -> MessageDescriptor {
    match telemetry_pool().get_message_by_name(name) {
        Some(d) => d,
        None => panic!("no message {name}"),
    }
}

fn query(sensor: &str, count: u32, delay_ms: u32) -> DynamicMessage {
    message(
        "telemetry.v1.ReadingQuery",
        &[
            ("sensor", Value::String(sensor.into())),
            ("count", Value::U32(count)),
            ("delay_ms", Value::U32(delay_ms)),
        ],
    )
}

fn reading(sensor: &str) -> DynamicMessage {
    message(
        "telemetry.v1.Reading",
        &[("sensor", Value::String(sensor.into()))],
    )
}

fn sensor_of(message: &DynamicMessage) -> String {
    match message.get_field_by_name("sensor").as_deref() {
        Some(Value::String(s)) => s.clone(),
        other => panic!("no sensor: {other:?}"),
    }
}

async fn channel(url: &str) -> Channel {
    let endpoint = ok(Channel::from_shared(url.to_owned()), "endpoint");
    ok(endpoint.connect().await, "connect")
}

/// A tonic client of any method, over `channel`.
async fn grpc(channel: &Channel) -> tonic::client::Grpc<Channel> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    ok(grpc.ready().await, "ready");
    grpc
}

fn path(path: &'static str) -> http::uri::PathAndQuery {
    http::uri::PathAndQuery::from_static(path)
}

/// What a call answered, in a form two answers compare in: the header metadata, the messages
/// encoded, then the status (code, message, details bytes) and the trailing metadata.
#[derive(Debug, PartialEq)]
struct Answer {
    headers: Vec<(String, String)>,
    messages: Vec<Vec<u8>>,
    status: Option<(Code, String, Bytes)>,
    trailers: Vec<(String, String)>,
}

/// The application metadata of `map` (what the transports add left out, and the length a
/// backend announces, which the gateway does not: it passes the body on frame by frame),
/// sorted.
fn application(map: &MetadataMap) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = map
        .clone()
        .into_headers()
        .iter()
        .filter(|(name, _)| {
            !matches!(
                name.as_str(),
                "content-type"
                    | "content-length"
                    | "date"
                    | "grpc-status"
                    | "grpc-message"
                    | "grpc-status-details-bin"
            ) && !name.as_str().starts_with("access-control-")
                && name.as_str() != "x-request-id"
                && name.as_str() != "vary"
        })
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn failed(status: &Status) -> Option<(Code, String, Bytes)> {
    Some((
        status.code(),
        status.message().to_owned(),
        Bytes::copy_from_slice(status.details()),
    ))
}

/// Calls a unary or server-streaming method with `request` and reads the whole answer.
async fn answer(
    channel: &Channel,
    method: &'static str,
    request: tonic::Request<DynamicMessage>,
    output: MessageDescriptor,
) -> Answer {
    let mut grpc = grpc(channel).await;
    let response = grpc
        .server_streaming(request, path(method), DynamicCodec::new(output))
        .await;
    let mut stream = match response {
        Ok(response) => response,
        Err(status) => {
            return Answer {
                headers: application(status.metadata()),
                messages: Vec::new(),
                status: failed(&status),
                trailers: Vec::new(),
            };
        }
    };
    let headers = application(stream.metadata());
    let mut messages = Vec::new();
    let mut status = None;
    // Bounded by the server's stream, which the tests keep short.
    loop {
        match stream.get_mut().message().await {
            Ok(Some(message)) => messages.push(message.encode_to_vec()),
            Ok(None) => break,
            Err(s) => {
                status = failed(&s);
                break;
            }
        }
    }
    let trailers = match (&status, stream.get_mut().trailers().await) {
        (None, Ok(Some(trailers))) => application(&trailers),
        (Some(_), _) => Vec::new(),
        (None, other) => panic!("trailers: {other:?}"),
    };
    Answer {
        headers,
        messages,
        status,
        trailers,
    }
}

/// The status a GetReading call with `request` through `channel` failed with; `what` names
/// the failure the test expects, should the call pass.
async fn refused_reading(
    channel: &Channel,
    request: tonic::Request<DynamicMessage>,
    what: &str,
) -> (Code, String) {
    let answered = answer(
        channel,
        GET_READING,
        request,
        descriptor("telemetry.v1.Reading"),
    )
    .await;
    match answered.status {
        Some((code, message, _)) => (code, message),
        None => panic!("{what}: the call passed"),
    }
}

fn backend_url(stack: &Stack) -> String {
    stack._server.url("")
}

#[tokio::test]
async fn grpc_on_the_gateway_port_answers_what_the_backend_answers_byte_for_byte() {
    let stack = spawn().await;
    let through = channel(&stack.url("")).await;
    let direct = channel(&backend_url(&stack)).await;
    let output = descriptor("telemetry.v1.Reading");
    let cases = [
        // A message, header `foo: foo1` and trailer `foo: foo2`.
        "s1",
        // INTERNAL after headers, with two google.rpc details the gateway has no types for.
        "broken",
        // A trailers-only NOT_FOUND with metadata in its one header block.
        "missing",
    ];
    for sensor in cases {
        let request = || tonic::Request::new(query(sensor, 0, 0));
        let want = answer(&direct, GET_READING, request(), output.clone()).await;
        let got = answer(&through, GET_READING, request(), output.clone()).await;
        assert_eq!(got, want, "{sensor}");
    }
    let ok_answer = answer(
        &through,
        GET_READING,
        tonic::Request::new(query("s1", 0, 0)),
        output.clone(),
    )
    .await;
    assert_eq!(ok_answer.headers, [("foo".to_owned(), "foo1".to_owned())]);
    assert_eq!(ok_answer.trailers, [("foo".to_owned(), "foo2".to_owned())]);
    let broken = answer(
        &through,
        GET_READING,
        tonic::Request::new(query("broken", 0, 0)),
        output,
    )
    .await;
    let Some((code, message, details)) = broken.status else {
        panic!("broken answered OK");
    };
    assert_eq!((code, message.as_str()), (Code::Internal, "sensor broken"));
    let details = ok(
        crate::support::RpcStatus::decode(details),
        "grpc-status-details-bin",
    );
    assert_eq!(details.details.len(), 2);
    assert_eq!(
        details.details[0].type_url,
        "type.googleapis.com/google.rpc.DebugInfo"
    );

    // Counted per method, as one HTTP request each.
    let metrics = ok(
        send(stack.h1.get(stack.url("/metrics"))).await.text().await,
        "metrics",
    );
    assert!(
        metrics.contains(&format!(
            "articles_gateway_http_requests_total{{route=\"{GET_READING}\",status=\"200\",protocol=\"grpc\"}} 5"
        )),
        "{metrics}"
    );
}

#[tokio::test]
async fn grpc_streams_of_every_kind_pass_through_the_gateway_port() {
    let stack = spawn().await;
    let through = channel(&stack.url("")).await;
    let output = descriptor("telemetry.v1.Reading");

    // Server streaming, to its end, and to a failure after two messages with a detail.
    let watched = answer(
        &through,
        WATCH_READINGS,
        tonic::Request::new(query("w1", 3, 0)),
        output.clone(),
    )
    .await;
    assert_eq!(watched.messages.len(), 3);
    assert_eq!(watched.status, None);
    assert_eq!(watched.headers, [("foo".to_owned(), "foo1".to_owned())]);
    let failing = answer(
        &through,
        WATCH_READINGS,
        tonic::Request::new(query("failing", 5, 0)),
        output.clone(),
    )
    .await;
    assert_eq!(failing.messages.len(), 2);
    let Some((code, message, details)) = failing.status else {
        panic!("failing ended well");
    };
    assert_eq!((code, message.as_str()), (Code::DataLoss, "sensor lost"));
    assert!(!details.is_empty(), "the detail passes through");

    // Client streaming.
    let readings = futures::stream::iter(["a", "b", "c"].map(|s| Ok(reading(s))));
    let mut grpc = grpc(&through).await;
    let summary = ok(
        grpc.client_streaming(
            tonic::Request::new(readings),
            path(UPLOAD_READINGS),
            StreamCodec,
        )
        .await,
        "UploadReadings",
    )
    .into_inner();
    // The gateway's client codec keeps answers as their wire bytes.
    let summary = ok(
        DynamicMessage::decode(descriptor("telemetry.v1.Summary"), summary),
        "a Summary",
    );
    assert_eq!(
        summary.get_field_by_name("count").as_deref(),
        Some(&Value::I32(3))
    );
    assert_eq!(stack.counters.uploads.load(Ordering::SeqCst), 1);

    // Bidirectional: each reading comes back before the next is sent.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<DynamicMessage, Status>>(1);
    let mut grpc = self::grpc(&through).await;
    let outgoing = tokio_stream::wrappers::ReceiverStream::new(rx);
    ok(tx.send(Ok(reading("r0"))).await, "send");
    let mut incoming = ok(
        grpc.streaming(tonic::Request::new(outgoing), path(RELAY), StreamCodec)
            .await,
        "Relay",
    )
    .into_inner();
    for i in 0..3 {
        if i > 0 {
            ok(tx.send(Ok(reading(&format!("r{i}")))).await, "send");
        }
        let echoed = ok(
            tokio::time::timeout(Duration::from_secs(10), incoming.message()).await,
            "an echo in time",
        );
        let echoed = ok(echoed, "echo")
            .map(|bytes| ok(DynamicMessage::decode(output.clone(), bytes), "a Reading"));
        assert_eq!(echoed.as_ref().map(sensor_of), Some(format!("r{i}")));
    }
    drop(tx);
    let end = ok(
        tokio::time::timeout(Duration::from_secs(10), incoming.message()).await,
        "the end in time",
    );
    assert!(matches!(end, Ok(None)), "{end:?}");
}

/// Waits (bounded) until the backend has seen `n` WatchReadings streams cancelled.
async fn wait_cancelled(stack: &Stack, n: usize) {
    for _ in 0..200 {
        if stack.counters.cancelled.load(Ordering::SeqCst) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "the backend saw {} cancelled streams, not {n}",
        stack.counters.cancelled.load(Ordering::SeqCst)
    );
}

/// Opens a long WatchReadings stream through the gateway and reads its first message.
async fn open_watch(channel: &Channel) -> tonic::codec::Streaming<DynamicMessage> {
    let mut grpc = grpc(channel).await;
    let mut stream = ok(
        grpc.server_streaming(
            tonic::Request::new(query("long", 1000, 50)),
            path(WATCH_READINGS),
            DynamicCodec::new(descriptor("telemetry.v1.Reading")),
        )
        .await,
        "WatchReadings",
    )
    .into_inner();
    let first = ok(stream.message().await, "first reading");
    assert!(first.is_some());
    stream
}

#[tokio::test]
async fn a_client_that_cancels_on_the_gateway_port_cancels_the_backend_stream() {
    let stack = spawn().await;
    let through = channel(&stack.url("")).await;
    let stream = open_watch(&through).await;
    assert_eq!(stack.counters.cancelled.load(Ordering::SeqCst), 0);
    drop(stream);
    wait_cancelled(&stack, 1).await;
}

/// A raw HTTP/2 gRPC call (no client-side deadline of its own): the status, from the headers
/// of a trailers-only answer or from the trailers.
async fn raw_grpc(stack: &Stack, method: &str, body: &DynamicMessage, timeout: &str) -> String {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let request = http::Request::post(stack.url(method))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", timeout)
        .body(Full::new(frame(0, &body.encode_to_vec())));
    let response = ok(client.request(ok(request, "request")).await, "h2 call");
    assert_eq!(response.status(), StatusCode::OK);
    let (parts, body) = response.into_parts();
    if let Some(status) = parts.headers.get("grpc-status") {
        return String::from_utf8_lossy(status.as_bytes()).into_owned();
    }
    let collected = ok(body.collect().await, "body");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    trailers
        .get("grpc-status")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn grpc_deadlines_on_the_gateway_port_are_honoured() {
    // The client's `grpc-timeout`: 200 ms against a backend that takes 5 s.
    let stack = spawn().await;
    let slow = query("s1", 0, 5000);
    assert_eq!(raw_grpc(&stack, GET_READING, &slow, "200m").await, "4");
    // A malformed one is the client's error.
    assert_eq!(raw_grpc(&stack, GET_READING, &slow, "soon").await, "3");

    // Without one, the gateway's `--timeout` (unary) and `--stream-timeout` (streams).
    let stack = spawn_with(|b| {
        b.timeout(Duration::from_millis(300))
            .stream_timeout(Duration::from_millis(600))
    })
    .await;
    let through = channel(&stack.url("")).await;
    let unary = answer(
        &through,
        GET_READING,
        tonic::Request::new(slow.clone()),
        descriptor("telemetry.v1.Reading"),
    )
    .await;
    assert_eq!(
        unary.status.map(|s| s.0),
        Some(Code::DeadlineExceeded),
        "unary past --timeout"
    );
    // A stream that would run 50 s: some readings, then DEADLINE_EXCEEDED in the trailers,
    // and the backend's stream reset.
    let stream = answer(
        &through,
        WATCH_READINGS,
        tonic::Request::new(query("long", 1000, 50)),
        descriptor("telemetry.v1.Reading"),
    )
    .await;
    assert!(!stream.messages.is_empty() && stream.messages.len() < 1000);
    assert_eq!(stream.status.map(|s| s.0), Some(Code::DeadlineExceeded));
    wait_cancelled(&stack, 1).await;
}

/// `articles_gateway_admission_slots_in_use{budget}`, read from `/metrics`.
async fn slots_in_use(stack: &Stack, budget: &str) -> Option<u64> {
    let r = send(stack.h1.get(stack.url("/metrics"))).await;
    let text = ok(r.text().await, "metrics");
    let prefix = format!("articles_gateway_admission_slots_in_use{{budget=\"{budget}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|n| n.trim().parse().ok())
}

/// A WatchReadings stream through the gateway that sends one reading, then idles for a minute.
async fn open_idle_watch(
    channel: &Channel,
) -> Result<tonic::codec::Streaming<DynamicMessage>, Status> {
    let mut grpc = grpc(channel).await;
    let mut stream = grpc
        .server_streaming(
            tonic::Request::new(query("s1", 2, 60_000)),
            path(WATCH_READINGS),
            DynamicCodec::new(descriptor("telemetry.v1.Reading")),
        )
        .await?
        .into_inner();
    match stream.message().await? {
        Some(_) => Ok(stream),
        None => Err(Status::internal("no first reading")),
    }
}

#[tokio::test]
async fn idle_streams_past_the_concurrency_limit_leave_unary_calls_served_and_past_the_stream_limit_are_shed()
 {
    let stack = spawn_with(|b| b.concurrency_limit(2).stream_limit(5)).await;
    let idle = "/v1/sensors/s1/readings:watch?count=2&delay_ms=60000";
    // Five idle streams against two unary slots: SSE and NDJSON over both HTTP versions, and a
    // proxied gRPC stream. Each has its first message, then nothing for a minute.
    let mut held = Vec::new();
    for (accept, (version, client)) in [
        ("text/event-stream", stack.clients()[0]),
        ("text/event-stream", stack.clients()[1]),
        ("application/x-ndjson", stack.clients()[0]),
        ("application/x-ndjson", stack.clients()[1]),
    ] {
        let mut r = send(client.get(stack.url(idle)).header("accept", accept)).await;
        assert_eq!(r.status(), StatusCode::OK, "{version} {accept}");
        assert!(ok(r.chunk().await, "first message").is_some());
        held.push(r);
    }
    let through = channel(&stack.url("")).await;
    let watch = ok(open_idle_watch(&through).await, "a proxied gRPC stream");
    assert_eq!(slots_in_use(&stack, "stream").await, Some(5));
    assert_eq!(slots_in_use(&stack, "unary").await, Some(0));

    // Unary calls, reads and writes, REST and gRPC, more of them than the unary slots: all
    // answered while the streams stay open.
    for _ in 0..2 {
        for (version, client) in stack.clients() {
            let r = send(client.get(stack.url("/v1/sensors/s1/reading"))).await;
            assert_eq!(r.status(), StatusCode::OK, "{version} GET");
            let r = send(
                client
                    .post(stack.url("/v1/sensors/s1/readings"))
                    .header("content-type", "application/json")
                    .body(r#"{"value": 1.5}"#),
            )
            .await;
            assert_eq!(r.status(), StatusCode::OK, "{version} POST");
        }
        let unary = answer(
            &through,
            GET_READING,
            tonic::Request::new(query("s1", 0, 0)),
            descriptor("telemetry.v1.Reading"),
        )
        .await;
        assert_eq!(unary.status, None, "a proxied unary call");
    }

    // One stream more, of any kind, is shed at once, naming the stream budget: as a 503, or
    // to an `EventSource` (which never comes back after a 503) as a 200 telling it to retry.
    for (version, client) in stack.clients() {
        let started = std::time::Instant::now();
        let r = send(
            client
                .get(stack.url(idle))
                .header("accept", "application/x-ndjson"),
        )
        .await;
        assert!(started.elapsed() < Duration::from_secs(2), "{version}");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{version}");
        let body: serde_json::Value = ok(r.json().await, "JSON error");
        assert_eq!(body["code"], 14, "{version}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains("--stream-limit"), "{message}");

        let started = std::time::Instant::now();
        let r = send(
            client
                .get(stack.url(idle))
                .header("accept", "text/event-stream"),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version} SSE");
        let events = ok(r.text().await, "the event stream");
        assert!(started.elapsed() < Duration::from_secs(2), "{version} SSE");
        assert!(events.starts_with("retry: "), "{events}");
        assert!(
            events.contains("event: error") && events.contains("--stream-limit"),
            "{events}"
        );
    }
    let Err(shed) = open_idle_watch(&through).await else {
        panic!("a proxied gRPC stream past the stream limit was admitted");
    };
    assert_eq!(shed.code(), Code::Unavailable);
    assert!(
        shed.message().contains("--stream-limit"),
        "{}",
        shed.message()
    );

    // A slot given back (a stream ends) is a stream admitted again.
    drop(watch);
    let mut again = None;
    for _ in 0..100 {
        match open_idle_watch(&through).await {
            Ok(stream) => {
                again = Some(stream);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(again.is_some(), "the stream slot came back");
    drop(held);
}

#[tokio::test]
async fn unary_calls_past_the_concurrency_limit_are_shed_naming_it_whatever_the_protocol() {
    let stack = spawn_with(|b| b.concurrency_limit(2)).await;
    let through = channel(&stack.url("")).await;
    // Two calls the backend holds for 3 s take both unary slots.
    let slow = "/v1/sensors/s1/reading?delay_ms=3000";
    let first = send(stack.h1.get(stack.url(slow)));
    let second = send(stack.h2.get(stack.url(slow)));
    let shed = async {
        let mut taken = false;
        for _ in 0..100 {
            if slots_in_use(&stack, "unary").await == Some(2) {
                taken = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(taken, "the slow calls took both slots");
        let r = send(stack.h1.get(stack.url("/v1/sensors/s1/reading"))).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: serde_json::Value = ok(r.json().await, "JSON error");
        assert_eq!(body["code"], 14);
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains("--concurrency-limit"), "{message}");
        let (code, message) = refused_reading(
            &through,
            tonic::Request::new(query("s1", 0, 0)),
            "a gRPC call past the unary budget",
        )
        .await;
        assert_eq!(code, Code::Unavailable);
        assert!(message.contains("--concurrency-limit"), "{message}");
        // Streams have their own budget: one still opens.
        assert!(open_idle_watch(&through).await.is_ok());
    };
    let (first, second, ()) = tokio::join!(first, second, shed);
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
}

#[tokio::test]
async fn oversized_grpc_metadata_is_refused_as_grpc_and_rest_is_unaffected() {
    let stack = spawn_with(|b| b.max_metadata_bytes(2048)).await;
    let through = channel(&stack.url("")).await;
    let big = "x".repeat(4096);
    let mut request = tonic::Request::new(query("s1", 0, 0));
    request
        .metadata_mut()
        .insert("x-big", ok(MetadataValue::try_from(big.as_str()), "value"));
    let (code, message) = refused_reading(&through, request, "oversized metadata").await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("2048"), "{message}");
    let fine = answer(
        &through,
        GET_READING,
        tonic::Request::new(query("s1", 0, 0)),
        descriptor("telemetry.v1.Reading"),
    )
    .await;
    assert_eq!(fine.status, None);
    let r = send(stack.h1.get(stack.url("/v1/sensors/s1/reading"))).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_request_head_over_the_limit_is_refused_as_grpc() {
    let stack = spawn_with(|b| b.max_metadata_bytes(64 * 1024)).await;
    let options = articles_gateway::server::ServeOptions {
        max_header_bytes: 4096,
        ..articles_gateway::server::ServeOptions::default()
    };
    let router = ok(
        articles_gateway::GatewayBuilder::new()
            .descriptors(telemetry_pool())
            .backend(stack.backend.clone())
            .build(),
        "gateway",
    );
    let gateway = crate::support::spawn_gateway_with(router, options).await;
    let through = channel(&gateway.url("")).await;
    let mut request = tonic::Request::new(query("s1", 0, 0));
    let big = "x".repeat(6000);
    request
        .metadata_mut()
        .insert("x-big", ok(MetadataValue::try_from(big.as_str()), "value"));
    let (code, message) = refused_reading(&through, request, "an oversized head").await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("4096"), "{message}");
}

#[tokio::test]
async fn grpc_to_a_backend_that_is_down_is_unavailable_in_grpc_terms() {
    // A port nothing listens on: connections are refused.
    let dead = ok(std::net::TcpListener::bind("127.0.0.1:0"), "bind");
    let url = format!("http://{}", ok(dead.local_addr(), "addr"));
    drop(dead);
    let backend = ok(
        articles_gateway::Backend::balanced(
            &[url],
            &articles_gateway::BalanceOptions {
                connect_timeout: Duration::from_millis(500),
                ..articles_gateway::BalanceOptions::default()
            },
        ),
        "backend",
    );
    backend.health_checked().await;
    let router = ok(
        articles_gateway::GatewayBuilder::new()
            .descriptors(telemetry_pool())
            .backend(backend)
            .build(),
        "gateway",
    );
    let gateway = crate::support::spawn_gateway(router).await;
    let through = channel(&gateway.url("")).await;
    let (code, message) = refused_reading(
        &through,
        tonic::Request::new(query("s1", 0, 0)),
        "a dead backend",
    )
    .await;
    assert_eq!(code, Code::Unavailable);
    assert!(
        !message.contains("127.0.0.1"),
        "no address leaks: {message}"
    );
}

/// One gRPC (or gRPC-Web) frame: its flag byte, its length, its bytes.
fn frame(flag: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + payload.len());
    out.put_u8(flag);
    out.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    out.put_slice(payload);
    out.freeze()
}

/// Splits a body of gRPC-Web frames into (flag, payload) pairs.
fn frames(mut body: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    // Bounded by the body: each pass consumes one frame.
    while body.len() >= 5 {
        let flag = body[0];
        let length = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let Some(payload) = body.get(5..5 + length) else {
            panic!("a truncated frame");
        };
        out.push((flag, payload.to_vec()));
        body = &body[5 + length..];
    }
    assert!(body.is_empty(), "bytes after the last frame");
    out
}

/// Decodes gRPC-Web-text: base64 chunks, each padded on its own, one after the other.
fn decode_text(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut start = 0;
    // Bounded by the text: each pass moves past one 4-character group.
    for end in (4..=text.len()).step_by(4) {
        if text[end - 1] == b'=' || end == text.len() {
            let chunk = ok(
                base64::engine::general_purpose::STANDARD.decode(&text[start..end]),
                "base64",
            );
            out.extend(chunk);
            start = end;
        }
    }
    out
}

#[tokio::test]
async fn grpc_web_text_over_http1_is_answered_in_its_framing_with_cors() {
    let stack = spawn().await;
    let origin = "http://app.example";

    // A browser's preflight for a gRPC-Web call.
    let preflight = send(
        stack
            .h1
            .request(http::Method::OPTIONS, stack.url(GET_READING))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,x-grpc-web,x-user-agent,grpc-timeout",
            ),
    )
    .await;
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = preflight
        .headers()
        .get("access-control-allow-headers")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).to_lowercase())
        .unwrap_or_default();
    for header in ["content-type", "x-grpc-web", "x-user-agent", "grpc-timeout"] {
        assert!(allowed.contains(header), "{header} not in {allowed:?}");
    }

    let body = frame(0, &query("s1", 0, 0).encode_to_vec());
    let text = base64::engine::general_purpose::STANDARD.encode(&body);
    for (version, client) in stack.clients() {
        let r = send(
            client
                .post(stack.url(GET_READING))
                .header("content-type", "application/grpc-web-text")
                .header("accept", "application/grpc-web-text")
                .header("x-grpc-web", "1")
                .header("origin", origin)
                .body(text.clone()),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        let headers = r.headers().clone();
        assert_eq!(
            headers["content-type"], "application/grpc-web-text+proto",
            "{version}"
        );
        assert_eq!(headers["access-control-allow-origin"], "*", "{version}");
        assert!(headers.contains_key("access-control-expose-headers"));
        assert_eq!(headers["foo"], "foo1", "{version}: header metadata");
        let bytes = ok(r.bytes().await, "body");
        let frames = frames(&decode_text(&bytes));
        assert_eq!(frames.len(), 2, "{version}: a message and the trailers");
        let reading = ok(
            DynamicMessage::decode(descriptor("telemetry.v1.Reading"), frames[0].1.as_slice()),
            "reading",
        );
        assert_eq!(sensor_of(&reading), "s1");
        assert_eq!(frames[1].0, 0x80, "{version}: the trailer frame");
        let trailers = String::from_utf8_lossy(&frames[1].1).to_lowercase();
        assert!(trailers.contains("grpc-status:0"), "{trailers}");
        assert!(trailers.contains("foo:foo2"), "{trailers}");
    }

    // An error before any backend answer is a gRPC-Web status too.
    let r = send(
        stack
            .h1
            .post(stack.url("/telemetry.v1.Sensors/GetReading"))
            .header("content-type", "application/grpc-web+proto")
            .header("grpc-timeout", "whenever")
            .body(body.clone()),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let status = r
        .headers()
        .get("grpc-status")
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_else(|| {
            panic!("no grpc-status in the headers: {:?}", r.headers());
        });
    assert_eq!(status, b"3");
}

/// What a native gRPC call over HTTP/1.1 answered: the head, the body, the trailers.
struct Http1Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
    trailers: Option<http::HeaderMap>,
}

impl Http1Answer {
    /// `grpc-status`, from the head (trailers-only) or the trailers.
    fn grpc_status(&self) -> Option<String> {
        self.headers
            .get("grpc-status")
            .or_else(|| self.trailers.as_ref()?.get("grpc-status"))
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

/// A native gRPC call (`application/grpc`, not gRPC-Web) over an HTTP/1.1 connection of its
/// own, with hyper's HTTP/1 client, which reads chunked trailers.
async fn http1_grpc(
    stack: &Stack,
    method: &str,
    message: &DynamicMessage,
    extra: &[(&str, &str)],
) -> Http1Answer {
    let socket = ok(
        tokio::net::TcpStream::connect(stack.gateway.addr).await,
        "connect",
    );
    let (mut sender, connection) = ok(
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(socket)).await,
        "HTTP/1.1 handshake",
    );
    let connection = tokio::spawn(connection);
    let mut request = http::Request::post(method)
        .header("host", "gateway")
        .header("content-type", "application/grpc");
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let request = ok(
        request.body(Full::new(frame(0, &message.encode_to_vec()))),
        "request",
    );
    let response = ok(sender.send_request(request).await, "HTTP/1.1 gRPC call");
    assert_eq!(response.version(), http::Version::HTTP_11);
    let (parts, body) = response.into_parts();
    let collected = ok(
        ok(
            tokio::time::timeout(Duration::from_secs(10), body.collect()).await,
            "the body in time",
        ),
        "body",
    );
    connection.abort();
    Http1Answer {
        status: parts.status,
        headers: parts.headers,
        trailers: collected.trailers().cloned(),
        body: collected.to_bytes(),
    }
}

#[tokio::test]
async fn grpc_over_http1_ends_with_its_status_in_trailers_on_success_failure_and_deadline() {
    let stack = spawn().await;
    let te = ("te", "trailers");

    // Success: the message, then grpc-status 0 in the chunked trailers.
    let unary = http1_grpc(&stack, GET_READING, &query("s1", 0, 0), &[te]).await;
    assert_eq!(unary.status, StatusCode::OK);
    assert_eq!(frames(&unary.body).len(), 1, "one message");
    let trailers = unary.trailers.clone().unwrap_or_default();
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );
    assert_eq!(unary.grpc_status().as_deref(), Some("0"));

    let stream = http1_grpc(&stack, WATCH_READINGS, &query("s1", 3, 0), &[te]).await;
    assert_eq!(frames(&stream.body).len(), 3, "three readings");
    assert_eq!(
        stream
            .trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );

    // A failure mid-stream: its code in the trailers.
    let failing = http1_grpc(&stack, WATCH_READINGS, &query("failing", 5, 0), &[te]).await;
    assert_eq!(failing.grpc_status().as_deref(), Some("15"));

    // A stream cut by its deadline: some readings, then DEADLINE_EXCEEDED in the trailers.
    let cut = http1_grpc(
        &stack,
        WATCH_READINGS,
        &query("long", 1000, 50),
        &[te, ("grpc-timeout", "300m")],
    )
    .await;
    let readings = frames(&cut.body).len();
    assert!((1..1000).contains(&readings), "{readings} readings");
    assert_eq!(
        cut.trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .map(|v| v.as_bytes()),
        Some(&b"4"[..]),
        "{:?}",
        cut.trailers
    );

    // Without `TE: trailers` no trailers can be sent: refused, with a status in the head.
    let refused = http1_grpc(&stack, GET_READING, &query("s1", 0, 0), &[]).await;
    assert_eq!(refused.grpc_status().as_deref(), Some("3"));
    let message = refused
        .headers
        .get("grpc-message")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    assert!(message.contains("TE"), "{message}");
    assert!(refused.body.is_empty());
}

#[tokio::test]
async fn grpc_web_from_node_calls_the_gateway_port() {
    let stack = spawn().await;
    let descriptors = ok(tempfile::NamedTempFile::new(), "temp file");
    ok(
        std::fs::write(
            descriptors.path(),
            super::backend::telemetry_descriptor_bytes(),
        ),
        "write the descriptor set",
    );
    let env = [
        ("SENSORS_GRPC_WEB_URL", stack.url("")),
        (
            "SENSORS_DESCRIPTOR_SET",
            descriptors.path().display().to_string(),
        ),
    ];
    if let Some(stdout) = node_test("grpcweb.test.mjs", &env, NodeNeeds::Connect).await {
        assert!(
            stdout.contains("# pass 3") && stdout.contains("# fail 0"),
            "{stdout}"
        );
    }
}

/// The library API's echo backend answers each metadata key `k` as `echo-k`.
#[tokio::test]
async fn a_proxied_call_carries_the_clients_address_in_x_forwarded_for_as_rest_does() {
    let library = crate::support::spawn_library().await;
    let through = channel(&library.url("")).await;
    let Some(input) = library
        .pool
        .get_message_by_name("library.v1.GetShelfRequest")
    else {
        panic!("library.v1.GetShelfRequest");
    };
    let Some(output) = library.pool.get_message_by_name("library.v1.Shelf") else {
        panic!("library.v1.Shelf");
    };
    for (sent, expected) in [
        (None, "127.0.0.1"),
        (Some("203.0.113.9"), "203.0.113.9, 127.0.0.1"),
    ] {
        let mut request = tonic::Request::new(DynamicMessage::new(input.clone()));
        if let Some(sent) = sent {
            request
                .metadata_mut()
                .insert("x-forwarded-for", MetadataValue::from_static(sent));
        }
        let mut grpc = grpc(&through).await;
        let response = ok(
            grpc.unary(
                request,
                path("/library.v1.LibraryService/GetShelf"),
                DynamicCodec::new(output.clone()),
            )
            .await,
            "GetShelf through the gateway's port",
        );
        assert_eq!(
            response
                .metadata()
                .get("echo-x-forwarded-for")
                .and_then(|v| v.to_str().ok()),
            Some(expected),
            "sent {sent:?}"
        );
    }
}

#[tokio::test]
async fn proxied_calls_are_spread_over_the_backend_replicas() {
    let pool = telemetry_pool();
    let (first, first_counts) = super::backend::spawn_sensors_backend(&pool).await;
    let (second, second_counts) = super::backend::spawn_sensors_backend(&pool).await;
    let backend = ok(
        articles_gateway::Backend::balanced(
            &[first.url(""), second.url("")],
            &articles_gateway::BalanceOptions::default(),
        ),
        "backend",
    );
    backend.health_checked().await;
    let router = ok(
        articles_gateway::GatewayBuilder::new()
            .descriptors(pool)
            .backend(backend)
            .build(),
        "gateway",
    );
    let gateway = crate::support::spawn_gateway(router).await;
    let through = channel(&gateway.url("")).await;
    // Bounded: 20 calls, each a short client stream.
    for i in 0..20 {
        let readings = futures::stream::iter([Ok(reading(&format!("r{i}")))]);
        let mut grpc = grpc(&through).await;
        ok(
            grpc.client_streaming(
                tonic::Request::new(readings),
                path(UPLOAD_READINGS),
                StreamCodec,
            )
            .await,
            "UploadReadings through the gateway's port",
        );
    }
    let (a, b) = (
        first_counts.uploads.load(Ordering::SeqCst),
        second_counts.uploads.load(Ordering::SeqCst),
    );
    assert_eq!(a + b, 20, "every call reached a replica");
    assert!(a > 0 && b > 0, "both replicas took calls: {a} and {b}");
}

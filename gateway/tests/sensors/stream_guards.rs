//! Streams that browsers, proxies and hostile clients live with, in front of the sensors
//! backend: Server-Sent Events get their head at once and keep-alive comments while silent,
//! are told to retry while no backend is up (and resume where they were once one is), `HEAD`
//! answers at once without a call, and a WebSocket neither holds a message over the body limit
//! nor queues pongs for a client that does not read them.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use articles_gateway::{Backend, BalanceOptions, GatewayBuilder};
use futures::{SinkExt as _, StreamExt as _};
use http::StatusCode;
use serde_json::Value;
use tokio_tungstenite::tungstenite::{
    Message,
    protocol::frame::{
        Frame,
        coding::{Data, OpCode},
    },
};

use super::{
    backend::{sensors_routes, telemetry_pool},
    ok, spawn, spawn_with,
};
use crate::support::{send, spawn_gateway, spawn_grpc_on};

/// The next chunk of `response`, within `limit`.
async fn chunk_within(response: &mut reqwest::Response, limit: Duration) -> String {
    let chunk = ok(
        tokio::time::timeout(limit, response.chunk()).await,
        "a chunk in time",
    );
    String::from_utf8_lossy(&ok(chunk, "chunk").unwrap_or_default()).into_owned()
}

/// A gateway configured by these command-line flags.
async fn spawn_with_flags(flags: &[&str]) -> super::Stack {
    use clap::Parser as _;
    let cli = ok(
        articles_gateway::config::Cli::try_parse_from(
            std::iter::once("articles-gateway").chain(flags.iter().copied()),
        ),
        "flags",
    );
    spawn_with(|b| ok(cli.serve.http.configure(b), "configured")).await
}

#[tokio::test]
async fn an_idle_event_stream_gets_its_head_at_once_then_keep_alive_comments() {
    let stack = spawn_with_flags(&["--sse-keepalive", "200ms"]).await;
    // Accepted at once, first reading 5 s later: a caught-up watcher.
    let path = "/v1/sensors/late/readings:watch?count=1&delay_ms=5000";
    for (version, client) in stack.clients() {
        let started = Instant::now();
        let mut r = send(
            client
                .get(stack.url(path))
                .header("accept", "text/event-stream"),
        )
        .await;
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "{version}: the head waited {:?}",
            started.elapsed()
        );
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        assert_eq!(r.headers()["grpc-metadata-foo"], "foo1", "{version}");
        // Two comments, each within the interval (with room for a busy machine).
        for _ in 0..2 {
            let got = chunk_within(&mut r, Duration::from_secs(2)).await;
            assert_eq!(got, ": keep-alive\n\n", "{version}");
        }
        assert!(
            started.elapsed() < Duration::from_millis(4500),
            "{version}: {:?}",
            started.elapsed()
        );
    }

    // NDJSON gets no comment (it would be a line that is no JSON) and the reading whole.
    let r = send(
        stack
            .h2
            .get(stack.url("/v1/sensors/late/readings:watch?count=1&delay_ms=700")),
    )
    .await;
    let body = ok(r.text().await, "body");
    let line: Value = ok(serde_json::from_str(body.trim_end()), "one NDJSON line");
    assert_eq!(line["result"]["sensor"], "late", "{body}");

    // `--sse-keepalive 0`: none at all, the head still at once.
    let stack = spawn_with_flags(&["--sse-keepalive", "0"]).await;
    let mut r = send(
        stack
            .h2
            .get(stack.url("/v1/sensors/late/readings:watch?count=1&delay_ms=700"))
            .header("accept", "text/event-stream"),
    )
    .await;
    let got = chunk_within(&mut r, Duration::from_secs(5)).await;
    assert!(got.starts_with("data: {"), "{got}");
}

#[tokio::test]
async fn head_on_a_stream_route_answers_at_once_without_calling_the_backend() {
    let stack = spawn().await;
    let path = "/v1/sensors/late/readings:watch?count=1&delay_ms=5000";
    for (version, client) in stack.clients() {
        for (accept, content_type) in [
            ("text/event-stream", "text/event-stream"),
            ("application/x-ndjson", "application/x-ndjson"),
            ("application/json", "application/json"),
        ] {
            let started = Instant::now();
            let r = send(client.head(stack.url(path)).header("accept", accept)).await;
            assert!(
                started.elapsed() < Duration::from_millis(2500),
                "{version} {accept}: {:?}",
                started.elapsed()
            );
            assert_eq!(r.status(), StatusCode::OK, "{version} {accept}");
            assert_eq!(r.headers()["content-type"], content_type, "{version}");
            assert_ne!(
                r.headers().get("content-length").map(|v| v.as_bytes()),
                Some(&b"0"[..]),
                "{version}: a stream has no length"
            );
        }
        // The request is still checked as the GET's would be.
        let r = send(client.head(stack.url("/v1/sensors/s1/events?last_event_id=abc"))).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version}");
    }
    // No backend stream was opened (and so none cancelled).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(stack.counters.cancelled.load(Ordering::SeqCst), 0);
}

/// The `retry:`, `id:` and `event:` fields and the `data:` payloads of an SSE body's events.
fn sse_fields(body: &str) -> Vec<Vec<(String, String)>> {
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|event| {
            event
                .lines()
                .filter_map(|line| line.split_once(": "))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn an_event_stream_while_no_backend_is_up_is_told_to_retry_and_resumes_after() {
    // A port nothing listens on yet: the backend is down.
    let addr = ok(
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()),
        "a free port",
    );
    let options = BalanceOptions {
        health_interval: Duration::from_millis(50),
        ..BalanceOptions::default()
    };
    let backend = ok(
        Backend::balanced(&[format!("http://{addr}")], &options),
        "balanced backend",
    );
    backend.health_checked().await;
    let pool = telemetry_pool();
    let gateway = spawn_gateway(ok(
        GatewayBuilder::new()
            .descriptors(pool.clone())
            .backend(backend)
            .build(),
        "gateway",
    ))
    .await;
    let h1 = reqwest::Client::new();
    let h2 = ok(
        reqwest::Client::builder().http2_prior_knowledge().build(),
        "h2 client",
    );
    // EventSource reconnecting with the id of the last event it saw.
    let path = "/v1/sensors/s1/events?count=2";
    for (version, client) in [("HTTP/1.1", &h1), ("HTTP/2", &h2)] {
        let r = send(
            client
                .get(gateway.url(path))
                .header("accept", "text/event-stream")
                .header("last-event-id", "5"),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let body = ok(r.text().await, "body");
        let events = sse_fields(&body);
        assert_eq!(events.len(), 1, "{version}: {body}");
        let fields = &events[0];
        assert_eq!(fields[0], ("retry".to_owned(), "1000".to_owned()), "{body}");
        assert_eq!(
            fields[1],
            ("event".to_owned(), "error".to_owned()),
            "{body}"
        );
        let error: Value = ok(serde_json::from_str(&fields[2].1), "the error");
        assert_eq!(error["code"], 14, "{body}");
        assert!(
            !body.contains("\nid:") && !body.starts_with("id:"),
            "no id: the browser keeps its Last-Event-ID: {body}"
        );

        // Other framings keep the plain 503.
        let r = send(client.get(gateway.url(path))).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{version}");
    }

    // The backend comes up where it was: the retried request resumes after event 5.
    let listener = ok(tokio::net::TcpListener::bind(addr).await, "the port again");
    let counters = std::sync::Arc::default();
    let _backend = spawn_grpc_on(listener, addr, sensors_routes(&pool, &counters), None);
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let r = send(
            h2.get(gateway.url(path))
                .header("accept", "text/event-stream")
                .header("last-event-id", "5"),
        )
        .await;
        let body = ok(r.text().await, "body");
        if !body.contains("event: error") || Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ids: Vec<Option<String>> = sse_fields(&body)
        .iter()
        .map(|fields| {
            fields
                .iter()
                .find(|(k, _)| k == "id")
                .map(|(_, v)| v.clone())
        })
        .collect();
    assert_eq!(ids, [Some("6".to_owned()), Some("7".to_owned())], "{body}");
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[tokio::test]
async fn a_websocket_message_over_the_body_limit_closes_the_socket_with_1009() {
    const LIMIT: usize = 64 * 1024;
    const FRAGMENT: usize = 16 * 1024;
    // 48 MiB in all, were it all taken.
    const FRAGMENTS: usize = 3072;
    let stack = spawn_with(|b| b.body_limit(LIMIT)).await;
    let url = format!("ws://{}/v1/sensors:relay", stack.gateway.addr);
    let (socket, _): (Socket, _) = ok(
        tokio_tungstenite::connect_async(url).await,
        "WebSocket connect",
    );
    let (mut sink, mut source) = socket.split();
    let sender = tokio::spawn(async move {
        let mut sent = 0;
        while sent < FRAGMENTS {
            let opcode = if sent == 0 {
                OpCode::Data(Data::Text)
            } else {
                OpCode::Data(Data::Continue)
            };
            // Never the last fragment: the message is never finished.
            let frame = Frame::message(vec![b' '; FRAGMENT], opcode, false);
            if sink.send(Message::Frame(frame)).await.is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });
    let started = Instant::now();
    let mut error = Value::Null;
    let close = loop {
        let frame = tokio::time::timeout(Duration::from_secs(20), source.next()).await;
        match frame {
            Ok(Some(Ok(Message::Text(text)))) => error = ok(serde_json::from_str(&text), "JSON"),
            Ok(Some(Ok(Message::Close(close)))) => break close,
            Ok(Some(Ok(_))) => {}
            other => panic!("no close frame after {:?}: {other:?}", started.elapsed()),
        }
    };
    let close = ok(close.ok_or("no code"), "the close frame");
    assert_eq!(u16::from(close.code), 1009, "{close:?}");
    assert!(close.reason.contains("65536"), "{close:?}");
    assert_eq!(error["error"]["code"], 8, "{error}");
    let sent = ok(sender.await, "sender");
    assert!(
        sent < FRAGMENTS,
        "the socket took the whole 48 MiB message ({sent} fragments)"
    );
    // The gateway still serves.
    let r = send(stack.h1.get(stack.url("/v1/sensors/s1/reading"))).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_ping_flood_from_a_client_that_never_reads_stalls_its_own_writes() {
    const PER_BATCH: usize = 500;
    // 300,000 pings of 125 bytes, 39 MB sent, were none of them held back.
    const BATCHES: usize = 600;
    let stack = spawn().await;
    // Small socket buffers on the client's side, so that a stall shows soon.
    let tcp = ok(tokio::net::TcpSocket::new_v4(), "socket");
    ok(tcp.set_recv_buffer_size(16 * 1024), "SO_RCVBUF");
    ok(tcp.set_send_buffer_size(16 * 1024), "SO_SNDBUF");
    let tcp = ok(tcp.connect(stack.gateway.addr).await, "connect");
    let url = format!("ws://{}/v1/sensors:relay", stack.gateway.addr);
    let (socket, _) = ok(
        tokio_tungstenite::client_async(url, tcp).await,
        "WebSocket handshake",
    );
    // The reading half is kept, never read: the pongs stay unread.
    let (mut sink, _unread) = socket.split();
    let payload = vec![7u8; 125];
    let mut batches = 0;
    let stalled = loop {
        if batches == BATCHES {
            break false;
        }
        let batch = async {
            for _ in 0..PER_BATCH {
                sink.feed(Message::Ping(payload.clone().into())).await?;
            }
            sink.flush().await
        };
        match tokio::time::timeout(Duration::from_secs(2), batch).await {
            Ok(Ok(())) => batches += 1,
            Ok(Err(e)) => panic!("the gateway dropped the socket after {batches} batches: {e}"),
            Err(_) => break true,
        }
    };
    assert!(
        stalled,
        "{} pings were taken from a client that read no pong",
        batches * PER_BATCH
    );
    // Others are served meanwhile.
    let r = send(stack.h1.get(stack.url("/v1/sensors/s1/reading"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    eprintln!("stalled after {batches} batches of {PER_BATCH} pings");
}

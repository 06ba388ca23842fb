//! Streaming through the gateway, in front of the sensors backend: server streaming in each
//! framing, client and bidirectional streaming over HTTP/1.1 and HTTP/2, WebSocket, failures
//! and deadlines mid-stream, cancellation when the client goes away, `HttpBody` up and down.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use futures::{SinkExt as _, StreamExt as _};
use http::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::{Stack, ok, spawn, spawn_with};
use crate::support::{NodeNeeds, json, node_test, send};

/// The lines of an NDJSON body, parsed.
fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| ok(serde_json::from_str(line), "an NDJSON line"))
        .collect()
}

async fn text(response: reqwest::Response) -> String {
    ok(response.text().await, "body")
}

#[tokio::test]
async fn server_streams_in_the_framing_accept_asks_for() {
    let stack = spawn().await;
    let path = "/v1/sensors/s1/readings:watch?count=3";
    for (version, client) in stack.clients() {
        let r = send(client.get(stack.url(path))).await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(r.headers()["content-type"], "application/x-ndjson");
        assert_eq!(r.headers()["grpc-metadata-foo"], "foo1");
        let got = lines(&text(r).await);
        let sequences: Vec<&Value> = got.iter().map(|l| &l["result"]["sequence"]).collect();
        assert_eq!(
            sequences,
            [&json!("1"), &json!("2"), &json!("3")],
            "{version}"
        );

        let r = send(
            client
                .get(stack.url(path))
                .header("accept", "text/event-stream"),
        )
        .await;
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let body = text(r).await;
        let events: Vec<&str> = body.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 3, "{body}");
        assert!(events.iter().all(|e| e.starts_with("data: {")), "{body}");

        let r = send(
            client
                .get(stack.url(path))
                .header("accept", "application/json"),
        )
        .await;
        assert_eq!(r.headers()["content-type"], "application/json");
        let array = json(r).await;
        assert_eq!(array.as_array().map(Vec::len), Some(3), "{array}");
        assert_eq!(array[2]["sequence"], "3");

        // An empty stream is an empty array, or no lines.
        let empty = "/v1/sensors/s1/readings:watch?count=0";
        let r = send(
            client
                .get(stack.url(empty))
                .header("accept", "application/json"),
        )
        .await;
        assert_eq!(json(r).await, json!([]));
        let r = send(client.get(stack.url(empty))).await;
        assert_eq!(text(r).await, "");
    }
}

#[tokio::test]
async fn each_message_is_written_as_it_arrives() {
    let stack = spawn().await;
    for (version, client) in stack.clients() {
        let started = Instant::now();
        let mut r =
            send(client.get(stack.url("/v1/sensors/s1/readings:watch?count=2&delay_ms=1500")))
                .await;
        let first = ok(r.chunk().await, "first chunk").unwrap_or_default();
        let elapsed = started.elapsed();
        let first = String::from_utf8_lossy(&first).into_owned();
        assert!(first.contains("\"sequence\":\"1\""), "{version}: {first}");
        assert!(!first.contains("\"sequence\":\"2\""), "{version}: {first}");
        // The second message is 1.5 s away: the first was not held back for it.
        assert!(
            elapsed < Duration::from_millis(1200),
            "{version}: {elapsed:?}"
        );
    }
}

#[tokio::test]
async fn a_failure_mid_stream_ends_it_in_each_framing() {
    let stack = spawn().await;
    let path = "/v1/sensors/failing/readings:watch?count=5";
    for (version, client) in stack.clients() {
        let got = lines(&text(send(client.get(stack.url(path))).await).await);
        assert_eq!(got.len(), 3, "{version}: {got:?}");
        assert_eq!(
            got[2],
            json!({"error": {
                "code": 15,
                "message": "sensor lost",
                "details": [{
                    "@type": "type.googleapis.com/google.rpc.DebugInfo",
                    "stack_entries": ["stream"],
                    "detail": "sensor lost",
                }],
            }}),
            "{version}"
        );
        let body = text(
            send(
                client
                    .get(stack.url(path))
                    .header("accept", "text/event-stream"),
            )
            .await,
        )
        .await;
        assert!(
            body.contains("event: error\ndata: {\"code\":15"),
            "{version}: {body}"
        );
        // An array cannot say it failed: the response breaks instead of looking complete
        // (before its head, when the failure comes before the head is flushed).
        let r = client
            .get(stack.url(path))
            .header("accept", "application/json")
            .send()
            .await;
        if let Ok(r) = r {
            assert!(r.bytes().await.is_err(), "{version}");
        }
    }
}

#[tokio::test]
async fn a_failure_before_the_first_message_answers_its_http_status() {
    let stack = spawn().await;
    for (version, client) in stack.clients() {
        let r = send(client.get(stack.url("/v1/sensors/dead/readings:watch?count=3"))).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{version}");
        assert_eq!(r.headers()["grpc-metadata-foo"], "foo1");
        assert_eq!(json(r).await["code"], 5);
    }
}

#[tokio::test]
async fn the_deadline_ends_a_stream_with_deadline_exceeded() {
    let stack = spawn().await;
    for (version, client) in stack.clients() {
        let r = send(
            client
                .get(stack.url("/v1/sensors/s1/readings:watch?count=50&delay_ms=50"))
                .header("grpc-timeout", "400m"),
        )
        .await;
        let got = lines(&text(r).await);
        let last = got.last().cloned().unwrap_or_default();
        assert_eq!(last["error"]["code"], 4, "{version}: {got:?}");
        assert!(got.len() > 1 && got.len() < 50, "{version}: {}", got.len());
    }
}

/// Waits (bounded) until the backend has seen `want` cancelled streams.
async fn cancelled(stack: &Stack, want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = stack.counters.cancelled.load(Ordering::SeqCst);
        if seen >= want || Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_client_going_away_cancels_the_backend_call() {
    let stack = spawn().await;
    for (n, (version, client)) in stack.clients().into_iter().enumerate() {
        let mut r =
            send(client.get(stack.url("/v1/sensors/s1/readings:watch?count=1000&delay_ms=20")))
                .await;
        assert!(ok(r.chunk().await, "first chunk").is_some(), "{version}");
        drop(r);
        assert_eq!(cancelled(&stack, n + 1).await, n + 1, "{version}");
    }
}

#[tokio::test]
async fn client_streaming_reads_each_message_as_it_comes_and_checks_each() {
    let stack = spawn_with(|b| b.body_limit(64)).await;
    for (version, client) in stack.clients() {
        // Newline-delimited and concatenated, split mid-message across chunks, 90 bytes in all.
        let chunks: Vec<Result<&'static str, std::io::Error>> = vec![
            Ok("{\"sensor\": \"a\"}\n{\"sensor\""),
            Ok(": \"b\"}{\"sensor\": \"c\"}  \n"),
            Ok("{\"sensor\": \"d\", \"unit\": \"KELVIN\"}\n"),
        ];
        let r = send(
            client
                .post(stack.url("/v1/sensors/bulk"))
                .header("content-type", "application/x-ndjson")
                .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks))),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(
            json(r).await,
            json!({"count": 4, "sensors": ["a", "b", "c", "d"]}),
            "{version}"
        );
    }
    let completed = stack.counters.uploads.load(Ordering::SeqCst);
    // One message over the limit: 413, and the backend never sees a complete upload.
    let big = format!(
        "{{\"sensor\": \"a\"}}\n{{\"sensor\": \"{}\"}}\n",
        "x".repeat(80)
    );
    let r = send(stack.h2.post(stack.url("/v1/sensors/bulk")).body(big)).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // A bad message: 400, the call cancelled rather than ended.
    let r = send(
        stack
            .h1
            .post(stack.url("/v1/sensors/bulk"))
            .body("{\"sensor\": \"a\"}\n{\"colour\": 1}\n"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(
        json(r).await["message"]
            .as_str()
            .is_some_and(|m| m.contains("colour"))
    );
    let r = send(
        stack
            .h1
            .post(stack.url("/v1/sensors/bulk"))
            .body("{\"sensor\": "),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(stack.counters.uploads.load(Ordering::SeqCst), completed);
}

/// A request body fed through a channel, so a test can write it message by message.
fn channel_body() -> (
    tokio::sync::mpsc::Sender<Result<String, std::io::Error>>,
    reqwest::Body,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    (tx, body)
}

#[tokio::test]
async fn bidirectional_ndjson_answers_each_message_before_the_next_is_sent() {
    let stack = spawn().await;
    for (version, client) in stack.clients() {
        let (tx, body) = channel_body();
        ok(tx.send(Ok("{\"sensor\": \"one\"}\n".into())).await, "send");
        let mut r = send(client.post(stack.url("/v1/sensors:relay")).body(body)).await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        // The echo of the first message arrives while the request is still open.
        let first = ok(
            tokio::time::timeout(Duration::from_secs(5), r.chunk()).await,
            "first echo in time",
        );
        let first = String::from_utf8_lossy(&ok(first, "chunk").unwrap_or_default()).into_owned();
        assert!(first.contains("\"sensor\":\"one\""), "{version}: {first}");
        ok(tx.send(Ok("{\"sensor\": \"two\"}\n".into())).await, "send");
        drop(tx);
        let mut rest = String::new();
        while let Some(chunk) = ok(r.chunk().await, "chunk") {
            rest.push_str(&String::from_utf8_lossy(&chunk));
        }
        let got = lines(&rest);
        assert_eq!(got.len(), 1, "{version}: {rest}");
        assert_eq!(got[0]["result"]["sensor"], "two");
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(stack: &Stack, path: &str) -> Socket {
    let url = format!("ws://{}{path}", stack.gateway.addr);
    ok(
        tokio_tungstenite::connect_async(url).await,
        "WebSocket connect",
    )
    .0
}

/// The next text frame, or the close frame's code and reason.
async fn next_frame(socket: &mut Socket) -> Result<Value, (u16, String)> {
    loop {
        let frame = ok(
            tokio::time::timeout(Duration::from_secs(5), socket.next()).await,
            "a frame in time",
        );
        match frame {
            Some(Ok(Message::Text(text))) => {
                return Ok(ok(serde_json::from_str(&text), "JSON frame"));
            }
            Some(Ok(Message::Close(close))) => {
                return Err(close.map_or((1005, String::new()), |c| {
                    (u16::from(c.code), c.reason.to_string())
                }));
            }
            Some(Ok(_)) => {}
            other => panic!("the WebSocket ended without a close frame: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_websocket_streams_both_ways_and_closes_with_the_status() {
    let stack = spawn().await;
    let mut socket = connect(&stack, "/v1/sensors:relay").await;
    for sensor in ["a", "b"] {
        let message = json!({"sensor": sensor}).to_string();
        ok(socket.send(Message::text(message)).await, "send");
        assert_eq!(
            ok(
                next_frame(&mut socket).await.map_err(|e| format!("{e:?}")),
                "echo"
            )["sensor"],
            sensor
        );
    }
    // An empty frame ends the requests; the call ends; the server closes with OK.
    ok(socket.send(Message::text("")).await, "half-close");
    assert_eq!(next_frame(&mut socket).await, Err((1000, "OK".to_owned())));

    // A bad message: an error frame, then close 4000 + INVALID_ARGUMENT.
    let mut socket = connect(&stack, "/v1/sensors:relay").await;
    ok(socket.send(Message::text("{\"colour\": 1}")).await, "send");
    let error = ok(
        next_frame(&mut socket).await.map_err(|e| format!("{e:?}")),
        "error frame",
    );
    assert_eq!(error["error"]["code"], 3, "{error}");
    let (code, _) = next_frame(&mut socket).await.err().unwrap_or_default();
    assert_eq!(code, 4003);

    // Server streaming over a WebSocket: the request from the path and query.
    let mut socket = connect(&stack, "/v1/sensors/s9/readings:watch?count=2").await;
    for sequence in ["1", "2"] {
        let frame = ok(
            next_frame(&mut socket).await.map_err(|e| format!("{e:?}")),
            "reading",
        );
        assert_eq!(frame["sequence"], sequence);
        assert_eq!(frame["sensor"], "s9");
    }
    assert_eq!(next_frame(&mut socket).await, Err((1000, "OK".to_owned())));
    let mut socket = connect(&stack, "/v1/sensors/failing/readings:watch?count=5").await;
    let _ = next_frame(&mut socket).await;
    let _ = next_frame(&mut socket).await;
    let error = ok(
        next_frame(&mut socket).await.map_err(|e| format!("{e:?}")),
        "error frame",
    );
    assert_eq!(error["error"]["code"], 15);
    let (code, reason) = next_frame(&mut socket).await.err().unwrap_or_default();
    assert_eq!((code, reason.as_str()), (4015, "sensor lost"));
}

#[tokio::test]
async fn http_bodies_go_up_and_down_raw() {
    let stack = spawn().await;
    for (version, client) in stack.clients() {
        let r = send(client.get(stack.url("/v1/sensors/s1/snapshot"))).await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(r.headers()["content-type"], "image/png");
        assert_eq!(
            ok(r.bytes().await, "bytes").as_ref(),
            b"\x89PNG\r\n\x1a\n\0\xff"
        );

        let r = send(client.get(stack.url("/v1/sensors/s1/readings.csv"))).await;
        assert_eq!(r.headers()["content-type"], "text/csv");
        assert_eq!(text(r).await, "sensor,value\ns1,1\ns1,2\n");

        let firmware = vec![0u8, 1, 2, 255, b'{'];
        let r = send(
            client
                .put(stack.url("/v1/sensors/s1/firmware"))
                .header("content-type", "application/octet-stream")
                .body(firmware),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(
            json(r).await,
            json!({"count": 5, "sensors": ["application/octet-stream", "s1"]})
        );

        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
            Ok(b"line 1\n".to_vec()),
            Ok(vec![0xff; 1000]),
            Ok(b"end\n".to_vec()),
        ];
        let r = send(
            client
                .post(stack.url("/v1/logs"))
                .header("content-type", "text/plain")
                .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks))),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        let summary = json(r).await;
        assert_eq!(summary["count"], 1011, "{summary}");
        assert_eq!(summary["sensors"][0], "text/plain");
    }
}

#[tokio::test]
async fn a_stream_of_http_body_fields_downloads_raw_like_a_stream_of_http_bodies() {
    let stack = spawn().await;
    for (version, client) in stack.clients() {
        // `response_body: "file"`, an HttpBody: its data raw, the first piece's content type.
        let r = send(client.get(stack.url("/v1/sensors/s1/report.txt"))).await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(
            r.headers()["content-type"],
            "text/plain; charset=utf-8",
            "{version}"
        );
        assert_eq!(text(r).await, "report of s1\n1\n2\n", "{version}");
        let r = send(client.head(stack.url("/v1/sensors/s1/report.txt"))).await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert!(r.headers().get("content-type").is_none(), "{version}");
    }
    // The document describes it as the stream of bare HttpBody messages.
    let doc = json(send(stack.h1.get(stack.url("/openapi.json"))).await).await;
    let report = &doc["paths"]["/v1/sensors/{sensor}/report.txt"]["get"]["responses"]["200"];
    let csv = &doc["paths"]["/v1/sensors/{sensor}/readings.csv"]["get"]["responses"]["200"];
    assert_eq!(
        report["content"]["*/*"]["schema"]["format"], "binary",
        "{report}"
    );
    assert_eq!(report, csv);
}

#[tokio::test]
async fn the_openapi_document_states_each_stream_and_raw_body() {
    let stack = spawn().await;
    let doc = json(send(stack.h1.get(stack.url("/openapi.json"))).await).await;
    let watch = &doc["paths"]["/v1/sensors/{sensor}/readings:watch"]["get"];
    let content = &watch["responses"]["200"]["content"];
    assert_eq!(
        content["application/x-ndjson"]["schema"]["properties"]["error"]["$ref"],
        "#/components/schemas/Status",
        "{watch}"
    );
    assert!(content["application/x-ndjson"]["schema"]["properties"]["result"].is_object());
    assert_eq!(content["application/json"]["schema"]["type"], "array");
    assert_eq!(content["text/event-stream"]["schema"]["type"], "string");
    assert!(
        watch["description"]
            .as_str()
            .is_some_and(|d| d.contains("Streaming:"))
    );

    let upload = &doc["paths"]["/v1/sensors/bulk"]["post"]["requestBody"]["content"];
    assert!(upload["application/x-ndjson"].is_object(), "{upload}");
    let snapshot = &doc["paths"]["/v1/sensors/{sensor}/snapshot"]["get"]["responses"]["200"];
    assert_eq!(
        snapshot["content"]["*/*"]["schema"]["format"], "binary",
        "{snapshot}"
    );
    let firmware = &doc["paths"]["/v1/sensors/{sensor}/firmware"]["put"]["requestBody"];
    assert_eq!(
        firmware["content"]["*/*"]["schema"]["format"], "binary",
        "{firmware}"
    );
}

#[tokio::test]
async fn a_browser_follows_streams_over_event_source_and_websocket() {
    let stack = spawn().await;
    if let Some(stdout) = node_test(
        "streams.test.mjs",
        &[("STREAMS_URL", stack.url(""))],
        NodeNeeds::Browser,
    )
    .await
    {
        assert!(stdout.contains("# pass 2"), "{stdout}");
    }
}

/// The `id:` lines and `data:` payloads of an SSE body.
fn sse_events(body: &str) -> Vec<(Option<String>, Value)> {
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|event| {
            let mut id = None;
            let mut data = Value::Null;
            for line in event.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = ok(serde_json::from_str(v), "SSE data");
                }
            }
            (id, data)
        })
        .collect()
}

#[tokio::test]
async fn sse_events_carry_the_event_id_field_and_last_event_id_resumes_the_stream() {
    let stack = spawn().await;
    for (version, client) in stack.clients() {
        let sse = |path: &str| {
            client
                .get(stack.url(path))
                .header("accept", "text/event-stream")
        };
        // No header: the query's value (default 0) is used; each event's id is its event_id.
        let body = text(send(sse("/v1/sensors/s1/events?count=2")).await).await;
        let events = sse_events(&body);
        let ids: Vec<Option<&str>> = events.iter().map(|(id, _)| id.as_deref()).collect();
        assert_eq!(ids, [Some("1"), Some("2")], "{version}: {body}");
        assert_eq!(events[1].1["event_id"], json!("2"), "{version}: {body}");
        assert_eq!(events[1].1["reading"]["sensor"], json!("s1"), "{version}");

        // EventSource reconnects to its first URL with Last-Event-ID: the header wins.
        let r = send(
            sse("/v1/sensors/s1/events?count=2&last_event_id=1").header("last-event-id", "41"),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        let body = text(r).await;
        let ids: Vec<Option<String>> = sse_events(&body).into_iter().map(|(id, _)| id).collect();
        assert_eq!(
            ids,
            [Some("42".to_owned()), Some("43".to_owned())],
            "{version}: {body}"
        );

        // The header is read as the field is: parsed, and held to its rules, by name.
        for bad in ["abc", "-1", "1001"] {
            let r = send(sse("/v1/sensors/s1/events?count=1").header("last-event-id", bad)).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version} {bad}");
            let body = text(r).await;
            assert!(body.contains("last_event_id"), "{version} {bad}: {body}");
        }

        // NDJSON has no ids, but the header still resumes.
        let r = send(
            client
                .get(stack.url("/v1/sensors/s1/events?count=1"))
                .header("last-event-id", "7"),
        )
        .await;
        let got = lines(&text(r).await);
        assert_eq!(got[0]["result"]["event_id"], json!("8"), "{version}");

        // A method without the fields is untouched by the header and writes no ids.
        let body = text(
            send(sse("/v1/sensors/s1/readings:watch?count=1").header("last-event-id", "x")).await,
        )
        .await;
        assert!(body.starts_with("data: {"), "{version}: {body}");
        assert!(!body.contains("id: "), "{version}: {body}");
    }
}

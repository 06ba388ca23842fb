//! The Connect protocol on the gateway's one port, in front of `telemetry.v1.Sensors` (no
//! health service, no reflection): unary calls in JSON and binary, errors in Connect's JSON with
//! the code's HTTP status and google.rpc details, `trailer-` headers, GET for a method without
//! side effects and its caching headers, the three kinds of stream in Connect's envelopes with
//! their end-of-stream message, compression, deadlines, limits, a procedure the descriptors do
//! not have (404 `unimplemented`, never sent to the backend), REST keeping a path it routes;
//! and real Connect clients (connect-node over HTTP/1.1 and HTTP/2, connect-web in headless
//! Chromium) through `tests/browser/connect.test.mjs`.

use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::{BufMut as _, Bytes, BytesMut};
use flate2::{Compression, read::GzDecoder, write::GzEncoder};
use http::StatusCode;
use prost::Message as _;
use prost_reflect::{DynamicMessage, Value};
use serde_json::{Value as Json, json};
use std::io::{Read as _, Write as _};

use super::{Stack, backend::telemetry_pool, ok, spawn, spawn_with};
use crate::support::{NodeNeeds, json as json_of, node_test, send};

const GET_READING: &str = "/telemetry.v1.Sensors/GetReading";
const WATCH_READINGS: &str = "/telemetry.v1.Sensors/WatchReadings";
const UPLOAD_READINGS: &str = "/telemetry.v1.Sensors/UploadReadings";
const RELAY: &str = "/telemetry.v1.Sensors/Relay";

fn message(name: &str, fields: &[(&str, Value)]) -> DynamicMessage {
    let Some(descriptor) = telemetry_pool().get_message_by_name(name) else {
        panic!("no message {name}");
    };
    let mut message = DynamicMessage::new(descriptor);
    for (field, value) in fields {
        message.set_field_by_name(field, value.clone());
    }
    message
}

fn decode(name: &str, bytes: &[u8]) -> DynamicMessage {
    let Some(descriptor) = telemetry_pool().get_message_by_name(name) else {
        panic!("no message {name}");
    };
    ok(DynamicMessage::decode(descriptor, bytes), "a message")
}

fn string_of(message: &DynamicMessage, field: &str) -> String {
    match message.get_field_by_name(field).as_deref() {
        Some(Value::String(s)) => s.clone(),
        other => panic!("no {field}: {other:?}"),
    }
}

/// A unary Connect POST, as connect-es sends it.
fn unary(
    client: &reqwest::Client,
    stack: &Stack,
    path: &str,
    content_type: &str,
) -> reqwest::RequestBuilder {
    client
        .post(stack.url(path))
        .header("content-type", content_type)
        .header("connect-protocol-version", "1")
}

fn envelope(flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(5 + payload.len());
    out.put_u8(flags);
    out.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    out.put_slice(payload);
    out.to_vec()
}

/// The envelopes of a stream's body: (flags, payload), inflated when flagged compressed.
fn envelopes(mut body: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    // Bounded by the body: each pass takes at least 5 bytes.
    while body.len() >= 5 {
        let length = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let flags = body[0];
        let Some(payload) = body.get(5..5 + length) else {
            panic!("a truncated envelope");
        };
        let payload = if flags & 1 == 1 {
            let mut inflated = Vec::new();
            ok(
                GzDecoder::new(payload).read_to_end(&mut inflated),
                "a gzip message",
            );
            inflated
        } else {
            payload.to_vec()
        };
        out.push((flags, payload));
        body = &body[5 + length..];
    }
    assert!(body.is_empty(), "bytes after the last envelope");
    out
}

fn end_of(envelopes: &[(u8, Vec<u8>)]) -> Json {
    let Some((flags, payload)) = envelopes.last() else {
        panic!("no envelope");
    };
    assert_eq!(flags & 2, 2, "the last envelope ends the stream");
    assert!(
        envelopes[..envelopes.len() - 1]
            .iter()
            .all(|(f, _)| f & 2 == 0),
        "only the last envelope ends the stream"
    );
    ok(serde_json::from_slice(payload), "the end-of-stream JSON")
}

/// A whole body, within 10 s.
async fn bytes_of(response: reqwest::Response) -> Bytes {
    let body = tokio::time::timeout(Duration::from_secs(10), response.bytes()).await;
    ok(ok(body, "the body in time"), "body")
}

/// How many calls the backend's replicas were sent.
fn backend_calls(stack: &Stack) -> u64 {
    stack
        .backend
        .replica_statuses()
        .iter()
        .map(|r| r.calls)
        .sum()
}

#[tokio::test]
async fn connect_unary_answers_json_and_proto_with_header_and_trailer_metadata() {
    let stack = spawn().await;
    for (version, client) in stack.clients() {
        let r = send(
            unary(client, &stack, GET_READING, "application/json").body(r#"{"sensor": "s1"}"#),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(r.headers()["content-type"], "application/json", "{version}");
        assert_eq!(r.headers()["foo"], "foo1", "{version}");
        assert_eq!(r.headers()["trailer-foo"], "foo2", "{version}");
        let body = json_of(r).await;
        assert_eq!(body["sensor"], "s1", "{version}");
        assert_eq!(body["sequence"], "9223372036854775807", "{version}");

        let query = message(
            "telemetry.v1.ReadingQuery",
            &[("sensor", Value::String("p1".into()))],
        );
        let r = send(
            unary(client, &stack, GET_READING, "application/proto").body(query.encode_to_vec()),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(r.headers()["content-type"], "application/proto");
        assert_eq!(r.headers()["trailer-foo"], "foo2");
        let reading = decode("telemetry.v1.Reading", &bytes_of(r).await);
        assert_eq!(string_of(&reading, "sensor"), "p1", "{version}");
        assert_eq!(
            reading.get_field_by_name("sequence").as_deref(),
            Some(&Value::I64(i64::MAX))
        );
    }
}

#[tokio::test]
async fn connect_errors_are_connect_json_with_the_codes_http_status_and_details() {
    let stack = spawn().await;
    for (version, client) in stack.clients() {
        // INTERNAL after headers, with two google.rpc details the fixture does not declare.
        let r = send(
            unary(client, &stack, GET_READING, "application/json").body(r#"{"sensor":"broken"}"#),
        )
        .await;
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR, "{version}");
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(r.headers()["foo"], "foo1");
        assert_eq!(r.headers()["trailer-foo"], "foo2");
        let body = json_of(r).await;
        assert_eq!(body["code"], "internal", "{body}");
        assert_eq!(body["message"], "sensor broken");
        let details = body["details"].as_array().cloned().unwrap_or_default();
        assert_eq!(details.len(), 2, "{body}");
        assert_eq!(details[0]["type"], "google.rpc.DebugInfo");
        assert_eq!(details[0]["debug"]["detail"], "fuse blown");
        assert_eq!(details[1]["type"], "google.rpc.BadRequest");
        // The value: the detail's bytes, base64 without padding.
        let value = details[0]["value"].as_str().unwrap_or_default();
        assert!(!value.ends_with('='), "{value}");
        let bytes = ok(
            base64::engine::general_purpose::STANDARD_NO_PAD.decode(value),
            "base64",
        );
        assert!(String::from_utf8_lossy(&bytes).contains("fuse blown"));

        // Trailers-only NOT_FOUND, its metadata a header.
        let r = send(
            unary(client, &stack, GET_READING, "application/json").body(r#"{"sensor":"missing"}"#),
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{version}");
        assert_eq!(r.headers()["where"], "trailers-only");
        let body = json_of(r).await;
        assert_eq!(
            body,
            json!({"code": "not_found", "message": "no such sensor"})
        );

        // The gateway's own: a body that is no message of the type.
        let r =
            send(unary(client, &stack, GET_READING, "application/json").body(r#"{"sensor": 5}"#))
                .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version}");
        assert_eq!(json_of(r).await["code"], "invalid_argument");
        let r =
            send(unary(client, &stack, GET_READING, "application/proto").body(vec![0xff, 0xff]))
                .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version}");
        assert_eq!(json_of(r).await["code"], "invalid_argument");
    }
}

#[tokio::test]
async fn a_procedure_the_descriptors_lack_is_unimplemented_404_without_a_backend_call() {
    let stack = spawn().await;
    // The backend answers an unknown method UNIMPLEMENTED (501): a 404 never reached it.
    let path = "/telemetry.v1.Sensors/Teleport";
    let calls = backend_calls(&stack);
    for (version, client) in stack.clients() {
        let r = send(unary(client, &stack, path, "application/json").body("{}")).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{version}");
        let body = json_of(r).await;
        assert_eq!(body["code"], "unimplemented", "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("telemetry.v1.Sensors/Teleport"),
            "{body}"
        );
        let r = send(
            client
                .post(stack.url("/nowhere.v1.Nothing/Call"))
                .header("content-type", "application/connect+json")
                .body(envelope(0, b"{}")),
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{version}");
        assert_eq!(json_of(r).await["code"], "unimplemented");
        let r =
            send(client.get(stack.url(&format!("{path}?connect=v1&encoding=json&message=%7B%7D"))))
                .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{version}");
        assert_eq!(r.headers()["cache-control"], "no-store");
        // Without Connect-Protocol-Version, a JSON POST to an unknown path is REST's 404.
        let r = send(
            client
                .post(stack.url(path))
                .header("content-type", "application/json")
                .body("{}"),
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{version}");
        assert_eq!(json_of(r).await["code"], 5);
    }
    assert_eq!(backend_calls(&stack), calls, "no call reached the backend");
    let metrics = send(stack.h1.get(stack.url("/metrics"))).await;
    let text = ok(metrics.text().await, "metrics");
    assert!(
        !text.contains("Teleport"),
        "an unknown path is no route label"
    );
}

#[tokio::test]
async fn a_rest_route_on_a_connect_path_keeps_it() {
    let stack = spawn().await;
    // CalibrateSensor's REST binding is RecordReading's Connect path: REST answers, in its own
    // error shape, even with Connect-Protocol-Version.
    let path = "/telemetry.v1.Sensors/RecordReading";
    let r = send(unary(&stack.h1, &stack, path, "application/json").body(r#"{"sensor": 5}"#)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(r).await["code"], 3);
    let r =
        send(unary(&stack.h1, &stack, path, "application/json").body(r#"{"sensor": "k"}"#)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["sensor"], "k");
    let text = ok(
        send(stack.h1.get(stack.url("/metrics"))).await.text().await,
        "metrics",
    );
    assert!(
        text.contains(
            "route=\"telemetry.v1.Sensors.CalibrateSensor\",status=\"200\",protocol=\"rest\""
        ),
        "{text}"
    );
    // Its other methods are Connect's, counted under their Connect path and protocol.
    let r = send(unary(&stack.h1, &stack, GET_READING, "application/json").body("{}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = ok(
        send(stack.h1.get(stack.url("/metrics"))).await.text().await,
        "metrics",
    );
    assert!(
        text.contains(&format!(
            "route=\"{GET_READING}\",status=\"200\",protocol=\"connect\""
        )),
        "{text}"
    );
}

#[tokio::test]
async fn connect_timeout_ms_is_the_deadline_and_never_takes_the_backend_out() {
    let stack = spawn().await;
    for (version, client) in stack.clients() {
        let started = Instant::now();
        let r = send(
            unary(client, &stack, GET_READING, "application/json")
                .header("connect-timeout-ms", "200")
                .body(r#"{"sensor": "slow", "delay_ms": 3000}"#),
        )
        .await;
        assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT, "{version}");
        assert_eq!(json_of(r).await["code"], "deadline_exceeded");
        assert!(started.elapsed() < Duration::from_secs(2), "{version}");
        let calls = backend_calls(&stack);
        for _ in 0..20 {
            let r = send(
                unary(client, &stack, GET_READING, "application/json")
                    .header("connect-timeout-ms", "0")
                    .body("{}"),
            )
            .await;
            assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT, "{version}");
        }
        let r = send(
            client
                .post(stack.url(WATCH_READINGS))
                .header("content-type", "application/connect+json")
                .header("connect-timeout-ms", "0")
                .body(envelope(0, br#"{"sensor":"w","count":1}"#)),
        )
        .await;
        let end = end_of(&envelopes(&bytes_of(r).await));
        assert_eq!(end["error"]["code"], "deadline_exceeded", "{version}");
        // An expired deadline makes no call.
        assert_eq!(backend_calls(&stack), calls, "{version}");
        let r = send(
            unary(client, &stack, GET_READING, "application/json")
                .header("connect-timeout-ms", "soon")
                .body("{}"),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version}");
        // A stream's deadline ends it with deadline_exceeded, in the end-of-stream message.
        let r = send(
            client
                .post(stack.url(WATCH_READINGS))
                .header("content-type", "application/connect+json")
                .header("connect-timeout-ms", "300")
                .body(envelope(0, br#"{"sensor":"w","count":10,"delay_ms":200}"#)),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        let got = envelopes(&bytes_of(r).await);
        assert!(got.len() < 10, "{version}");
        assert_eq!(end_of(&got)["error"]["code"], "deadline_exceeded");
    }
    let statuses = stack.backend.replica_statuses();
    assert!(statuses.iter().all(|s| s.up), "{statuses:?}");
    let r = send(unary(&stack.h1, &stack, GET_READING, "application/json").body("{}")).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn connect_get_calls_a_method_without_side_effects_with_caching_headers() {
    let stack = spawn().await;
    let json_query = "%7B%22sensor%22%3A%22g1%22%7D";
    for (version, client) in stack.clients() {
        let url = stack.url(&format!(
            "{GET_READING}?connect=v1&encoding=json&message={json_query}&_=cachebuster"
        ));
        let r = send(client.get(&url)).await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(r.headers()["cache-control"], "no-cache");
        assert!(
            r.headers()
                .get_all("vary")
                .iter()
                .any(|v| v.to_str().unwrap_or_default().contains("Accept-Encoding")),
            "{version}"
        );
        assert_eq!(r.headers()["trailer-foo"], "foo2");
        let etag = r.headers()["etag"].clone();
        assert!(etag.as_bytes().starts_with(b"W/\""), "{etag:?}");
        assert_eq!(json_of(r).await["sensor"], "g1", "{version}");
        // The backend's own freshness wins.
        let r = send(client.get(stack.url(&format!(
            "{GET_READING}?connect=v1&encoding=json&message=%7B%22sensor%22%3A%22cached%22%7D"
        ))))
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(r.headers()["cache-control"], "max-age=60", "{version}");
        // Revalidated: 304, no body.
        let r = send(client.get(&url).header("if-none-match", etag.clone())).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{version}");
        assert_eq!(r.headers()["etag"], etag);

        // Binary, base64 (URL-safe, unpadded), and gzip-compressed binary.
        let query = message(
            "telemetry.v1.ReadingQuery",
            &[("sensor", Value::String("g2".into()))],
        )
        .encode_to_vec();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&query);
        let r = send(client.get(stack.url(&format!(
            "{GET_READING}?connect=v1&encoding=proto&base64=1&message={b64}"
        ))))
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(r.headers()["content-type"], "application/proto");
        let reading = decode("telemetry.v1.Reading", &bytes_of(r).await);
        assert_eq!(string_of(&reading, "sensor"), "g2");
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        ok(gz.write_all(&query), "gzip");
        let packed =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ok(gz.finish(), "gzip"));
        let r = send(client.get(stack.url(&format!(
            "{GET_READING}?connect=v1&encoding=proto&base64=1&compression=gzip&message={packed}"
        ))))
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        let reading = decode("telemetry.v1.Reading", &bytes_of(r).await);
        assert_eq!(string_of(&reading, "sensor"), "g2");
        let r = send(client.get(stack.url(&format!(
            "{GET_READING}?connect=v1&encoding=proto&base64=1&compression=lz4&message={b64}"
        ))))
        .await;
        assert_eq!(r.status(), StatusCode::NOT_IMPLEMENTED, "{version}");
        assert_eq!(json_of(r).await["code"], "unimplemented");

        // A method with side effects: POST only.
        let r =
            send(client.get(stack.url(
                "/telemetry.v1.Sensors/UploadFirmware?connect=v1&encoding=json&message=%7B%7D",
            )))
            .await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{version}");
        assert_eq!(r.headers()["allow"], "POST");
        assert_eq!(json_of(r).await["code"], "unimplemented");
    }
}

#[tokio::test]
async fn connect_server_streams_end_with_the_trailers_or_the_error_over_both_http_versions() {
    let stack = spawn().await;
    for (version, client) in stack.clients() {
        let r = send(
            client
                .post(stack.url(WATCH_READINGS))
                .header("content-type", "application/connect+json")
                .body(envelope(0, br#"{"sensor":"w1","count":3}"#)),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(r.headers()["content-type"], "application/connect+json");
        assert_eq!(r.headers()["foo"], "foo1");
        let got = envelopes(&bytes_of(r).await);
        assert_eq!(got.len(), 4, "{version}");
        let sequences: Vec<Json> = got[..3]
            .iter()
            .map(|(_, m)| ok(serde_json::from_slice::<Json>(m), "a message")["sequence"].clone())
            .collect();
        assert_eq!(sequences, [json!("1"), json!("2"), json!("3")], "{version}");
        assert!(end_of(&got).get("error").is_none(), "{version}");

        // Binary, failing after two with a DebugInfo detail.
        let query = message(
            "telemetry.v1.ReadingQuery",
            &[
                ("sensor", Value::String("failing".into())),
                ("count", Value::U32(5)),
            ],
        );
        let r = send(
            client
                .post(stack.url(WATCH_READINGS))
                .header("content-type", "application/connect+proto")
                .body(envelope(0, &query.encode_to_vec())),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        let got = envelopes(&bytes_of(r).await);
        assert_eq!(got.len(), 3, "{version}");
        assert_eq!(
            string_of(&decode("telemetry.v1.Reading", &got[1].1), "sensor"),
            "failing"
        );
        let end = end_of(&got);
        assert_eq!(end["error"]["code"], "data_loss", "{end}");
        assert_eq!(end["error"]["message"], "sensor lost");
        assert_eq!(end["error"]["details"][0]["type"], "google.rpc.DebugInfo");
        assert_eq!(end["error"]["details"][0]["debug"]["detail"], "sensor lost");
    }
}

#[tokio::test]
async fn connect_client_streams_over_both_http_versions_and_gzip_both_ways() {
    let stack = spawn().await;
    for (version, client) in stack.clients() {
        let mut body = Vec::new();
        for sensor in ["a", "b", "c"] {
            body.extend(envelope(
                0,
                format!(r#"{{"sensor":"{sensor}"}}"#).as_bytes(),
            ));
        }
        let r = send(
            client
                .post(stack.url(UPLOAD_READINGS))
                .header("content-type", "application/connect+json")
                .body(body),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        let got = envelopes(&bytes_of(r).await);
        assert_eq!(got.len(), 2, "{version}");
        let summary: Json = ok(serde_json::from_slice(&got[0].1), "summary");
        assert_eq!(summary["count"], 3, "{version}");
        assert_eq!(summary["sensors"], json!(["a", "b", "c"]));
        assert!(end_of(&got).get("error").is_none());

        // A compressed request message, and a large answer compressed back.
        let long = "x".repeat(4000);
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        ok(
            gz.write_all(format!(r#"{{"sensor":"{long}"}}"#).as_bytes()),
            "gzip",
        );
        let packed = ok(gz.finish(), "gzip");
        let r = send(
            client
                .post(stack.url(UPLOAD_READINGS))
                .header("content-type", "application/connect+json")
                .header("connect-content-encoding", "gzip")
                .header("connect-accept-encoding", "gzip")
                .body(envelope(1, &packed)),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(r.headers()["connect-content-encoding"], "gzip");
        let raw = bytes_of(r).await;
        assert_eq!(raw[0], 1, "{version}: the large answer is compressed");
        let got = envelopes(&raw);
        let summary: Json = ok(serde_json::from_slice(&got[0].1), "summary");
        assert_eq!(summary["sensors"], json!([long]), "{version}");

        // An unknown message compression: unimplemented, at the end of the stream.
        let r = send(
            client
                .post(stack.url(UPLOAD_READINGS))
                .header("content-type", "application/connect+json")
                .header("connect-content-encoding", "snappy")
                .body(envelope(1, b"...")),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        let end = end_of(&envelopes(&bytes_of(r).await));
        assert_eq!(end["error"]["code"], "unimplemented", "{end}");
    }
}

/// A request body fed through a channel, so a test can write it message by message.
fn channel_body() -> (
    tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
    reqwest::Body,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    (tx, body)
}

#[tokio::test]
async fn connect_bidi_over_http2_answers_each_message_before_the_next_is_sent() {
    let stack = spawn().await;
    let (tx, body) = channel_body();
    ok(
        tx.send(Ok(envelope(0, br#"{"sensor":"one"}"#))).await,
        "send",
    );
    let mut r = send(
        stack
            .h2
            .post(stack.url(RELAY))
            .header("content-type", "application/connect+json")
            .body(body),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let first = ok(
        tokio::time::timeout(Duration::from_secs(5), r.chunk()).await,
        "first echo in time",
    );
    let first = ok(first, "chunk").unwrap_or_default();
    let got = envelopes(&first);
    assert_eq!(got.len(), 1);
    assert!(String::from_utf8_lossy(&got[0].1).contains("\"one\""));
    ok(
        tx.send(Ok(envelope(0, br#"{"sensor":"two"}"#))).await,
        "send",
    );
    drop(tx);
    let mut rest = Vec::new();
    // Bounded by the stream's end (the backend ends it once the requests end).
    while let Some(chunk) = ok(
        tokio::time::timeout(Duration::from_secs(5), r.chunk()).await,
        "the rest in time",
    )
    .ok()
    .flatten()
    {
        rest.extend_from_slice(&chunk);
    }
    let got = envelopes(&rest);
    assert_eq!(got.len(), 2, "the echo and the end");
    assert!(String::from_utf8_lossy(&got[0].1).contains("\"two\""));
    assert!(end_of(&got).get("error").is_none());
}

#[tokio::test]
async fn connect_calls_keep_the_gateways_limits() {
    let stack = spawn_with(|b| b.body_limit(64)).await;
    let big = format!(r#"{{"sensor":"{}"}}"#, "x".repeat(100));
    for (version, client) in stack.clients() {
        let r =
            send(unary(client, &stack, GET_READING, "application/json").body(big.clone())).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{version}");
        assert_eq!(json_of(r).await["code"], "resource_exhausted");
        // A stream message over the limit, refused from its envelope's prefix.
        let r = send(
            client
                .post(stack.url(UPLOAD_READINGS))
                .header("content-type", "application/connect+json")
                .body(envelope(0, big.as_bytes())),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        let end = end_of(&envelopes(&bytes_of(r).await));
        assert_eq!(end["error"]["code"], "resource_exhausted", "{end}");
        // Metadata over --max-metadata-bytes.
        let r = send(
            unary(client, &stack, GET_READING, "application/json")
                .header("x-big", "y".repeat(20_000))
                .body("{}"),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version}");
    }
    // No slot for unary calls nor streams: unavailable, at once.
    let stack = spawn_with(|b| b.concurrency_limit(0).stream_limit(0)).await;
    let r = send(unary(&stack.h1, &stack, GET_READING, "application/json").body("{}")).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json_of(r).await["code"], "unavailable");
    let r = send(
        stack
            .h1
            .post(stack.url(WATCH_READINGS))
            .header("content-type", "application/connect+json")
            .body(envelope(0, br#"{"sensor":"w","count":1}"#)),
    )
    .await;
    let end = end_of(&envelopes(&bytes_of(r).await));
    assert_eq!(end["error"]["code"], "unavailable", "{end}");
}

#[tokio::test]
async fn connect_clients_from_node_and_chromium_call_every_kind_of_method() {
    let stack = spawn().await;
    let set = std::env::temp_dir().join(format!("telemetry-connect-{}.binpb", std::process::id()));
    ok(
        std::fs::write(&set, super::backend::telemetry_descriptor_bytes()),
        "descriptor set",
    );
    let env = [
        ("SENSORS_CONNECT_URL", stack.url("")),
        ("SENSORS_DESCRIPTOR_SET", set.display().to_string()),
    ];
    let node = node_test("connect.test.mjs", &env, NodeNeeds::Connect).await;
    let browser = node_test("connect-web.test.mjs", &env, NodeNeeds::Browser).await;
    let _ = std::fs::remove_file(&set);
    if let Some(out) = node {
        assert!(
            out.contains("# pass 9") && out.contains("# fail 0"),
            "{out}"
        );
    }
    // Its article test is the service's.
    if let Some(out) = browser {
        assert!(
            out.contains("# pass 1") && out.contains("# fail 0"),
            "{out}"
        );
    }
}

/// The library API's echo backend answers each metadata key `k` as the header `echo-k`.
#[tokio::test]
async fn connect_metadata_is_every_request_header_but_the_protocols_and_cookies() {
    let library = crate::support::spawn_library().await;
    let r = send(
        reqwest::Client::new()
            .post(library.url("/library.v1.LibraryService/GetShelf"))
            .header("content-type", "application/json")
            .header("connect-protocol-version", "1")
            .header("connect-timeout-ms", "5000")
            .header("authorization", "Bearer t")
            .header("x-custom", "kept")
            .header("cookie", "session=secret")
            .header("grpc-timeout", "1n")
            .header("x-forwarded-for", "203.0.113.9")
            .header("x-request-id", "req-42")
            .body("{}"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let headers = r.headers();
    assert_eq!(headers["echo-authorization"], "Bearer t");
    assert_eq!(headers["echo-x-custom"], "kept");
    assert_eq!(headers["echo-x-request-id"], "req-42");
    assert_eq!(headers["x-request-id"], "req-42");
    assert_eq!(headers["echo-x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    for dropped in [
        "echo-cookie",
        "echo-connect-timeout-ms",
        "echo-connect-protocol-version",
        "echo-accept-encoding",
    ] {
        assert!(headers.get(dropped).is_none(), "{dropped}: {headers:?}");
    }
    // The deadline the backend is told is the gateway's, from Connect-Timeout-Ms, not the
    // client's grpc-timeout (1 ns would have expired).
    let told: Vec<_> = headers.get_all("echo-grpc-timeout").iter().collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_ne!(told[0], "1n");
}

#[tokio::test]
async fn cors_preflights_allow_connects_request_headers() {
    let stack = spawn().await;
    let r = send(
        stack
            .h1
            .request(http::Method::OPTIONS, stack.url(GET_READING))
            .header("origin", "http://app.example")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,connect-protocol-version,connect-timeout-ms,\
                 connect-content-encoding,connect-accept-encoding,x-user-agent",
            ),
    )
    .await;
    assert!(r.status().is_success(), "{}", r.status());
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    for header in [
        "connect-protocol-version",
        "connect-timeout-ms",
        "connect-content-encoding",
        "connect-accept-encoding",
        "x-user-agent",
    ] {
        assert!(allowed.contains(header), "{header}: {allowed}");
    }
    // Every response header is exposed (trailer-*, Connect's metadata), without credentials.
    let r = send(
        unary(&stack.h1, &stack, GET_READING, "application/json")
            .header("origin", "http://app.example")
            .body("{}"),
    )
    .await;
    assert_eq!(r.headers()["access-control-expose-headers"], "*");
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
}

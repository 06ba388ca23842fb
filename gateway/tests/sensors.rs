//! The gateway in front of `telemetry.v1.Sensors`, a backend built the way servers in the wild
//! are (no `grpc.health.v1`, no reflection, trailers, google.rpc details it does not declare,
//! float extremes, enum numbers its proto does not name), over HTTP/1.1 and HTTP/2, through a
//! balanced backend as the binary builds it.

mod backend;
mod capacity;
mod connect;
mod headers;
mod live;
mod oneport;
mod statuses;
mod stream_guards;
mod streams;
mod uploads;

use std::{fmt::Display, time::Duration};

use articles_gateway::{
    Backend, BalanceOptions, GatewayBuilder, config::Cli, error::ErrorFormat, server,
    transcode::Unknown,
};
use bytes::Bytes;
use clap::Parser;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use crate::support::{Spawned, json, send, spawn_gateway};
use backend::{
    Counters, spawn_sensors_backend, spawn_sensors_backend_with_v1alpha_reflection, telemetry_pool,
};

fn ok<T, E: Display>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

/// The sensors backend, a gateway in front of it, and a client per HTTP version.
struct Stack {
    gateway: Spawned,
    backend: Backend,
    counters: std::sync::Arc<Counters>,
    _server: Spawned,
    h1: reqwest::Client,
    h2: reqwest::Client,
}

impl Stack {
    fn url(&self, path: &str) -> String {
        self.gateway.url(path)
    }

    /// Both clients, named for assertion messages.
    fn clients(&self) -> [(&'static str, &reqwest::Client); 2] {
        [("HTTP/1.1", &self.h1), ("HTTP/2", &self.h2)]
    }
}

/// Spawns the backend and a gateway over a balanced backend to it (as the binary builds one),
/// its first health round done, the builder adjusted by `configure`.
async fn spawn_with(configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder) -> Stack {
    let pool = telemetry_pool();
    let (server, counters) = spawn_sensors_backend(&pool).await;
    let options = BalanceOptions {
        health_interval: Duration::from_millis(50),
        ..BalanceOptions::default()
    };
    let backend = ok(
        Backend::balanced(&[server.url("")], &options),
        "balanced backend",
    );
    backend.health_checked().await;
    let builder = GatewayBuilder::new()
        .descriptors(pool)
        .backend(backend.clone());
    let gateway = spawn_gateway(ok(configure(builder).build(), "gateway")).await;
    Stack {
        gateway,
        backend,
        counters,
        _server: server,
        h1: reqwest::Client::new(),
        h2: ok(
            reqwest::Client::builder().http2_prior_knowledge().build(),
            "h2 client",
        ),
    }
}

async fn spawn() -> Stack {
    spawn_with(|b| b).await
}

/// A GET through hyper's client, which (unlike reqwest) reads HTTP trailers.
async fn get_with_trailers(
    stack: &Stack,
    path: &str,
    http2: bool,
    te_trailers: bool,
) -> (StatusCode, HeaderMap, Value, Option<HeaderMap>) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(http2)
        .build_http::<Full<Bytes>>();
    let mut request = http::Request::get(stack.url(path));
    if te_trailers {
        request = request.header("te", "trailers");
    }
    let request = ok(request.body(Full::default()), "request");
    let response = ok(client.request(request).await, "hyper request");
    let (parts, body) = response.into_parts();
    let collected = ok(body.collect().await, "body");
    let trailers = collected.trailers().cloned();
    let body = ok(
        serde_json::from_slice(&collected.to_bytes()),
        "JSON response body",
    );
    (parts.status, parts.headers, body, trailers)
}

#[tokio::test]
async fn a_backend_without_a_health_service_is_served_and_ready() {
    let stack = spawn().await;
    for (version, client) in stack.clients() {
        let r = send(client.get(stack.url("/v1/sensors/s1/reading"))).await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(json(r).await["sensor"], "s1", "{version}");
    }
    let r = send(stack.h1.get(stack.url("/readyz"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = json(r).await;
    let health = body["backends"][0]["health"].as_str().unwrap_or_default();
    assert!(health.contains("no health service"), "{body}");
    assert_eq!(body["backends"][0]["up"], true);
}

#[tokio::test]
async fn expired_deadlines_are_504_and_never_take_the_backend_out_of_service() {
    let stack = spawn().await;
    // 100 requests whose deadline has already passed, from both HTTP versions: answered 504
    // without a call.
    for i in 0..100 {
        let (version, client) = stack.clients()[i % 2];
        let r = send(
            client
                .get(stack.url("/v1/sensors/s1/reading"))
                .header("grpc-timeout", "0S"),
        )
        .await;
        assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT, "{version} #{i}");
        assert_eq!(json(r).await["code"], 4, "{version} #{i}");
    }
    // Deadlines that expire while the backend works: 504 too, the call cancelled.
    let slow: Vec<_> = (0..20)
        .map(|i| {
            let (_, client) = stack.clients()[i % 2];
            send(
                client
                    .get(stack.url("/v1/sensors/s1/reading?delay_ms=300"))
                    .header("grpc-timeout", "20m"),
            )
        })
        .collect();
    for r in futures::future::join_all(slow).await {
        assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(json(r).await["code"], 4);
    }
    assert!(
        stack.backend.replica_statuses().iter().all(|r| r.up),
        "{:?}",
        stack.backend.replica_statuses()
    );
    // The next 100 ordinary requests, all at once, all succeed: no health round is awaited.
    let normal: Vec<_> = (0..100)
        .map(|i| {
            let (_, client) = stack.clients()[i % 2];
            send(client.get(stack.url("/v1/sensors/s1/reading")))
        })
        .collect();
    for (i, r) in futures::future::join_all(normal)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(r.status(), StatusCode::OK, "#{i}");
    }
}

#[tokio::test]
async fn header_and_trailer_metadata_of_one_name_stay_apart() {
    let stack = spawn().await;
    for http2 in [false, true] {
        let (status, headers, _, trailers) =
            get_with_trailers(&stack, "/v1/sensors/s1/reading", http2, true).await;
        assert_eq!(status, StatusCode::OK, "h2={http2}");
        assert_eq!(headers["grpc-metadata-foo"], "foo1", "h2={http2}");
        let trailers = trailers.unwrap_or_default();
        assert_eq!(trailers["grpc-trailer-foo"], "foo2", "h2={http2}");
        assert!(trailers.get("grpc-trailer-grpc-status").is_none());

        // Without `TE: trailers` the client cannot read trailers: none are sent, and the
        // header keeps its own value.
        let (_, headers, _, trailers) =
            get_with_trailers(&stack, "/v1/sensors/s1/reading", http2, false).await;
        assert_eq!(headers["grpc-metadata-foo"], "foo1", "h2={http2}");
        assert_eq!(headers.get_all("grpc-metadata-foo").iter().count(), 1);
        assert!(trailers.is_none_or(|t| t.is_empty()), "h2={http2}");

        // A failure after the headers keeps both too.
        let (status, headers, body, trailers) =
            get_with_trailers(&stack, "/v1/sensors/broken/reading", http2, true).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "h2={http2}");
        assert_eq!(body["code"], 13);
        assert_eq!(headers["grpc-metadata-foo"], "foo1", "h2={http2}");
        assert_eq!(
            trailers.unwrap_or_default()["grpc-trailer-foo"],
            "foo2",
            "h2={http2}"
        );
    }
}

#[tokio::test]
async fn a_trailers_only_error_keeps_its_metadata_as_headers() {
    let stack = spawn().await;
    for (version, client) in stack.clients() {
        let r = send(client.get(stack.url("/v1/sensors/missing/reading"))).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{version}");
        assert_eq!(r.headers()["grpc-metadata-where"], "trailers-only");
        assert_eq!(
            json(r).await,
            json!({"code": 5, "message": "no such sensor", "details": []})
        );
    }
}

#[tokio::test]
async fn standard_error_details_render_as_json_without_their_descriptors() {
    let stack = spawn().await;
    for (version, client) in stack.clients() {
        let r = send(client.get(stack.url("/v1/sensors/broken/reading"))).await;
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR, "{version}");
        assert_eq!(
            json(r).await,
            json!({
                "code": 13,
                "message": "sensor broken",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.DebugInfo",
                        "stack_entries": ["frame1", "frame2"],
                        "detail": "fuse blown",
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.BadRequest",
                        "field_violations": [{
                            "field": "sensor",
                            "description": "is broken",
                            "reason": "",
                        }],
                    },
                ],
            }),
            "{version}"
        );
    }
}

#[tokio::test]
async fn what_the_gateway_writes_it_reads_back() {
    let stack = spawn().await;
    for (version, client) in stack.clients() {
        let r = send(client.get(stack.url("/v1/sensors/s1/reading?unit=7"))).await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        let text = ok(r.text().await, "body");
        // The shortest spellings, as protojson and json_format write them.
        assert!(text.contains("3.4028235e+38"), "{text}");
        assert!(text.contains("\"9223372036854775807\""), "{text}");
        let written: Value = ok(serde_json::from_str(&text), "JSON");
        assert_eq!(written["unit"], 7, "{written}");

        // The same JSON, sent back as a body.
        let r = send(
            client
                .post(stack.url("/v1/sensors/s1/readings"))
                .header("content-type", "application/json")
                .body(text.clone()),
        )
        .await;
        let status = r.status();
        let echoed = json(r).await;
        assert_eq!(status, StatusCode::OK, "{version}: {text} -> {echoed}");
        assert_eq!(echoed, written, "{version}");
    }
}

#[tokio::test]
async fn every_proto3_json_value_is_accepted() {
    let stack = spawn().await;
    let body = r#"{
        "value": 3.4028235e+38,
        "precise": -1.7976931348623157e308,
        "unit": 9,
        "sequence": -9223372036854775808,
        "samples": ["NaN", "Infinity", "-Infinity", -3.4028235e38, 1.5],
        "peak": 3.4028235e38
    }"#;
    for (version, client) in stack.clients() {
        let r = send(
            client
                .post(stack.url("/v1/sensors/s1/readings"))
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        let echoed = json(r).await;
        assert_eq!(echoed["value"], json!(3.402_823_5e38), "{echoed}");
        assert_eq!(echoed["peak"], json!(3.402_823_5e38), "{echoed}");
        assert_eq!(echoed["unit"], 9, "{echoed}");
        assert_eq!(echoed["sequence"], "-9223372036854775808", "{echoed}");
        assert_eq!(
            echoed["samples"],
            json!(["NaN", "Infinity", "-Infinity", -3.402_823_5e38, 1.5]),
            "{echoed}"
        );
        // int64 as a string, NaN as a string for a double.
        let r = send(
            client
                .post(stack.url("/v1/sensors/s1/readings"))
                .json(&json!({"sequence": "12", "precise": "NaN", "unit": "KELVIN"})),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        // A finite value that would round to infinity is still out of range.
        let r = send(
            client
                .post(stack.url("/v1/sensors/s1/readings"))
                .header("content-type", "application/json")
                .body(r#"{"value": 3.5e38}"#),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version}");
    }
    // Enum numbers the proto does not name, in the query and in the path.
    let r = send(stack.h1.get(stack.url("/v1/sensors/s1/units/42"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json(r).await["unit"], 42);
    let r = send(stack.h1.get(stack.url("/v1/sensors/s1/reading?unit=-3"))).await;
    assert_eq!(json(r).await["unit"], -3);
    let r = send(stack.h1.get(stack.url("/v1/sensors/s1/reading?unit=NOPE"))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn non_finite_wrapper_floats_are_written_as_strings_in_answers_streams_and_details() {
    let stack = spawn().await;
    let reading = json!({"peak": "NaN", "baseline": "-Infinity"});
    for (version, client) in stack.clients() {
        // Read as proto3 JSON spells them, and written back so (a unary answer).
        let r = send(
            client
                .post(stack.url("/v1/sensors/s1/readings"))
                .json(&reading),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        let echoed = json(r).await;
        assert_eq!(echoed["peak"], "NaN", "{version}: {echoed}");
        assert_eq!(echoed["baseline"], "-Infinity", "{version}: {echoed}");

        // In a stream.
        let r = send(
            client
                .post(stack.url("/v1/sensors:relay"))
                .body("{\"peak\": \"Infinity\"}\n{\"baseline\": \"NaN\"}\n"),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        let text = ok(r.text().await, "relay body");
        let lines: Vec<Value> = text
            .lines()
            .map(|line| ok(serde_json::from_str(line), "an NDJSON line"))
            .collect();
        assert_eq!(lines.len(), 2, "{version}: {text}");
        assert_eq!(lines[0]["result"]["peak"], "Infinity", "{version}: {text}");
        assert_eq!(lines[1]["result"]["baseline"], "NaN", "{version}: {text}");

        // In an error detail (written by prost-reflect's serializer, not from the wire).
        let r = send(
            client
                .post(stack.url("/v1/sensors/rejected/readings"))
                .json(&reading),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version}");
        let error = json(r).await;
        let detail = &error["details"][0];
        assert_eq!(
            detail["@type"], "type.googleapis.com/telemetry.v1.Reading",
            "{version}: {error}"
        );
        assert_eq!(detail["peak"], "NaN", "{version}: {error}");
        assert_eq!(detail["baseline"], "-Infinity", "{version}: {error}");
    }
}

#[tokio::test]
async fn gapic_system_parameters_are_read_never_taken_for_fields() {
    let stack = spawn().await;
    for (version, client) in stack.clients() {
        let r = send(
            client.get(stack.url("/v1/sensors/s1/reading?$alt=json;enum-encoding=int&unit=KELVIN")),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(json(r).await["unit"], 2, "{version}");
        // Percent-encoded as GAPIC clients send it, and the unprefixed `alt`.
        let r = send(client.get(
            stack.url("/v1/sensors/s1/reading?%24alt=json%3Benum-encoding%3Dint&unit=KELVIN"),
        ))
        .await;
        assert_eq!(json(r).await["unit"], 2, "{version}");
        let r = send(client.get(stack.url("/v1/sensors/s1/reading?alt=json&unit=KELVIN"))).await;
        assert_eq!(json(r).await["unit"], "KELVIN", "{version}");
        let r = send(client.get(stack.url("/v1/sensors/s1/reading?$alt=proto"))).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version}");
        let message = json(r).await["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains("$alt"), "{message}");
    }
}

#[tokio::test]
async fn missing_empty_and_unlabelled_content_types_are_read_as_json() {
    let stack = spawn().await;
    let path = "/v1/sensors/s1/readings";
    for (version, client) in stack.clients() {
        for content_type in [None, Some(""), Some("application/x-www-form-urlencoded")] {
            let mut request = client.post(stack.url(path)).body(r#"{"unit": "CELSIUS"}"#);
            if let Some(value) = content_type {
                request = request.header("content-type", value);
            }
            let r = send(request).await;
            assert_eq!(r.status(), StatusCode::OK, "{version} {content_type:?}");
            assert_eq!(json(r).await["unit"], "CELSIUS");
        }
        let r = send(
            client
                .post(stack.url(path))
                .header("content-type", "application/xml")
                .body("<unit/>"),
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{version}");
    }
}

#[tokio::test]
async fn a_body_field_contradicting_the_path_is_400_naming_both() {
    let stack = spawn().await;
    for (version, client) in stack.clients() {
        let r = send(
            client
                .post(stack.url("/v1/sensors/s1/readings"))
                .json(&json!({"sensor": "s2"})),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version}");
        let message = json(r).await["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            message.contains("\"s2\"") && message.contains("\"s1\""),
            "{message}"
        );
        let r = send(
            client
                .post(stack.url("/v1/sensors/s1/readings"))
                .json(&json!({"sensor": "s1"})),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
    }
}

#[tokio::test]
async fn field_rules_are_checked_for_callers_with_credentials_and_left_to_the_backend_otherwise() {
    let stack = spawn().await;
    for (version, client) in stack.clients() {
        let body = json!({"sequence": "-1"});
        let r = send(
            client
                .post(stack.url("/v1/sensors/s1/readings"))
                .bearer_auth("t")
                .json(&body),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version}");
        let message = json(r).await["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains("sequence"), "{message}");
        // Without credentials the backend decides (and authenticates first, if it does);
        // this one checks nothing and echoes the reading.
        let r = send(
            client
                .post(stack.url("/v1/sensors/s1/readings"))
                .json(&body),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(json(r).await["sequence"], "-1");
    }
}

#[tokio::test]
async fn unknown_names_are_refused_unless_switched_to_ignore() {
    let strict = spawn().await;
    let lenient = spawn_with(|b| {
        b.unknown_fields(Unknown::Ignore)
            .unknown_query_params(Unknown::Ignore)
    })
    .await;
    let body = json!({"unit": "KELVIN", "colour": "red"});
    let r = send(
        strict
            .h1
            .post(strict.url("/v1/sensors/s1/readings"))
            .json(&body),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = send(
        strict
            .h1
            .get(strict.url("/v1/sensors/s1/reading?colour=red")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let r = send(
        lenient
            .h2
            .post(lenient.url("/v1/sensors/s1/readings"))
            .json(&body),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json(r).await["unit"], "KELVIN");
    let r = send(
        lenient
            .h2
            .get(lenient.url("/v1/sensors/s1/reading?colour=red&unit=CELSIUS")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json(r).await["unit"], "CELSIUS");
}

#[tokio::test]
async fn error_bodies_take_the_chosen_format() {
    let v1 = spawn_with(|b| b.error_format(ErrorFormat::GrpcGatewayV1)).await;
    let r = send(v1.h1.get(v1.url("/v1/sensors/broken/reading"))).await;
    let body = json(r).await;
    assert_eq!(body["error"], "sensor broken");
    assert_eq!(body["message"], "sensor broken");
    assert_eq!(body["code"], 13);
    assert_eq!(body["details"].as_array().map(Vec::len), Some(2));

    let problem = spawn_with(|b| b.error_format(ErrorFormat::Problem)).await;
    for (version, client) in problem.clients() {
        let r = send(client.get(problem.url("/v1/sensors/broken/reading"))).await;
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{version}"
        );
        let body = json(r).await;
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["title"], "Internal Server Error");
        assert_eq!(body["status"], 500);
        assert_eq!(body["detail"], "sensor broken");
        assert_eq!(body["code"], 13);
        assert_eq!(
            body["details"][0]["@type"],
            "type.googleapis.com/google.rpc.DebugInfo"
        );
        // Errors the gateway raises itself take the format too.
        let r = send(client.get(problem.url("/v2/nowhere"))).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let body = json(r).await;
        assert_eq!(
            (body["status"].clone(), body["code"].clone()),
            (json!(404), json!(5))
        );
        let r = send(client.post(problem.url("/readyz"))).await;
        assert_eq!(json(r).await["status"], 405, "{version}");
    }

    // The served document says so too.
    let doc = json(send(problem.h1.get(problem.url("/openapi.json"))).await).await;
    let error = &doc["components"]["schemas"]["Status"];
    assert_eq!(
        error["required"],
        json!(["type", "title", "status", "detail", "code", "details"])
    );
    assert!(
        doc["components"]["responses"]["NotFound"]["content"]["application/problem+json"]
            .is_object(),
        "{}",
        doc["components"]["responses"]
    );

    let status = spawn().await;
    let r = send(status.h1.get(status.url("/v1/sensors/broken/reading"))).await;
    let body = json(r).await;
    let keys: Vec<&str> = body
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(keys, ["code", "details", "message"], "{body}");
}

#[tokio::test]
async fn a_streaming_method_never_falls_through_to_another_method() {
    let stack = spawn().await;
    for (version, client) in stack.clients() {
        // UploadReadings (client streaming), never CalibrateSensor, whose template matches too.
        let r = send(
            client
                .post(stack.url("/v1/sensors/bulk"))
                .json(&json!({"sensor": "x"})),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(
            json(r).await,
            json!({"count": 1, "sensors": ["x"]}),
            "{version}"
        );
        // The unary method keeps its other paths.
        let r = send(
            client
                .post(stack.url("/v1/sensors/other"))
                .json(&json!({"unit": "KELVIN"})),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(json(r).await["sensor"], "other");
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    ok(encoder.write_all(bytes), "gzip");
    ok(encoder.finish(), "gzip")
}

#[tokio::test]
async fn compressed_bodies_are_read_and_the_limit_counts_decompressed_bytes() {
    let stack = spawn().await;
    let path = "/v1/sensors/s1/readings";
    // 16 MiB of JSON whitespace: about 16 KB compressed, 16 times the 1 MiB body limit.
    let mut bomb = vec![b' '; 16 * 1024 * 1024];
    bomb.extend_from_slice(b"{}");
    let bomb = gzip(&bomb);
    for (version, client) in stack.clients() {
        let r = send(
            client
                .post(stack.url(path))
                .header("content-encoding", "gzip")
                .body(gzip(br#"{"unit": "KELVIN"}"#)),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(json(r).await["unit"], "KELVIN");

        let r = send(
            client
                .post(stack.url(path))
                .header("content-encoding", "gzip")
                .body(bomb.clone()),
        )
        .await;
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE, "{version}");
        assert_eq!(json(r).await["code"], 8);

        // A plain body labelled gzip is not read as plain.
        let r = send(
            client
                .post(stack.url(path))
                .header("content-encoding", "gzip")
                .body(r#"{"unit": "KELVIN"}"#),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version}");

        let r = send(
            client
                .post(stack.url(path))
                .header("content-encoding", "compress")
                .body(r#"{}"#),
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{version}");
        let body = json(r).await;
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("compress")),
            "{body}"
        );
    }
}

#[tokio::test]
async fn slow_bodies_hold_no_concurrency_slot_and_are_cut_off() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let stack = spawn_with(|b| {
        b.concurrency_limit(2)
            .body_read_timeout(Duration::from_secs(3))
            .min_body_rate(100)
            .body_rate_grace(Duration::from_millis(300))
    })
    .await;
    // Four bodies of a declared 1,000 bytes that send one, against two slots.
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut socket = ok(
            tokio::net::TcpStream::connect(stack.gateway.addr).await,
            "connect",
        );
        ok(
            socket
                .write_all(
                    b"POST /v1/sensors/s1/readings HTTP/1.1\r\nhost: x\r\n\
                      content-type: application/json\r\ncontent-length: 1000\r\n\r\n{",
                )
                .await,
            "write",
        );
        slow.push(socket);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Everyone else is served meanwhile: the bodies being read hold no slot.
    for (version, client) in stack.clients() {
        let r = send(client.get(stack.url("/v1/sensors/s1/reading"))).await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
    }
    // And the trickles are answered 408 once their grace is over, well before the timeout.
    let started = std::time::Instant::now();
    for mut socket in slow {
        let mut answer = vec![0u8; 512];
        let n = ok(
            ok(
                tokio::time::timeout(Duration::from_secs(5), socket.read(&mut answer)).await,
                "an answer in time",
            ),
            "read",
        );
        let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(
            answer.contains("slower than 100 bytes per second"),
            "{answer}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_hanging_up_mid_call_never_fail_anyone_elses_calls() {
    use tokio::io::AsyncWriteExt as _;
    let stack = spawn().await;
    let addr = stack.gateway.addr;
    // Rounds of 200 requests whose clients hang up as soon as they are sent, while the calls
    // are in flight at the backend (each takes 50 ms there).
    let hostile = tokio::spawn(async move {
        for _ in 0..5 {
            let round = (0..200).map(|_| async move {
                if let Ok(mut socket) = tokio::net::TcpStream::connect(addr).await {
                    let _ = socket
                        .write_all(
                            b"GET /v1/sensors/s1/reading?delay_ms=50 HTTP/1.1\r\nhost: x\r\n\r\n",
                        )
                        .await;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
            futures::future::join_all(round).await;
        }
    });
    // A bystander's calls meanwhile, and after.
    let mut failures = Vec::new();
    let mut calls = 0;
    while !hostile.is_finished() || calls < 50 {
        let r = stack
            .h2
            .get(stack.url("/v1/sensors/s1/reading?delay_ms=5"))
            .send()
            .await;
        calls += 1;
        match r {
            Ok(r) if r.status() == StatusCode::OK => {}
            Ok(r) => failures.push(format!("{} {}", r.status(), ok(r.text().await, "body"))),
            Err(e) => failures.push(e.to_string()),
        }
        assert!(calls < 10_000, "bounded");
    }
    ok(hostile.await, "hostile clients");
    assert!(
        failures.is_empty(),
        "{} of {calls} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(stack.backend.replica_statuses().iter().all(|r| r.up));
}

/// Issue 11, finding 8: a backend's answer over the gateway's decode limit was 400
/// OUT_OF_RANGE, a client error for a server-side condition. It is the backend's (or the
/// configuration's) fault: 502, code 8 RESOURCE_EXHAUSTED as gRPC clients report it.
#[tokio::test]
async fn a_response_over_the_gateway_limit_is_502_never_a_client_error() {
    let stack = spawn_with(|b| b.max_response_bytes(4096)).await;
    let samples = |n: usize| json!({ "samples": vec![1.5; n] });
    for (version, client) in stack.clients() {
        let r = send(
            client
                .post(stack.url("/v1/sensors/s1/readings"))
                .json(&samples(100)),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}: under the limit");
        // 2,000 floats: 8 KB echoed, over 4,096 bytes.
        let r = send(
            client
                .post(stack.url("/v1/sensors/s1/readings"))
                .json(&samples(2000)),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY, "{version}");
        let body = json(r).await;
        assert_eq!(body["code"], 8, "{body}");
        assert!(
            body["message"].as_str().is_some_and(|m| m.contains("4096")),
            "{body}"
        );
    }
    // The backend is no worse for it.
    let r = send(stack.h1.get(stack.url("/v1/sensors/s1/reading"))).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn metadata_the_backend_would_refuse_is_431_at_the_gateway() {
    let stack = spawn().await;
    for (version, client) in stack.clients() {
        let r = send(
            client
                .get(stack.url("/v1/sensors/s1/reading"))
                .header("grpc-metadata-note", "x".repeat(10 * 1024)),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        // Over the backend's 16 KiB header list, under the gateway's own 64 KiB head limit.
        let r = send(
            client
                .get(stack.url("/v1/sensors/s1/reading"))
                .header("grpc-metadata-note", "x".repeat(20 * 1024)),
        )
        .await;
        assert_eq!(
            r.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "{version}"
        );
        let body = json(r).await;
        assert_eq!(body["code"], 3, "{body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("16384")),
            "{body}"
        );
    }
}

#[tokio::test]
async fn descriptors_are_read_by_reflection_v1alpha_when_v1_is_not_served() {
    let pool = telemetry_pool();
    let server = spawn_sensors_backend_with_v1alpha_reflection(&pool).await;
    let cli = ok(
        Cli::try_parse_from([
            "articles-gateway",
            "--reflect",
            "--backend",
            &server.url(""),
            "--health-interval",
            "50ms",
        ]),
        "command line",
    );
    let backend = ok(
        Backend::balanced(
            &cli.serve.api.backends,
            &ok(server::balance_options(&cli.serve), "options"),
        ),
        "backend",
    );
    backend.health_checked().await;
    let reflected = ok(
        server::load_descriptors(&cli.serve.api, None, &backend).await,
        "descriptors by reflection v1alpha",
    );
    assert!(
        reflected
            .get_service_by_name("telemetry.v1.Sensors")
            .is_some()
    );
    let router = ok(
        server::router(&cli.serve, None, reflected, backend),
        "gateway router",
    );
    let gateway = spawn_gateway(router).await;
    let r = send(reqwest::Client::new().get(gateway.url("/v1/sensors/s7/reading"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json(r).await["sensor"], "s7");
}

#[tokio::test]
async fn without_descriptor_flags_or_an_embedded_api_the_gateway_does_not_start() {
    // The library knows no API: a binary that embeds none must be told where descriptors are.
    let cli = ok(
        Cli::try_parse_from(["articles-gateway", "openapi"]),
        "command line",
    );
    match articles_gateway::run(cli, None).await {
        Err(articles_gateway::StartError::NoDescriptors) => {}
        Err(e) => panic!("another start-up error: {e}"),
        Ok(()) => panic!("the gateway ran without descriptors"),
    }
}

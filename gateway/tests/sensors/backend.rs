//! The backend of `telemetry.v1.Sensors` (tests/fixtures/telemetry.proto): a tonic server with
//! no health service and no reflection (unless asked). Its unary methods are written at the
//! HTTP/2 level so that they control every byte real backends may send: header metadata and
//! trailers of the same name, trailers-only errors, and `grpc-status-details-bin` with
//! google.rpc details. Its streaming methods use tonic's streaming server, and count the
//! streams cancelled before their end and the uploads completed ([`Counters`]).

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use articles_gateway::backend::DynamicCodec;
use axum::body::Body;
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use futures::{StreamExt as _, future::BoxFuture, stream::BoxStream};
use http::{HeaderMap, HeaderValue};
use http_body_util::BodyExt;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, Value};
use tonic::{Status, metadata::MetadataValue, service::Routes};

use tonic_types::pb::{BadRequest, DebugInfo, bad_request::FieldViolation};

use crate::support::{RpcStatus, Spawned, fixture_descriptor_bytes, fixture_pool, spawn_grpc};

/// The fixture's encoded descriptor set. It imports nothing from `google/rpc`.
pub(crate) fn telemetry_descriptor_bytes() -> Vec<u8> {
    fixture_descriptor_bytes("telemetry.proto")
}

/// The fixture as a descriptor pool.
pub(crate) fn telemetry_pool() -> DescriptorPool {
    fixture_pool("telemetry.proto")
}

/// What the backend saw of its streams.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// WatchReadings streams dropped before their last message (the client went away).
    pub(crate) cancelled: AtomicUsize,
    /// UploadReadings calls whose request stream ended well.
    pub(crate) uploads: AtomicUsize,
}

/// The backend's routes: the Sensors service only.
pub(crate) fn sensors_routes(pool: &DescriptorPool, counters: &Arc<Counters>) -> Routes {
    Routes::from(axum::Router::new().fallback_service(Sensors {
        pool: pool.clone(),
        counters: Arc::clone(counters),
    }))
}

/// Serves the backend on `127.0.0.1:0` (HTTP/2), without health or reflection.
pub(crate) async fn spawn_sensors_backend(pool: &DescriptorPool) -> (Spawned, Arc<Counters>) {
    let counters = Arc::default();
    (spawn_grpc(sensors_routes(pool, &counters)).await, counters)
}

/// Serves the backend with `grpc.reflection.v1alpha` only (as grpcio-reflection does),
/// answering the fixture's original descriptor bytes.
pub(crate) async fn spawn_sensors_backend_with_v1alpha_reflection(
    pool: &DescriptorPool,
) -> Spawned {
    // tonic-reflection borrows the bytes for the server's lifetime: leaked, once per test.
    let bytes: &'static [u8] = Box::leak(telemetry_descriptor_bytes().into_boxed_slice());
    let reflection = match tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(bytes)
        .build_v1alpha()
    {
        Ok(r) => r,
        Err(e) => panic!("reflection: {e}"),
    };
    spawn_grpc(sensors_routes(pool, &Arc::default()).add_service(reflection)).await
}

#[derive(Debug, Clone)]
struct Sensors {
    pool: DescriptorPool,
    counters: Arc<Counters>,
}

impl tower::Service<http::Request<Body>> for Sensors {
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
        let counters = Arc::clone(&self.counters);
        Box::pin(async move {
            let streaming = method_of(&pool, request.uri().path())
                .filter(|m| m.is_client_streaming() || m.is_server_streaming());
            match streaming {
                Some(method) => {
                    let mut grpc = tonic::server::Grpc::new(DynamicCodec::new(method.input()));
                    let service = SensorStreams { method, counters };
                    Ok(grpc.streaming(service, request).await.map(Body::new))
                }
                None => Ok(answer(&pool, request).await),
            }
        })
    }
}

fn method_of(pool: &DescriptorPool, path: &str) -> Option<MethodDescriptor> {
    let (service, method) = path.trim_start_matches('/').split_once('/')?;
    pool.get_service_by_name(service)?
        .methods()
        .find(|m| m.name() == method)
}

fn string_field(message: &DynamicMessage, name: &str) -> String {
    match message.get_field_by_name(name).as_deref() {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn u32_field(message: &DynamicMessage, name: &str) -> u32 {
    match message.get_field_by_name(name).as_deref() {
        Some(Value::U32(n)) => *n,
        _ => 0,
    }
}

/// Counts a WatchReadings stream dropped before its end.
struct Unfinished(Arc<Counters>, bool);

impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.1 {
            self.0.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The streaming methods.
struct SensorStreams {
    method: MethodDescriptor,
    counters: Arc<Counters>,
}

type Replies = BoxStream<'static, Result<DynamicMessage, Status>>;

impl tonic::server::StreamingService<DynamicMessage> for SensorStreams {
    type Response = DynamicMessage;
    type ResponseStream = Replies;
    type Future = BoxFuture<'static, Result<tonic::Response<Replies>, Status>>;

    fn call(&mut self, request: tonic::Request<tonic::Streaming<DynamicMessage>>) -> Self::Future {
        let method = self.method.clone();
        let counters = Arc::clone(&self.counters);
        Box::pin(async move {
            let mut incoming = request.into_inner();
            let output = method.output();
            let replies: Replies = match method.name() {
                "WatchReadings" => {
                    let query = incoming
                        .message()
                        .await?
                        .ok_or_else(|| Status::invalid_argument("no query"))?;
                    watch(&query, output, counters)
                }
                "UploadReadings" => {
                    let mut sensors = Vec::new();
                    while let Some(reading) = incoming.message().await? {
                        sensors.push(Value::String(string_field(&reading, "sensor")));
                    }
                    counters.uploads.fetch_add(1, Ordering::SeqCst);
                    let mut summary = DynamicMessage::new(output);
                    summary.set_field_by_name(
                        "count",
                        Value::I32(i32::try_from(sensors.len()).unwrap_or(i32::MAX)),
                    );
                    summary.set_field_by_name("sensors", Value::List(sensors));
                    futures::stream::once(std::future::ready(Ok(summary))).boxed()
                }
                "FollowSensor" => {
                    let query = incoming
                        .message()
                        .await?
                        .ok_or_else(|| Status::invalid_argument("no query"))?;
                    follow(&query, &output)
                }
                // Each reading back as soon as it arrives.
                "Relay" => incoming.boxed(),
                "ExportCsv" => {
                    let chunks = ["sensor,value\n", "s1,1\n", "s1,2\n"].map(|data| {
                        let mut chunk = DynamicMessage::new(output.clone());
                        chunk.set_field_by_name("content_type", Value::String("text/csv".into()));
                        chunk.set_field_by_name(
                            "data",
                            Value::Bytes(Bytes::from_static(data.as_bytes())),
                        );
                        Ok(chunk)
                    });
                    futures::stream::iter(chunks).boxed()
                }
                "ExportReport" => {
                    let Some(body_type) = output
                        .get_field_by_name("file")
                        .and_then(|f| f.kind().as_message().cloned())
                    else {
                        return Err(Status::internal("no file"));
                    };
                    let pieces = ["report of s1\n", "1\n", "2\n"];
                    let pieces = pieces.iter().zip(0u32..).map(|(data, index)| {
                        let mut file = DynamicMessage::new(body_type.clone());
                        if index == 0 {
                            file.set_field_by_name(
                                "content_type",
                                Value::String("text/plain; charset=utf-8".into()),
                            );
                        }
                        file.set_field_by_name(
                            "data",
                            Value::Bytes(Bytes::from_static(data.as_bytes())),
                        );
                        let mut piece = DynamicMessage::new(output.clone());
                        piece.set_field_by_name("file", Value::Message(file));
                        piece.set_field_by_name("index", Value::U32(index));
                        Ok(piece)
                    });
                    futures::stream::iter(pieces.collect::<Vec<_>>()).boxed()
                }
                "UploadLog" => {
                    let (mut bytes, mut chunks, mut content_type) = (0usize, 0usize, String::new());
                    while let Some(chunk) = incoming.message().await? {
                        if let Some(Value::Bytes(data)) = chunk.get_field_by_name("data").as_deref()
                        {
                            bytes += data.len();
                        }
                        if chunks == 0 {
                            content_type = string_field(&chunk, "content_type");
                        }
                        chunks += 1;
                    }
                    let mut summary = DynamicMessage::new(output);
                    summary.set_field_by_name(
                        "count",
                        Value::I32(i32::try_from(bytes).unwrap_or(i32::MAX)),
                    );
                    summary.set_field_by_name(
                        "sensors",
                        Value::List(vec![
                            Value::String(content_type),
                            Value::String(chunks.to_string()),
                        ]),
                    );
                    futures::stream::once(std::future::ready(Ok(summary))).boxed()
                }
                other => return Err(Status::unimplemented(format!("no stream {other}"))),
            };
            let mut response = tonic::Response::new(replies);
            response
                .metadata_mut()
                .insert("foo", MetadataValue::from_static("foo1"));
            Ok(response)
        })
    }
}

/// FollowSensor: `count` events numbered from `last_event_id + 1`.
fn follow(query: &DynamicMessage, output: &prost_reflect::MessageDescriptor) -> Replies {
    let sensor = string_field(query, "sensor");
    let after = match query.get_field_by_name("last_event_id").as_deref() {
        Some(Value::U64(n)) => *n,
        _ => 0,
    };
    let Some(reading_type) = output
        .get_field_by_name("reading")
        .and_then(|f| f.kind().as_message().cloned())
    else {
        return futures::stream::once(std::future::ready(Err(Status::internal("no reading"))))
            .boxed();
    };
    let events: Vec<Result<DynamicMessage, Status>> = (1..=u64::from(u32_field(query, "count")))
        .map(|i| {
            let mut reading = DynamicMessage::new(reading_type.clone());
            reading.set_field_by_name("sensor", Value::String(sensor.clone()));
            let mut event = DynamicMessage::new(output.clone());
            event.set_field_by_name("event_id", Value::U64(after + i));
            event.set_field_by_name("reading", Value::Message(reading));
            Ok(event)
        })
        .collect();
    futures::stream::iter(events).boxed()
}

/// WatchReadings: `count` readings `delay_ms` apart; sensor "failing" fails at the third,
/// sensor "dead" before the first; sensor "late" waits `delay_ms` before the first too (a
/// caught-up watcher: the call accepted, nothing to say yet).
fn watch(
    query: &DynamicMessage,
    output: prost_reflect::MessageDescriptor,
    counters: Arc<Counters>,
) -> Replies {
    let sensor = string_field(query, "sensor");
    let count = u32_field(query, "count");
    let delay = Duration::from_millis(u64::from(u32_field(query, "delay_ms")));
    async_stream::try_stream! {
        let mut unfinished = Unfinished(counters, false);
        if sensor == "dead" {
            unfinished.1 = true;
            Err(Status::not_found("no such sensor"))?;
        }
        for i in 1..=count {
            if (i > 1 || sensor == "late") && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if sensor == "failing" && i == 3 {
                Err(Status::with_details(
                    tonic::Code::DataLoss,
                    "sensor lost",
                    Bytes::from(debug_info_status(15, "sensor lost").encode_to_vec()),
                ))?;
            }
            let mut reading = DynamicMessage::new(output.clone());
            reading.set_field_by_name("sensor", Value::String(sensor.clone()));
            reading.set_field_by_name("sequence", Value::I64(i64::from(i)));
            yield reading;
        }
        unfinished.1 = true;
    }
    .boxed()
}

/// A google.rpc.Status with one DebugInfo detail.
fn debug_info_status(code: i32, message: &str) -> RpcStatus {
    RpcStatus {
        code,
        message: message.into(),
        details: vec![prost_types::Any {
            type_url: "type.googleapis.com/google.rpc.DebugInfo".into(),
            value: DebugInfo {
                stack_entries: vec!["stream".into()],
                detail: message.into(),
            }
            .encode_to_vec(),
        }],
    }
}

async fn answer(pool: &DescriptorPool, request: http::Request<Body>) -> http::Response<Body> {
    let Some(method) = method_of(pool, request.uri().path()) else {
        return trailers_only(12, "no such method", &[]);
    };
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return trailers_only(13, &format!("reading the request: {e}"), &[]),
    };
    // One length-prefixed, uncompressed message.
    let Some(payload) = body.get(5..) else {
        return trailers_only(13, "no request message", &[]);
    };
    let input = match DynamicMessage::decode(method.input(), payload) {
        Ok(m) => m,
        Err(e) => return trailers_only(13, &format!("decoding the request: {e}"), &[]),
    };
    if let Some(Value::U32(ms)) = input.get_field_by_name("delay_ms").as_deref() {
        tokio::time::sleep(Duration::from_millis(u64::from(*ms))).await;
    }
    let sensor = match input.get_field_by_name("sensor").as_deref() {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    match method.name() {
        "GetReading" => match sensor.as_str() {
            "broken" => fail_after_headers(pool),
            "missing" => trailers_only(5, "no such sensor", &[("where", "trailers-only")]),
            _ => {
                let mut reading = DynamicMessage::new(method.output());
                reading.set_field_by_name("sensor", Value::String(sensor));
                reading.set_field_by_name("value", Value::F32(f32::MAX));
                reading.set_field_by_name("precise", Value::F64(f64::MAX));
                reading.set_field_by_name("sequence", Value::I64(i64::MAX));
                reading.set_field_by_name(
                    "samples",
                    Value::List(vec![
                        Value::F32(f32::MIN),
                        Value::F32(f32::INFINITY),
                        Value::F32(f32::NAN),
                    ]),
                );
                if let Some(unit) = input.get_field_by_name("unit") {
                    reading.set_field_by_name("unit", unit.into_owned());
                }
                if reading.get_field_by_name("sensor").as_deref()
                    == Some(&Value::String("cors".into()))
                {
                    // What a backend with a CORS layer of its own (tonic-web's, tower-http's)
                    // sends with every answer.
                    let cors = [
                        ("access-control-allow-origin", "*"),
                        ("access-control-expose-headers", "grpc-status,grpc-message"),
                        ("vary", "origin"),
                        ("foo", "foo1"),
                    ];
                    return ok(&reading, &cors, &[cors[0], ("foo", "foo2")]);
                }
                if reading.get_field_by_name("sensor").as_deref()
                    == Some(&Value::String("cached".into()))
                {
                    // A backend stating how long its answer stays fresh.
                    return ok(&reading, &[("cache-control", "max-age=60")], &[]);
                }
                ok(&reading, &[("foo", "foo1")], &[("foo", "foo2")])
            }
        },
        "RecordReading" if sensor == "rejected" => {
            let status = RpcStatus {
                code: 3,
                message: "reading rejected".into(),
                details: vec![prost_types::Any {
                    type_url: "type.googleapis.com/telemetry.v1.Reading".into(),
                    value: input.encode_to_vec(),
                }],
            };
            trailers_only_with_details(3, "reading rejected", &status)
        }
        "RecordReading" | "CalibrateSensor" | "UploadCalibration" => {
            // Same type in and out: the message as the backend decoded it.
            ok(&input, &[("foo", "foo1")], &[])
        }
        "GetSnapshot" => {
            let mut body = DynamicMessage::new(method.output());
            body.set_field_by_name("content_type", Value::String("image/png".into()));
            body.set_field_by_name(
                "data",
                Value::Bytes(Bytes::from_static(b"\x89PNG\r\n\x1a\n\0\xff")),
            );
            ok(&body, &[], &[])
        }
        "UploadFirmware" => {
            let (content_type, length) = match input.get_field_by_name("firmware").as_deref() {
                Some(Value::Message(firmware)) => {
                    let length = match firmware.get_field_by_name("data").as_deref() {
                        Some(Value::Bytes(data)) => data.len(),
                        _ => 0,
                    };
                    (string_field(firmware, "content_type"), length)
                }
                _ => (String::new(), 0),
            };
            let mut summary = DynamicMessage::new(method.output());
            summary.set_field_by_name(
                "count",
                Value::I32(i32::try_from(length).unwrap_or(i32::MAX)),
            );
            summary.set_field_by_name(
                "sensors",
                Value::List(vec![Value::String(content_type), Value::String(sensor)]),
            );
            ok(&summary, &[], &[])
        }
        // Its status is declared (201); the reading back, with a `location` of its own.
        "RegisterSensor" => ok(&input, &[("location", "/v1/sensors/registered")], &[]),
        "ForgetSensor" => ok(
            &DynamicMessage::new(method.output()),
            &[("foo", "foo1")],
            &[],
        ),
        "ArchiveSensor" => {
            let metadata: &[(&'static str, &'static str)] = match sensor.as_str() {
                "queued" => &[("x-http-code", "202"), ("location", "/v1/archives/queued")],
                "moved" => &[("x-http-code", "303"), ("location", "/v1/archives/moved")],
                "bogus" => &[("x-http-code", "404")],
                _ => &[],
            };
            let mut summary = DynamicMessage::new(method.output());
            summary.set_field_by_name("sensors", Value::List(vec![Value::String(sensor)]));
            ok(&summary, metadata, &[])
        }
        // The gateway must never call it; an answer here would make a test see count -1.
        _ => {
            let mut summary = DynamicMessage::new(method.output());
            summary.set_field_by_name("count", Value::I32(-1));
            ok(&summary, &[], &[])
        }
    }
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

fn response(status_in_headers: Option<HeaderMap>, body: Body) -> http::Response<Body> {
    let mut response = http::Response::new(body);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    if let Some(extra) = status_in_headers {
        response.headers_mut().extend(extra);
    }
    response
}

/// A message, then trailers with `grpc-status: 0` and `trailers`.
fn ok(
    message: &DynamicMessage,
    header_md: &[(&'static str, &'static str)],
    trailer_md: &[(&'static str, &'static str)],
) -> http::Response<Body> {
    let encoded = message.encode_to_vec();
    let mut frame = BytesMut::with_capacity(5 + encoded.len());
    frame.put_u8(0);
    frame.put_u32(u32::try_from(encoded.len()).unwrap_or(u32::MAX));
    frame.put_slice(&encoded);
    let mut trailers = headers(trailer_md);
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let body = http_body_util::Full::new(frame.freeze())
        .with_trailers(std::future::ready(Some(Ok::<_, Infallible>(trailers))));
    response(Some(headers(header_md)), Body::new(body))
}

/// INTERNAL after headers (`foo: foo1`), with trailers `foo: foo2` and two google.rpc details.
fn fail_after_headers(pool: &DescriptorPool) -> http::Response<Body> {
    // The test asserts the gateway decodes these without the fixture knowing their types.
    assert!(pool.get_message_by_name("google.rpc.DebugInfo").is_none());
    let status = RpcStatus {
        code: 13,
        message: "sensor broken".into(),
        details: vec![
            prost_types::Any {
                type_url: "type.googleapis.com/google.rpc.DebugInfo".into(),
                value: DebugInfo {
                    stack_entries: vec!["frame1".into(), "frame2".into()],
                    detail: "fuse blown".into(),
                }
                .encode_to_vec(),
            },
            prost_types::Any {
                type_url: "type.googleapis.com/google.rpc.BadRequest".into(),
                value: BadRequest {
                    field_violations: vec![FieldViolation {
                        field: "sensor".into(),
                        description: "is broken".into(),
                        ..FieldViolation::default()
                    }],
                }
                .encode_to_vec(),
            },
        ],
    };
    let details = base64::engine::general_purpose::STANDARD_NO_PAD.encode(status.encode_to_vec());
    let mut trailers = headers(&[("foo", "foo2")]);
    trailers.insert("grpc-status", HeaderValue::from_static("13"));
    trailers.insert("grpc-message", HeaderValue::from_static("sensor%20broken"));
    if let Ok(value) = HeaderValue::from_str(&details) {
        trailers.insert("grpc-status-details-bin", value);
    }
    let body = http_body_util::Empty::<Bytes>::new().with_trailers(std::future::ready(Some(Ok::<
        _,
        Infallible,
    >(
        trailers,
    ))));
    response(Some(headers(&[("foo", "foo1")])), Body::new(body))
}

/// One header block with the status and `metadata`, no body.
fn trailers_only(
    code: u8,
    message: &str,
    metadata: &[(&'static str, &'static str)],
) -> http::Response<Body> {
    let mut block = headers(metadata);
    block.insert("grpc-status", HeaderValue::from(u16::from(code)));
    let encoded: String =
        percent_encoding::utf8_percent_encode(message, percent_encoding::NON_ALPHANUMERIC)
            .collect();
    if let Ok(value) = HeaderValue::from_str(&encoded) {
        block.insert("grpc-message", value);
    }
    response(Some(block), Body::empty())
}

/// [`trailers_only`] with `status` as its `grpc-status-details-bin`.
fn trailers_only_with_details(code: u8, message: &str, status: &RpcStatus) -> http::Response<Body> {
    let mut response = trailers_only(code, message, &[]);
    let details = base64::engine::general_purpose::STANDARD_NO_PAD.encode(status.encode_to_vec());
    if let Ok(value) = HeaderValue::from_str(&details) {
        response
            .headers_mut()
            .insert("grpc-status-details-bin", value);
    }
    response
}

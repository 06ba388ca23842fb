//! The backend of `telemetry.v1.Sensors` (tests/fixtures/telemetry.proto): a tonic server with
//! no health service and no reflection (unless asked), written at the HTTP/2 level so that it
//! controls every byte real backends may send: header metadata and trailers of the same name,
//! trailers-only errors, and `grpc-status-details-bin` with google.rpc details.

use std::{convert::Infallible, time::Duration};

use axum::body::Body;
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue};
use http_body_util::BodyExt;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, Value};
use tonic::service::Routes;

use crate::support::{RpcStatus, Spawned, fixture_descriptor_bytes, fixture_pool, spawn_grpc};

/// The fixture's encoded descriptor set. It imports nothing from `google/rpc`.
pub(crate) fn telemetry_descriptor_bytes() -> Vec<u8> {
    fixture_descriptor_bytes("telemetry.proto")
}

/// The fixture as a descriptor pool.
pub(crate) fn telemetry_pool() -> DescriptorPool {
    fixture_pool("telemetry.proto")
}

/// `google.rpc.DebugInfo`, encoded by hand as a backend in another language would.
#[derive(Clone, PartialEq, prost::Message)]
struct DebugInfo {
    #[prost(string, repeated, tag = "1")]
    stack_entries: Vec<String>,
    #[prost(string, tag = "2")]
    detail: String,
}

/// `google.rpc.BadRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct BadRequest {
    #[prost(message, repeated, tag = "1")]
    field_violations: Vec<FieldViolation>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct FieldViolation {
    #[prost(string, tag = "1")]
    field: String,
    #[prost(string, tag = "2")]
    description: String,
}

/// The backend's routes: the Sensors service only.
pub(crate) fn sensors_routes(pool: &DescriptorPool) -> Routes {
    Routes::from(axum::Router::new().fallback_service(Sensors { pool: pool.clone() }))
}

/// Serves the backend on `127.0.0.1:0` (HTTP/2), without health or reflection.
pub(crate) async fn spawn_sensors_backend(pool: &DescriptorPool) -> Spawned {
    spawn_grpc(sensors_routes(pool)).await
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
    spawn_grpc(sensors_routes(pool).add_service(reflection)).await
}

#[derive(Debug, Clone)]
struct Sensors {
    pool: DescriptorPool,
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
        Box::pin(async move { Ok(answer(&pool, request).await) })
    }
}

async fn answer(pool: &DescriptorPool, request: http::Request<Body>) -> http::Response<Body> {
    let method = request
        .uri()
        .path()
        .trim_start_matches('/')
        .split_once('/')
        .and_then(|(service, method)| {
            pool.get_service_by_name(service)?
                .methods()
                .find(|m| m.name() == method)
        });
    let Some(method) = method else {
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
                ok(&reading, &[("foo", "foo1")], &[("foo", "foo2")])
            }
        },
        "RecordReading" | "CalibrateSensor" => {
            // Same type in and out: the message as the backend decoded it.
            ok(&input, &[("foo", "foo1")], &[])
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

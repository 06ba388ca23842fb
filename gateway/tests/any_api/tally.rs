//! The backend of `tally.v1` (tests/fixtures/tally.proto), an API with no `google.api.http`
//! annotation: tonic's generic streaming server over dynamic messages, one method of each
//! kind, no health service, and reflection v1alpha only when asked (as grpcio-reflection
//! serves it). `Audit.Last` answers an AIP-154 `etag`; `Add` refuses another one.

use std::convert::Infallible;

use articles_gateway::backend::DynamicCodec;
use axum::body::Body;
use futures::{StreamExt as _, future::BoxFuture, stream::BoxStream};
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, Value};
use tonic::{Status, service::Routes};

use crate::support::{Spawned, fixture_descriptor_bytes, fixture_pool, spawn_grpc};

/// The fixture's encoded descriptor set.
pub(crate) fn tally_descriptor_bytes() -> Vec<u8> {
    fixture_descriptor_bytes("tally.proto")
}

/// The fixture as a descriptor pool.
pub(crate) fn tally_pool() -> DescriptorPool {
    fixture_pool("tally.proto")
}

fn routes() -> Routes {
    Routes::from(axum::Router::new().fallback_service(Tally { pool: tally_pool() }))
}

/// Serves the backend on `127.0.0.1:0`, without health or reflection.
pub(crate) async fn spawn_tally() -> Spawned {
    spawn_grpc(routes()).await
}

/// Serves the backend with `grpc.reflection.v1alpha` only.
pub(crate) async fn spawn_tally_with_v1alpha_reflection() -> Spawned {
    // tonic-reflection borrows the bytes for the server's lifetime: leaked, once per test.
    let bytes: &'static [u8] = Box::leak(tally_descriptor_bytes().into_boxed_slice());
    let reflection = match tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(bytes)
        .build_v1alpha()
    {
        Ok(r) => r,
        Err(e) => panic!("reflection: {e}"),
    };
    spawn_grpc(routes().add_service(reflection)).await
}

/// The one version `Audit.Last` answers (AIP-154 `etag`), and `Add` accepts.
pub(crate) const CURRENT_VERSION: &str = "rev-7";

#[derive(Debug, Clone)]
struct Tally {
    pool: DescriptorPool,
}

impl tower::Service<http::Request<Body>> for Tally {
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
        let method = request
            .uri()
            .path()
            .trim_start_matches('/')
            .split_once('/')
            .and_then(|(service, method)| {
                self.pool
                    .get_service_by_name(service)?
                    .methods()
                    .find(|m| m.name() == method)
            });
        Box::pin(async move {
            let Some(method) = method else {
                return Ok(Status::unimplemented("no such method").into_http());
            };
            // Every kind through the streaming server: on the wire, a unary call is a stream
            // of one message each way.
            let mut grpc = tonic::server::Grpc::new(DynamicCodec::new(method.input()));
            Ok(grpc
                .streaming(Methods { method }, request)
                .await
                .map(Body::new))
        })
    }
}

struct Methods {
    method: MethodDescriptor,
}

type Replies = BoxStream<'static, Result<DynamicMessage, Status>>;

fn total(method: &MethodDescriptor, counter: &str, total: i64) -> DynamicMessage {
    let mut message = DynamicMessage::new(method.output());
    message.set_field_by_name("counter", Value::String(counter.to_owned()));
    message.set_field_by_name("total", Value::I64(total));
    message
}

fn field_str(message: &DynamicMessage, name: &str) -> String {
    message
        .get_field_by_name(name)
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn field_i64(message: &DynamicMessage, name: &str) -> i64 {
    match message.get_field_by_name(name).as_deref() {
        Some(Value::I64(n)) => *n,
        Some(Value::I32(n)) => i64::from(*n),
        _ => 0,
    }
}

impl tonic::server::StreamingService<DynamicMessage> for Methods {
    type Response = DynamicMessage;
    type ResponseStream = Replies;
    type Future = BoxFuture<'static, Result<tonic::Response<Replies>, Status>>;

    fn call(&mut self, request: tonic::Request<tonic::Streaming<DynamicMessage>>) -> Self::Future {
        let method = self.method.clone();
        Box::pin(async move {
            let mut incoming = request.into_inner();
            let replies: Replies = match method.name() {
                "Add" => {
                    let add = incoming
                        .message()
                        .await?
                        .ok_or_else(|| Status::invalid_argument("no request"))?;
                    // AIP-154: a write naming another version than the current one fails.
                    let etag = field_str(&add, "etag");
                    if !etag.is_empty() && etag != CURRENT_VERSION {
                        return Err(Status::failed_precondition(format!(
                            "etag {etag:?} is not the current version"
                        )));
                    }
                    let reply = total(
                        &method,
                        &field_str(&add, "counter"),
                        field_i64(&add, "amount"),
                    );
                    futures::stream::once(std::future::ready(Ok(reply))).boxed()
                }
                "Last" => {
                    let query = incoming
                        .message()
                        .await?
                        .ok_or_else(|| Status::invalid_argument("no request"))?;
                    let mut reply = total(&method, &field_str(&query, "counter"), 7);
                    reply.set_field_by_name("etag", Value::String(CURRENT_VERSION.into()));
                    futures::stream::once(std::future::ready(Ok(reply))).boxed()
                }
                "Count" => {
                    let query = incoming
                        .message()
                        .await?
                        .ok_or_else(|| Status::invalid_argument("no request"))?;
                    let counter = field_str(&query, "counter");
                    let upto = field_i64(&query, "upto").clamp(0, 100);
                    let replies: Vec<_> = (1..=upto)
                        .map(|n| Ok(total(&method, &counter, n)))
                        .collect();
                    futures::stream::iter(replies).boxed()
                }
                "Sum" => {
                    let (mut counter, mut sum) = (String::new(), 0i64);
                    while let Some(add) = incoming.message().await? {
                        if counter.is_empty() {
                            counter = field_str(&add, "counter");
                        }
                        sum = sum.saturating_add(field_i64(&add, "amount"));
                    }
                    futures::stream::once(std::future::ready(Ok(total(&method, &counter, sum))))
                        .boxed()
                }
                "Running" => {
                    // Each running total as soon as its amount arrives.
                    let running = incoming.scan(0i64, move |sum, add| {
                        let reply = add.map(|add| {
                            *sum = sum.saturating_add(field_i64(&add, "amount"));
                            total(&method, &field_str(&add, "counter"), *sum)
                        });
                        std::future::ready(Some(reply))
                    });
                    running.boxed()
                }
                other => return Err(Status::unimplemented(format!("no method {other}"))),
            };
            Ok(tonic::Response::new(replies))
        })
    }
}

//! Test support: the `library.v1` fixture API compiled with protox, a generic echo gRPC
//! backend for it, and helpers that spawn real servers on `127.0.0.1:0`.
//!
//! The echo backend answers every unary method of any pool. It returns the request's exact
//! bytes in the `echo-request-bin` response metadata (so tests assert the transcoded request
//! precisely), echoes each received metadata key `k` back as `echo-k`, and obeys control
//! metadata: `x-echo-code` (fail with that gRPC code, plus details with `x-echo-details`),
//! `x-echo-delay-ms` (sleep first) and `x-echo-response` (answer this JSON as the output).

use std::{convert::Infallible, net::SocketAddr, path::PathBuf, time::Duration};

use articles_gateway::{Backend, GatewayBuilder, backend::DynamicCodec};
use base64::Engine;
use futures::future::BoxFuture;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, SerializeOptions};
use tokio::{net::TcpListener, sync::oneshot};
use tonic::{
    Status,
    metadata::{KeyAndValueRef, MetadataKey, MetadataMap, MetadataValue},
    service::Routes,
};

/// The encoded descriptor set of `tests/fixtures/<proto>` and its imports (raw protox bytes:
/// options kept).
pub(crate) fn fixture_descriptor_bytes(proto: &str) -> Vec<u8> {
    fixture_descriptor_bytes_in("", proto)
}

/// [`fixture_descriptor_bytes`] of `tests/fixtures/<dir>/<proto>`, named `<proto>`: two
/// versions of one file in two directories keep one name, as a deployed file does.
pub(crate) fn fixture_descriptor_bytes_in(dir: &str, proto: &str) -> Vec<u8> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let fixtures = manifest.join("tests/fixtures").join(dir);
    let mut compiler = match protox::Compiler::new([fixtures, manifest.join("../proto")]) {
        Ok(c) => c,
        Err(e) => panic!("protox: {e}"),
    };
    compiler.include_imports(true);
    if let Err(e) = compiler.open_file(proto) {
        panic!("compiling {proto}: {e}");
    }
    compiler.encode_file_descriptor_set()
}

/// `tests/fixtures/<proto>` as a descriptor pool.
pub(crate) fn fixture_pool(proto: &str) -> DescriptorPool {
    match DescriptorPool::decode(fixture_descriptor_bytes(proto).as_slice()) {
        Ok(p) => p,
        Err(e) => panic!("decoding the descriptors of {proto}: {e}"),
    }
}

/// The library fixture API's encoded descriptor set.
pub(crate) fn library_descriptor_bytes() -> Vec<u8> {
    fixture_descriptor_bytes("library.proto")
}

/// The library fixture API as a descriptor pool.
pub(crate) fn library_pool() -> DescriptorPool {
    fixture_pool("library.proto")
}

/// A spawned server; dropping it shuts the server down.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Spawned {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn bind() -> (TcpListener, SocketAddr) {
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => panic!("local_addr: {e}"),
    };
    (listener, addr)
}

/// The echo backend's tonic routes (echo for every method of `pool`, plus grpc.health.v1).
pub(crate) fn echo_routes(pool: &DescriptorPool) -> Routes {
    let (_reporter, health) = tonic_health::server::health_reporter();
    Routes::from(echo_router(pool)).add_service(health)
}

/// The echo of every unary method of `pool` as a router, for a backend that adds methods of
/// its own.
pub(crate) fn echo_router(pool: &DescriptorPool) -> axum::Router {
    axum::Router::new().fallback_service(EchoService { pool: pool.clone() })
}

/// The echo backend whose grpc.health.v1 reports the whole server as `status`, though it
/// answers every call.
pub(crate) async fn echo_routes_reporting(
    pool: &DescriptorPool,
    status: tonic_health::ServingStatus,
) -> Routes {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_service_status("", status).await;
    // The reporter's state lives in the service; the handle itself may go.
    drop(reporter);
    Routes::from(axum::Router::new().fallback_service(EchoService { pool: pool.clone() }))
        .add_service(health)
}

/// Serves the echo backend over real HTTP/2 on `127.0.0.1:0`.
pub(crate) async fn spawn_echo_backend(pool: &DescriptorPool) -> Spawned {
    spawn_grpc(echo_routes(pool)).await
}

/// Serves gRPC `routes` with tonic over real HTTP/2 on `127.0.0.1:0`.
pub(crate) async fn spawn_grpc(routes: Routes) -> Spawned {
    spawn_grpc_with(routes, None).await
}

/// [`spawn_grpc`] allowing each connection at most `max_concurrent_streams` streams at once
/// (HTTP/2's `SETTINGS_MAX_CONCURRENT_STREAMS`), when given.
pub(crate) async fn spawn_grpc_with(
    routes: Routes,
    max_concurrent_streams: Option<u32>,
) -> Spawned {
    let (listener, addr) = bind().await;
    spawn_grpc_on(listener, addr, routes, max_concurrent_streams)
}

/// Serves gRPC `routes` with tonic over real HTTP/2 on `listener` (at `addr`): a backend
/// started again where it was. `max_concurrent_streams` as for [`spawn_grpc_with`].
pub(crate) fn spawn_grpc_on(
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    routes: Routes,
    max_concurrent_streams: Option<u32>,
) -> Spawned {
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let result = tonic::transport::Server::builder()
            .max_concurrent_streams(max_concurrent_streams)
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = result {
            eprintln!("gRPC backend failed: {e}");
        }
    });
    Spawned {
        addr,
        shutdown: Some(tx),
    }
}

/// Serves a gateway router on `127.0.0.1:0`.
pub(crate) async fn spawn_gateway(router: axum::Router) -> Spawned {
    spawn_gateway_with(router, articles_gateway::server::ServeOptions::default()).await
}

/// Serves a gateway router on `127.0.0.1:0` with these connection settings.
pub(crate) async fn spawn_gateway_with(
    router: axum::Router,
    options: articles_gateway::server::ServeOptions,
) -> Spawned {
    let (listener, addr) = bind().await;
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        if let Err(e) =
            articles_gateway::server::serve_with(listener, router, shutdown, options).await
        {
            eprintln!("gateway failed: {e}");
        }
    });
    Spawned {
        addr,
        shutdown: Some(tx),
    }
}

/// The echo backend and a gateway in front of it.
#[derive(Debug)]
pub(crate) struct Library {
    pub(crate) pool: DescriptorPool,
    pub(crate) gateway: Spawned,
    #[allow(dead_code, reason = "kept alive: dropping it stops the backend")]
    pub(crate) backend: Spawned,
    pub(crate) client: reqwest::Client,
}

impl Library {
    pub(crate) fn url(&self, path: &str) -> String {
        self.gateway.url(path)
    }
}

/// Spawns the echo backend and a gateway over a channel to it, the builder adjusted by
/// `configure`.
pub(crate) async fn spawn_library_with(
    configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder,
) -> Library {
    spawn_echo_api(library_pool(), configure).await
}

/// The echo backend of the API `pool` describes, and a gateway in front of it (`configure`d).
pub(crate) async fn spawn_echo_api(
    pool: DescriptorPool,
    configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder,
) -> Library {
    let backend = spawn_echo_backend(&pool).await;
    let channel =
        match Backend::connect_lazy(&format!("http://{}", backend.addr), Duration::from_secs(1)) {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        };
    let builder = GatewayBuilder::new()
        .descriptors(pool.clone())
        .backend(channel);
    let router = match configure(builder).build() {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let gateway = spawn_gateway(router).await;
    Library {
        pool,
        gateway,
        backend,
        client: reqwest::Client::new(),
    }
}

/// [`spawn_library_with`] with the default options.
pub(crate) async fn spawn_library() -> Library {
    spawn_library_with(|b| b).await
}

/// The request message the backend received, as compact JSON (proto names, defaults left out).
pub(crate) fn echoed(
    pool: &DescriptorPool,
    input: &str,
    response: &reqwest::Response,
) -> serde_json::Value {
    let message = echoed_message(pool, input, response);
    match message.serialize_with_options(
        serde_json::value::Serializer,
        &SerializeOptions::new()
            .skip_default_fields(true)
            .use_proto_field_name(true),
    ) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// The request message the echo backend received, as `input`.
pub(crate) fn echoed_message(
    pool: &DescriptorPool,
    input: &str,
    response: &reqwest::Response,
) -> DynamicMessage {
    let Some(header) = response.headers().get("grpc-metadata-echo-request-bin") else {
        panic!("no echo-request-bin in {:?}", response.headers());
    };
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = match engine.decode(header.as_bytes()) {
        Ok(b) => b,
        Err(e) => panic!("echo-request-bin is not base64: {e}"),
    };
    let Some(desc) = pool.get_message_by_name(input) else {
        panic!("no message {input}");
    };
    match DynamicMessage::decode(desc, bytes.as_slice()) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    }
}

/// Reads a response body as JSON, panicking with the text when it is not.
pub(crate) async fn json(response: reqwest::Response) -> serde_json::Value {
    let text = match response.text().await {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => panic!("not JSON ({e}): {text}"),
    }
}

/// Sends a request, panicking on transport errors.
pub(crate) async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    match request.send().await {
        Ok(r) => r,
        Err(e) => panic!("request failed: {e}"),
    }
}

/// `google.rpc.Status`, to build error details in the test backends.
pub(crate) use tonic_types::pb::Status as RpcStatus;

#[derive(Debug, Clone)]
struct EchoService {
    pool: DescriptorPool,
}

impl tower::Service<http::Request<axum::body::Body>> for EchoService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<axum::body::Body>) -> Self::Future {
        let pool = self.pool.clone();
        Box::pin(async move {
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
                return Ok(Status::unimplemented("no such method").into_http());
            };
            let mut grpc = tonic::server::Grpc::new(DynamicCodec::new(method.input()));
            Ok(grpc.unary(EchoUnary { method }, request).await)
        })
    }
}

struct EchoUnary {
    method: MethodDescriptor,
}

impl tonic::server::UnaryService<DynamicMessage> for EchoUnary {
    type Response = DynamicMessage;
    type Future = BoxFuture<'static, Result<tonic::Response<DynamicMessage>, Status>>;

    fn call(&mut self, request: tonic::Request<DynamicMessage>) -> Self::Future {
        let method = self.method.clone();
        Box::pin(async move {
            let metadata = request.metadata().clone();
            let control = |key: &str| {
                metadata
                    .get(key)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            if let Some(ms) = control("x-echo-delay-ms").and_then(|v| v.parse().ok()) {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let bytes = request.get_ref().encode_to_vec();
            let mut out = MetadataMap::new();
            out.insert_bin("echo-request-bin", MetadataValue::from_bytes(&bytes));
            for entry in metadata.iter() {
                if let KeyAndValueRef::Ascii(key, value) = entry {
                    let key = key.as_str();
                    if key.starts_with("x-echo")
                        || key == "te"
                        || key == "content-type"
                        || key == "user-agent"
                    {
                        continue;
                    }
                    if let Ok(echo_key) = MetadataKey::from_bytes(format!("echo-{key}").as_bytes())
                    {
                        out.append(echo_key, value.clone());
                    }
                }
            }
            if let Some(code) = control("x-echo-code").and_then(|c| c.parse::<i32>().ok()) {
                let details = if control("x-echo-details").is_some() {
                    let Some(shelf) = method.parent_pool().get_message_by_name("library.v1.Shelf")
                    else {
                        return Err(Status::internal("fixture without Shelf"));
                    };
                    let mut detail = DynamicMessage::new(shelf);
                    detail.set_field_by_name(
                        "name",
                        prost_reflect::Value::String("shelves/err".into()),
                    );
                    RpcStatus {
                        code,
                        message: "echo error".into(),
                        details: vec![
                            prost_types::Any {
                                type_url: "type.googleapis.com/library.v1.Shelf".into(),
                                value: detail.encode_to_vec(),
                            },
                            prost_types::Any {
                                type_url: "type.googleapis.com/unknown.Thing".into(),
                                value: vec![1, 2, 3],
                            },
                        ],
                    }
                    .encode_to_vec()
                } else {
                    Vec::new()
                };
                return Err(Status::with_details_and_metadata(
                    tonic::Code::from(code),
                    "echo error",
                    details.into(),
                    out,
                ));
            }
            let output = method.output();
            let message = match control("x-echo-response") {
                Some(json) => {
                    let mut de = serde_json::Deserializer::from_str(&json);
                    match DynamicMessage::deserialize(output, &mut de) {
                        Ok(m) => m,
                        Err(e) => {
                            return Err(Status::internal(format!("bad x-echo-response: {e}")));
                        }
                    }
                }
                // Output fields sharing numbers with input fields get their values.
                None => DynamicMessage::decode(output.clone(), bytes.as_slice())
                    .unwrap_or_else(|_| DynamicMessage::new(output)),
            };
            let mut response = tonic::Response::new(message);
            *response.metadata_mut() = out;
            Ok(response)
        })
    }
}

/// What a node test in `tests/browser` needs besides node.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NodeNeeds {
    /// Chromium and playwright-core: a headless-browser test.
    Browser,
    /// Connect's node transport: a gRPC-Web client test.
    Connect,
}

/// Runs `node --test <file>` in `tests/browser` with `env`, bounded to 2 minutes; answers its
/// stdout once it passed, or `None` when this machine lacks what it `needs` (never on CI,
/// where that fails the test).
pub(crate) async fn node_test(
    file: &str,
    env: &[(&str, String)],
    needs: NodeNeeds,
) -> Option<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    let ready = match needs {
        NodeNeeds::Browser => {
            dir.join("node_modules/playwright-core").exists()
                && std::path::Path::new(&chromium).exists()
        }
        NodeNeeds::Connect => dir.join("node_modules/@connectrpc/connect-node").exists(),
    };
    if !ready {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run {file}: install Chromium and `npm ci` in {}",
            dir.display()
        );
        eprintln!("skipped {file}: no Chromium, playwright-core or Connect (see scripts/test)");
        return None;
    }
    let mut command = tokio::process::Command::new("node");
    command
        .args(["--test", file])
        .current_dir(&dir)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let out = match tokio::time::timeout(Duration::from_secs(120), command.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!("node: {e}"),
        Err(_) => panic!("{file} did not finish in 2 minutes"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(stdout)
}

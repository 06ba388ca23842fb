//! Descriptor reload without a restart, on the `inventory.v1` fixture in two versions of one
//! file (`fixtures/inventory/v1` and `v2`: v2 adds `ListItems`, with a validated field, and
//! renames `Item`'s field 1 from `id` to `sku`, so each response shows which descriptors wrote
//! it). The backend echoes unary calls, holds `WatchItem` streams open until told, and serves
//! reflection whose answer a test changes (or breaks) while it runs.

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use articles_gateway::{
    Backend, BalanceOptions, GatewayBuilder, Reloader,
    app::ReloadError,
    backend::DynamicCodec,
    config::Cli,
    reload::{Reload, Source},
    served::{DescriptorVersion, Outcome},
    server,
};
use axum::body::Body;
use clap::Parser;
use futures::{StreamExt as _, future::BoxFuture, stream::BoxStream};
use http::StatusCode;
use prost_reflect::{DescriptorPool, DynamicMessage, Value};
use tokio::sync::Notify;
use tonic::{Status, service::Routes};
use tower::util::BoxCloneService;

use crate::support::{
    Spawned, echo_router, fixture_descriptor_bytes_in, json, send, spawn_gateway, spawn_grpc,
};

const REFLECTION_PATH: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
const WATCH_PATH: &str = "/inventory.v1.Inventory/WatchItem";

fn ok<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

fn v1_bytes() -> Vec<u8> {
    fixture_descriptor_bytes_in("inventory/v1", "inventory.proto")
}

fn v2_bytes() -> Vec<u8> {
    fixture_descriptor_bytes_in("inventory/v2", "inventory.proto")
}

fn pool(bytes: &[u8]) -> DescriptorPool {
    ok(DescriptorPool::decode(bytes), "decoding a fixture")
}

fn version(bytes: &[u8]) -> DescriptorVersion {
    DescriptorVersion::of(&pool(bytes))
}

type ReflectionService =
    BoxCloneService<http::Request<Body>, http::Response<tonic::body::Body>, Infallible>;

/// `grpc.reflection.v1` (tonic-reflection) answering whichever descriptors it was last given,
/// or failing.
#[derive(Clone, Default)]
struct SwappableReflection(Arc<Mutex<Option<ReflectionService>>>);

impl SwappableReflection {
    /// Answers `bytes` from the next reflection stream on.
    fn answer(&self, bytes: &[u8]) {
        // tonic-reflection borrows the bytes for the server's lifetime: leaked, a few per test.
        let bytes: &'static [u8] = Box::leak(bytes.to_vec().into_boxed_slice());
        let server = ok(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(bytes)
                .build_v1(),
            "reflection",
        );
        if let Ok(mut current) = self.0.lock() {
            *current = Some(BoxCloneService::new(server));
        }
    }

    /// Answers every reflection stream UNAVAILABLE from now on.
    fn fail(&self) {
        if let Ok(mut current) = self.0.lock() {
            *current = None;
        }
    }
}

impl tower::Service<http::Request<Body>> for SwappableReflection {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let current = self.0.lock().ok().and_then(|c| c.clone());
        Box::pin(async move {
            match current {
                Some(service) => tower::ServiceExt::oneshot(service, request).await,
                None => Ok(Status::unavailable("reflection is broken").into_http()),
            }
        })
    }
}

/// `WatchItem`: the item (field 1 set to the id asked), then, once released, again; then the
/// end.
#[derive(Clone)]
struct Watch {
    pool: DescriptorPool,
    release: Arc<Notify>,
}

impl tower::Service<http::Request<Body>> for Watch {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let watch = self.clone();
        Box::pin(async move {
            let Some(method) = watch
                .pool
                .get_service_by_name("inventory.v1.Inventory")
                .and_then(|s| s.methods().find(|m| m.name() == "WatchItem"))
            else {
                return Ok(Status::internal("fixture without WatchItem").into_http());
            };
            let mut grpc = tonic::server::Grpc::new(DynamicCodec::new(method.input()));
            Ok(grpc.server_streaming(watch, request).await)
        })
    }
}

type Items = BoxStream<'static, Result<DynamicMessage, Status>>;

impl tonic::server::ServerStreamingService<DynamicMessage> for Watch {
    type Response = DynamicMessage;
    type ResponseStream = Items;
    type Future = BoxFuture<'static, Result<tonic::Response<Items>, Status>>;

    fn call(&mut self, request: tonic::Request<DynamicMessage>) -> Self::Future {
        let watch = self.clone();
        Box::pin(async move {
            let id = request
                .get_ref()
                .get_field_by_number(1)
                .map(|v| v.into_owned())
                .unwrap_or_else(|| Value::String(String::new()));
            let Some(item) = watch.pool.get_message_by_name("inventory.v1.Item") else {
                return Err(Status::internal("fixture without Item"));
            };
            let mut message = DynamicMessage::new(item);
            message.set_field_by_number(1, id);
            let first = message.clone();
            let items = futures::stream::once(async move { Ok(first) })
                .chain(futures::stream::once(async move {
                    watch.release.notified().await;
                    Ok(message)
                }))
                .boxed();
            Ok(tonic::Response::new(items))
        })
    }
}

/// The inventory backend: echo for every unary method of v2 (a superset of v1), `WatchItem`,
/// health, and reflection answering v1 until told otherwise.
struct Inventory {
    server: Spawned,
    reflection: SwappableReflection,
    /// Lets each open `WatchItem` stream send its second item.
    release: Arc<Notify>,
}

impl Inventory {
    async fn spawn() -> Self {
        let served = pool(&v2_bytes());
        let reflection = SwappableReflection::default();
        reflection.answer(&v1_bytes());
        let release = Arc::new(Notify::new());
        let router = echo_router(&served)
            .route_service(REFLECTION_PATH, reflection.clone())
            .route_service(
                WATCH_PATH,
                Watch {
                    pool: served,
                    release: Arc::clone(&release),
                },
            );
        let (_reporter, health) = tonic_health::server::health_reporter();
        let server = spawn_grpc(Routes::from(router).add_service(health)).await;
        Self {
            server,
            reflection,
            release,
        }
    }

    fn uri(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    fn backend(&self) -> Backend {
        ok(
            Backend::connect_lazy(&self.uri(), Duration::from_secs(1)),
            "backend",
        )
    }
}

/// A gateway serving the descriptors `bytes` in front of `backend`, and its reloader.
async fn gateway(backend: Backend, bytes: &[u8]) -> (Spawned, Reloader) {
    let (router, reloader) = ok(
        GatewayBuilder::new()
            .descriptors(pool(bytes))
            .backend(backend)
            .build_reloadable(),
        "gateway",
    );
    (spawn_gateway(router).await, reloader)
}

async fn status(client: &reqwest::Client, url: String) -> StatusCode {
    send(client.get(url)).await.status()
}

async fn text(client: &reqwest::Client, url: String) -> String {
    ok(send(client.get(url)).await.text().await, "body")
}

/// Polls `check` every 100 ms until it holds, for at most 15 s; panics naming `what`.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..150 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never: {what}");
}

/// The value of the sample `name` (with its labels) in a scrape.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

fn reloads(metrics: &str, result: &str) -> Option<f64> {
    sample(
        metrics,
        &format!("articles_gateway_descriptor_reloads_total{{result=\"{result}\"}}"),
    )
}

fn info(version: &DescriptorVersion) -> String {
    format!("articles_gateway_descriptors_info{{version=\"{version}\"}}")
}

/// The `articles-gateway` binary, on a free port, with `args`; killed when dropped.
struct Binary {
    child: tokio::process::Child,
    base: String,
}

impl Binary {
    async fn start(args: &[&str]) -> Self {
        let port = ok(
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()),
            "free port",
        )
        .port();
        let child = ok(
            tokio::process::Command::new(env!("CARGO_BIN_EXE_articles-gateway"))
                .args(args)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .kill_on_drop(true)
                .spawn(),
            "spawning the gateway",
        );
        let binary = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        eventually("the gateway binary answers", || {
            let url = binary.url("/healthz");
            let client = client.clone();
            async move { client.get(url).send().await.is_ok() }
        })
        .await;
        binary
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn hangup(&self) {
        let Some(pid) = self.child.id() else {
            panic!("the gateway exited");
        };
        let status = ok(
            std::process::Command::new("kill")
                .args(["-HUP", &pid.to_string()])
                .status(),
            "kill -HUP",
        );
        assert!(status.success(), "kill -HUP {pid}: {status}");
    }

    fn still_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test]
async fn a_method_added_on_the_backend_appears_in_routes_and_openapi_after_the_interval_without_a_restart()
 {
    let inventory = Inventory::spawn().await;
    let uri = inventory.uri();
    let mut gateway = Binary::start(&[
        "--reflect",
        "--reflect-interval",
        "200ms",
        "--backend",
        &uri,
    ])
    .await;
    let client = reqwest::Client::new();
    let r = send(client.get(gateway.url("/v1/items/a"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json(r).await, serde_json::json!({"id": "a"}));
    assert_eq!(
        status(&client, gateway.url("/v1/items")).await,
        StatusCode::NOT_FOUND
    );
    let doc = json(send(client.get(gateway.url("/openapi.json"))).await).await;
    assert!(doc["paths"]["/v1/items"].is_null(), "{}", doc["paths"]);
    // The same descriptors have the same version read by reflection or from the file.
    let ready = json(send(client.get(gateway.url("/readyz"))).await).await;
    assert_eq!(
        ready["descriptors"]["version"],
        version(&v1_bytes()).as_str()
    );

    inventory.reflection.answer(&v2_bytes());
    eventually("ListItems is routed", || {
        let url = gateway.url("/v1/items");
        let client = client.clone();
        async move { status(&client, url).await == StatusCode::OK }
    })
    .await;
    assert!(gateway.still_running(), "the gateway restarted");
    let doc = json(send(client.get(gateway.url("/openapi.json"))).await).await;
    assert!(doc["paths"]["/v1/items"]["get"].is_object(), "{doc}");
    // The new method's field rules are checked, and the renamed field is written.
    assert_eq!(
        status(&client, gateway.url("/v1/items?page_size=500")).await,
        StatusCode::BAD_REQUEST
    );
    let r = send(client.get(gateway.url("/v1/items/a"))).await;
    assert_eq!(json(r).await, serde_json::json!({"sku": "a"}));
    let ready = json(send(client.get(gateway.url("/readyz"))).await).await;
    assert_eq!(
        ready["descriptors"]["version"],
        version(&v2_bytes()).as_str()
    );
    let metrics = text(&client, gateway.url("/metrics")).await;
    assert_eq!(sample(&metrics, &info(&version(&v2_bytes()))), Some(1.0));
    assert_eq!(reloads(&metrics, "changed"), Some(1.0), "{metrics}");
    assert_eq!(reloads(&metrics, "failed"), Some(0.0), "{metrics}");
}

#[tokio::test]
async fn sighup_rereads_the_descriptor_set_file_and_a_bad_file_keeps_the_served_api() {
    let inventory = Inventory::spawn().await;
    let dir = ok(tempfile::tempdir(), "tempdir");
    let set = dir.path().join("inventory.binpb");
    // Replaced whole, as a deploy writes it: SIGHUP never reads half a file.
    let write = |bytes: &[u8]| {
        let next = dir.path().join("next.binpb");
        ok(std::fs::write(&next, bytes), "writing the set");
        ok(std::fs::rename(&next, &set), "replacing the set");
    };
    write(&v1_bytes());
    let uri = inventory.uri();
    let mut gateway = Binary::start(&[
        "--descriptor-set",
        &set.display().to_string(),
        "--backend",
        &uri,
    ])
    .await;
    let client = reqwest::Client::new();
    write(&v2_bytes());
    // Nothing reads the file again until SIGHUP.
    assert_eq!(
        status(&client, gateway.url("/v1/items")).await,
        StatusCode::NOT_FOUND
    );
    gateway.hangup();
    eventually("ListItems is routed after SIGHUP", || {
        let url = gateway.url("/v1/items");
        let client = client.clone();
        async move { status(&client, url).await == StatusCode::OK }
    })
    .await;
    let r = send(client.get(gateway.url("/v1/items/a"))).await;
    assert_eq!(json(r).await, serde_json::json!({"sku": "a"}));

    write(b"not a descriptor set");
    gateway.hangup();
    eventually("the failed reload is counted", || {
        let url = gateway.url("/metrics");
        let client = client.clone();
        async move { reloads(&text(&client, url).await, "failed") == Some(1.0) }
    })
    .await;
    assert!(gateway.still_running());
    assert_eq!(
        status(&client, gateway.url("/v1/items")).await,
        StatusCode::OK
    );
    let metrics = text(&client, gateway.url("/metrics")).await;
    assert_eq!(sample(&metrics, &info(&version(&v2_bytes()))), Some(1.0));
    assert_eq!(reloads(&metrics, "changed"), Some(1.0), "{metrics}");
}

#[tokio::test]
async fn a_failed_reload_keeps_the_old_api_serving_and_its_version() {
    let inventory = Inventory::spawn().await;
    let (gateway, reloader) = gateway(inventory.backend(), &v1_bytes()).await;
    let client = reqwest::Client::new();
    let v1 = version(&v1_bytes());
    let dir = ok(tempfile::tempdir(), "tempdir");
    let garbage = dir.path().join("garbage.binpb");
    ok(std::fs::write(&garbage, b"\x0a\xff garbage"), "writing");
    let sources = [
        Source::File(dir.path().join("missing.binpb")),
        Source::File(garbage),
        Source::Reflection {
            backend: inventory.backend(),
            names: vec![inventory.uri()],
        },
    ];
    inventory.reflection.fail();
    for source in sources {
        let what = format!("{source:?}");
        let outcome = Reload::new(source, reloader.clone()).once().await;
        assert_eq!(outcome, Outcome::Failed, "{what}");
        assert_eq!(reloader.served().loaded().version, v1, "{what}");
        let r = send(client.get(gateway.url("/v1/items/a"))).await;
        assert_eq!(r.status(), StatusCode::OK, "{what}");
        assert_eq!(json(r).await, serde_json::json!({"id": "a"}), "{what}");
    }
    // Descriptors that route nothing, while the served ones route something, are refused.
    match reloader.reload(DescriptorPool::new()) {
        Err(ReloadError::NoRoutes { served: 2, .. }) => {}
        other => panic!("an empty API was not refused: {other:?}"),
    }
    assert_eq!(reloader.served().loaded().version, v1);
    assert_eq!(
        status(&client, gateway.url("/v1/watch/x")).await,
        StatusCode::OK
    );
    let metrics = text(&client, gateway.url("/metrics")).await;
    assert_eq!(reloads(&metrics, "failed"), Some(4.0), "{metrics}");
    assert_eq!(reloads(&metrics, "changed"), Some(0.0), "{metrics}");
    assert_eq!(sample(&metrics, &info(&v1)), Some(1.0), "{metrics}");
}

#[tokio::test]
async fn calls_in_flight_across_a_reload_finish_on_the_version_they_started_with() {
    let inventory = Inventory::spawn().await;
    // Balanced, for its per-replica in-flight gauge: a call counted there has been routed.
    let backend = ok(
        Backend::balanced(&[inventory.uri()], &BalanceOptions::default()),
        "balanced",
    );
    backend.health_checked().await;
    let (gateway, reloader) = gateway(backend, &v1_bytes()).await;
    let client = reqwest::Client::new();
    let mut stream = send(client.get(gateway.url("/v1/watch/w"))).await;
    assert_eq!(stream.status(), StatusCode::OK);
    let first = ok(stream.chunk().await, "first item").unwrap_or_default();
    let first = String::from_utf8_lossy(&first).into_owned();
    assert!(first.contains(r#""id":"w""#), "{first}");
    // A slow unary call, at the backend when the reload happens.
    let slow = tokio::spawn(
        client
            .get(gateway.url("/v1/items/slow"))
            .header("grpc-metadata-x-echo-delay-ms", "3000")
            .send(),
    );
    let in_flight = format!(
        "articles_gateway_backend_in_flight{{backend=\"{}\"}}",
        inventory.uri()
    );
    eventually("the stream and the slow call are at the backend", || {
        let url = gateway.url("/metrics");
        let client = client.clone();
        let in_flight = in_flight.clone();
        async move { sample(&text(&client, url).await, &in_flight) == Some(2.0) }
    })
    .await;

    let changed = ok(reloader.reload(pool(&v2_bytes())), "reload");
    assert!(
        matches!(changed, articles_gateway::app::Reloaded::Changed { .. }),
        "{changed:?}"
    );
    // A request arriving now is answered by the new version...
    let r = send(client.get(gateway.url("/v1/items/a"))).await;
    assert_eq!(json(r).await, serde_json::json!({"sku": "a"}));
    // ...and those that arrived before go on with the old one, to their end.
    let slow = ok(ok(slow.await, "slow call task"), "slow call");
    assert_eq!(slow.status(), StatusCode::OK);
    assert_eq!(json(slow).await, serde_json::json!({"id": "slow"}));
    inventory.release.notify_one();
    let rest = ok(stream.text().await, "rest of the stream");
    assert!(rest.contains(r#""id":"w""#), "{rest}");
    assert!(!rest.contains("sku"), "{rest}");
    assert!(!rest.contains("error"), "{rest}");
}

#[tokio::test]
async fn replicas_answering_different_descriptors_keep_the_served_api_until_they_agree() {
    let old = Inventory::spawn().await;
    let new = Inventory::spawn().await;
    new.reflection.answer(&v2_bytes());
    let uris = vec![old.uri(), new.uri()];
    // At start the first replica that answers reflection, in order, gives the descriptors.
    let cli = ok(
        Cli::try_parse_from([
            "articles-gateway",
            "--reflect",
            "--backend",
            &uris.join(","),
        ]),
        "flags",
    );
    let backend = ok(
        Backend::balanced(&uris, &BalanceOptions::default()),
        "balanced",
    );
    backend.health_checked().await;
    let started = ok(
        server::load_descriptors(&cli.serve.api, None, &backend).await,
        "start-up reflection",
    );
    assert_eq!(DescriptorVersion::of(&started), version(&v1_bytes()));

    let (gateway, reloader) = gateway(backend.clone(), &v1_bytes()).await;
    let reload = Reload::new(
        Source::Reflection {
            backend,
            names: uris.clone(),
        },
        reloader.clone(),
    );
    let client = reqwest::Client::new();
    // Mid-deploy: the new method is not routed, so no call reaches a replica without it.
    assert_eq!(reload.once().await, Outcome::Disagreed);
    assert_eq!(reloader.served().loaded().version, version(&v1_bytes()));
    assert_eq!(
        status(&client, gateway.url("/v1/items")).await,
        StatusCode::NOT_FOUND
    );
    for _ in 0..4 {
        assert_eq!(
            status(&client, gateway.url("/v1/items/a")).await,
            StatusCode::OK
        );
    }
    let metrics = text(&client, gateway.url("/metrics")).await;
    assert_eq!(reloads(&metrics, "disagreed"), Some(1.0), "{metrics}");

    // Deploy done: every replica answers v2.
    old.reflection.answer(&v2_bytes());
    assert_eq!(reload.once().await, Outcome::Changed);
    assert_eq!(reloader.served().loaded().version, version(&v2_bytes()));
    for _ in 0..4 {
        assert_eq!(
            status(&client, gateway.url("/v1/items")).await,
            StatusCode::OK
        );
    }
    // A replica that fails reflection is left out; the others still agree.
    old.reflection.fail();
    assert_eq!(reload.once().await, Outcome::Unchanged);
}

#[tokio::test]
async fn metrics_and_readyz_show_the_served_version_and_when_it_was_loaded() {
    let inventory = Inventory::spawn().await;
    let before = SystemTime::now();
    let (gateway, reloader) = gateway(inventory.backend(), &v1_bytes()).await;
    let client = reqwest::Client::new();
    let v1 = version(&v1_bytes());
    let loaded_at = |ready: &serde_json::Value| {
        let at = ready["descriptors"]["loaded_at"]
            .as_str()
            .unwrap_or_default();
        ok(humantime::parse_rfc3339(at), "loaded_at")
    };
    let ready = json(send(client.get(gateway.url("/readyz"))).await).await;
    assert_eq!(ready["status"], "ok");
    assert_eq!(ready["descriptors"]["version"], v1.as_str());
    let first = loaded_at(&ready);
    // RFC 3339 to the second.
    assert!(first + Duration::from_secs(1) >= before, "{ready}");
    let metrics = text(&client, gateway.url("/metrics")).await;
    assert_eq!(sample(&metrics, &info(&v1)), Some(1.0), "{metrics}");
    let stamp = sample(
        &metrics,
        "articles_gateway_descriptors_loaded_timestamp_seconds",
    )
    .unwrap_or_default();
    let since_epoch = first
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    assert!((stamp - since_epoch).abs() < 1.0, "{stamp} {since_epoch}");
    for result in ["changed", "unchanged", "disagreed", "failed"] {
        assert_eq!(reloads(&metrics, result), Some(0.0), "{result}: {metrics}");
    }

    // The same descriptors again: nothing is rebuilt, the load time stays.
    let reload = Reload::new(
        Source::Reflection {
            backend: inventory.backend(),
            names: Vec::new(),
        },
        reloader.clone(),
    );
    assert_eq!(reload.once().await, Outcome::Unchanged);
    let ready = json(send(client.get(gateway.url("/readyz"))).await).await;
    assert_eq!(loaded_at(&ready), first);

    let dir = ok(tempfile::tempdir(), "tempdir");
    let path = dir.path().join("set.binpb");
    ok(std::fs::write(&path, v2_bytes()), "writing");
    let reload = Reload::new(Source::File(path), reloader.clone());
    assert_eq!(reload.once().await, Outcome::Changed);
    let ready = json(send(client.get(gateway.url("/readyz"))).await).await;
    let v2 = version(&v2_bytes());
    assert_eq!(ready["descriptors"]["version"], v2.as_str());
    assert!(loaded_at(&ready) >= first);
    let metrics = text(&client, gateway.url("/metrics")).await;
    assert_eq!(sample(&metrics, &info(&v2)), Some(1.0), "{metrics}");
    assert!(!metrics.contains(&info(&v1)), "{metrics}");
    assert_eq!(reloads(&metrics, "unchanged"), Some(1.0), "{metrics}");
    assert_eq!(reloads(&metrics, "changed"), Some(1.0), "{metrics}");
}

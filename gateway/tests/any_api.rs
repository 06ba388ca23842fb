//! Any gRPC API, annotated or not: zero configuration (reflection v1alpha + auto-mapping) in
//! front of `tally.v1`, an API with no `google.api.http` annotation whose backend serves no
//! health service; OpenTelemetry's OTLP collector services (descriptors from the PyPI
//! `opentelemetry-proto` package) at OTLP/HTTP's paths through a gRPC API Configuration file;
//! a file's rule replacing an annotation (`library.v1`); each file error pinned by its
//! message, at start and on a reload; `--services`.

pub(crate) mod tally;

use std::{fmt::Display, path::Path, time::Duration};

use articles_gateway::{
    Backend, GatewayBuilder,
    app::ReloadError,
    config::Cli,
    rules::{MappingOptions, ServiceFilter},
    server,
};
use clap::Parser;
use futures::{SinkExt as _, StreamExt as _};
use http::StatusCode;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::support::{
    Spawned, echo_router, echoed_message, json, library_pool, send, spawn_gateway, spawn_grpc,
};
use tally::{spawn_tally, spawn_tally_with_v1alpha_reflection, tally_descriptor_bytes, tally_pool};

fn ok<T, E: Display>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

fn ndjson(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| ok(serde_json::from_str(l), "an NDJSON line"))
        .collect()
}

/// A gateway built from `argv` (as `articles-gateway` parses it) in front of `backend_url`,
/// its descriptors loaded as the binary loads them.
async fn gateway_from_flags(argv: &[&str]) -> Spawned {
    let cli = ok(Cli::try_parse_from(argv), "command line");
    let backend = ok(
        Backend::balanced(
            &cli.serve.api.backends,
            &ok(server::balance_options(&cli.serve), "options"),
        ),
        "backend",
    );
    backend.health_checked().await;
    let pool = ok(
        server::load_descriptors(&cli.serve.api, None, &backend).await,
        "descriptors",
    );
    let router = ok(server::router(&cli.serve, None, pool, backend), "router");
    spawn_gateway(router).await
}

#[tokio::test]
async fn zero_configuration_by_reflection_and_auto_mapping_calls_every_kind_of_method() {
    let backend = spawn_tally_with_v1alpha_reflection().await;
    let url = backend.url("");
    let gateway = gateway_from_flags(&[
        "articles-gateway",
        "--reflect",
        "--auto-mapping",
        "--backend",
        &url,
        "--health-interval",
        "50ms",
    ])
    .await;
    let client = reqwest::Client::new();

    // Unary.
    let r = send(
        client
            .post(gateway.url("/tally.v1.Tally/Add"))
            .json(&json!({"counter": "c", "amount": "5"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        json(r).await,
        json!({"counter": "c", "total": "5", "etag": ""})
    );

    // Server streaming: NDJSON, and SSE when asked.
    let r = send(
        client
            .post(gateway.url("/tally.v1.Tally/Count"))
            .json(&json!({"counter": "c", "upto": 3})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let totals: Vec<Value> = ndjson(&ok(r.text().await, "body"))
        .into_iter()
        .map(|l| l["result"]["total"].clone())
        .collect();
    assert_eq!(totals, [json!("1"), json!("2"), json!("3")]);
    let r = send(
        client
            .post(gateway.url("/tally.v1.Tally/Count"))
            .header("accept", "text/event-stream")
            .json(&json!({"counter": "c", "upto": 2})),
    )
    .await;
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let body = ok(r.text().await, "body");
    assert_eq!(body.matches("data: {").count(), 2, "{body}");

    // Client streaming over NDJSON.
    let r = send(
        client
            .post(gateway.url("/tally.v1.Tally/Sum"))
            .header("content-type", "application/x-ndjson")
            .body("{\"counter\": \"c\", \"amount\": 1}\n{\"amount\": 2}\n{\"amount\": 39}\n"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        json(r).await,
        json!({"counter": "c", "total": "42", "etag": ""})
    );

    // Bidirectional over NDJSON and over WebSocket.
    let r = send(
        client
            .post(gateway.url("/tally.v1.Tally/Running"))
            .header("content-type", "application/x-ndjson")
            .body("{\"counter\": \"c\", \"amount\": 1}\n{\"amount\": 2}\n"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let running: Vec<Value> = ndjson(&ok(r.text().await, "body"))
        .into_iter()
        .map(|l| l["result"]["total"].clone())
        .collect();
    assert_eq!(running, [json!("1"), json!("3")]);
    let (mut socket, _) = ok(
        tokio_tungstenite::connect_async(format!("ws://{}/tally.v1.Tally/Running", gateway.addr))
            .await,
        "WebSocket",
    );
    for (amount, total) in [(4, "4"), (5, "9")] {
        ok(
            socket
                .send(WsMessage::text(json!({"amount": amount}).to_string()))
                .await,
            "send",
        );
        let frame = ok(
            tokio::time::timeout(Duration::from_secs(5), socket.next()).await,
            "a frame in time",
        );
        let Some(Ok(WsMessage::Text(text))) = frame else {
            panic!("expected a text frame, got {frame:?}");
        };
        let message: Value = ok(serde_json::from_str(&text), "JSON frame");
        assert_eq!(message["total"], total, "{message}");
    }

    // The reflection and health services are never routes, though the backend serves one.
    let r = send(
        client
            .post(gateway.url("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"))
            .json(&json!({"list_services": ""})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // OpenAPI documents every method; `/readyz` says where the routes came from.
    let doc = json(send(client.get(gateway.url("/openapi.json"))).await).await;
    let mut paths: Vec<&str> = doc["paths"]
        .as_object()
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "/tally.v1.Audit/Last",
            "/tally.v1.Tally/Add",
            "/tally.v1.Tally/Count",
            "/tally.v1.Tally/Running",
            "/tally.v1.Tally/Sum",
        ]
    );
    assert_eq!(
        doc["paths"]["/tally.v1.Tally/Add"]["post"]["operationId"],
        "Add"
    );
    let ready = json(send(client.get(gateway.url("/readyz"))).await).await;
    assert_eq!(ready["routes"]["auto"], 5, "{ready}");
    assert_eq!(ready["routes"]["annotation"], 0, "{ready}");
    assert_eq!(ready["routes"]["auto_mapping"], true, "{ready}");
}

#[tokio::test]
async fn without_auto_mapping_an_unannotated_api_gets_no_rest_route() {
    let backend = spawn_tally_with_v1alpha_reflection().await;
    let url = backend.url("");
    let gateway = gateway_from_flags(&["articles-gateway", "--reflect", "--backend", &url]).await;
    let client = reqwest::Client::new();
    let doc = json(send(client.get(gateway.url("/openapi.json"))).await).await;
    assert_eq!(doc["paths"], json!({}), "{doc}");
    // The gRPC path answers as Connect (the one port serves every method so), not as REST:
    // its error names the code.
    let r = send(
        client
            .post(gateway.url("/tally.v1.Tally/Add"))
            .json(&json!({"amount": "many"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(r).await["code"], "invalid_argument");
    let ready = json(send(client.get(gateway.url("/readyz"))).await).await;
    assert_eq!(ready["routes"]["auto"], 0, "{ready}");
}

#[tokio::test]
async fn services_limits_rest_routes_and_the_others_stay_reachable_over_grpc() {
    let backend = spawn_tally().await;
    let dir = ok(tempfile::tempdir(), "tempdir");
    let set = dir.path().join("tally.pb");
    ok(std::fs::write(&set, tally_descriptor_bytes()), "write set");
    let set = set.display().to_string();
    let url = backend.url("");
    let gateway = gateway_from_flags(&[
        "articles-gateway",
        "--descriptor-set",
        &set,
        "--auto-mapping",
        "--services",
        "tally.v1.Tally",
        "--backend",
        &url,
    ])
    .await;
    let client = reqwest::Client::new();
    let r = send(
        client
            .post(gateway.url("/tally.v1.Tally/Add"))
            .json(&json!({"amount": 1})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    // Audit has no REST route: its gRPC path is Connect's (a REST error would number its code).
    let r = send(
        client
            .post(gateway.url("/tally.v1.Audit/Last"))
            .json(&json!({"counter": 5})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(r).await["code"], "invalid_argument");
    let doc = json(send(client.get(gateway.url("/openapi.json"))).await).await;
    assert!(doc["paths"]["/tally.v1.Audit/Last"].is_null(), "{doc}");
    assert!(
        doc["paths"]["/tally.v1.Tally/Add"]["post"].is_object(),
        "{doc}"
    );

    // Audit over gRPC through the gateway's one port.
    let pool = tally_pool();
    let method = pool
        .get_service_by_name("tally.v1.Audit")
        .and_then(|s| s.methods().find(|m| m.name() == "Last"));
    let Some(method) = method else {
        panic!("tally.v1.Audit.Last is in the fixture")
    };
    let channel = ok(
        tonic::transport::Endpoint::from_shared(gateway.url("")),
        "endpoint",
    )
    .connect_lazy();
    let mut grpc = tonic::client::Grpc::new(channel);
    ok(grpc.ready().await, "ready");
    let mut request = DynamicMessage::new(method.input());
    request.set_field_by_name("counter", prost_reflect::Value::String("c".into()));
    let answer = ok(
        grpc.unary(
            tonic::Request::new(request),
            http::uri::PathAndQuery::from_static("/tally.v1.Audit/Last"),
            articles_gateway::backend::DynamicCodec::new(method.output()),
        )
        .await,
        "Audit.Last over gRPC",
    );
    assert_eq!(
        answer
            .get_ref()
            .get_field_by_name("counter")
            .and_then(|v| v.as_str().map(str::to_owned)),
        Some("c".to_owned())
    );

    // `articles-gateway openapi` takes the same flags.
    let output = ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_articles-gateway"))
            .args([
                "openapi",
                "--descriptor-set",
                &set,
                "--auto-mapping",
                "--services",
                "tally.*",
            ])
            .output(),
        "articles-gateway openapi",
    );
    assert!(output.status.success(), "{output:?}");
    let doc: Value = ok(serde_json::from_slice(&output.stdout), "the document");
    assert!(
        doc["paths"]["/tally.v1.Audit/Last"]["post"].is_object(),
        "{doc}"
    );
}

/// The OTLP collector services' descriptors, as the PyPI `opentelemetry-proto` package ships
/// them (generated modules only: each module's serialized file, imports first). `None` when
/// no Python is configured outside CI.
fn otlp_descriptor_bytes() -> Option<Vec<u8>> {
    const DUMP: &str = r#"
import sys
from google.protobuf import descriptor_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
seen, out = set(), descriptor_pb2.FileDescriptorSet()
def add(file):
    if file.name in seen:
        return
    seen.add(file.name)
    for dependency in file.dependencies:
        add(dependency)
    out.file.add().MergeFromString(file.serialized_pb)
for module in (trace_service_pb2, metrics_service_pb2, logs_service_pb2):
    add(module.DESCRIPTOR)
sys.stdout.buffer.write(out.SerializeToString())
"#;
    let Some(python) = std::env::var_os("ARTICLES_TEST_PYTHON") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set ARTICLES_TEST_PYTHON (scripts/test does)"
        );
        eprintln!("skipped: set ARTICLES_TEST_PYTHON to a Python with opentelemetry-proto");
        return None;
    };
    let output = ok(
        std::process::Command::new(python)
            .args(["-c", DUMP])
            .output(),
        "python",
    );
    assert!(
        output.status.success(),
        "dumping the OTLP descriptors: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(output.stdout)
}

const OTLP_CONFIG: &str = "\
# OTLP/HTTP's paths for the OTLP/gRPC collector services.
type: google.api.Service
config_version: 3
name: otlp.example.com
documentation:
  summary: ignored by the gateway
http:
  rules:
  - selector: opentelemetry.proto.collector.trace.v1.TraceService.Export
    post: /v1/traces
    body: \"*\"
  - selector: opentelemetry.proto.collector.metrics.v1.MetricsService.Export
    post: /v1/metrics
    body: \"*\"
  - selector: opentelemetry.proto.collector.logs.v1.LogsService.Export
    post: /v1/logs
    body: \"*\"
";

#[tokio::test]
async fn a_configuration_file_serves_the_otlp_collector_at_otlp_http_paths() {
    let Some(bytes) = otlp_descriptor_bytes() else {
        return;
    };
    let pool = ok(DescriptorPool::decode(bytes.as_slice()), "OTLP descriptors");
    let dir = ok(tempfile::tempdir(), "tempdir");
    let config = dir.path().join("otlp.yaml");
    ok(std::fs::write(&config, OTLP_CONFIG), "write config");
    // The echo backend without its health service: a collector has none.
    let backend = spawn_grpc(tonic::service::Routes::from(echo_router(&pool))).await;
    let router = ok(
        GatewayBuilder::new()
            .descriptors(pool.clone())
            .backend(ok(
                Backend::connect_lazy(&backend.url(""), Duration::from_secs(1)),
                "backend",
            ))
            .mapping(MappingOptions {
                files: vec![config],
                ..MappingOptions::default()
            })
            .build(),
        "gateway",
    );
    let gateway = spawn_gateway(router).await;
    let client = reqwest::Client::new();

    // An export as proto3 JSON: ids in base64 (OTLP/HTTP's hex ids are OTLP's own deviation,
    // which a generic gateway cannot know), 64-bit integers as strings, enums by name.
    let export = json!({
        "resource_spans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"string_value": "checkout"}}]},
            "scope_spans": [{
                "scope": {"name": "tracer", "version": "1.0"},
                "spans": [{
                    "trace_id": "W47TrPvvG1BTpXMDmhN0Ww==",
                    "span_id": "EjRWeJCrze8=",
                    "name": "GET /cart",
                    "kind": "SPAN_KIND_SERVER",
                    "start_time_unix_nano": "1700000000000000000",
                    "end_time_unix_nano": "1700000000250000000",
                    "attributes": [{"key": "http.status_code", "value": {"int_value": "200"}}],
                    "status": {"code": "STATUS_CODE_OK"}
                }]
            }]
        }]
    });
    let r = send(client.post(gateway.url("/v1/traces")).json(&export)).await;
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
    let input = "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest";
    let received = echoed_message(&pool, input, &r);
    let expected = ok(
        DynamicMessage::deserialize(
            ok(
                pool.get_message_by_name(input).ok_or("no such message"),
                input,
            ),
            export.clone(),
        ),
        "the export parsed directly",
    );
    assert_eq!(received, expected);
    assert_eq!(received.encode_to_vec(), expected.encode_to_vec());

    for path in ["/v1/metrics", "/v1/logs"] {
        let r = send(client.post(gateway.url(path)).json(&json!({}))).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    // The three services' `Export`s keep unique operation ids.
    let doc = json(send(client.get(gateway.url("/openapi.json"))).await).await;
    let ids: Vec<&Value> = ["/v1/traces", "/v1/metrics", "/v1/logs"]
        .iter()
        .map(|p| &doc["paths"][p]["post"]["operationId"])
        .collect();
    assert_eq!(
        ids,
        [
            &json!("TraceService_Export"),
            &json!("MetricsService_Export"),
            &json!("LogsService_Export")
        ]
    );
    // Without auto-mapping, OTLP's gRPC paths are no REST routes.
    assert!(
        doc["paths"]["/opentelemetry.proto.collector.trace.v1.TraceService/Export"].is_null(),
        "{doc}"
    );
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    ok(std::fs::write(&path, text), "write");
    path
}

fn library_gateway(files: Vec<std::path::PathBuf>, backend: &Spawned) -> GatewayBuilder {
    GatewayBuilder::new()
        .descriptors(library_pool())
        .backend(ok(
            Backend::connect_lazy(&backend.url(""), Duration::from_secs(1)),
            "backend",
        ))
        .mapping(MappingOptions {
            files,
            ..MappingOptions::default()
        })
}

#[tokio::test]
async fn a_configuration_rule_replaces_the_methods_annotation() {
    let pool = library_pool();
    let backend = spawn_grpc(tonic::service::Routes::from(echo_router(&pool))).await;
    let dir = ok(tempfile::tempdir(), "tempdir");
    let config = write(
        dir.path(),
        "library.yaml",
        "type: google.api.Service\nconfig_version: 3\nhttp:\n  rules:\n  \
         - selector: library.v1.LibraryService.GetShelf\n    get: /v2/shelf/{name=shelves/*}\n",
    );
    let gateway = spawn_gateway(ok(
        library_gateway(vec![config], &backend).build(),
        "gateway",
    ))
    .await;
    let client = reqwest::Client::new();
    let r = send(client.get(gateway.url("/v2/shelf/shelves/7"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json(r).await["name"], "shelves/7");
    // The annotation's own paths are gone, its additional binding too: the rule replaced it
    // (other methods still route the first path: 405).
    let r = send(client.get(gateway.url("/v1/shelves/7"))).await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = send(client.get(gateway.url("/v1/archive/x/shelves/7"))).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Other methods keep their annotations.
    let r = send(client.get(gateway.url("/v1/shelves/special"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let doc = json(send(client.get(gateway.url("/openapi.json"))).await).await;
    let paths: Vec<&String> = doc["paths"]
        .as_object()
        .map(|p| p.keys().collect())
        .unwrap_or_default();
    assert!(
        paths.iter().any(|p| p.starts_with("/v2/shelf/")),
        "{paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.starts_with("/v1/archive/")),
        "{paths:?}"
    );
    let ready = json(send(client.get(gateway.url("/readyz"))).await).await;
    assert_eq!(ready["routes"]["configuration"], 1, "{ready}");
    let file = dir.path().join("library.yaml").display().to_string();
    assert_eq!(
        ready["routes"]["configuration_files"],
        json!([file]),
        "{ready}"
    );
}

#[tokio::test]
async fn each_configuration_error_names_the_file_the_line_and_the_rule() {
    let pool = library_pool();
    let backend = spawn_grpc(tonic::service::Routes::from(echo_router(&pool))).await;
    let dir = ok(tempfile::tempdir(), "tempdir");
    let header = "type: google.api.Service\nconfig_version: 3\nhttp:\n  rules:\n";
    let cases = [
        (
            "no-method.yaml",
            format!("{header}  - selector: library.v1.LibraryService.Nope\n    get: /nope\n"),
            ":5: the rule for library.v1.LibraryService.Nope: the selector names no method of \
             the descriptors",
        ),
        (
            "no-field.yaml",
            format!(
                "{header}  - selector: library.v1.LibraryService.GetShelf\n    get: /x\n  \
                 - selector: library.v1.LibraryService.CreateBook\n    post: /y\n    body: nope\n"
            ),
            ":7: the rule for library.v1.LibraryService.CreateBook: body \"nope\" names no field \
             of library.v1.CreateBookRequest",
        ),
        (
            "no-template.yaml",
            format!(
                "{header}  - selector: library.v1.LibraryService.GetShelf\n    get: /v1/{{name\n"
            ),
            ":5: the rule for library.v1.LibraryService.GetShelf: ",
        ),
        (
            "no-yaml.yaml",
            format!("{header}  - selector: [\n"),
            ":6: not YAML or JSON: ",
        ),
        (
            "twice.yaml",
            format!(
                "{header}  - selector: library.v1.LibraryService.GetShelf\n    get: /a\n  \
                 - selector: library.v1.LibraryService.GetShelf\n    get: /b\n"
            ),
            ":7: the rule for library.v1.LibraryService.GetShelf: the method already has the \
             rule at ",
        ),
    ];
    for (name, text, message) in cases {
        let path = write(dir.path(), name, &text);
        let error = match library_gateway(vec![path.clone()], &backend).build() {
            Ok(_) => panic!("{name}: the gateway was built"),
            Err(e) => e.to_string(),
        };
        let expected = format!("{}{message}", path.display());
        assert!(
            error.starts_with(&expected),
            "{name}: {error}\nexpected: {expected}"
        );
    }

    // The binary does not start, and says why.
    let set = dir.path().join("library.pb");
    ok(
        std::fs::write(&set, crate::support::library_descriptor_bytes()),
        "write set",
    );
    let bad = dir.path().join("no-method.yaml");
    let output = ok(
        tokio::time::timeout(
            Duration::from_secs(30),
            tokio::process::Command::new(env!("CARGO_BIN_EXE_articles-gateway"))
                .args(["--listen", "127.0.0.1:0", "--descriptor-set"])
                .arg(&set)
                .arg("--grpc-api-configuration")
                .arg(&bad)
                .args(["--backend", &backend.url("")])
                .kill_on_drop(true)
                .output(),
        )
        .await,
        "the gateway exits in time",
    );
    let output = ok(output, "articles-gateway");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{}:5: the rule for", bad.display())),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_reload_reads_the_configuration_again_and_a_bad_one_keeps_the_served_version() {
    let pool = library_pool();
    let backend = spawn_grpc(tonic::service::Routes::from(echo_router(&pool))).await;
    let dir = ok(tempfile::tempdir(), "tempdir");
    let rule = |path: &str| {
        format!(
            "type: google.api.Service\nconfig_version: 3\nhttp:\n  rules:\n  \
             - selector: library.v1.LibraryService.GetShelf\n    get: {path}\n"
        )
    };
    let config = write(dir.path(), "library.yaml", &rule("/first/{name=shelves/*}"));
    let (router, reloader) = ok(
        library_gateway(vec![config.clone()], &backend).build_reloadable(),
        "gateway",
    );
    let gateway = spawn_gateway(router).await;
    let client = reqwest::Client::new();
    let status = |path: &'static str| {
        let client = client.clone();
        let url = gateway.url(path);
        async move { send(client.get(url)).await.status() }
    };
    assert_eq!(status("/first/shelves/1").await, StatusCode::OK);
    let first = reloader.served().loaded().version;
    // Same descriptors, same file: nothing to do.
    assert!(matches!(
        reloader.reload(pool.clone()),
        Ok(articles_gateway::app::Reloaded::Unchanged(_))
    ));

    // The same descriptors under another rule are another version.
    write(
        dir.path(),
        "library.yaml",
        &rule("/second/{name=shelves/*}"),
    );
    assert!(matches!(
        reloader.reload(pool.clone()),
        Ok(articles_gateway::app::Reloaded::Changed { .. })
    ));
    assert_eq!(status("/second/shelves/1").await, StatusCode::OK);
    assert_eq!(status("/first/shelves/1").await, StatusCode::NOT_FOUND);
    let second = reloader.served().loaded().version;
    assert_ne!(first, second);

    // A broken file is refused; the served version stays.
    write(dir.path(), "library.yaml", &rule("/third/{name"));
    match reloader.reload(pool.clone()) {
        Err(ReloadError::Configuration(e)) => {
            assert!(e.to_string().contains("library.yaml:5"), "{e}");
        }
        other => panic!("a broken configuration was not refused: {other:?}"),
    }
    assert_eq!(reloader.served().loaded().version, second);
    assert_eq!(status("/second/shelves/1").await, StatusCode::OK);
    drop(std::fs::remove_file(&config));
    match reloader.reload(pool) {
        Err(ReloadError::Configuration(e)) => {
            assert!(e.to_string().starts_with("reading "), "{e}");
        }
        other => panic!("a missing configuration was not refused: {other:?}"),
    }
    assert_eq!(status("/second/shelves/1").await, StatusCode::OK);
    // The filter is the builder's: a services filter naming another package routes nothing.
    let none = ok(
        GatewayBuilder::new()
            .descriptors(library_pool())
            .backend(ok(
                Backend::connect_lazy(&backend.url(""), Duration::from_secs(1)),
                "backend",
            ))
            .mapping(MappingOptions {
                services: ServiceFilter::new(["other.*"]),
                ..MappingOptions::default()
            })
            .build(),
        "gateway",
    );
    let none = spawn_gateway(none).await;
    let r = send(client.get(none.url("/v1/shelves/1"))).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_live_page_follows_an_auto_mapped_post_stream_with_its_json_body() {
    let backend = spawn_tally_with_v1alpha_reflection().await;
    let url = backend.url("");
    let gateway = gateway_from_flags(&[
        "articles-gateway",
        "--reflect",
        "--auto-mapping",
        "--backend",
        &url,
    ])
    .await;
    if let Some(stdout) = crate::support::node_test(
        "live.test.mjs",
        &[("TALLY_URL", gateway.url(""))],
        crate::support::NodeNeeds::Browser,
    )
    .await
    {
        assert!(stdout.contains("# pass 1"), "{stdout}");
    }
}

#[tokio::test]
async fn fully_decode_reserved_expansion_decodes_an_encoded_slash_in_multi_segment_variables() {
    let pool = library_pool();
    let backend = spawn_grpc(tonic::service::Routes::from(echo_router(&pool))).await;
    let dir = ok(tempfile::tempdir(), "tempdir");
    let config = write(
        dir.path(),
        "library.json",
        r#"{"type": "google.api.Service", "config_version": 3, "http": {
             "fullyDecodeReservedExpansion": true,
             "rules": [{"selector": "library.v1.LibraryService.GetFile",
                        "get": "/v2/files/{path=**}"}]}}"#,
    );
    let gateway = spawn_gateway(ok(
        library_gateway(vec![config], &backend).build(),
        "gateway",
    ))
    .await;
    let client = reqwest::Client::new();
    // Decoded whole, on the file's rule and on the annotations alike (the setting is the
    // configuration's, as in google.api.Http).
    for (path, input, want) in [
        (
            "/v2/files/a%2Fb/c%20d.txt",
            "library.v1.GetFileRequest",
            json!({"path": "a/b/c d.txt"}),
        ),
        (
            "/v1/shelves/x%2Fy",
            "library.v1.GetShelfRequest",
            json!({"name": "shelves/x/y"}),
        ),
    ] {
        let r = send(client.get(gateway.url(path))).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(crate::support::echoed(&pool, input, &r), want, "{path}");
    }
}

#[tokio::test]
async fn an_auto_mapped_path_is_connect_for_a_connect_client_and_rest_for_plain_json() {
    let backend = spawn_tally_with_v1alpha_reflection().await;
    let url = backend.url("");
    let gateway = gateway_from_flags(&[
        "articles-gateway",
        "--reflect",
        "--auto-mapping",
        "--backend",
        &url,
    ])
    .await;
    let client = reqwest::Client::new();
    let call = |connect: bool, body: &'static str| {
        let mut request = client
            .post(gateway.url("/tally.v1.Tally/Add"))
            .header("content-type", "application/json")
            .body(body);
        if connect {
            request = request.header("connect-protocol-version", "1");
        }
        send(request)
    };
    let r = call(true, r#"{"counter": "c", "amount": "2"}"#).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        json(r).await,
        json!({"counter": "c", "total": "2", "etag": ""})
    );
    // The errors tell the protocols apart: Connect's names its code, REST's numbers it.
    let r = call(true, r#"{"amount": "many"}"#).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(r).await["code"], "invalid_argument");
    let r = call(false, r#"{"amount": "many"}"#).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(r).await["code"], 3);
}

//! Scale-out: several backend replicas balanced, health-checked (a replica not SERVING gets
//! no calls; with none up, 503 at once), idempotent calls retried on another replica, reflection
//! from the first replica that answers, metrics, request ids, and TLS to backends.

use std::{fmt::Display, net::SocketAddr, time::Duration};

use articles_gateway::{
    Backend, BalanceOptions, GatewayBuilder, backend::BackendTls, config::Cli, metrics::UNMATCHED,
};
use clap::Parser;
use http::StatusCode;
use tokio::{net::TcpListener, sync::oneshot};
use tonic_health::ServingStatus;

use crate::support::{
    Spawned, echo_routes, echo_routes_reporting, json, library_pool, send, spawn_echo_backend,
    spawn_gateway, spawn_library,
};

fn ok<T, E: Display>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

/// A `http://` URI where nothing listens (bound, then released).
fn dead_uri() -> String {
    let addr = ok(
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()),
        "bind",
    );
    format!("http://{addr}")
}

/// A balanced backend over `uris`, its first health round done; one transport failure takes a
/// replica out (the default threshold of 3 has tests of its own).
async fn balanced(uris: &[String], health_interval: Duration) -> Backend {
    let options = BalanceOptions {
        health_interval,
        failure_threshold: 1,
        ..BalanceOptions::default()
    };
    let backend = ok(Backend::balanced(uris, &options), "balanced backend");
    backend.health_checked().await;
    backend
}

/// A gateway for the library fixture in front of `backend`.
async fn gateway(backend: Backend) -> Spawned {
    let router = ok(
        GatewayBuilder::new()
            .descriptors(library_pool())
            .backend(backend)
            .build(),
        "gateway",
    );
    spawn_gateway(router).await
}

/// A gRPC server with only a health service, reporting the whole server NOT_SERVING: any
/// call that reached it would fail with UNIMPLEMENTED.
async fn spawn_not_serving() -> (SocketAddr, oneshot::Sender<()>) {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    let listener = ok(TcpListener::bind("127.0.0.1:0").await, "bind");
    let addr = ok(listener.local_addr(), "local_addr");
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _keep = reporter;
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let _ = tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            })
            .await;
    });
    (addr, tx)
}

fn calls(backend: &Backend) -> Vec<u64> {
    backend.replica_statuses().iter().map(|r| r.calls).collect()
}

async fn scrape(client: &reqwest::Client, gateway: &Spawned) -> String {
    let r = send(client.get(gateway.url("/metrics"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    ok(r.text().await, "metrics body")
}

#[tokio::test]
async fn calls_are_spread_over_every_healthy_replica() {
    let pool = library_pool();
    let replicas = [
        spawn_echo_backend(&pool).await,
        spawn_echo_backend(&pool).await,
        spawn_echo_backend(&pool).await,
    ];
    let uris: Vec<String> = replicas.iter().map(|r| r.url("")).collect();
    let backend = balanced(&uris, Duration::from_secs(1)).await;
    let gw = gateway(backend.clone()).await;
    let client = reqwest::Client::new();
    for i in 0..30 {
        let r = send(client.get(gw.url(&format!("/v1/shelves/{i}")))).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let calls = calls(&backend);
    assert_eq!(calls.iter().sum::<u64>(), 30);
    assert!(calls.iter().all(|&c| c >= 5), "uneven spread: {calls:?}");
}

#[tokio::test]
async fn a_replica_reporting_not_serving_gets_no_calls() {
    let pool = library_pool();
    let (sick, _stop) = spawn_not_serving().await;
    let well = spawn_echo_backend(&pool).await;
    let uris = [format!("http://{sick}"), well.url("")];
    let backend = balanced(&uris, Duration::from_millis(100)).await;
    let gw = gateway(backend.clone()).await;
    let client = reqwest::Client::new();
    for i in 0..20 {
        let r = send(client.get(gw.url(&format!("/v1/shelves/{i}")))).await;
        assert_eq!(r.status(), StatusCode::OK, "request {i}");
    }
    let statuses = backend.replica_statuses();
    assert!(!statuses[0].up);
    assert_eq!(statuses[0].calls, 0);
    assert!(statuses[1].up);
    assert_eq!(statuses[1].calls, 20);
    let text = scrape(&client, &gw).await;
    assert!(
        text.contains(&format!(
            "articles_gateway_backend_up{{backend=\"http://{sick}\"}} 0"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "articles_gateway_backend_up{{backend=\"{}\"}} 1",
            uris[1]
        )),
        "{text}"
    );
    let r = send(client.get(gw.url("/readyz"))).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn with_every_replica_down_requests_are_answered_503_at_once() {
    let uris = [dead_uri(), dead_uri()];
    let backend = balanced(&uris, Duration::from_secs(1)).await;
    let gw = gateway(backend).await;
    let client = reqwest::Client::new();
    for request in [
        client.get(gw.url("/v1/shelves/1")),
        client
            .post(gw.url("/v1/shelves/1/books"))
            .json(&serde_json::json!({"title": "t"})),
    ] {
        let started = std::time::Instant::now();
        let r = send(request).await;
        let elapsed = started.elapsed();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(elapsed < Duration::from_millis(500), "took {elapsed:?}");
        assert_eq!(json(r).await["code"], 14);
    }
    let r = send(client.get(gw.url("/readyz"))).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_get_failing_on_a_dead_replica_is_retried_on_another() {
    let pool = library_pool();
    let doomed = spawn_echo_backend(&pool).await;
    let survivor = spawn_echo_backend(&pool).await;
    let uris = [doomed.url(""), survivor.url("")];
    // Checked once: the gateway still thinks the doomed replica is up when it dies.
    let backend = balanced(&uris, Duration::from_secs(3600)).await;
    let gw = gateway(backend.clone()).await;
    let client = reqwest::Client::new();
    drop(doomed);
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..4 {
        let r = send(client.get(gw.url(&format!("/v1/shelves/{i}")))).await;
        assert_eq!(r.status(), StatusCode::OK, "request {i}");
    }
    assert_eq!(
        backend.retries(),
        1,
        "one retry, then the dead replica is out"
    );
    let statuses = backend.replica_statuses();
    assert!(
        !statuses[0].up,
        "a transport failure marks the replica down"
    );
    assert!(
        scrape(&client, &gw)
            .await
            .contains("articles_gateway_backend_retries_total 1")
    );
}

#[tokio::test]
async fn a_post_failing_on_a_dead_replica_is_not_retried() {
    let pool = library_pool();
    let doomed = spawn_echo_backend(&pool).await;
    let survivor = spawn_echo_backend(&pool).await;
    let uris = [doomed.url(""), survivor.url("")];
    let backend = balanced(&uris, Duration::from_secs(3600)).await;
    let gw = gateway(backend.clone()).await;
    let client = reqwest::Client::new();
    drop(doomed);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = send(
            client
                .post(gw.url("/v1/shelves/1/books"))
                .json(&serde_json::json!({"title": "t"})),
        )
        .await;
        statuses.push(r.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|&&s| s == 503).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 3);
    assert_eq!(backend.retries(), 0);
}

#[tokio::test]
async fn a_replica_failing_calls_is_taken_out_after_three_in_a_row_not_one() {
    let pool = library_pool();
    let doomed = spawn_echo_backend(&pool).await;
    let survivor = spawn_echo_backend(&pool).await;
    let uris = [doomed.url(""), survivor.url("")];
    // The default threshold; health checked once, so only calls can take it out.
    let options = BalanceOptions {
        health_interval: Duration::from_secs(3600),
        ..BalanceOptions::default()
    };
    let backend = ok(Backend::balanced(&uris, &options), "balanced backend");
    backend.health_checked().await;
    let gw = gateway(backend.clone()).await;
    let client = reqwest::Client::new();
    drop(doomed);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut failed = 0;
    for i in 0..12 {
        // POSTs are not retried: each failure is seen.
        let r = send(
            client
                .post(gw.url("/v1/shelves/1/books"))
                .json(&serde_json::json!({"title": "t"})),
        )
        .await;
        match r.status() {
            StatusCode::OK => {}
            StatusCode::SERVICE_UNAVAILABLE => failed += 1,
            other => panic!("request {i}: {other}"),
        }
        let up = backend.replica_statuses()[0].up;
        assert_eq!(up, failed < 3, "request {i}: {failed} failures so far");
    }
    assert_eq!(failed, 3);
}

#[tokio::test]
async fn with_every_replica_out_calls_still_go_to_them() {
    let pool = library_pool();
    let routes = echo_routes_reporting(&pool, ServingStatus::NotServing).await;
    let only = crate::support::spawn_grpc(routes).await;
    let backend = balanced(&[only.url("")], Duration::from_millis(100)).await;
    assert!(!backend.replica_statuses()[0].up);
    let gw = gateway(backend.clone()).await;
    let client = reqwest::Client::new();
    // Panic routing: a 503 from the gateway helps no one while a replica may still answer.
    for i in 0..5 {
        let r = send(client.get(gw.url(&format!("/v1/shelves/{i}")))).await;
        assert_eq!(r.status(), StatusCode::OK, "request {i}");
    }
    assert_eq!(backend.replica_statuses()[0].calls, 5);
    // Readiness still tells the truth.
    let r = send(client.get(gw.url("/readyz"))).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn call_failures_take_out_no_more_than_the_ejection_cap() {
    let pool = library_pool();
    let first = spawn_echo_backend(&pool).await;
    let second = spawn_echo_backend(&pool).await;
    let uris = [first.url(""), second.url("")];
    let options = BalanceOptions {
        health_interval: Duration::from_secs(3600),
        failure_threshold: 1,
        max_ejection_percent: 50,
        ..BalanceOptions::default()
    };
    let backend = ok(Backend::balanced(&uris, &options), "balanced backend");
    backend.health_checked().await;
    let gw = gateway(backend.clone()).await;
    let client = reqwest::Client::new();
    drop((first, second));
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..6 {
        let r = send(client.get(gw.url("/v1/shelves/1"))).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    let up: Vec<bool> = backend.replica_statuses().iter().map(|r| r.up).collect();
    assert_eq!(up.iter().filter(|u| !**u).count(), 1, "{up:?}");
}

#[tokio::test]
async fn backend_flags_take_several_replicas_comma_separated_too() {
    let cli = ok(
        Cli::try_parse_from(["articles-gateway", "--backend", "http://a:1,http://b:2"]),
        "flags",
    );
    assert_eq!(cli.serve.api.backends, ["http://a:1", "http://b:2"]);
    let cli = ok(Cli::try_parse_from(["articles-gateway"]), "flags");
    assert_eq!(cli.serve.api.backends, ["http://127.0.0.1:50051"]);
    assert_eq!(cli.serve.health_interval, Duration::from_secs(1));
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_with_bounded_labels() {
    let pool = library_pool();
    let replica = spawn_echo_backend(&pool).await;
    let backend = balanced(&[replica.url("")], Duration::from_secs(1)).await;
    let gw = gateway(backend).await;
    let client = reqwest::Client::new();
    for i in 0..3 {
        let r = send(client.get(gw.url(&format!("/v1/shelves/{i}")))).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    for path in ["/no/such/path/1", "/no/such/path/2"] {
        let r = send(client.get(gw.url(path))).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    let r = send(client.get(gw.url("/healthz"))).await;
    assert_eq!(r.status(), StatusCode::OK);

    let r = send(client.get(gw.url("/metrics"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let content_type = r.headers()["content-type"].to_str().unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = ok(r.text().await, "metrics");
    let route = "library.v1.LibraryService.GetShelf";
    for expected in [
        format!("articles_gateway_http_requests_total{{route=\"{route}\",status=\"200\",protocol=\"rest\"}} 3"),
        format!("articles_gateway_http_requests_total{{route=\"{UNMATCHED}\",status=\"404\",protocol=\"rest\"}} 2"),
        "articles_gateway_http_requests_total{route=\"/healthz\",status=\"200\",protocol=\"rest\"} 1".to_owned(),
        format!("articles_gateway_http_request_duration_seconds_count{{route=\"{route}\"}} 3"),
        "articles_gateway_http_requests_in_flight 1".to_owned(),
        format!(
            "articles_gateway_backend_up{{backend=\"{}\"}} 1",
            replica.url("")
        ),
        format!(
            "articles_gateway_backend_calls_total{{backend=\"{}\"}} 3",
            replica.url("")
        ),
        "articles_gateway_backend_retries_total 0".to_owned(),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("/no/such/path"), "raw paths are not labels");
    let r = send(client.post(gw.url("/metrics"))).await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_request_id_is_generated_when_absent_echoed_when_given_and_sent_to_the_backend() {
    let lib = spawn_library().await;
    let r = send(lib.client.get(lib.url("/v1/shelves/1"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let id = r.headers()["x-request-id"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id:?}");
    assert_eq!(r.headers()["grpc-metadata-echo-x-request-id"], id.as_str());

    let r = send(
        lib.client
            .get(lib.url("/v1/shelves/1"))
            .header("x-request-id", "req-42"),
    )
    .await;
    assert_eq!(r.headers()["x-request-id"], "req-42");
    assert_eq!(r.headers()["grpc-metadata-echo-x-request-id"], "req-42");

    // Gateway-answered errors carry it too.
    let r = send(lib.client.get(lib.url("/no/such/path"))).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn https_replicas_are_reached_when_their_private_ca_is_trusted() {
    let certified = ok(
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]),
        "certificate",
    );
    let cert_pem = certified.cert.pem();
    let key_pem = certified.signing_key.serialize_pem();
    let pool = library_pool();
    let listener = ok(TcpListener::bind("127.0.0.1:0").await, "bind");
    let addr = ok(listener.local_addr(), "addr");
    let identity = tonic::transport::Identity::from_pem(&cert_pem, &key_pem);
    let server = ok(
        tonic::transport::Server::builder()
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity)),
        "server TLS",
    );
    let (_stop, rx) = oneshot::channel::<()>();
    let routes = echo_routes(&pool);
    let mut server = server;
    tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let _ = server
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            })
            .await;
    });
    let uri = [format!("https://{addr}")];
    let client = reqwest::Client::new();

    // Without the CA the certificate is not trusted: the replica never comes up.
    let untrusted = balanced(&uri, Duration::from_secs(1)).await;
    assert!(!untrusted.replica_statuses()[0].up);
    let gw = gateway(untrusted).await;
    let r = send(client.get(gw.url("/v1/shelves/1"))).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);

    let options = BalanceOptions {
        tls: Some(BackendTls::with_ca_pem(cert_pem)),
        ..BalanceOptions::default()
    };
    let trusted = ok(Backend::balanced(&uri, &options), "backend");
    trusted.health_checked().await;
    assert!(trusted.replica_statuses()[0].up);
    let gw = gateway(trusted).await;
    let r = send(client.get(gw.url("/v1/shelves/7"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json(r).await["name"], "shelves/7");
}

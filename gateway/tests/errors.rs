//! Errors: every gRPC code to its HTTP status, details, deadlines, an unreachable backend.

use std::time::{Duration, Instant};

use articles_gateway::{Backend, GatewayBuilder};
use http::StatusCode;
use serde_json::json;

use crate::support::{json, library_pool, send, spawn_gateway, spawn_library, spawn_library_with};

#[tokio::test]
async fn every_grpc_code_maps_to_its_http_status_in_the_error_shape() {
    let lib = spawn_library().await;
    let table = [
        (1, 499),
        (2, 500),
        (3, 400),
        (4, 504),
        (5, 404),
        (6, 409),
        (7, 403),
        (8, 429),
        (9, 400),
        (10, 409),
        (11, 400),
        (12, 501),
        (13, 500),
        (14, 503),
        (15, 500),
        (16, 401),
    ];
    for (code, status) in table {
        let r = send(
            lib.client
                .get(lib.url("/v1/shelves/1"))
                .header("grpc-metadata-x-echo-code", code.to_string()),
        )
        .await;
        assert_eq!(r.status().as_u16(), status, "gRPC code {code}");
        assert_eq!(r.headers()["content-type"], "application/json");
        assert!(r.headers().contains_key("grpc-metadata-echo-request-bin"));
        assert_eq!(
            json(r).await,
            json!({"code": code, "message": "echo error", "details": []}),
            "gRPC code {code}"
        );
    }
}

#[tokio::test]
async fn status_details_are_rendered_as_json() {
    let lib = spawn_library().await;
    let r = send(
        lib.client
            .get(lib.url("/v1/shelves/1"))
            .header("grpc-metadata-x-echo-code", "9")
            .header("grpc-metadata-x-echo-details", "1"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json(r).await["details"],
        json!([
            {"@type": "type.googleapis.com/library.v1.Shelf", "name": "shelves/err", "theme": ""},
            {"@type": "type.googleapis.com/unknown.Thing", "value": "AQID"}
        ])
    );
}

#[tokio::test]
async fn grpc_timeout_expiring_is_504_deadline_exceeded() {
    let lib = spawn_library().await;
    let started = Instant::now();
    let r = send(
        lib.client
            .get(lib.url("/v1/shelves/1"))
            .header("grpc-timeout", "100m")
            .header("grpc-metadata-x-echo-delay-ms", "2000"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(json(r).await["code"], 4);
}

#[tokio::test]
async fn the_default_timeout_applies_without_grpc_timeout() {
    let lib = spawn_library_with(|b| b.timeout(Duration::from_millis(100))).await;
    let r = send(
        lib.client
            .get(lib.url("/v1/shelves/1"))
            .header("grpc-metadata-x-echo-delay-ms", "2000"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn a_malformed_grpc_timeout_is_400() {
    let lib = spawn_library().await;
    let r = send(
        lib.client
            .get(lib.url("/v1/shelves/1"))
            .header("grpc-timeout", "soon"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body = json(r).await;
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Grpc-Timeout"),
        "{body}"
    );
}

#[tokio::test]
async fn an_unreachable_backend_is_503_fast_without_leaking_details() {
    // A port that was free a moment ago: nothing listens there.
    let addr = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a,
        Err(e) => panic!("{e}"),
    };
    let backend = match Backend::connect_lazy(&format!("http://{addr}"), Duration::from_secs(1)) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    let router = match GatewayBuilder::new()
        .descriptors(library_pool())
        .backend(backend)
        .build()
    {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let gateway = spawn_gateway(router).await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let r = send(client.get(gateway.url("/v1/shelves/1"))).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        json(r).await,
        json!({"code": 14, "message": "the backend is unavailable", "details": []})
    );
    let r = send(client.get(gateway.url("/readyz"))).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(r).await["code"], 14);
}

#[tokio::test]
async fn requests_over_the_concurrency_limit_are_shed_with_503() {
    let lib = spawn_library_with(|b| b.concurrency_limit(1)).await;
    let slow = lib
        .client
        .get(lib.url("/v1/shelves/1"))
        .header("grpc-metadata-x-echo-delay-ms", "500")
        .send();
    let fast = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        send(lib.client.get(lib.url("/v1/shelves/2"))).await
    };
    let (slow, fast) = tokio::join!(slow, fast);
    assert_eq!(slow.map(|r| r.status()).ok(), Some(StatusCode::OK));
    assert_eq!(fast.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(fast).await["code"], 14);
}

//! Operations: probes, CORS, collisions, the command line, the in-memory backend.

use std::time::Duration;

use articles_gateway::{Backend, CorsOrigins, GatewayBuilder};
use http::{HeaderValue, StatusCode};
use serde_json::json;

use crate::support::{
    echo_routes, echoed, json, library_descriptor_bytes, library_pool, send, spawn_gateway,
    spawn_library, spawn_library_with,
};

#[tokio::test]
async fn healthz_answers_ok_and_wins_over_an_annotated_route() {
    // library.v1 binds Ping to GET /healthz; the gateway's probe wins (and a warning is logged).
    let lib = spawn_library().await;
    let r = send(lib.client.get(lib.url("/healthz"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("grpc-metadata-echo-request-bin").is_none());
    assert_eq!(json(r).await, json!({"status": "ok"}));
    let r = send(lib.client.post(lib.url("/healthz"))).await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn readyz_is_ok_when_the_backend_is_serving() {
    let lib = spawn_library().await;
    let r = send(lib.client.get(lib.url("/readyz"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let mut body = json(r).await;
    // The served descriptors' version and load time: `reload` tests their values.
    let descriptors = body
        .as_object_mut()
        .and_then(|o| o.remove("descriptors"))
        .unwrap_or_default();
    assert_eq!(descriptors["version"].as_str().map(str::len), Some(16));
    assert!(descriptors["loaded_at"].is_string(), "{descriptors}");
    // Where the routes came from: the library's annotations alone.
    let routes = body
        .as_object_mut()
        .and_then(|o| o.remove("routes"))
        .unwrap_or_default();
    assert!(
        routes["annotation"].as_u64().is_some_and(|n| n > 10),
        "{routes}"
    );
    assert_eq!(routes["configuration"], 0, "{routes}");
    assert_eq!(routes["auto"], 0, "{routes}");
    assert_eq!(routes["configuration_files"], json!([]), "{routes}");
    assert_eq!(routes["auto_mapping"], false, "{routes}");
    assert_eq!(
        body,
        json!({"status": "ok", "backends": [{"up": true, "health": "SERVING"}]})
    );
}

#[tokio::test]
async fn a_preflight_is_answered_with_cors_headers_before_any_405() {
    let lib = spawn_library().await;
    // OPTIONS is no route's method: without CORS handling this would be a 405.
    let r = send(
        lib.client
            .request(reqwest::Method::OPTIONS, lib.url("/v1/shelves/1"))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "PUT")
            .header(
                "access-control-request-headers",
                "authorization, content-type, grpc-timeout",
            ),
    )
    .await;
    assert!(r.status().is_success(), "{}", r.status());
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert_eq!(h["access-control-allow-methods"], "PUT");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap_or_default();
    for name in [
        "authorization",
        "content-type",
        "grpc-timeout",
        "x-request-id",
    ] {
        assert!(allowed.contains(name), "{allowed}");
    }
    // Simple requests get the exposure header, so scripts can read Grpc-Metadata-*.
    let r = send(
        lib.client
            .get(lib.url("/v1/shelves/1"))
            .header("origin", "https://app.example"),
    )
    .await;
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert_eq!(r.headers()["access-control-expose-headers"], "*");
}

#[tokio::test]
async fn cors_origins_can_be_restricted() {
    let lib = spawn_library_with(|b| {
        b.cors(CorsOrigins::List(vec![HeaderValue::from_static(
            "https://ok.example",
        )]))
    })
    .await;
    let preflight = |origin: &'static str| {
        lib.client
            .request(reqwest::Method::OPTIONS, lib.url("/v1/shelves/1"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
    };
    let r = send(preflight("https://ok.example")).await;
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://ok.example"
    );
    let r = send(preflight("https://evil.example")).await;
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn openapi_and_docs_are_served() {
    let lib = spawn_library().await;
    let r = send(lib.client.get(lib.url("/openapi.json"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let doc = json(r).await;
    assert!(doc["paths"]["/v1/{name}"].is_object(), "{}", doc["paths"]);
    let r = send(lib.client.get(lib.url("/docs/"))).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_in_memory_backend_needs_no_socket() {
    let pool = library_pool();
    let router = match GatewayBuilder::new()
        .descriptors(pool.clone())
        .backend(Backend::from_service(echo_routes(&pool)))
        .build()
    {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let gateway = spawn_gateway(router).await;
    let client = reqwest::Client::new();
    let r = send(client.get(gateway.url("/v1/shelves/5?unknown=1"))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = send(
        client
            .get(gateway.url("/v1/shelves/5"))
            .header("grpc-timeout", "50m")
            .header("grpc-metadata-x-echo-delay-ms", "1000"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
    let r = send(client.get(gateway.url("/v1/shelves/5"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        echoed(&pool, "library.v1.GetShelfRequest", &r),
        json!({"name": "shelves/5"})
    );
    let r = send(client.get(gateway.url("/readyz"))).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_binary_serves_a_descriptor_set_file_configured_by_env() {
    let pool = library_pool();
    let backend = crate::support::spawn_echo_backend(&pool).await;
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let set = dir.path().join("library.binpb");
    if let Err(e) = std::fs::write(&set, library_descriptor_bytes()) {
        panic!("{e}");
    }
    let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("{e}"),
    };
    let mut child = match tokio::process::Command::new(env!("CARGO_BIN_EXE_articles-gateway"))
        .args([
            "--descriptor-set",
            &set.display().to_string(),
            "--json-names",
            "camel",
        ])
        .env("ARTICLES_GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "ARTICLES_GATEWAY_BACKEND",
            format!("http://{}", backend.addr),
        )
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/v1/shelves/1/books");
    let mut answer = None;
    for _ in 0..100 {
        if let Ok(r) = client.get(&url).send().await {
            answer = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some(r) = answer else {
        panic!("the gateway binary never answered");
    };
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json(r).await["nextPageToken"], "");
    let _ = child.start_kill();
    let _ = child.wait().await;
}

#[tokio::test]
async fn the_openapi_subcommand_prints_the_document() {
    let output = match tokio::process::Command::new(env!("CARGO_BIN_EXE_articles-gateway"))
        .arg("openapi")
        .output()
        .await
    {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    assert!(output.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    assert!(doc["paths"]["/articles/{pk}"].is_object(), "{doc}");
    // It only prints: no backend is reached, so nothing warns that none answers.
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

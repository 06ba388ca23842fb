//! The live page at `/` and its panel on `/docs` (gateway/src/live.rs), for the sensors API:
//! what the page lists, when it is served, and (in headless Chromium) that it shows the events
//! of the stream chosen on it.

use http::StatusCode;
use serde_json::Value;

use super::{ok, spawn, spawn_with};
use crate::support::{
    NodeNeeds, fixture_pool, node_test, send, spawn_echo_api, spawn_library_with,
};

/// The route list the page carries (its `.live-routes` JSON).
fn routes_of(html: &str) -> Value {
    let start = ok(
        html.find(r#"class="live-routes">"#).ok_or("no route list"),
        "the route list",
    ) + r#"class="live-routes">"#.len();
    let end = start + ok(html[start..].find("</script>").ok_or("unclosed"), "its end");
    ok(
        serde_json::from_str(&html[start..end]),
        "the route list JSON",
    )
}

#[tokio::test]
async fn the_live_page_lists_the_server_streaming_get_routes_and_loads_nothing_else() {
    let stack = spawn().await;
    let page = send(stack.h1.get(stack.url("/"))).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = ok(page.text().await, "page");
    let routes = routes_of(&html);
    let paths: Vec<&str> = ok(routes.as_array().ok_or("not a list"), "routes")
        .iter()
        .filter_map(|r| r["path"].as_str())
        .collect();
    // The CSV download streams HttpBody, the report HttpBody fields, the relay is
    // bidirectional: not event streams.
    assert_eq!(
        paths,
        [
            "/v1/sensors/{sensor}/readings:watch",
            "/v1/sensors/{sensor}/events"
        ]
    );
    assert_eq!(routes[0]["resumable"], false);
    assert_eq!(routes[1]["resumable"], true);
    assert_eq!(routes[1]["method"], "telemetry.v1.Sensors.FollowSensor");
    assert_eq!(routes[1]["variables"], serde_json::json!(["sensor"]));
    assert_eq!(
        routes[1]["query"],
        serde_json::json!(["last_event_id", "count"])
    );
    assert!(html.contains(r#"<a href="/docs">"#), "links the docs");
    let post = send(stack.h1.post(stack.url("/"))).await;
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        !html.contains("src=") && !html.contains("href=\"http"),
        "self-contained"
    );

    // The same widget, closed, on the Swagger UI page, whose own files are still served.
    let docs = ok(
        send(stack.h1.get(stack.url("/docs/"))).await.text().await,
        "docs",
    );
    assert!(
        docs.contains(r#"<details id="live-feed" class="live">"#),
        "{docs}"
    );
    assert!(docs.contains(r#"<div id="swagger-ui">"#));
    assert_eq!(routes_of(&docs), routes);
    for file in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-initializer.js",
    ] {
        let r = send(stack.h1.get(stack.url(&format!("/docs/{file}")))).await;
        assert_eq!(r.status(), StatusCode::OK, "{file}");
    }
    let missing = send(stack.h1.get(stack.url("/docs/nothing.js"))).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_docs_the_live_page_links_none_and_without_live_page_there_is_none() {
    let stack = spawn_with(articles_gateway::GatewayBuilder::without_docs).await;
    let html = ok(
        send(stack.h1.get(stack.url("/"))).await.text().await,
        "page",
    );
    assert!(html.contains("live-routes"));
    assert!(
        !html.contains("/docs"),
        "no link to docs that are not served"
    );

    let stack = spawn_with(articles_gateway::GatewayBuilder::without_live_page).await;
    let page = send(stack.h1.get(stack.url("/"))).await;
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    let docs = ok(
        send(stack.h1.get(stack.url("/docs/"))).await.text().await,
        "docs",
    );
    assert!(!docs.contains("live-feed"), "no panel either");
}

#[tokio::test]
async fn an_api_routing_slash_itself_keeps_it_over_the_live_page() {
    let landing = spawn_echo_api(fixture_pool("landing.proto"), |b| b).await;
    let gateway = &landing.gateway;
    let r = send(reqwest::Client::new().get(gateway.url("/"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"],
        "application/json",
        "the API's answer"
    );
    // The panel on the docs is still there: it claims no path.
    let docs = send(reqwest::Client::new().get(gateway.url("/docs/"))).await;
    assert!(ok(docs.text().await, "docs").contains("live-feed"));
}

#[tokio::test]
async fn an_api_without_event_streams_gets_no_live_page() {
    // The library has one server-streaming GET (WatchBooks), so a page; the accounts API has
    // no stream at all, so `/` stays unrouted.
    let library = spawn_library_with(|b| b).await;
    let page = send(library.client.get(library.url("/"))).await;
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "WatchBooks is an event stream"
    );
    let accounts = spawn_echo_api(fixture_pool("accounts.proto"), |b| b).await;
    let gateway = &accounts.gateway;
    let r = send(reqwest::Client::new().get(gateway.url("/"))).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_live_page_follows_a_chosen_stream_of_any_api_in_a_browser() {
    let stack = spawn().await;
    if let Some(stdout) = node_test(
        "live.test.mjs",
        &[("SENSORS_URL", stack.url(""))],
        NodeNeeds::Browser,
    )
    .await
    {
        assert!(stdout.contains("# pass 2"), "{stdout}");
    }
}

#[tokio::test]
async fn the_live_page_keeps_watching_across_a_backend_restart() {
    use std::time::{Duration, Instant};

    use articles_gateway::{Backend, BalanceOptions, GatewayBuilder};

    use super::backend::{sensors_routes, telemetry_pool};
    use crate::support::{spawn_gateway, spawn_grpc_on};

    // A port nothing listens on until the page has seen the gateway tell it to retry.
    let addr = ok(
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()),
        "a free port",
    );
    let options = BalanceOptions {
        health_interval: Duration::from_millis(50),
        ..BalanceOptions::default()
    };
    let backend = ok(
        Backend::balanced(&[format!("http://{addr}")], &options),
        "balanced backend",
    );
    backend.health_checked().await;
    let pool = telemetry_pool();
    let gateway = spawn_gateway(ok(
        GatewayBuilder::new()
            .descriptors(pool.clone())
            .backend(backend)
            .build(),
        "gateway",
    ))
    .await;
    let dir = ok(tempfile::tempdir(), "a temporary directory");
    let restart = dir.path().join("restart");
    let signal = restart.clone();
    // Started once the page asks for it, bounded in time; held until the test ends.
    let backend = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !signal.exists() {
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let listener = ok(tokio::net::TcpListener::bind(addr).await, "the port again");
        let counters = std::sync::Arc::default();
        Some(spawn_grpc_on(
            listener,
            addr,
            sensors_routes(&pool, &counters),
            None,
        ))
    });
    let outcome = node_test(
        "live.test.mjs",
        &[
            ("SENSORS_DOWN_URL", gateway.url("")),
            ("RESTART_FILE", restart.display().to_string()),
        ],
        NodeNeeds::Browser,
    )
    .await;
    backend.abort();
    if let Some(stdout) = outcome {
        assert!(stdout.contains("# pass 1"), "{stdout}");
    }
}

#[tokio::test]
async fn the_no_docs_and_no_live_page_flags_leave_out_the_docs_and_the_page() {
    use clap::Parser as _;
    let cli = ok(
        articles_gateway::config::Cli::try_parse_from([
            "articles-gateway",
            "--no-docs",
            "--no-live-page",
        ]),
        "flags",
    );
    let stack = spawn_with(|b| ok(cli.serve.http.configure(b), "configured")).await;
    for path in ["/", "/docs/", "/openapi.json"] {
        let r = send(stack.h1.get(stack.url(path))).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let r = send(stack.h1.get(stack.url("/v1/sensors/s7/reading"))).await;
    assert_eq!(r.status(), StatusCode::OK, "REST still answers");

    // Without the flags, the same API has all three.
    let stack = spawn().await;
    for path in ["/", "/docs/", "/openapi.json"] {
        let r = send(stack.h1.get(stack.url(path))).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
}

//! Conditional requests on APIs that are not ours: ETags on GET and HEAD (a hash of the body,
//! per content coding, or the AIP-154 `etag` field), `If-None-Match` answered 304, `If-Match`
//! into the request's `etag` field or a 400, `--cache-control` per method; over HTTP/1.1 and
//! HTTP/2. `library.v1` behind the echo backend without health; `tally.v1` (no annotation)
//! routed by a gRPC API Configuration file.

use std::time::Duration;

use articles_gateway::{Backend, GatewayBuilder, config::Cli, server};
use clap::Parser;
use http::StatusCode;
use serde_json::json;

use crate::any_api::tally::{CURRENT_VERSION, spawn_tally, tally_descriptor_bytes};
use crate::support::{Spawned, echo_router, library_pool, send, spawn_gateway, spawn_grpc};

const BOOKS: &str = r#"{"books":[{"name":"shelves/1/books/1","title":"A title long enough to be worth compressing","pageCount":"3"},{"name":"shelves/1/books/2","title":"Another title long enough to be worth compressing"}],"nextPageToken":"n"}"#;

fn ok<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

/// The library API behind the echo backend (no health service), and a client per HTTP
/// version.
async fn library() -> (Spawned, Spawned, [(&'static str, reqwest::Client); 2]) {
    let pool = library_pool();
    let backend = spawn_grpc(tonic::service::Routes::from(echo_router(&pool))).await;
    let router = ok(
        GatewayBuilder::new()
            .descriptors(pool)
            .backend(ok(
                Backend::connect_lazy(&backend.url(""), Duration::from_secs(1)),
                "backend",
            ))
            .build(),
        "gateway",
    );
    let gateway = spawn_gateway(router).await;
    let h2 = ok(
        reqwest::Client::builder().http2_prior_knowledge().build(),
        "h2 client",
    );
    (
        backend,
        gateway,
        [("HTTP/1.1", reqwest::Client::new()), ("HTTP/2", h2)],
    )
}

#[tokio::test]
async fn a_get_answer_carries_a_strong_etag_and_a_matching_if_none_match_is_304() {
    let (_backend, gateway, clients) = library().await;
    for (version, client) in clients {
        let get = |inm: Option<&str>| {
            let mut request = client
                .get(gateway.url("/v1/shelves/1/books"))
                .header("grpc-metadata-x-echo-response", BOOKS);
            if let Some(inm) = inm {
                request = request.header("if-none-match", inm.to_owned());
            }
            send(request)
        };
        let r = get(None).await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        let etag = r.headers()["etag"].to_str().unwrap_or_default().to_owned();
        assert!(
            etag.starts_with('"') && etag.ends_with('"'),
            "{version}: {etag}"
        );
        assert!(
            r.headers()["vary"]
                .to_str()
                .is_ok_and(|v| v.contains("accept-encoding")),
            "{version}"
        );
        // The same answer, the same tag; a matching If-None-Match (weak comparison too) is a
        // 304 without a body, keeping the tag.
        assert_eq!(
            get(None).await.headers()["etag"],
            etag.as_str(),
            "{version}"
        );
        for inm in [
            etag.clone(),
            format!("W/{etag}"),
            format!("\"x\", {etag}"),
            "*".into(),
        ] {
            let r = get(Some(&inm)).await;
            assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{version}: {inm}");
            assert_eq!(r.headers()["etag"], etag.as_str(), "{version}");
            assert!(ok(r.bytes().await, "body").is_empty(), "{version}");
        }
        let r = get(Some("\"another\"")).await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        // Another answer, another tag.
        let r = send(client.get(gateway.url("/v1/shelves/1/books"))).await;
        assert_ne!(r.headers()["etag"], etag.as_str(), "{version}");
        // HEAD answers the same tag, and 304 too.
        let r = send(
            client
                .head(gateway.url("/v1/shelves/1/books"))
                .header("grpc-metadata-x-echo-response", BOOKS),
        )
        .await;
        assert_eq!(r.headers()["etag"], etag.as_str(), "{version}");
        let r = send(
            client
                .head(gateway.url("/v1/shelves/1/books"))
                .header("grpc-metadata-x-echo-response", BOOKS)
                .header("if-none-match", etag.clone()),
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{version}");
    }
}

#[tokio::test]
async fn each_content_coding_has_its_own_strong_etag_and_304s_on_it() {
    let (_backend, gateway, clients) = library().await;
    for (version, client) in clients {
        let get = |coding: &'static str, inm: Option<String>| {
            let mut request = client
                .get(gateway.url("/v1/shelves/1/books"))
                .header("grpc-metadata-x-echo-response", BOOKS)
                .header("accept-encoding", coding);
            if let Some(inm) = inm {
                request = request.header("if-none-match", inm);
            }
            send(request)
        };
        let identity = get("identity", None).await.headers()["etag"]
            .to_str()
            .unwrap_or_default()
            .to_owned();
        let mut tags = vec![identity.clone()];
        for coding in ["gzip", "br"] {
            let r = get(coding, None).await;
            assert_eq!(r.status(), StatusCode::OK, "{version} {coding}");
            assert_eq!(r.headers()["content-encoding"], coding, "{version}");
            let etag = r.headers()["etag"].to_str().unwrap_or_default().to_owned();
            assert!(etag.ends_with(&format!("-{coding}\"")), "{version}: {etag}");
            assert!(!tags.contains(&etag), "{version}: {etag} repeats {tags:?}");
            // The client revalidates with the tag it got, for the coding it asks for.
            let r = get(coding, Some(etag.clone())).await;
            assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{version} {coding}");
            // The identity tag does not validate the compressed representation.
            let r = get(coding, Some(identity.clone())).await;
            assert_eq!(r.status(), StatusCode::OK, "{version} {coding}");
            tags.push(etag);
        }
    }
}

#[tokio::test]
async fn a_write_refuses_if_match_when_its_request_has_no_etag_field() {
    let (_backend, gateway, clients) = library().await;
    for (version, client) in clients {
        let r = send(
            client
                .post(gateway.url("/v1/shelves/1/books"))
                .header("if-match", "\"v1\"")
                .json(&json!({"title": "T"})),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version}");
        let body: serde_json::Value = ok(r.json().await, "error body");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("If-Match") && m.contains("etag")),
            "{version}: {body}"
        );
    }
}

const TALLY_REST: &str = "\
type: google.api.Service
config_version: 3
http:
  rules:
  - selector: tally.v1.Audit.Last
    get: /v1/counters/{counter}/last
  - selector: tally.v1.Tally.Add
    post: /v1/counters/{counter}:add
    body: \"*\"
";

#[tokio::test]
async fn the_aip_154_etag_field_is_the_etag_and_if_match_fills_it_for_the_backend() {
    let backend = spawn_tally().await;
    let dir = ok(tempfile::tempdir(), "tempdir");
    let set = dir.path().join("tally.pb");
    ok(std::fs::write(&set, tally_descriptor_bytes()), "set");
    let config = dir.path().join("tally.yaml");
    ok(std::fs::write(&config, TALLY_REST), "config");
    let (set, config, url) = (
        set.display().to_string(),
        config.display().to_string(),
        backend.url(""),
    );
    let cli = ok(
        Cli::try_parse_from([
            "articles-gateway",
            "--descriptor-set",
            &set,
            "--grpc-api-configuration",
            &config,
            "--backend",
            &url,
            "--cache-control",
            "tally.v1.Audit.Last=max-age=60, must-revalidate",
        ]),
        "command line",
    );
    let backend_client = ok(
        Backend::balanced(
            &cli.serve.api.backends,
            &ok(server::balance_options(&cli.serve), "options"),
        ),
        "backend",
    );
    backend_client.health_checked().await;
    let pool = ok(
        server::load_descriptors(&cli.serve.api, None, &backend_client).await,
        "descriptors",
    );
    let gateway = spawn_gateway(ok(
        server::router(&cli.serve, None, pool, backend_client),
        "router",
    ))
    .await;
    let h2 = ok(
        reqwest::Client::builder().http2_prior_knowledge().build(),
        "h2",
    );
    let quoted = format!("\"{CURRENT_VERSION}\"");
    for (version, client) in [("HTTP/1.1", reqwest::Client::new()), ("HTTP/2", h2)] {
        let r = send(client.get(gateway.url("/v1/counters/c/last"))).await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        let etag = r.headers()["etag"].clone();
        let body = ok(r.text().await, "body");
        assert_eq!(etag, quoted.as_str(), "{version}: {body}");
        let r = send(client.get(gateway.url("/v1/counters/c/last"))).await;
        assert_eq!(
            r.headers()["cache-control"],
            "max-age=60, must-revalidate",
            "{version}"
        );
        let r = send(
            client
                .get(gateway.url("/v1/counters/c/last"))
                .header("if-none-match", quoted.clone()),
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{version}");
        assert_eq!(
            r.headers()["cache-control"],
            "max-age=60, must-revalidate",
            "{version}"
        );
        // If-Match reaches the backend in the request's etag field: the current version
        // passes, another one is the backend's FAILED_PRECONDITION.
        let add = |if_match: String| {
            send(
                client
                    .post(gateway.url("/v1/counters/c:add"))
                    .header("if-match", if_match)
                    .json(&json!({"amount": 1})),
            )
        };
        assert_eq!(
            add(quoted.clone()).await.status(),
            StatusCode::OK,
            "{version}"
        );
        let r = add("\"rev-6\"".to_owned()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version}");
        let body: serde_json::Value = ok(r.json().await, "error");
        assert_eq!(body["code"], 9, "{version}: {body}");
        // No Cache-Control on a method without one.
        let r = send(
            client
                .post(gateway.url("/v1/counters/c:add"))
                .json(&json!({"amount": 1})),
        )
        .await;
        assert!(r.headers().get("cache-control").is_none(), "{version}");
    }
    // A malformed entry stops the gateway at start.
    let cli = ok(
        Cli::try_parse_from(["articles-gateway", "--cache-control", "no-method-here"]),
        "command line",
    );
    let pool = library_pool();
    let backend = ok(
        Backend::connect_lazy("http://127.0.0.1:9", Duration::from_secs(1)),
        "backend",
    );
    match server::router(&cli.serve, None, pool, backend) {
        Err(e) => assert!(e.to_string().contains("METHOD=VALUE"), "{e}"),
        Ok(_) => panic!("a malformed --cache-control was accepted"),
    }
}

#[tokio::test]
async fn browsers_may_send_the_conditional_and_field_mask_headers_cross_origin() {
    let (_backend, gateway, _) = library().await;
    let r = send(
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, gateway.url("/v1/shelves/1/books"))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "GET")
            .header(
                "access-control-request-headers",
                "if-none-match, if-match, x-goog-fieldmask",
            ),
    )
    .await;
    assert!(r.status().is_success(), "{}", r.status());
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    for name in ["if-none-match", "if-match", "x-goog-fieldmask"] {
        assert!(allowed.contains(name), "{name} not in {allowed}");
    }
}

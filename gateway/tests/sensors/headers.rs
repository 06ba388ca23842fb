//! Headers that are the connection's rather than the call's: metadata HTTP/2 cannot carry is a
//! 400 naming it, before any call (forwarded, h2 refused the request and the refusal took a
//! healthy replica out); a proxied HTTP/1.1 request's hop-by-hop headers stay on its hop; and
//! a backend's own CORS and transport headers never come back as `Grpc-Metadata-*`; and a
//! request its head alone refuses (an embedder's head check, forbidden metadata) is answered
//! before a byte of its body is read or decompressed.

use std::time::Duration;

use articles_gateway::{Backend, BalanceOptions, GatewayBuilder};
use bytes::{BufMut as _, BytesMut};
use http::StatusCode;
use prost::Message as _;
use prost_reflect::{DynamicMessage, Value};

use super::{backend, get_with_trailers, ok, spawn};
use crate::support::{json, send, spawn_gateway, spawn_library, spawn_library_with};

/// Every `Grpc-Metadata-` name HTTP/2 forbids in a request (`TE` other than `trailers`), and
/// `Host`, which only `:authority` may say.
const FORBIDDEN: [(&str, &str); 7] = [
    ("grpc-metadata-proxy-connection", "x"),
    ("grpc-metadata-connection", "close"),
    ("grpc-metadata-keep-alive", "timeout=5"),
    ("grpc-metadata-transfer-encoding", "chunked"),
    ("grpc-metadata-upgrade", "h2c"),
    ("grpc-metadata-te", "gzip"),
    ("grpc-metadata-host", "elsewhere.example"),
];

#[tokio::test]
async fn metadata_http2_forbids_is_400_naming_it_and_no_replica_is_taken_out() {
    let pool = backend::telemetry_pool();
    let (first, _) = backend::spawn_sensors_backend(&pool).await;
    let (second, _) = backend::spawn_sensors_backend(&pool).await;
    let backend = ok(
        Backend::balanced(
            &[first.url(""), second.url("")],
            &BalanceOptions {
                health_interval: Duration::from_secs(60),
                ..BalanceOptions::default()
            },
        ),
        "balanced backend",
    );
    backend.health_checked().await;
    let gateway = spawn_gateway(ok(
        GatewayBuilder::new()
            .descriptors(pool)
            .backend(backend.clone())
            .build(),
        "gateway",
    ))
    .await;
    let h1 = reqwest::Client::new();
    let h2 = ok(
        reqwest::Client::builder().http2_prior_knowledge().build(),
        "h2 client",
    );
    let url = gateway.url("/v1/sensors/s1/reading");
    // Bounded: 7 names, 2 clients, 3 rounds.
    for _ in 0..3 {
        for (version, client) in [("HTTP/1.1", &h1), ("HTTP/2", &h2)] {
            for (name, value) in FORBIDDEN {
                let r = send(client.get(&url).header(name, value)).await;
                assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version} {name}");
                let body = json(r).await;
                assert_eq!(body["code"], 3, "{body}");
                let message = body["message"].as_str().unwrap_or_default();
                assert!(message.contains(name), "{version}: {message}");
            }
        }
    }
    // A stream (server-sent events) and a WebSocket take their metadata the same way.
    let watch = gateway.url("/v1/sensors/s1/readings:watch");
    let r = send(
        h1.get(&watch)
            .header("accept", "text/event-stream")
            .header("grpc-metadata-proxy-connection", "x"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let mut upgrade = ok(
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{}/v1/sensors/s1/readings:watch",
            gateway.addr
        )),
        "WebSocket request",
    );
    upgrade.headers_mut().insert(
        "grpc-metadata-proxy-connection",
        http::HeaderValue::from_static("x"),
    );
    match tokio_tungstenite::connect_async(upgrade).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        }
        Err(e) => panic!("refused otherwise: {e}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }

    let statuses = backend.replica_statuses();
    assert!(statuses.iter().all(|s| s.up), "{statuses:?}");
    assert_eq!(
        statuses.iter().map(|s| s.calls).sum::<u64>(),
        0,
        "refused before any call: {statuses:?}"
    );

    // `TE: trailers` is gRPC's own: dropped, not refused. Later calls go through.
    for (version, client) in [("HTTP/1.1", &h1), ("HTTP/2", &h2)] {
        let r = send(client.get(&url).header("grpc-metadata-te", "trailers")).await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        for _ in 0..4 {
            let r = send(client.get(&url)).await;
            assert_eq!(r.status(), StatusCode::OK, "{version}");
        }
    }
    let statuses = backend.replica_statuses();
    assert!(statuses.iter().all(|s| s.up), "{statuses:?}");
    assert_eq!(statuses.iter().map(|s| s.calls).sum::<u64>(), 10);
}

#[tokio::test]
async fn the_backends_cors_and_transport_headers_never_come_back_as_metadata() {
    let stack = spawn().await;
    for http2 in [false, true] {
        let (status, headers, _, trailers) =
            get_with_trailers(&stack, "/v1/sensors/cors/reading", http2, true).await;
        assert_eq!(status, StatusCode::OK, "h2={http2}");
        assert_eq!(headers["grpc-metadata-foo"], "foo1", "h2={http2}");
        let trailers = trailers.unwrap_or_default();
        assert_eq!(trailers["grpc-trailer-foo"], "foo2", "h2={http2}");
        let leaked: Vec<&str> = headers
            .keys()
            .chain(trailers.keys())
            .map(http::HeaderName::as_str)
            .filter(|name| {
                name.starts_with("grpc-")
                    && (name.contains("access-control") || name.ends_with("-vary"))
            })
            .collect();
        assert!(leaked.is_empty(), "h2={http2}: {leaked:?}");
    }
}

#[tokio::test]
async fn a_grpc_web_request_over_http1_keeps_its_hop_by_hop_headers_on_its_hop() {
    let library = spawn_library().await;
    let Some(input) = library
        .pool
        .get_message_by_name("library.v1.GetShelfRequest")
    else {
        panic!("library.v1.GetShelfRequest");
    };
    let mut request = DynamicMessage::new(input);
    request.set_field_by_name("name", Value::String("shelves/1".into()));
    let encoded = request.encode_to_vec();
    let mut body = BytesMut::with_capacity(5 + encoded.len());
    body.put_u8(0);
    body.put_u32(u32::try_from(encoded.len()).unwrap_or(u32::MAX));
    body.put_slice(&encoded);
    let r = send(
        library
            .client
            .post(library.url("/library.v1.LibraryService/GetShelf"))
            .header("content-type", "application/grpc-web+proto")
            .header("x-grpc-web", "1")
            .header("connection", "keep-alive, x-hop")
            .header("keep-alive", "timeout=5")
            .header("proxy-connection", "keep-alive")
            .header("x-hop", "1")
            .header("x-kept", "1")
            .body(body.freeze()),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let headers = r.headers();
    assert_eq!(
        headers.get("grpc-status").map(http::HeaderValue::as_bytes),
        None,
        "not a trailers-only error: {headers:?}"
    );
    // The echo backend answers each metadata key `k` it got as `echo-k`.
    assert_eq!(headers["echo-x-kept"], "1", "{headers:?}");
    for hop in ["x-hop", "keep-alive", "proxy-connection", "connection"] {
        assert!(
            headers.get(format!("echo-{hop}")).is_none(),
            "{hop} forwarded: {headers:?}"
        );
    }
}

/// A gzip body whose first bytes arrive and whose rest never does: a request answered while it
/// is pending was answered from its head.
fn endless_gzip() -> reqwest::Body {
    let start = bytes::Bytes::from_static(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    let chunks = futures::StreamExt::chain(
        futures::stream::once(async move { Ok::<_, std::io::Error>(start) }),
        futures::stream::pending(),
    );
    reqwest::Body::wrap_stream(chunks)
}

#[tokio::test]
async fn a_request_its_head_refuses_is_answered_before_its_body_is_read_or_decompressed() {
    // What a backend that authorizes writes from their headers tells the gateway.
    let library = spawn_library_with(|b| {
        b.head_check(|method, headers| {
            if method.name() == "CreateBook" && !headers.contains_key("authorization") {
                return Err(tonic::Status::unauthenticated("a token is needed to write"));
            }
            Ok(())
        })
    })
    .await;
    let url = library.url("/v1/shelves/s1/books");
    let post = |auth: bool, extra: Option<(&'static str, &'static str)>| {
        let mut request = library
            .client
            .post(&url)
            .header("content-encoding", "gzip")
            .header("content-type", "application/json")
            .body(endless_gzip());
        if auth {
            request = request.header("authorization", "Bearer t");
        }
        if let Some((name, value)) = extra {
            request = request.header(name, value);
        }
        async move {
            match tokio::time::timeout(Duration::from_secs(5), request.send()).await {
                Ok(Ok(response)) => response,
                Ok(Err(e)) => panic!("request failed: {e}"),
                Err(_) => panic!("no answer while the body was pending: the body was awaited"),
            }
        }
    };
    let r = post(false, None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body = json(r).await;
    assert_eq!(body["code"], 16, "{body}");
    assert_eq!(body["message"], "a token is needed to write");

    // Metadata the call could not carry is known from the head too.
    let r = post(true, Some(("grpc-metadata-proxy-connection", "x"))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Other methods, and writes with credentials, are read as before.
    let r = send(
        library
            .client
            .post(&url)
            .header("authorization", "Bearer t")
            .json(&serde_json::json!({"title": "t"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = send(library.client.get(library.url("/v1/shelves/s1"))).await;
    assert_eq!(r.status(), StatusCode::OK);
}

//! How deep a request or a response may nest, on `nesting.v1` (tests/fixtures/nesting.proto,
//! a recursive `Node`) in front of the generic echo backend: past protobuf's 100 levels a
//! request is a 400 naming the field, before anything recursive (encoder, validator, writer)
//! walks it, so a short query string cannot overflow a worker's stack and abort the process;
//! 50 levels are mapped, validated and written back as before.

use http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Library, fixture_pool, json, send, spawn_echo_api};

async fn spawn_nodes() -> Library {
    spawn_echo_api(fixture_pool("nesting.proto"), |b| b).await
}

/// `c.c.....c.n`: the field `n` of a node `levels` levels down.
fn deep_key(levels: usize) -> String {
    format!("{}n", "c.".repeat(levels))
}

/// `{"c": {"c": ... {"n": leaf}}}`, `levels` levels of `c`.
fn deep_body(levels: usize, leaf: &str) -> Value {
    let mut node = json!({ "n": leaf });
    for _ in 0..levels {
        node = json!({ "c": node });
    }
    node
}

/// How many `c` levels a written node has.
fn depth_of(mut node: &Value) -> usize {
    let mut levels = 0;
    while let Some(inner) = node.get("c").filter(|c| c.is_object()) {
        levels += 1;
        node = inner;
    }
    levels
}

async fn error_message(response: reqwest::Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status);
    let body = json(response).await;
    body["message"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_query_4000_fields_deep_is_400_naming_it_and_the_gateway_lives_on() {
    let nodes = spawn_nodes().await;
    // 8 KB: under the default 8 KiB query limit.
    let key = deep_key(4000);
    let r = send(nodes.client.get(nodes.url(&format!("/v1/node?{key}=x")))).await;
    let message = error_message(r, StatusCode::BAD_REQUEST).await;
    assert!(
        message.contains("query parameter \"c.c.c.c.")
            && message.contains("4001 levels deep")
            && message.contains("at most 100"),
        "{message}"
    );
    assert!(message.len() < 300, "the name is abridged: {message}");

    // Still serving, and 50 levels are mapped and written back.
    let r = send(
        nodes
            .client
            .get(nodes.url(&format!("/v1/node?{}=x", deep_key(50)))),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = json(r).await;
    assert_eq!(depth_of(&body), 50, "{body}");
}

#[tokio::test]
async fn fifty_levels_deep_are_validated_and_past_100_a_body_is_400_naming_the_field() {
    let nodes = spawn_nodes().await;
    let put = |body: Value| {
        nodes
            .client
            .post(nodes.url("/v1/node"))
            .header("authorization", "Bearer t")
            .json(&body)
    };
    let r = send(put(deep_body(50, "x"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(depth_of(&json(r).await), 50);

    // The validator walks the message too: a rule broken 99 levels down is named.
    let r = send(put(deep_body(99, "too long for the rule"))).await;
    let message = error_message(r, StatusCode::BAD_REQUEST).await;
    assert!(
        message.contains(&format!("{}n", "c.".repeat(99))),
        "{message}"
    );

    // Past 100 levels (the JSON reader alone allows 127): 400 before any call, naming the
    // path, with and without credentials (validated or not).
    for auth in [true, false] {
        let mut request = nodes
            .client
            .post(nodes.url("/v1/node"))
            .json(&deep_body(110, "x"));
        if auth {
            request = request.header("authorization", "Bearer t");
        }
        let message = error_message(send(request).await, StatusCode::BAD_REQUEST).await;
        assert!(
            message.contains(&format!("field \"{}c\"", "c.".repeat(100)))
                && message.contains("more than 100 levels deep"),
            "{message}"
        );
    }

    // A `body: "node"` rule, whose update mask is filled from the body's keys.
    let r = send(
        nodes
            .client
            .patch(nodes.url("/v1/nodes/a"))
            .json(&deep_body(110, "x")),
    )
    .await;
    let message = error_message(r, StatusCode::BAD_REQUEST).await;
    assert!(message.contains("field \"node.c.c.c"), "{message}");

    // Every `Any` payload counts: a node in an `Any` in a node in an `Any`... 110 levels.
    let mut node = json!({ "n": "x" });
    for _ in 0..55 {
        node = json!({ "extra": { "@type": "type.googleapis.com/nesting.v1.Node", "c": node } });
    }
    let message = error_message(send(put(node)).await, StatusCode::BAD_REQUEST).await;
    assert!(message.contains("field \"extra.c.extra.c"), "{message}");
}

#[tokio::test]
async fn a_response_nesting_any_past_the_limit_is_refused_not_written_by_recursion() {
    let nodes = spawn_nodes().await;
    let nested = |levels: usize| {
        let mut node = json!({ "n": "x" });
        for _ in 0..levels {
            node =
                json!({ "extra": { "@type": "type.googleapis.com/nesting.v1.Node", "c": node } });
        }
        node.to_string()
    };
    let get = |levels: usize| {
        nodes
            .client
            .get(nodes.url("/v1/node"))
            .header("grpc-metadata-x-echo-response", nested(levels))
    };
    // Each round is three levels: `extra`, its payload, the payload's `c`.
    let r = send(get(30)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = send(get(40)).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let r = send(get(10)).await;
    assert_eq!(r.status(), StatusCode::OK);
}

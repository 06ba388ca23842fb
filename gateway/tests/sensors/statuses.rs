//! Success statuses other than 200, as HTTP clients and caches read them: a status the
//! method's `openapiv2_operation` declares (201 with the backend's `location`, 204 with no
//! body), stated the same way in the OpenAPI document; and a status the backend chooses per
//! call with `x-http-code` metadata (2xx or 3xx; anything else ignored), never forwarded as a
//! `Grpc-Metadata-` header. Over HTTP/1.1 and HTTP/2.

use http::StatusCode;
use serde_json::{Value, json};

use super::{ok, spawn};
use crate::support::{json, send};

/// Clients per HTTP version that show a redirect instead of following it.
fn clients() -> [(&'static str, reqwest::Client); 2] {
    let h1 = ok(
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build(),
        "h1 client",
    );
    let h2 = ok(
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .http2_prior_knowledge()
            .build(),
        "h2 client",
    );
    [("HTTP/1.1", h1), ("HTTP/2", h2)]
}

/// The operation whose `operationId` is `id`, with its path and method.
fn operation<'a>(doc: &'a Value, id: &str) -> &'a Value {
    let found = doc["paths"].as_object().and_then(|paths| {
        paths
            .values()
            .filter_map(Value::as_object)
            .flat_map(|item| item.values())
            .find(|op| op["operationId"] == id)
    });
    match found {
        Some(op) => op,
        None => panic!("no operation {id} in the document"),
    }
}

#[tokio::test]
async fn a_success_status_the_options_declare_is_answered_and_documented() {
    let stack = spawn().await;
    for (version, client) in clients() {
        let r = send(
            client
                .post(stack.url("/v1/sensors/s7:register"))
                .json(&json!({"value": 1.5})),
        )
        .await;
        assert_eq!(r.status(), StatusCode::CREATED, "{version}");
        assert_eq!(
            r.headers()["location"],
            "/v1/sensors/registered",
            "{version}"
        );
        assert!(
            r.headers().get("grpc-metadata-location").is_none(),
            "{version}: {:?}",
            r.headers()
        );
        let body = json(r).await;
        assert_eq!(body["sensor"], "s7", "{version}: {body}");
        assert_eq!(body["value"], 1.5, "{version}: {body}");

        let r = send(client.delete(stack.url("/v1/sensors/s7"))).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{version}");
        assert!(r.headers().get("content-type").is_none(), "{version}");
        assert!(r.headers().get("content-length").is_none(), "{version}");
        assert_eq!(r.headers()["grpc-metadata-foo"], "foo1", "{version}");
        assert!(ok(r.bytes().await, "body").is_empty(), "{version}");

        // A method that declares nothing keeps 200; errors keep theirs.
        let r = send(client.post(stack.url("/v1/sensors/plain:archive"))).await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        let r = send(
            client
                .post(stack.url("/v1/sensors/s7:register"))
                .json(&json!({"value": "warm"})),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version}");
    }

    let doc = json(send(stack.h1.get(stack.url("/openapi.json"))).await).await;
    let register = &operation(&doc, "RegisterSensor")["responses"];
    assert!(register["200"].is_null(), "{register}");
    assert_eq!(
        register["201"]["description"], "The sensor is registered.",
        "{register}"
    );
    assert!(
        register["201"]["content"]["application/json"]["schema"].is_object(),
        "{register}"
    );
    let forget = &operation(&doc, "ForgetSensor")["responses"];
    assert!(forget["200"].is_null(), "{forget}");
    assert_eq!(forget["204"]["description"], "No Content", "{forget}");
    assert!(forget["204"]["content"].is_null(), "{forget}");
    // Two 2xx declared: the backend chooses, 200 by default.
    let archive = &operation(&doc, "ArchiveSensor")["responses"];
    assert!(archive["200"].is_object(), "{archive}");
}

#[tokio::test]
async fn the_backend_chooses_the_status_with_x_http_code_and_location_metadata() {
    let stack = spawn().await;
    for (version, client) in clients() {
        let r = send(client.post(stack.url("/v1/sensors/queued:archive"))).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED, "{version}");
        assert_eq!(r.headers()["location"], "/v1/archives/queued", "{version}");
        assert!(
            r.headers().get("grpc-metadata-x-http-code").is_none(),
            "{version}: {:?}",
            r.headers()
        );
        assert_eq!(json(r).await["sensors"][0], "queued", "{version}");

        // A redirect, shown rather than followed.
        let r = send(client.post(stack.url("/v1/sensors/moved:archive"))).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{version}");
        assert_eq!(r.headers()["location"], "/v1/archives/moved", "{version}");

        // Not a 2xx or 3xx: ignored (logged), the call's own success stands.
        let r = send(client.post(stack.url("/v1/sensors/bogus:archive"))).await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert!(
            r.headers().get("grpc-metadata-x-http-code").is_none(),
            "{version}: {:?}",
            r.headers()
        );
        assert!(r.headers().get("location").is_none(), "{version}");
        assert_eq!(json(r).await["sensors"][0], "bogus", "{version}");
    }
}

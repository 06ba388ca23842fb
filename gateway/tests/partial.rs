//! Partial responses on APIs that are not ours: the `fields` system parameter (Google's syntax)
//! and the `X-Goog-FieldMask` header keep only those fields of a unary answer
//! (`library.v1`, the echo backend without health) and of each message of a stream (`tally.v1`,
//! auto-mapped); never taken for a request field; an unknown path is a 400 naming it.

use std::time::Duration;

use articles_gateway::{Backend, GatewayBuilder, rules::MappingOptions};
use http::StatusCode;
use serde_json::{Value, json};

use crate::any_api::tally::{spawn_tally, tally_pool};
use crate::support::{echo_router, json, library_pool, send, spawn_gateway, spawn_grpc};

const BOOKS: &str = r#"{"books":[{"name":"shelves/1/books/1","title":"A","pageCount":"3"},{"name":"shelves/1/books/2","title":"B"}],"nextPageToken":"n"}"#;

fn ok<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

#[tokio::test]
async fn fields_and_x_goog_fieldmask_keep_only_those_fields_of_a_unary_answer() {
    let pool = library_pool();
    let backend = spawn_grpc(tonic::service::Routes::from(echo_router(&pool))).await;
    let gateway = spawn_gateway(ok(
        GatewayBuilder::new()
            .descriptors(pool)
            .backend(ok(
                Backend::connect_lazy(&backend.url(""), Duration::from_secs(1)),
                "backend",
            ))
            .build(),
        "gateway",
    ))
    .await;
    let h2 = ok(
        reqwest::Client::builder().http2_prior_knowledge().build(),
        "h2",
    );
    for (version, client) in [("HTTP/1.1", reqwest::Client::new()), ("HTTP/2", h2)] {
        let get = |query: &'static str, mask: Option<&'static str>| {
            let mut request = client
                .get(gateway.url(&format!("/v1/shelves/1/books{query}")))
                .header("grpc-metadata-x-echo-response", BOOKS);
            if let Some(mask) = mask {
                request = request.header("x-goog-fieldmask", mask);
            }
            send(request)
        };
        let r = get("?fields=books(name),next_page_token", None).await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(
            json(r).await,
            json!({"books": [{"name": "shelves/1/books/1"}, {"name": "shelves/1/books/2"}],
                   "next_page_token": "n"}),
            "{version}"
        );
        // `/` for sub-fields, JSON names too; the header takes FieldMask paths.
        let r = get("?fields=books/pageCount", None).await;
        assert_eq!(
            json(r).await,
            json!({"books": [{"page_count": "3"}, {}]}),
            "{version}"
        );
        let r = get("", Some("books.title,nextPageToken")).await;
        assert_eq!(
            json(r).await,
            json!({"books": [{"title": "A"}, {"title": "B"}], "next_page_token": "n"}),
            "{version}"
        );
        // Unknown paths and both at once are 400s naming the problem.
        let r = get("?fields=books(nope)", None).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version}");
        let body: Value = json(r).await;
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("books.nope")),
            "{version}: {body}"
        );
        let r = get("", Some("total_size.x")).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version}");
        let r = get("?fields=books", Some("books")).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version}");
        let r = get("?fields=books(", None).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version}");
        // The ETag follows the representation.
        let whole = get("", None).await.headers()["etag"].clone();
        let part = get("?fields=books(name)", None).await.headers()["etag"].clone();
        assert_ne!(whole, part, "{version}");
    }
}

#[tokio::test]
async fn fields_apply_to_each_message_of_a_stream_and_are_never_a_request_field() {
    let backend = spawn_tally().await;
    let gateway = spawn_gateway(ok(
        GatewayBuilder::new()
            .descriptors(tally_pool())
            .backend(ok(
                Backend::connect_lazy(&backend.url(""), Duration::from_secs(1)),
                "backend",
            ))
            .mapping(MappingOptions {
                auto: true,
                ..MappingOptions::default()
            })
            .build(),
        "gateway",
    ))
    .await;
    let client = reqwest::Client::new();
    let r = send(
        client
            .post(gateway.url("/tally.v1.Tally/Count?fields=total"))
            .json(&json!({"counter": "c", "upto": 2})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = ok(r.text().await, "body");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| ok(serde_json::from_str(l), "NDJSON line"))
        .collect();
    assert_eq!(
        lines,
        [
            json!({"result": {"total": "1"}}),
            json!({"result": {"total": "2"}})
        ]
    );
    // Over SSE too.
    let r = send(
        client
            .post(gateway.url("/tally.v1.Tally/Count"))
            .header("accept", "text/event-stream")
            .header("x-goog-fieldmask", "counter")
            .json(&json!({"counter": "c", "upto": 1})),
    )
    .await;
    let text = ok(r.text().await, "body");
    assert!(text.contains(r#"data: {"counter":"c"}"#), "{text}");
    // An unknown path is refused before the stream starts.
    let r = send(
        client
            .post(gateway.url("/tally.v1.Tally/Count?fields=nope"))
            .json(&json!({"counter": "c", "upto": 1})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

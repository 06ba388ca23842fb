//! Responses: JSON shape and options, `response_body`, metadata both ways, compression.

use http::StatusCode;
use serde_json::json;

use crate::support::{json, send, spawn_library, spawn_library_with};
use articles_gateway::json::{JsonNames, JsonOptions};

const BOOKS: &str = r#"{"books":[{"name":"shelves/1/books/1","title":"A","pageCount":"3"},{"name":"shelves/1/books/2"}],"nextPageToken":"n"}"#;

#[tokio::test]
async fn responses_use_proto_names_emit_defaults_and_keep_field_order() {
    let lib = spawn_library().await;
    let r = send(
        lib.client
            .get(lib.url("/v1/shelves/1/books"))
            .header("grpc-metadata-x-echo-response", BOOKS),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    let text = r.text().await.unwrap_or_default();
    // Proto field order, not alphabetical: books, next_page_token, total_size.
    let books = text.find("\"books\"").unwrap_or(usize::MAX);
    let token = text.find("\"next_page_token\"").unwrap_or(usize::MAX);
    let total = text.find("\"total_size\"").unwrap_or(usize::MAX);
    assert!(books < token && token < total, "{text}");
    let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    assert_eq!(body["total_size"], 0);
    assert_eq!(body["books"][0]["page_count"], "3");
    assert_eq!(body["books"][1]["tags"], json!([]));
}

#[tokio::test]
async fn an_empty_list_is_an_empty_array() {
    let lib = spawn_library().await;
    let r = send(lib.client.get(lib.url("/v1/books"))).await;
    let body = json(r).await;
    assert_eq!(body["books"], json!([]));
}

#[tokio::test]
async fn camel_names_and_omitted_defaults_are_switches() {
    let lib = spawn_library_with(|b| {
        b.json(JsonOptions {
            names: JsonNames::Camel,
            emit_defaults: false,
        })
    })
    .await;
    let r = send(
        lib.client
            .get(lib.url("/v1/shelves/1/books"))
            .header("grpc-metadata-x-echo-response", BOOKS),
    )
    .await;
    assert_eq!(
        json(r).await,
        json!({
            "books": [{"name": "shelves/1/books/1", "title": "A", "pageCount": "3"}, {"name": "shelves/1/books/2"}],
            "nextPageToken": "n"
        })
    );
}

#[tokio::test]
async fn response_body_sends_only_that_field() {
    let lib = spawn_library().await;
    let r = send(
        lib.client
            .get(lib.url("/v1/shelves/1/books:search"))
            .header("grpc-metadata-x-echo-response", BOOKS),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = json(r).await;
    assert!(body.is_array(), "{body}");
    assert_eq!(body[0]["page_count"], "3");
    assert_eq!(body[1]["name"], "shelves/1/books/2");
}

#[tokio::test]
async fn known_headers_and_grpc_metadata_are_forwarded_and_response_metadata_returned() {
    let lib = spawn_library().await;
    let r = send(
        lib.client
            .get(lib.url("/v1/shelves/1"))
            .header("authorization", "Bearer tok")
            .header("x-request-id", "req-1")
            .header("grpc-metadata-tenant", "acme")
            .header("x-forwarded-for", "203.0.113.9")
            .header("cookie", "secret=1"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers();
    assert_eq!(h["grpc-metadata-echo-authorization"], "Bearer tok");
    assert_eq!(h["grpc-metadata-echo-x-request-id"], "req-1");
    assert_eq!(h["grpc-metadata-echo-tenant"], "acme");
    assert_eq!(
        h["grpc-metadata-echo-x-forwarded-for"],
        "203.0.113.9, 127.0.0.1"
    );
    assert_eq!(
        h["grpc-metadata-echo-x-forwarded-host"],
        lib.gateway.addr.to_string().as_str()
    );
    assert!(h.get("grpc-metadata-echo-cookie").is_none());
}

#[tokio::test]
async fn responses_are_gzipped_when_asked() {
    let lib = spawn_library().await;
    let r = send(
        lib.client
            .get(lib.url("/v1/shelves/1/books"))
            .header("accept-encoding", "gzip")
            .header("grpc-metadata-x-echo-response", BOOKS),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let bytes = r.bytes().await.unwrap_or_default();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b]);
}

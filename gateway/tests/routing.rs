//! Route kinds and matching: templates, verbs, custom methods, specificity, 404/405, HEAD.

use http::StatusCode;
use serde_json::json;

use crate::support::{echoed, json, send, spawn_library};

#[tokio::test]
async fn a_pattern_variable_captures_its_segments() {
    let lib = spawn_library().await;
    let r = send(lib.client.get(lib.url("/v1/shelves/42"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        echoed(&lib.pool, "library.v1.GetShelfRequest", &r),
        json!({"name": "shelves/42"})
    );
    assert_eq!(json(r).await, json!({"name": "shelves/42", "theme": ""}));
}

#[tokio::test]
async fn additional_bindings_and_plain_wildcards_route_to_the_same_method() {
    let lib = spawn_library().await;
    let r = send(lib.client.get(lib.url("/v1/archive/2019/shelves/7"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        echoed(&lib.pool, "library.v1.GetShelfRequest", &r),
        json!({"name": "shelves/7"})
    );
    let r = send(lib.client.get(lib.url("/v1/books?page_size=3"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        echoed(&lib.pool, "library.v1.ListBooksRequest", &r),
        json!({"page_size": 3})
    );
}

#[tokio::test]
async fn a_nested_path_variable_fills_a_nested_field() {
    let lib = spawn_library().await;
    let r = send(
        lib.client
            .get(lib.url("/v1/authors/Ursula%20Le%20Guin/books")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        echoed(&lib.pool, "library.v1.ListBooksRequest", &r),
        json!({"filter": {"author": {"display_name": "Ursula Le Guin"}}})
    );
}

#[tokio::test]
async fn the_more_specific_template_wins() {
    let lib = spawn_library().await;
    let r = send(lib.client.get(lib.url("/v1/shelves/special"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    // GetSpecialShelf binds no variable: the request is empty (GetShelf would set name).
    assert_eq!(
        echoed(&lib.pool, "library.v1.GetShelfRequest", &r),
        json!({})
    );
}

#[tokio::test]
async fn a_double_wildcard_captures_the_rest_of_the_path() {
    let lib = spawn_library().await;
    let r = send(lib.client.get(lib.url("/v1/files/a/b/c.txt?revision=r1"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        echoed(&lib.pool, "library.v1.GetFileRequest", &r),
        json!({"path": "a/b/c.txt", "revision": "r1"})
    );
}

#[tokio::test]
async fn a_custom_verb_routes_to_its_method_and_is_required() {
    let lib = spawn_library().await;
    let r = send(
        lib.client
            .post(lib.url("/v1/shelves/1/books/2:publish"))
            .json(&json!({"force": true, "copies": 5})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        echoed(&lib.pool, "library.v1.PublishBookRequest", &r),
        json!({"name": "shelves/1/books/2", "force": true, "copies": 5})
    );
    // A colon in a resource id that is not a declared verb stays part of the id.
    let r = send(lib.client.get(lib.url("/v1/shelves/a:b"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        echoed(&lib.pool, "library.v1.GetShelfRequest", &r),
        json!({"name": "shelves/a:b"})
    );
}

#[tokio::test]
async fn a_custom_http_method_routes() {
    let lib = spawn_library().await;
    let method = match reqwest::Method::from_bytes(b"LOCK") {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    let r = send(
        lib.client
            .request(method, lib.url("/v1/shelves/1/books/2"))
            .json(&json!({"owner": "ann"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        json(r).await,
        json!({"name": "shelves/1/books/2", "owner": "ann"})
    );
}

#[tokio::test]
async fn an_unknown_path_is_404_in_the_error_shape() {
    let lib = spawn_library().await;
    let r = send(lib.client.get(lib.url("/v2/nothing"))).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body = json(r).await;
    assert_eq!(body["code"], 5);
    assert_eq!(body["details"], json!([]));
}

#[tokio::test]
async fn a_trailing_slash_does_not_match() {
    let lib = spawn_library().await;
    let r = send(lib.client.get(lib.url("/v1/shelves/1/"))).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_wrong_method_is_405_with_allow() {
    let lib = spawn_library().await;
    let r = send(lib.client.post(lib.url("/v1/shelves/1"))).await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "GET, HEAD, PUT");
    assert_eq!(json(r).await["code"], 12);
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let lib = spawn_library().await;
    let r = send(lib.client.head(lib.url("/v1/shelves/9"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body = match r.bytes().await {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    assert!(body.is_empty());
}

#[tokio::test]
async fn a_streaming_method_is_called_on_its_own_path() {
    let lib = spawn_library().await;
    let r = send(lib.client.get(lib.url("/v1/shelves/1/books:watch"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    // The echo backend answers one message: the request's fields, as a Book.
    let text = match r.text().await {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("{\"result\":{"), "{text}");
}

#[tokio::test]
async fn percent_encoded_segments_are_decoded_and_malformed_ones_rejected() {
    let lib = spawn_library().await;
    let r = send(lib.client.get(lib.url("/v1/shelves/caf%C3%A9"))).await;
    assert_eq!(
        echoed(&lib.pool, "library.v1.GetShelfRequest", &r),
        json!({"name": "shelves/café"})
    );
    let r = send(lib.client.get(lib.url("/v1/shelves/%zz"))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body = json(r).await;
    assert_eq!(body["code"], 3);
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("percent-encoding"),
        "{body}"
    );
}

#[tokio::test]
async fn an_encoded_slash_stays_encoded_in_a_multi_segment_variable_only() {
    let lib = spawn_library().await;
    // `{path=**}` and `{name=shelves/*}`: reserved expansion keeps `%2F` and `%2f` as sent
    // (every other escape is decoded), so a slash in a name is told from a separator.
    let cases = [
        (
            "/v1/files/a%2Fb/c%2fd%20e.txt",
            "library.v1.GetFileRequest",
            json!({"path": "a%2Fb/c%2fd e.txt"}),
        ),
        (
            "/v1/shelves/caf%C3%A9%2Fbar",
            "library.v1.GetShelfRequest",
            json!({"name": "shelves/café%2Fbar"}),
        ),
        // `{filter.author.display_name}`: a single-segment variable decodes it.
        (
            "/v1/authors/AC%2FDC/books",
            "library.v1.ListBooksRequest",
            json!({"filter": {"author": {"display_name": "AC/DC"}}}),
        ),
    ];
    for (path, input, want) in cases {
        let r = send(lib.client.get(lib.url(path))).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(echoed(&lib.pool, input, &r), want, "{path}");
    }
}

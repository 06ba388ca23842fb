//! `/openapi.json` and Swagger UI, served over real HTTP by [`docs_router`].

use articles_gateway::json::JsonOptions;
use articles_gateway::openapi::{docs_router, to_pretty_json};

use crate::articles_document;

/// Serves the article docs on an ephemeral port; returns the base URL.
async fn serve() -> (String, String) {
    let doc = match articles_document(&JsonOptions::default()) {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let app: axum::Router = docs_router(&doc);
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => panic!("{e}"),
    };
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            panic!("serve: {e}");
        }
    });
    (format!("http://{addr}"), to_pretty_json(&doc))
}

async fn get(url: &str) -> (reqwest::StatusCode, String, String) {
    let response = match reqwest::get(url).await {
        Ok(r) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = match response.text().await {
        Ok(b) => b,
        Err(e) => panic!("GET {url}: body: {e}"),
    };
    (status, content_type, body)
}

/// Absolute http(s) URLs in `src=` / `href=` / `url:` positions: what a page would load from
/// elsewhere.
fn external_loads(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for marker in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "href='http",
        "\"url\": \"http",
    ] {
        let mut rest = text;
        while let Some(i) = rest.find(marker) {
            let tail = &rest[i..];
            found.push(tail.chars().take(80).collect());
            rest = &tail[marker.len()..];
        }
    }
    found
}

#[tokio::test]
async fn openapi_json_is_the_document() {
    let (base, expected) = serve().await;
    let (status, content_type, body) = get(&format!("{base}/openapi.json")).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/json");
    assert_eq!(body, expected);
}

#[tokio::test]
async fn swagger_ui_is_served_locally_at_docs() {
    let (base, _) = serve().await;
    // `/docs` redirects to `/docs/` (reqwest follows), whose relative asset URLs resolve.
    for path in ["/docs", "/docs/"] {
        let (status, content_type, html) = get(&format!("{base}{path}")).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            content_type.starts_with("text/html"),
            "{path}: {content_type}"
        );
        assert!(html.contains("swagger-ui-bundle.js"), "{path}: {html}");
        assert_eq!(external_loads(&html), Vec::<String>::new(), "{path}");
    }

    let (status, content_type, js) = get(&format!("{base}/docs/swagger-ui-bundle.js")).await;
    assert_eq!(status, 200);
    assert!(content_type.contains("javascript"), "{content_type}");
    assert!(js.len() > 100_000, "the bundle is embedded, not a stub");
    let (status, _, css) = get(&format!("{base}/docs/swagger-ui.css")).await;
    assert_eq!(status, 200);
    assert!(!css.is_empty());

    let (status, _, init) = get(&format!("{base}/docs/swagger-initializer.js")).await;
    assert_eq!(status, 200);
    assert!(init.contains("\"url\": \"/openapi.json\""), "{init}");
    assert!(init.contains("\"tryItOutEnabled\": true"), "{init}");
    assert!(init.contains("\"persistAuthorization\": true"), "{init}");
    assert!(init.contains("\"validatorUrl\": \"none\""), "{init}");
    assert_eq!(external_loads(&init), Vec::<String>::new());
}

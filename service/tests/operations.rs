//! Operations: Prometheus metrics on `--metrics-listen`, and request ids.

use std::time::Duration;

use crate::support::{Stack, TOKEN, TestDb, wait_until};
use articles_proto::article::v1::{ArticleDetailRequest, ArticleListRequest, CreateArticleRequest};
use tonic::{Code, Request};

async fn scrape(service: &Stack) -> (String, String) {
    let addr = service.metrics_addr();
    let resp = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("GET /metrics");
    assert!(resp.status().is_success());
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (content_type, resp.text().await.expect("body"))
}

/// Scrapes until every `wanted` line is present (calls are recorded when their response ends).
async fn scrape_until(service: &Stack, wanted: &[&str]) -> String {
    let text = std::sync::Mutex::new(String::new());
    let last = &text;
    wait_until(
        &format!("metrics with every line of {wanted:#?}"),
        Duration::from_secs(10),
        move || async move {
            let (_, text) = scrape(service).await;
            let found = wanted.iter().all(|w| text.lines().any(|l| l == *w));
            *last.lock().expect("not poisoned") = text;
            found
        },
    )
    .await;
    text.into_inner().expect("not poisoned")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_calls_by_method_and_status_and_report_database_and_pools() {
    let db = TestDb::sqlite();
    let service = Stack::on(&db)
        .metrics()
        .process(&["--demo-articles", "3"])
        .start()
        .await;
    let mut client = service.client().await;
    for _ in 0..2 {
        client
            .article_list(ArticleListRequest::default())
            .await
            .expect("ArticleList");
    }
    let missing = client
        .article_detail(ArticleDetailRequest { pk: 999 })
        .await
        .expect_err("no article 999");
    assert_eq!(missing.code(), Code::NotFound);
    let unauthenticated = client
        .create_article(CreateArticleRequest {
            title: "t".to_owned(),
            content: "c".to_owned(),
        })
        .await
        .expect_err("no token");
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);

    let (content_type, _) = scrape(&service).await;
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = scrape_until(
        &service,
        &[
            r#"articles_grpc_requests_total{service="article.v1.ArticleService",method="ArticleList",code="OK"} 2"#,
            r#"articles_grpc_requests_total{service="article.v1.ArticleService",method="ArticleDetail",code="NOT_FOUND"} 1"#,
            r#"articles_grpc_requests_total{service="article.v1.ArticleService",method="CreateArticle",code="UNAUTHENTICATED"} 1"#,
            r#"articles_grpc_request_duration_seconds_count{service="article.v1.ArticleService",method="ArticleList"} 2"#,
            "articles_database_up 1",
        ],
    )
    .await;
    assert!(text.contains("# TYPE articles_grpc_request_duration_seconds histogram"));
    assert!(
        text.lines().any(|l| l
            .starts_with(r#"articles_database_pool_connections{pool="primary",state="idle"} "#)),
        "{text}"
    );
    assert!(text.contains(r#"articles_database_pool_connections{pool="primary",state="in_use"} "#));
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_metadata_is_echoed_logged_and_generated_when_missing() {
    let db = TestDb::sqlite();
    let service = Stack::on(&db)
        .process(&["--demo-articles", "1"])
        .start()
        .await;
    let mut client = service.client().await;

    let mut request = Request::new(CreateArticleRequest {
        title: "Traced".to_owned(),
        content: "Every log line of this call carries its id.".to_owned(),
    });
    request
        .metadata_mut()
        .insert("x-request-id", "req-abc-123".parse().expect("metadata"));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {TOKEN}").parse().expect("metadata"),
    );
    let response = client.create_article(request).await.expect("CreateArticle");
    assert_eq!(
        response
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("req-abc-123")
    );

    // Errors (trailers-only responses) carry it too.
    let mut request = Request::new(ArticleDetailRequest { pk: 999 });
    request
        .metadata_mut()
        .insert("x-request-id", "req-missing-1".parse().expect("metadata"));
    let status = client.article_detail(request).await.expect_err("not found");
    assert_eq!(
        status
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("req-missing-1")
    );

    // Without one, the server makes one up (a UUID).
    let response = client
        .article_list(ArticleListRequest::default())
        .await
        .expect("ArticleList");
    let generated = response
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("generated request id");
    assert_eq!(generated.len(), 36, "{generated}");

    let log = service.stop().await;
    assert!(
        log.lines()
            .any(|l| l.contains("request_id=req-abc-123") && l.contains("article created")),
        "{log}"
    );
}

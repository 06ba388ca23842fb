//! The tutorial's own Python client, generated from the tutorial's own `article.proto` (no
//! package: it calls `/ArticleService/...`), runs unchanged but for the address against our
//! server, sync and asyncio, and sees what our generated Rust client sees.
//!
//! Needs Python with `grpcio` and `grpcio-tools`: `scripts/test` makes a virtualenv and points
//! `ARTICLES_TEST_PYTHON` at it. Without that variable the test is skipped with a note, unless
//! `CI` is set, where a missing Python is a failure rather than a silent pass.

use std::path::Path;

use crate::support::{Stack, TestDb};
use articles_proto::article::v1::{ArticleDetailRequest, ArticleListRequest};
use tokio::process::Command;

pub(crate) fn python() -> Option<String> {
    match std::env::var("ARTICLES_TEST_PYTHON") {
        Ok(p) => Some(p),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CI must set ARTICLES_TEST_PYTHON (scripts/test does)")
        }
        Err(_) => None,
    }
}

#[tokio::test]
async fn the_tutorials_python_client_works_unchanged_but_for_the_address() {
    let Some(python) = python() else {
        eprintln!("skipped: set ARTICLES_TEST_PYTHON to a Python with grpcio and grpcio-tools");
        return;
    };
    let db = TestDb::sqlite();
    let server = Stack::on(&db).demo(25).start().await;
    let result = run_client(&python, &server.addr().to_string()).await;

    // The same calls through our own generated client.
    let mut client = server.client().await;
    let as_json = |a: &articles_proto::article::v1::Article| {
        serde_json::json!({
            "id": a.id, "title": a.title, "content": a.content, "create_time": a.create_time,
        })
    };
    let page = |page, page_size| ArticleListRequest {
        page,
        page_size,
        ..Default::default()
    };
    let first = client
        .article_list(page(1, 10))
        .await
        .expect("list")
        .into_inner();
    let second = client
        .article_list(page(2, 10))
        .await
        .expect("list")
        .into_inner();
    let detail = client
        .article_detail(ArticleDetailRequest { pk: 3 })
        .await
        .expect("detail")
        .into_inner();

    let first: Vec<_> = first.articles.iter().map(as_json).collect();
    assert_eq!(first.len(), 10);
    assert_eq!(result["sync"], serde_json::Value::from(first.clone()));
    assert_eq!(result["async"], serde_json::Value::from(first));
    let second: Vec<_> = second.articles.iter().map(as_json).collect();
    assert_eq!(result["page2"], serde_json::Value::from(second));
    assert_eq!(
        result["detail"],
        as_json(&detail.article.expect("detail has an article"))
    );
    assert_eq!(result["missing"], "NOT_FOUND");
    server.stop().await;
}

/// Generates the tutorial's stubs and runs its client against `addr` (`host:port`): the JSON of
/// its `RESULT` line.
pub(crate) async fn run_client(python: &str, addr: &str) -> serde_json::Value {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tutorial");
    let stubs = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        fixtures.join("article.proto"),
        stubs.path().join("article.proto"),
    )
    .expect("copy proto");

    // The tutorial's generation command, verbatim, run where its proto is.
    let gen_out = Command::new(python)
        .args([
            "-m",
            "grpc_tools.protoc",
            "-I.",
            "--python_out=.",
            "--grpc_python_out=.",
            "article.proto",
        ])
        .current_dir(stubs.path())
        .output()
        .await
        .expect("run grpc_tools.protoc");
    assert!(
        gen_out.status.success(),
        "protoc failed: {}",
        String::from_utf8_lossy(&gen_out.stderr)
    );

    let out = Command::new(python)
        .arg(fixtures.join("client.py"))
        .arg(addr)
        .arg(stubs.path())
        .output()
        .await
        .expect("run the tutorial client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .expect("the client prints its RESULT line");
    serde_json::from_str(result).expect("RESULT is JSON")
}

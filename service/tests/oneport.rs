//! One port: clients no one here wrote reach the article service through the gateway's
//! listener as gRPC (grpcurl, by reflection alone; the tutorial's grpcio Python client), as
//! gRPC-Web (Connect's gRPC-Web transport from node) and in the Connect protocol (connect-node,
//! reads by GET too), and gRPC-Web reaches the service's own gRPC port directly (tonic-web
//! there).

use std::time::Duration;

use tokio::process::Command;

use crate::{
    grpcurl::{grpcurl, lists_and_calls_by_reflection},
    support::{Stack, TestDb},
    tutorial_client::{python, run_client},
};

/// `host:port` of the gateway in front of `stack`.
fn gateway_addr(stack: &Stack) -> String {
    stack.rest_url().trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn grpcurl_reaches_the_service_through_the_gateway_port_by_reflection() {
    let Some(grpcurl) = grpcurl() else {
        eprintln!("skipped: set ARTICLES_TEST_GRPCURL to a grpcurl binary");
        return;
    };
    let db = TestDb::sqlite();
    let stack = Stack::on(&db).demo(12).gateway().start().await;
    let addr = gateway_addr(&stack);

    // Reflection is a bidirectional stream: proxied like any other call.
    lists_and_calls_by_reflection(&grpcurl, &addr).await;

    // The same port still serves REST.
    let r = reqwest::get(format!("{}/articles/3", stack.rest_url()))
        .await
        .expect("REST");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_tutorials_python_client_works_through_the_gateway_port() {
    let Some(python) = python() else {
        eprintln!("skipped: set ARTICLES_TEST_PYTHON to a Python with grpcio and grpcio-tools");
        return;
    };
    let db = TestDb::sqlite();
    let stack = Stack::on(&db).demo(25).gateway().start().await;
    let direct = run_client(&python, &stack.addr().to_string()).await;
    let through = run_client(&python, &gateway_addr(&stack)).await;
    assert_eq!(through, direct);
    assert_eq!(through["sync"].as_array().map(Vec::len), Some(10));
    assert_eq!(through["missing"], "NOT_FOUND");
}

#[tokio::test]
async fn grpc_web_from_node_reaches_the_service_directly_and_through_the_gateway() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../gateway/tests/browser");
    if !dir.join("node_modules/@connectrpc/connect-node").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the gRPC-Web test: `npm ci` in {}",
            dir.display()
        );
        eprintln!("skipped: no @connectrpc/connect-node (see scripts/test)");
        return;
    }
    let db = TestDb::sqlite();
    let stack = Stack::on(&db).demo(12).gateway().start().await;
    // A browser's preflight, answered on the service's gRPC port itself.
    let preflight = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/article.v1.ArticleService/ArticleList", stack.url()),
        )
        .header("origin", "http://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-grpc-web")
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    let descriptors = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(descriptors.path(), articles_proto::FILE_DESCRIPTOR_SET)
        .expect("write the descriptor set");
    let urls = format!("{},{}", stack.url(), stack.rest_url());
    let run = Command::new("node")
        .args(["--test", "grpcweb-articles.test.mjs"])
        .current_dir(&dir)
        .env("ARTICLES_GRPC_WEB_URLS", urls)
        .env("ARTICLES_DESCRIPTOR_SET", descriptors.path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the node test in time")
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("# pass 2") && stdout.contains("# fail 0"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `node --test <file>` in gateway/tests/browser with `env`, within 2 minutes; its stdout.
async fn node(dir: &std::path::Path, file: &str, env: &[(&str, String)]) -> String {
    let mut command = Command::new("node");
    command
        .args(["--test", file])
        .current_dir(dir)
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the node test in time")
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("# fail 0"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn connect_from_node_and_chromium_reaches_the_service_through_the_gateway_port() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../gateway/tests/browser");
    if !dir.join("node_modules/@connectrpc/connect-node").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the Connect test: `npm ci` in {}",
            dir.display()
        );
        eprintln!("skipped: no @connectrpc/connect-node (see scripts/test)");
        return;
    }
    let db = TestDb::sqlite();
    let stack = Stack::on(&db).demo(12).gateway().start().await;
    let descriptors = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(descriptors.path(), articles_proto::FILE_DESCRIPTOR_SET)
        .expect("write the descriptor set");
    let env = [
        ("ARTICLES_CONNECT_URL", stack.rest_url()),
        (
            "ARTICLES_DESCRIPTOR_SET",
            descriptors.path().display().to_string(),
        ),
        ("ARTICLES_TOKEN", crate::support::TOKEN.to_owned()),
    ];
    // Chromium's test first: the node one writes articles.
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    if std::path::Path::new(&chromium).exists() {
        let out = node(&dir, "connect-web.test.mjs", &env).await;
        assert!(out.contains("# pass 1"), "{out}");
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the Chromium test"
        );
        eprintln!("skipped the Chromium part: no {chromium}");
    }
    let out = node(&dir, "connect-articles.test.mjs", &env).await;
    assert!(out.contains("# pass 3"), "{out}");
}

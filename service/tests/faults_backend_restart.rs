//! A backend that is down, then up, then killed and restarted on the same port: the gateway
//! (in process, on `127.0.0.1:0`) answers 503 within 1 s while it is down, never hangs, and
//! serves again once a real `articles-service` process is back, without being restarted.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use articles_gateway::{Backend, Gateway};
use reqwest::StatusCode;
use tokio::{
    net::TcpListener,
    process::{Child, Command},
    sync::oneshot,
};

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("{e}"),
    }
}

fn start_service(port: u16, db: &std::path::Path) -> Child {
    match Command::new(env!("CARGO_BIN_EXE_articles-service"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .args(["--demo-articles", "3"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("starting articles-service: {e}"),
    }
}

/// GET /articles through the gateway: its status and how long the answer took.
async fn list(client: &reqwest::Client, url: &str) -> (StatusCode, Duration) {
    let started = Instant::now();
    match client.get(url).send().await {
        Ok(r) => (r.status(), started.elapsed()),
        Err(e) => panic!("the gateway did not answer: {e}"),
    }
}

/// Polls until the gateway answers 200, for at most 15 s.
async fn until_ok(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = None;
    while Instant::now() < deadline {
        let (status, _) = list(client, url).await;
        if status == StatusCode::OK {
            return;
        }
        last = Some(status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the gateway never served again (last status {last:?})");
}

async fn assert_down(client: &reqwest::Client, url: &str) {
    for _ in 0..3 {
        let (status, took) = list(client, url).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(took < Duration::from_secs(1), "503 took {took:?}");
    }
}

#[tokio::test]
async fn the_gateway_answers_503_fast_while_the_backend_is_down_and_recovers_without_a_restart() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let db = dir.path().join("articles.db");
    let port = free_port();
    let pool = match prost_reflect::DescriptorPool::decode(articles_proto::FILE_DESCRIPTOR_SET) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let backend =
        match Backend::connect_lazy(&format!("http://127.0.0.1:{port}"), Duration::from_secs(1)) {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        };
    let router = match Gateway::builder()
        .descriptors(pool)
        .backend(backend)
        .build()
    {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    let url = match listener.local_addr() {
        Ok(a) => format!("http://{a}/articles"),
        Err(e) => panic!("{e}"),
    };
    let (_stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = articles_gateway::serve(listener, router, shutdown).await {
            eprintln!("gateway failed: {e}");
        }
    });
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };

    // Never started.
    assert_down(&client, &url).await;

    let mut service = start_service(port, &db);
    until_ok(&client, &url).await;

    // Killed (no graceful goodbye), then restarted on the same port.
    if let Err(e) = service.kill().await {
        panic!("{e}");
    }
    assert_down(&client, &url).await;
    let mut service = start_service(port, &db);
    until_ok(&client, &url).await;
    let (status, _) = list(&client, &url).await;
    assert_eq!(status, StatusCode::OK);
    let _ = service.kill().await;
}

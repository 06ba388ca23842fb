//! A backend that is down, then up, then killed and restarted on the same port: the gateway
//! (in process, on `127.0.0.1:0`) answers 503 within 1 s while it is down, never hangs, and
//! serves again once a real `articles-service` process is back, without being restarted.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::support::{Stack, TestDb, wait_until};

/// GET /articles through the gateway: its status and how long the answer took.
async fn list(client: &reqwest::Client, url: &str) -> (StatusCode, Duration) {
    let started = Instant::now();
    let response = client.get(url).send().await.expect("the gateway answers");
    (response.status(), started.elapsed())
}

/// Polls until the gateway answers 200, for at most 15 s.
async fn until_ok(client: &reqwest::Client, url: &str) {
    wait_until(
        "the gateway serves again",
        Duration::from_secs(15),
        || async { list(client, url).await.0 == StatusCode::OK },
    )
    .await;
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
    let db = TestDb::sqlite();
    // The service's first start only tells the port (bound by the service itself on
    // `127.0.0.1:0`); the gateway's channel is lazy, so killing it before the first request
    // leaves a gateway that has never reached its backend.
    let mut stack = Stack::on(&db).demo(3).process(&[]).gateway().start().await;
    stack.kill(0).await;
    let url = format!("{}/articles", stack.rest_url());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a reqwest client");

    // Never reached.
    assert_down(&client, &url).await;

    stack.restart(0).await;
    until_ok(&client, &url).await;

    // Killed (no graceful goodbye), then restarted on the same port.
    stack.kill(0).await;
    assert_down(&client, &url).await;
    stack.restart(0).await;
    until_ok(&client, &url).await;
    let (status, _) = list(&client, &url).await;
    assert_eq!(status, StatusCode::OK);
}

//! Scale-out end to end: three real `articles-service` processes on one database (SQLite, or
//! PostgreSQL when `TEST_POSTGRES_URL` is set) behind the gateway, balanced over the three.
//! Reads go on without a single failure while a replica is killed with SIGKILL, and the
//! replica restarted on the same port gets calls again.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crate::support::{Stack, TestDb, wait_until};

/// How often the gateway checks each replica in this test.
const HEALTH_INTERVAL: Duration = Duration::from_millis(200);

/// The database: PostgreSQL when `TEST_POSTGRES_URL` is set, else a SQLite file (WAL, shared by
/// the three processes).
async fn database() -> TestDb {
    match TestDb::postgres().await {
        Some(db) => db,
        None => TestDb::sqlite(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_never_fail_while_a_replica_is_killed_and_the_restarted_replica_gets_calls_again() {
    let db = database().await;
    // The first start creates and seeds the table; the others find it.
    let mut stack = Stack::on(&db)
        .demo(50)
        .replicas(3)
        .gateway()
        .health_interval(HEALTH_INTERVAL)
        .start()
        .await;
    let backend = stack.backend().clone();
    assert!(backend.replica_statuses().iter().all(|r| r.up));
    let gateway = stack.rest_url();
    let client = reqwest::Client::new();

    let listed: serde_json::Value = client
        .get(format!("{gateway}/articles?page=1&page_size=50"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("list JSON");
    let pks: Arc<Vec<i64>> = Arc::new(
        listed["articles"]
            .as_array()
            .expect("articles")
            .iter()
            .filter_map(|a| a["id"].as_i64())
            .collect(),
    );
    assert_eq!(pks.len(), 50, "{listed}");

    // 8 workers for about 3 s (at most 400 requests each); a replica is killed once 100 GETs
    // have been answered.
    let started = Instant::now();
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let after_kill = Arc::new(AtomicUsize::new(0));
    let killed_at_ms = Arc::new(AtomicUsize::new(usize::MAX));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for worker in 0..8usize {
        let client = client.clone();
        let gateway = gateway.clone();
        let pks = Arc::clone(&pks);
        let failures = Arc::clone(&failures);
        let after_kill = Arc::clone(&after_kill);
        let killed_at_ms = Arc::clone(&killed_at_ms);
        let answered = Arc::clone(&answered);
        workers.push(tokio::spawn(async move {
            let mut done = 0usize;
            for n in 0..400usize {
                if started.elapsed() >= Duration::from_secs(3) {
                    break;
                }
                let path = if n % 2 == 0 {
                    format!("/articles/{}", pks[(worker * 7 + n) % pks.len()])
                } else {
                    format!("/articles?page={}&page_size=5", 1 + (worker + n) % 10)
                };
                let sent_ms = started.elapsed().as_millis() as usize;
                match client.get(format!("{gateway}{path}")).send().await {
                    Ok(r) if r.status() == reqwest::StatusCode::OK => {
                        if sent_ms > killed_at_ms.load(Ordering::SeqCst) {
                            after_kill.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Ok(r) => {
                        let status = r.status();
                        let body = r.text().await.unwrap_or_default();
                        failures
                            .lock()
                            .expect("lock")
                            .push(format!("GET {path}: {status} {body}"));
                    }
                    Err(e) => failures
                        .lock()
                        .expect("lock")
                        .push(format!("GET {path}: {e}")),
                }
                done += 1;
                answered.fetch_add(1, Ordering::SeqCst);
            }
            done
        }));
    }
    wait_until("100 GETs answered", Duration::from_secs(3), || async {
        answered.load(Ordering::SeqCst) >= 100
    })
    .await;
    killed_at_ms.store(started.elapsed().as_millis() as usize, Ordering::SeqCst);
    stack.kill(0).await;
    let mut total = 0;
    for worker in workers {
        total += worker.await.expect("worker");
    }
    let failures = failures.lock().expect("lock").clone();
    assert!(
        failures.is_empty(),
        "{} of {total} GETs failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(
        after_kill.load(Ordering::SeqCst) > 0,
        "no GET was served after the kill ({total} in all)"
    );
    assert!(!backend.replica_statuses()[0].up, "the dead replica is out");
    eprintln!(
        "{total} GETs, {} after the kill, {} retried on another replica",
        after_kill.load(Ordering::SeqCst),
        backend.retries()
    );

    // Restarted on the same port, it is checked SERVING again and gets calls.
    stack.restart(0).await;
    wait_until(
        "the restarted replica is back in",
        Duration::from_secs(10),
        || async { backend.replica_statuses()[0].up },
    )
    .await;
    let before = backend.replica_statuses()[0].calls;
    for n in 0..30 {
        let r = client
            .get(format!("{gateway}/articles/{}", pks[n % pks.len()]))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), reqwest::StatusCode::OK);
    }
    let after = backend.replica_statuses()[0].calls;
    assert!(
        after >= before + 5,
        "restarted replica got {} of 30 calls",
        after - before
    );

    // And it alone can serve: the two others killed, reads still succeed.
    stack.kill(1).await;
    stack.kill(2).await;
    for n in 0..10 {
        let r = client
            .get(format!("{gateway}/articles/{}", pks[n]))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), reqwest::StatusCode::OK);
    }
}

//! Scale-out end to end: three real `articles-service` processes on one database (SQLite, or
//! PostgreSQL when `TEST_POSTGRES_URL` is set) behind the gateway, balanced over the three.
//! Reads go on without a single failure while a replica is killed with SIGKILL, and the
//! replica restarted on the same port gets calls again.

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use articles_gateway::{Backend, BalanceOptions, Gateway, descriptors};
use support::{SERVICE_BIN, TestDb, free_port};
use tokio::{net::TcpListener, sync::oneshot};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// How often the gateway checks each replica in this test.
const HEALTH_INTERVAL: Duration = Duration::from_millis(200);

/// One `articles-service` process on a fixed port.
struct Replica {
    port: u16,
    child: tokio::process::Child,
    log: tempfile::NamedTempFile,
}

impl Replica {
    fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the binary on `port` and waits (up to 60 s) until its health answers SERVING.
    async fn start(port: u16, db_url: &str) -> Self {
        let log = tempfile::NamedTempFile::new().expect("log file");
        let mut cmd = tokio::process::Command::new(SERVICE_BIN);
        for (key, _) in std::env::vars() {
            if key.starts_with("ARTICLES_") {
                cmd.env_remove(key);
            }
        }
        cmd.arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--database-url", db_url])
            .args(["--demo-articles", "50"])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(log.reopen().expect("log file"))
            .kill_on_drop(true);
        let child = cmd.spawn().expect("start articles-service");
        let mut replica = Self { port, child, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = replica.child.try_wait() {
                panic!("articles-service exited with {status}:\n{}", replica.log());
            }
            if replica.health().await == Some(ServingStatus::Serving) {
                return replica;
            }
            assert!(
                Instant::now() < deadline,
                "articles-service did not start in time:\n{}",
                replica.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn health(&self) -> Option<ServingStatus> {
        let channel = tonic::transport::Endpoint::from_shared(self.uri())
            .ok()?
            .connect()
            .await
            .ok()?;
        let answer = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .ok()?;
        Some(answer.into_inner().status())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// SIGKILL: no graceful shutdown, connections die mid-call.
    async fn kill(&mut self) {
        self.child.start_kill().expect("SIGKILL");
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// The gateway (in process, on `127.0.0.1:0`) in front of `backend`; returns its base URL.
async fn spawn_gateway(backend: Backend) -> (String, oneshot::Sender<()>) {
    let pool = descriptors::embedded().expect("embedded descriptors");
    let router = Gateway::builder()
        .descriptors(pool)
        .backend(backend)
        .build()
        .expect("gateway");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(articles_gateway::serve(listener, router, async {
        let _ = rx.await;
    }));
    (url, tx)
}

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
    let mut replicas = vec![Replica::start(free_port(), &db.url).await];
    for _ in 0..2 {
        replicas.push(Replica::start(free_port(), &db.url).await);
    }
    let uris: Vec<String> = replicas.iter().map(Replica::uri).collect();
    let options = BalanceOptions {
        health_interval: HEALTH_INTERVAL,
        ..BalanceOptions::default()
    };
    let backend = Backend::balanced(&uris, &options).expect("balanced backend");
    backend.health_checked().await;
    assert!(backend.replica_statuses().iter().all(|r| r.up));
    let (gateway, _stop) = spawn_gateway(backend.clone()).await;
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

    // 8 workers for about 3 s (at most 400 requests each); a replica is killed after 1 s.
    let started = Instant::now();
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let after_kill = Arc::new(AtomicUsize::new(0));
    let killed_at_ms = Arc::new(AtomicUsize::new(usize::MAX));
    let mut workers = Vec::new();
    for worker in 0..8usize {
        let client = client.clone();
        let gateway = gateway.clone();
        let pks = Arc::clone(&pks);
        let failures = Arc::clone(&failures);
        let after_kill = Arc::clone(&after_kill);
        let killed_at_ms = Arc::clone(&killed_at_ms);
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
            }
            done
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    killed_at_ms.store(started.elapsed().as_millis() as usize, Ordering::SeqCst);
    replicas[0].kill().await;
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
    let port = replicas[0].port;
    replicas[0] = Replica::start(port, &db.url).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !backend.replica_statuses()[0].up {
        assert!(
            Instant::now() < deadline,
            "the restarted replica stayed out"
        );
        tokio::time::sleep(HEALTH_INTERVAL / 2).await;
    }
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
    replicas[1].kill().await;
    replicas[2].kill().await;
    for n in 0..10 {
        let r = client
            .get(format!("{gateway}/articles/{}", pks[n]))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), reqwest::StatusCode::OK);
    }
}

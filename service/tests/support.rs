//! Test support shared by the integration tests: a temporary database per test (SQLite file, or
//! a fresh schema on the PostgreSQL of `TEST_POSTGRES_URL`), an in-process server on
//! `127.0.0.1:0`, and [`backend_tests!`] to run one test body on both backends.
#![allow(dead_code, unreachable_pub)]

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use articles_proto::article::v1::article_service_client::ArticleServiceClient;
use articles_service::{
    auth::{Token, WriteTokens},
    server::{self, App},
    store::{Store, StoreOptions},
};
use sqlx::Connection as _;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

/// The bearer token the test servers accept unless told otherwise.
pub const TOKEN: &str = "test-token-0123456789";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database private to one test; dropped with it.
#[derive(Debug)]
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    dir: Option<tempfile::TempDir>,
    schema: Option<(String, String)>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    /// A new SQLite file in a temporary directory.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("articles.db").display());
        Self {
            backend: Backend::Sqlite,
            url,
            dir: Some(dir),
            schema: None,
        }
    }

    /// A new schema on `TEST_POSTGRES_URL`, or `None` (test skipped) when it is unset.
    pub async fn postgres() -> Option<Self> {
        let base = std::env::var("TEST_POSTGRES_URL").ok()?;
        let schema = format!(
            "t_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        let mut conn = sqlx::PgConnection::connect(&base)
            .await
            .expect("connect to TEST_POSTGRES_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .expect("create schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        Some(Self {
            backend: Backend::Postgres,
            url,
            dir: None,
            schema: Some((base, schema)),
        })
    }

    /// The SQLite file (SQLite only).
    pub fn sqlite_path(&self) -> std::path::PathBuf {
        self.dir
            .as_ref()
            .expect("sqlite db")
            .path()
            .join("articles.db")
    }

    /// Runs raw SQL statements.
    pub async fn exec(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&format!("{}?mode=rwc", self.url))
                    .await
                    .expect("connect sqlite");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut conn)
                    .await
                    .expect("exec sql");
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("connect pg");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut conn)
                    .await
                    .expect("exec sql");
            }
        }
    }

    /// Runs a query returning one integer.
    pub async fn scalar(&self, sql: &str) -> i64 {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("connect");
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_one(&mut conn)
                    .await
                    .expect("scalar")
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("connect");
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_one(&mut conn)
                    .await
                    .expect("scalar")
            }
        }
    }

    /// Whether a table exists (in the test's schema).
    pub async fn table_exists(&self, name: &str) -> bool {
        let sql = match self.backend {
            Backend::Sqlite => format!(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '{name}'"
            ),
            Backend::Postgres => {
                format!(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = '{name}'"
                )
            }
        };
        self.scalar(&sql).await > 0
    }

    /// Creates `article_article` as Django's migration does, without sqlx's bookkeeping.
    pub async fn create_django_table(&self) {
        self.exec(match self.backend {
            Backend::Sqlite => {
                r#"CREATE TABLE "article_article" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "title" varchar(200) NOT NULL, "content" text NOT NULL, "create_time" datetime NOT NULL);"#
            }
            Backend::Postgres => {
                r#"CREATE TABLE "article_article" ("id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "title" varchar(200) NOT NULL, "content" text NOT NULL, "create_time" timestamp with time zone NOT NULL);"#
            }
        })
        .await;
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((base, schema)) = self.schema.take() else {
            return;
        };
        exec_detached(base, format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    }
}

/// Runs one PostgreSQL statement to completion on its own thread and runtime, ignoring
/// failures: for clean-up in `Drop`, which may run inside a runtime that cannot block.
pub fn exec_detached(url: String, sql: String) {
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await;
            }
        });
    })
    .join();
}

/// How to start a test server.
#[derive(Debug, Clone)]
pub struct Opts {
    pub demo_articles: u32,
    pub tokens: Vec<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            demo_articles: 50,
            tokens: vec![TOKEN.to_owned()],
        }
    }
}

impl Opts {
    pub fn demo(n: u32) -> Self {
        Self {
            demo_articles: n,
            ..Self::default()
        }
    }
}

/// A running server.
#[derive(Debug)]
pub struct TestServer {
    pub addr: SocketAddr,
    shutdown_tx: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<articles_service::Result<()>>>,
}

impl TestServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .expect("url")
            .connect()
            .await
            .expect("connect to test server")
    }

    pub async fn client(&self) -> ArticleServiceClient<Channel> {
        ArticleServiceClient::new(self.channel().await)
    }

    /// Shuts down gracefully and waits for the server to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown_tx.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle
                .await
                .expect("server task")
                .expect("server ended cleanly");
        }
    }
}

fn store_options(url: &str) -> StoreOptions {
    StoreOptions {
        max_connections: Some(4),
        acquire_timeout: Duration::from_secs(2),
        ..StoreOptions::new(url)
    }
}

/// Opens (migrates, seeds) the database and serves it on `127.0.0.1:0`.
pub async fn spawn_service(db: &TestDb, opts: Opts) -> TestServer {
    let store = Store::connect(&store_options(&db.url))
        .await
        .expect("connect store");
    store
        .prepare(opts.demo_articles)
        .await
        .expect("prepare store");
    spawn_app(store, opts).await
}

/// Serves a store as is (no preparation) on `127.0.0.1:0`.
pub async fn spawn_app(store: Store, opts: Opts) -> TestServer {
    let tokens = WriteTokens::new(opts.tokens.into_iter().map(Token::new));
    let app = App::new(store, tokens).await.expect("app");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (shutdown_tx, shutdown_rx) = oneshot::channel();
    let handle = tokio::spawn(server::serve(listener, app, async {
        let _ = shutdown_rx.await;
    }));
    TestServer {
        addr,
        shutdown_tx: Some(shutdown_tx),
        handle: Some(handle),
    }
}

/// A lazily connected store on `url` (nothing is checked until first use).
pub fn lazy_store(url: &str) -> Store {
    Store::connect_lazy(&store_options(url)).expect("lazy store")
}

/// Generates, for each named `async fn(TestDb)`, a test on SQLite and one on PostgreSQL
/// (skipped with a note when `TEST_POSTGRES_URL` is unset, failing when `CI` is set).
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::TestDb::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    match $crate::support::TestDb::postgres().await {
                        Some(db) => super::$name(db).await,
                        None if $crate::support::in_ci() => {
                            panic!("TEST_POSTGRES_URL must be set in CI")
                        }
                        None => eprintln!("skipped: set TEST_POSTGRES_URL to run on PostgreSQL"),
                    }
                }
            )*
        }
    };
}

/// The real `articles-service` binary.
pub const SERVICE_BIN: &str = env!("CARGO_BIN_EXE_articles-service");

/// A free port on 127.0.0.1 (bound, read, released: the caller binds it again right away).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Whether a missing prerequisite must fail the test (in CI) rather than skip it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Skips (returns `None` with a note) or, in CI, fails when `TEST_POSTGRES_URL` is unset.
pub fn postgres_url_or_skip(test: &str) -> Option<String> {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) if in_ci() => panic!("{test}: TEST_POSTGRES_URL must be set in CI"),
        Err(_) => {
            eprintln!("skipped {test}: set TEST_POSTGRES_URL to run on PostgreSQL");
            None
        }
    }
}

/// The real `articles-service serve` in a child process, listening on a free port.
#[derive(Debug)]
pub struct ServiceProcess {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    child: tokio::process::Child,
    log: tempfile::NamedTempFile,
}

impl ServiceProcess {
    /// Starts the binary with `--listen`, `--database-url DB_URL`, `--api-token TOKEN` and
    /// `extra`, in a clean environment (no `ARTICLES_*` from the caller), and waits until its
    /// health service answers (SERVING or not).
    pub async fn start(db_url: &str, extra: &[&str]) -> Self {
        Self::start_with(db_url, extra, false).await
    }

    /// Like [`start`](Self::start), also serving metrics on another free port.
    pub async fn start_with_metrics(db_url: &str, extra: &[&str]) -> Self {
        Self::start_with(db_url, extra, true).await
    }

    async fn start_with(db_url: &str, extra: &[&str], metrics: bool) -> Self {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let metrics_addr: Option<SocketAddr> =
            metrics.then(|| format!("127.0.0.1:{}", free_port()).parse().expect("addr"));
        let log = tempfile::NamedTempFile::new().expect("log file");
        let mut cmd = tokio::process::Command::new(SERVICE_BIN);
        for (key, _) in std::env::vars() {
            if key.starts_with("ARTICLES_") {
                cmd.env_remove(key);
            }
        }
        cmd.arg("serve")
            .args(["--listen", &addr.to_string()])
            .args(["--database-url", db_url])
            .args(["--api-token", TOKEN])
            .args(extra)
            .env("RUST_LOG", "info,articles_service=debug")
            .stdout(std::process::Stdio::null())
            .stderr(log.reopen().expect("log file"))
            .kill_on_drop(true);
        if let Some(m) = metrics_addr {
            cmd.args(["--metrics-listen", &m.to_string()]);
        }
        let child = cmd.spawn().expect("start articles-service");
        let mut process = Self {
            addr,
            metrics_addr,
            child,
            log,
        };
        process.wait_ready().await;
        process
    }

    async fn wait_ready(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("articles-service exited with {status}:\n{}", self.log());
            }
            if self.health().await.is_some() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "articles-service did not start in time:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The health status of the whole server, or `None` when it does not answer.
    pub async fn health(&self) -> Option<tonic_health::pb::health_check_response::ServingStatus> {
        let channel = Channel::from_shared(self.url())
            .ok()?
            .connect()
            .await
            .ok()?;
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let resp = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .ok()?;
        Some(resp.into_inner().status())
    }

    /// Waits (up to 20 s) until the health status is `want`.
    pub async fn wait_health(&self, want: tonic_health::pb::health_check_response::ServingStatus) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.health().await;
            if got == Some(want) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "health stayed {got:?}, expected {want:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn client(&self) -> ArticleServiceClient<Channel> {
        let channel = Channel::from_shared(self.url())
            .expect("url")
            .connect()
            .await
            .expect("connect to articles-service");
        ArticleServiceClient::new(channel)
    }

    /// The process's resident memory now, in KiB (from `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// What the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Stops the process with SIGTERM (graceful shutdown), asserts it exits 0, returns its log.
    pub async fn stop(mut self) -> String {
        let pid = self.child.id().expect("running");
        let killed = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("kill");
        assert!(killed.success());
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("articles-service stops on SIGTERM")
            .expect("wait");
        let log = self.log();
        assert!(status.success(), "exit {status}:\n{log}");
        log
    }
}

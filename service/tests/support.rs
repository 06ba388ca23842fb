//! Test support: a temporary database per test ([`TestDb`]: a SQLite file, or a fresh schema on
//! the PostgreSQL of `TEST_POSTGRES_URL`), [`backend_tests!`] to run one test body on both, and
//! [`Stack`], the one way every test starts what it talks to: the service in process or as
//! the real binary (one or several replicas), optionally behind the gateway in process.
//!
//! Everything listens on `127.0.0.1:0`. A child process is started with `--listen 127.0.0.1:0`
//! (and `--rest`, `--metrics-listen` likewise), and the bound addresses are read back from the
//! lines the binary logs once it has bound them, so no port is guessed and re-bound.

use std::{
    future::Future,
    net::SocketAddr,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use articles_gateway::{BalanceOptions, GatewayBuilder};
use articles_proto::article::v1::article_service_client::ArticleServiceClient;
use articles_service::{
    auth::{Token, WriteTokens},
    server::{self, App},
    store::{Store, StoreOptions},
};
use sqlx::Connection as _;
use tokio::{
    net::{TcpListener, TcpSocket},
    sync::oneshot,
    task::JoinHandle,
};
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// The bearer token the test servers accept unless told otherwise.
pub(crate) const TOKEN: &str = "test-token-0123456789";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// A database private to one test; dropped with it.
#[derive(Debug)]
pub(crate) struct TestDb {
    pub(crate) backend: Backend,
    pub(crate) url: String,
    dir: Option<tempfile::TempDir>,
    schema: Option<(String, String)>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    /// A new SQLite file in a temporary directory.
    pub(crate) fn sqlite() -> Self {
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
    pub(crate) async fn postgres() -> Option<Self> {
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
    pub(crate) fn sqlite_path(&self) -> std::path::PathBuf {
        self.dir
            .as_ref()
            .expect("sqlite db")
            .path()
            .join("articles.db")
    }

    /// Runs raw SQL statements.
    pub(crate) async fn exec(&self, sql: &str) {
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
    pub(crate) async fn scalar(&self, sql: &str) -> i64 {
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
    pub(crate) async fn table_exists(&self, name: &str) -> bool {
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
    pub(crate) async fn create_django_table(&self) {
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
pub(crate) fn exec_detached(url: String, sql: String) {
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

/// What to start: see [`Stack::on`].
#[derive(Debug)]
#[must_use]
pub(crate) struct StackBuilder {
    db_url: String,
    store: Option<Store>,
    demo: Option<u32>,
    tokens: Vec<String>,
    /// `Some`: the real binary with these extra flags; `None`: the service in process.
    process: Option<Vec<String>>,
    replicas: usize,
    rest: bool,
    metrics: bool,
    gateway: bool,
    health_interval: Duration,
    /// The process's open files limit (soft and hard), when not inherited.
    open_files: Option<u64>,
}

impl StackBuilder {
    /// Seeds `n` demo articles into a new table (in process the default is 50; a process gets
    /// `--demo-articles n`, or the binary's default when not called).
    pub(crate) fn demo(mut self, n: u32) -> Self {
        self.demo = Some(n);
        self
    }

    /// The write tokens (default: [`TOKEN`] alone).
    pub(crate) fn tokens(mut self, tokens: &[&str]) -> Self {
        self.tokens = tokens.iter().map(|t| (*t).to_owned()).collect();
        self
    }

    /// Runs the real `articles-service serve` with these extra flags, in a clean environment
    /// (no `ARTICLES_*` from the caller).
    pub(crate) fn process(mut self, extra: &[&str]) -> Self {
        self.process = Some(extra.iter().map(|a| (*a).to_owned()).collect());
        self
    }

    /// Runs the process with this open files limit, soft and hard (`ulimit -n`), so that it
    /// cannot raise it; implies [`process`](Self::process) when not called.
    pub(crate) fn open_files_limit(mut self, limit: u64) -> Self {
        self.open_files = Some(limit);
        self.process.get_or_insert_with(Vec::new);
        self
    }

    /// `n` processes on the one database, started one after the other (the first creates the
    /// table); implies [`process`](Self::process) when not called.
    pub(crate) fn replicas(mut self, n: usize) -> Self {
        self.replicas = n;
        self.process.get_or_insert_with(Vec::new);
        self
    }

    /// The process's in-process REST gateway on `--rest 127.0.0.1:0`.
    pub(crate) fn rest(mut self) -> Self {
        self.rest = true;
        self.process.get_or_insert_with(Vec::new);
        self
    }

    /// The process's metrics on `--metrics-listen 127.0.0.1:0`.
    pub(crate) fn metrics(mut self) -> Self {
        self.metrics = true;
        self.process.get_or_insert_with(Vec::new);
        self
    }

    /// The gateway library in this process in front of the service: one lazy channel, or with
    /// several replicas a balanced backend that checked each once before [`start`] returns.
    ///
    /// [`start`]: Self::start
    pub(crate) fn gateway(mut self) -> Self {
        self.gateway = true;
        self
    }

    /// How often a balanced gateway checks each replica (default 200 ms).
    pub(crate) fn health_interval(mut self, interval: Duration) -> Self {
        self.health_interval = interval;
        self
    }

    pub(crate) async fn start(self) -> Stack {
        let mut services = Vec::new();
        match &self.process {
            Some(extra) => {
                let mut args = extra.clone();
                if let Some(n) = self.demo {
                    args.extend(["--demo-articles".to_owned(), n.to_string()]);
                }
                for token in &self.tokens {
                    args.extend(["--api-token".to_owned(), token.clone()]);
                }
                if self.rest {
                    args.extend(["--rest".to_owned(), "127.0.0.1:0".to_owned()]);
                }
                if self.metrics {
                    args.extend(["--metrics-listen".to_owned(), "127.0.0.1:0".to_owned()]);
                }
                for _ in 0..self.replicas.max(1) {
                    let process =
                        ServiceProcess::start(&self.db_url, &args, None, self.open_files).await;
                    services.push(Service::Process(Box::new(process)));
                }
            }
            None => {
                let store = match self.store {
                    Some(store) => store,
                    None => {
                        let store = Store::connect(&store_options(&self.db_url))
                            .await
                            .expect("connect store");
                        store
                            .prepare(self.demo.unwrap_or(50))
                            .await
                            .expect("prepare store");
                        store
                    }
                };
                services.push(Service::InProcess(spawn_app(store, &self.tokens).await));
            }
        }
        let mut stack = Stack {
            services,
            gateway: None,
            backend: None,
        };
        if self.gateway {
            let backend = if stack.services.len() > 1 {
                // The balancer's first check must find every replica up.
                for i in 0..stack.services.len() {
                    stack.wait_health(i, ServingStatus::Serving).await;
                }
                let uris: Vec<String> = stack.services.iter().map(Service::url).collect();
                let options = BalanceOptions {
                    health_interval: self.health_interval,
                    ..BalanceOptions::default()
                };
                let backend =
                    articles_gateway::Backend::balanced(&uris, &options).expect("balanced backend");
                backend.health_checked().await;
                backend
            } else {
                articles_gateway::Backend::connect_lazy(&stack.url(), Duration::from_secs(1))
                    .expect("backend")
            };
            stack.gateway = Some(spawn_gateway(backend.clone()).await);
            stack.backend = Some(backend);
        }
        stack
    }
}

/// One service of a [`Stack`].
#[derive(Debug)]
enum Service {
    InProcess(TestServer),
    Process(Box<ServiceProcess>),
}

impl Service {
    fn url(&self) -> String {
        match self {
            Self::InProcess(s) => format!("http://{}", s.addr),
            Self::Process(p) => format!("http://{}", p.addr),
        }
    }
}

/// What a test runs against: one or more services and, when asked, the gateway in front.
/// Dropping it kills the processes and stops the in-process servers.
#[derive(Debug)]
pub(crate) struct Stack {
    services: Vec<Service>,
    gateway: Option<(String, oneshot::Sender<()>)>,
    backend: Option<articles_gateway::Backend>,
}

impl Stack {
    /// A stack on `db`: by default the service in process with 50 demo articles and [`TOKEN`].
    pub(crate) fn on(db: &TestDb) -> StackBuilder {
        Self::on_url(&db.url)
    }

    /// A stack on the database at `url` (one the test made itself).
    pub(crate) fn on_url(url: &str) -> StackBuilder {
        StackBuilder {
            db_url: url.to_owned(),
            store: None,
            demo: None,
            tokens: vec![TOKEN.to_owned()],
            process: None,
            replicas: 1,
            rest: false,
            metrics: false,
            gateway: false,
            health_interval: Duration::from_millis(200),
            open_files: None,
        }
    }

    /// A stack serving `store` as it is, in process, without preparing it.
    pub(crate) fn on_store(store: Store) -> StackBuilder {
        StackBuilder {
            store: Some(store),
            ..Self::on_url("")
        }
    }

    /// The gRPC URL of the first service.
    pub(crate) fn url(&self) -> String {
        self.services[0].url()
    }

    /// The gRPC address of the first service.
    pub(crate) fn addr(&self) -> SocketAddr {
        match &self.services[0] {
            Service::InProcess(s) => s.addr,
            Service::Process(p) => p.addr,
        }
    }

    /// The gRPC URL of service `i`.
    pub(crate) fn replica_url(&self, i: usize) -> String {
        self.services[i].url()
    }

    pub(crate) async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .expect("url")
            .connect()
            .await
            .expect("connect to the service")
    }

    pub(crate) async fn client(&self) -> ArticleServiceClient<Channel> {
        ArticleServiceClient::new(self.channel().await)
    }

    /// The REST base URL: the in-process gateway's, else the process's `--rest`.
    pub(crate) fn rest_url(&self) -> String {
        if let Some((url, _)) = &self.gateway {
            return url.clone();
        }
        let addr = self.process(0).rest_addr.expect("a stack with rest()");
        format!("http://{addr}")
    }

    /// The gateway's backend (with replicas: their statuses and call counts).
    pub(crate) fn backend(&self) -> &articles_gateway::Backend {
        self.backend.as_ref().expect("a stack with gateway()")
    }

    /// Service `i` as a child process (a stack with `process()`).
    pub(crate) fn process(&self, i: usize) -> &ServiceProcess {
        match &self.services[i] {
            Service::Process(p) => p,
            Service::InProcess(_) => panic!("service {i} runs in process, not as a process"),
        }
    }

    pub(crate) fn metrics_addr(&self) -> SocketAddr {
        self.process(0)
            .metrics_addr
            .expect("a stack with metrics()")
    }

    /// The health status of the first service, or `None` when it does not answer.
    pub(crate) async fn health(&self) -> Option<ServingStatus> {
        health(&self.url()).await
    }

    /// Waits (up to 20 s) until service `i`'s health status is `want`.
    pub(crate) async fn wait_health(&self, i: usize, want: ServingStatus) {
        let url = self.replica_url(i);
        let url = &url;
        wait_until(
            &format!("health {want:?}"),
            Duration::from_secs(20),
            move || async move { health(url).await == Some(want) },
        )
        .await;
    }

    /// The first process's resident memory now, in KiB (from `/proc/<pid>/status`).
    pub(crate) fn rss_kib(&self) -> u64 {
        let pid = self.process(0).child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// The CPU time the first process has used so far (user and system, from
    /// `/proc/<pid>/stat`).
    pub(crate) fn cpu_time(&self) -> Duration {
        let pid = self.process(0).child.id().expect("running");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
        // The fields after the command name, which is in parentheses: state is the first,
        // utime (field 14) the 12th, stime the 13th.
        let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 1..]
            .split_whitespace()
            .collect();
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        let per_second = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| {
                String::from_utf8(out.stdout)
                    .ok()?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(100);
        Duration::from_millis(ticks * 1000 / per_second)
    }

    /// SIGKILL to process `i`: no graceful shutdown, connections die mid-call.
    pub(crate) async fn kill(&mut self, i: usize) {
        let Service::Process(p) = &mut self.services[i] else {
            panic!("service {i} runs in process");
        };
        p.child.start_kill().expect("SIGKILL");
        tokio::time::timeout(Duration::from_secs(10), p.child.wait())
            .await
            .expect("the killed process exits")
            .expect("wait");
    }

    /// Starts process `i` again with its flags, on the port it had (which its kill freed).
    pub(crate) async fn restart(&mut self, i: usize) {
        let Service::Process(old) = &self.services[i] else {
            panic!("service {i} runs in process");
        };
        let (db_url, args, addr, open_files) = (
            old.db_url.clone(),
            old.args.clone(),
            old.addr,
            old.open_files,
        );
        self.services[i] = Service::Process(Box::new(
            ServiceProcess::start(&db_url, &args, Some(addr), open_files).await,
        ));
    }

    /// Stops the gateway, then every service gracefully (a process with SIGTERM, asserting it
    /// exits 0); returns the first process's log (empty in process).
    pub(crate) async fn stop(mut self) -> String {
        self.gateway.take();
        let mut first_log = None;
        for service in std::mem::take(&mut self.services) {
            match service {
                Service::InProcess(server) => server.stop().await,
                Service::Process(process) => {
                    let log = process.stop().await;
                    first_log.get_or_insert(log);
                }
            }
        }
        first_log.unwrap_or_default()
    }
}

/// An in-process server.
#[derive(Debug)]
struct TestServer {
    addr: SocketAddr,
    shutdown_tx: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), articles_service::error::StartError>>>,
}

impl TestServer {
    /// Shuts down gracefully and waits for the server to finish.
    async fn stop(mut self) {
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

/// Serves a store as is on `127.0.0.1:0`.
async fn spawn_app(store: Store, tokens: &[String]) -> TestServer {
    let tokens = WriteTokens::new(tokens.iter().cloned().map(Token::new));
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

/// The gateway library in front of `backend` on `127.0.0.1:0`.
async fn spawn_gateway(backend: articles_gateway::Backend) -> (String, oneshot::Sender<()>) {
    let router = GatewayBuilder::new()
        .descriptors(article_pool())
        .backend(backend)
        .build()
        .expect("gateway");
    serve_router(router).await
}

/// Serves a gateway's `router` on `127.0.0.1:0`: its URL, and the sender whose drop stops it.
pub(crate) async fn serve_router(router: axum::Router) -> (String, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(articles_gateway::serve(listener, router, async {
        let _ = rx.await;
    }));
    (url, tx)
}

/// The article API's descriptors, as compiled into the proto crate.
pub(crate) fn article_pool() -> prost_reflect::DescriptorPool {
    prost_reflect::DescriptorPool::decode(articles_proto::FILE_DESCRIPTOR_SET)
        .expect("embedded descriptors")
}

/// A lazily connected store on `url` (nothing is checked until first use).
pub(crate) fn lazy_store(url: &str) -> Store {
    Store::connect_lazy(&store_options(url)).expect("lazy store")
}

/// A loopback address where nothing listens, for as long as the socket lives: bound but not
/// listening, so connecting is refused and no other test can take the port meanwhile.
pub(crate) fn refused_addr() -> (TcpSocket, SocketAddr) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let addr = socket.local_addr().expect("local addr");
    (socket, addr)
}

/// Polls `condition` every 50 ms until it holds; fails the test naming `what` after `limit`.
pub(crate) async fn wait_until<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A write request with [`TOKEN`].
pub(crate) fn authorized<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {TOKEN}").parse().expect("metadata"),
    );
    request
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
pub(crate) const SERVICE_BIN: &str = env!("CARGO_BIN_EXE_articles-service");

/// Whether a missing prerequisite must fail the test (in CI) rather than skip it.
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Skips (returns `None` with a note) or, in CI, fails when `TEST_POSTGRES_URL` is unset.
pub(crate) fn postgres_url_or_skip(test: &str) -> Option<String> {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) if in_ci() => panic!("{test}: TEST_POSTGRES_URL must be set in CI"),
        Err(_) => {
            eprintln!("skipped {test}: set TEST_POSTGRES_URL to run on PostgreSQL");
            None
        }
    }
}

/// The health status of the whole server at `url`, or `None` when it does not answer.
async fn health(url: &str) -> Option<ServingStatus> {
    let channel = Channel::from_shared(url.to_owned())
        .ok()?
        .connect()
        .await
        .ok()?;
    let resp = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .ok()?;
    Some(resp.into_inner().status())
}

/// The real `articles-service serve` in a child process.
#[derive(Debug)]
pub(crate) struct ServiceProcess {
    addr: SocketAddr,
    rest_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    db_url: String,
    args: Vec<String>,
    open_files: Option<u64>,
    child: tokio::process::Child,
    log: tempfile::NamedTempFile,
}

/// The address logged after `prefix` on some line of `log` (the binary logs each listener's
/// address once it is bound).
fn logged_addr(log: &str, prefix: &str) -> Option<SocketAddr> {
    log.lines().find_map(|line| {
        let rest = &line[line.find(prefix)? + prefix.len()..];
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '/')
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    })
}

impl ServiceProcess {
    /// Starts the binary on `listen` (default `127.0.0.1:0`) with `--database-url DB_URL` and
    /// `args`, reads the bound addresses from its log, and waits until its health service
    /// answers (SERVING or not). With `open_files`, under that open files limit.
    async fn start(
        db_url: &str,
        args: &[String],
        listen: Option<SocketAddr>,
        open_files: Option<u64>,
    ) -> Self {
        let log = tempfile::NamedTempFile::new().expect("log file");
        let mut cmd = match open_files {
            None => tokio::process::Command::new(SERVICE_BIN),
            Some(limit) => {
                // `exec` keeps the pid: the child is the service itself.
                let mut sh = tokio::process::Command::new("sh");
                sh.args([
                    "-c",
                    &format!("ulimit -n {limit} && exec \"$0\" \"$@\""),
                    SERVICE_BIN,
                ]);
                sh
            }
        };
        for (key, _) in std::env::vars() {
            if key.starts_with("ARTICLES_") {
                cmd.env_remove(key);
            }
        }
        let listen = listen.map_or_else(|| "127.0.0.1:0".to_owned(), |a| a.to_string());
        cmd.arg("serve")
            .args(["--listen", &listen])
            .args(["--database-url", db_url])
            .args(args)
            .env("RUST_LOG", "info,articles_service=debug")
            .stdout(std::process::Stdio::null())
            .stderr(log.reopen().expect("log file"))
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("start articles-service");
        let read_log = || std::fs::read_to_string(log.path()).unwrap_or_default();
        // The gRPC listener is logged last, after `--rest` and `--metrics-listen`.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let addr = loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("articles-service exited with {status}:\n{}", read_log());
            }
            if let Some(addr) = logged_addr(&read_log(), "gRPC server listening on ") {
                break addr;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "articles-service did not start in time:\n{}",
                read_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let text = read_log();
        let process = Self {
            addr,
            rest_addr: logged_addr(&text, "REST at http://"),
            metrics_addr: logged_addr(&text, "metrics at http://"),
            db_url: db_url.to_owned(),
            args: args.to_vec(),
            open_files,
            child,
            log,
        };
        let url = format!("http://{addr}");
        let url = &url;
        wait_until(
            "articles-service answers health",
            Duration::from_secs(60),
            move || async move { health(url).await.is_some() },
        )
        .await;
        process
    }

    /// What the process logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Stops the process with SIGTERM (graceful shutdown), asserts it exits 0, returns its log.
    async fn stop(mut self) -> String {
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

//! Assembling and running the gRPC server: the article service (also under its legacy name),
//! health, and reflection v1/v1alpha, on a listener the caller binds, with graceful shutdown.
//!
//! [`App::routes`] gives the tonic [`Routes`] without binding anything (to mount elsewhere or
//! to serve with custom settings); [`serve`] serves an [`App`] on a bound listener until a
//! shutdown future completes; [`run`] is the `serve` command: bind, log, serve (plus `/metrics`
//! when `--metrics-listen` is given) until SIGINT or SIGTERM. The port's connections are
//! accepted and guarded (timeouts, cap, descriptors) by `connections`.

mod connections;

use std::{future::Future, sync::Arc, time::Duration};

pub use connections::{
    ConnectionLimits, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
};

use articles_gateway::app::CorsOrigins;
use articles_proto::ARTICLE_SERVICE;
use futures::StreamExt as _;
use tokio::{net::TcpListener, task::JoinHandle};
use tonic::{service::Routes, transport::Server};
use tonic_health::{
    ServingStatus,
    pb::health_server::HealthServer,
    server::{HealthReporter, HealthService},
};

use crate::{
    auth::WriteTokens,
    config::ServeArgs,
    error::StartError,
    grpc::{Articles, guard::WriteGuard, legacy::LegacyAlias},
    metrics::{self, Metrics},
    observe::ObserveLayer,
    reflection::Reflection,
    store::Store,
};

/// How often the health monitor checks the database by default.
pub const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(3);

/// Everything the server needs: the store, the write tokens, health, reflection and metrics.
#[derive(Debug, Clone)]
pub struct App {
    store: Store,
    tokens: Arc<WriteTokens>,
    reflection: Reflection,
    health: HealthReporter,
    health_interval: Duration,
    metrics: Metrics,
    /// The browser origins the gRPC port answers gRPC-Web calls from.
    cors: CorsOrigins,
    /// How the gRPC port guards its connections.
    connections: ConnectionLimits,
}

impl App {
    /// Opens the database of `args` (connect, migrate unless foreign, seed a new table) and
    /// loads the write tokens.
    ///
    /// # Errors
    /// Database, migration or token file failures.
    pub async fn open(args: &ServeArgs) -> Result<Self, StartError> {
        let tokens = WriteTokens::from_args(&args.tokens)?;
        if tokens.is_empty() {
            tracing::warn!("no API token configured: writes are disabled");
        } else {
            tracing::info!(tokens = tokens.len(), "writes enabled for bearer tokens");
        }
        let store = Store::connect(&args.store_options()).await?;
        store.prepare(args.demo_articles).await?;
        let cors = args
            .http
            .cors()
            .map_err(|e| StartError::Rest(format!("{e:#}")))?;
        Ok(Self::new(store, tokens)
            .await?
            .with_health_interval(args.health_interval)
            .with_cors(cors)
            .with_connection_limits(args.connections.limits()))
    }

    /// An app over an already prepared `store`. Health starts as SERVING.
    ///
    /// # Errors
    /// [`StartError::Descriptor`] if the compiled-in descriptors are inconsistent (a build bug).
    pub async fn new(store: Store, tokens: WriteTokens) -> Result<Self, StartError> {
        let health = HealthReporter::new();
        set_health(&health, ServingStatus::Serving).await;
        Ok(Self {
            store,
            tokens: Arc::new(tokens),
            reflection: Reflection::for_article_service()?,
            health,
            health_interval: HEALTH_CHECK_INTERVAL,
            metrics: Metrics::new(),
            cors: CorsOrigins::Any,
            connections: ConnectionLimits::default(),
        })
    }

    /// How the gRPC port guards its connections (default: [`ConnectionLimits::default`]).
    #[must_use]
    pub fn with_connection_limits(mut self, limits: ConnectionLimits) -> Self {
        self.connections = limits;
        self
    }

    /// The browser origins whose gRPC-Web calls the gRPC port answers (default: any, as the
    /// gateway's REST: writes need a bearer token, never a cookie).
    #[must_use]
    pub fn with_cors(mut self, origins: CorsOrigins) -> Self {
        self.cors = origins;
        self
    }

    /// Checks the database every `interval` while serving (default [`HEALTH_CHECK_INTERVAL`]).
    #[must_use]
    pub fn with_health_interval(mut self, interval: Duration) -> Self {
        self.health_interval = interval;
        self
    }

    /// The metrics recorded by [`serve`] and the health monitor.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The health reporter (to flip statuses from outside, e.g. while draining).
    pub fn health_reporter(&self) -> HealthReporter {
        self.health.clone()
    }

    /// All gRPC services as tonic routes: `article.v1.ArticleService`, its legacy alias
    /// `ArticleService`, `grpc.health.v1.Health`, and reflection v1 and v1alpha.
    pub fn routes(&self) -> Routes {
        let articles = WriteGuard::new(
            Articles::new(self.store.clone()).into_server(),
            Arc::clone(&self.tokens),
        );
        Routes::new(articles.clone())
            .add_service(LegacyAlias::new(articles))
            .add_service(HealthServer::new(HealthService::from_health_reporter(
                self.health.clone(),
            )))
            .add_service(self.reflection.v1())
            .add_service(self.reflection.v1alpha())
    }

    /// Starts a task that pings the database every `interval` and reports the article service
    /// NOT_SERVING while it is unreachable (or locked), SERVING again once it answers; the
    /// `articles_database_up` gauge follows.
    pub fn spawn_health_monitor(&self, interval: Duration) -> JoinHandle<()> {
        let store = self.store.clone();
        let health = self.health.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut healthy = true;
            loop {
                ticker.tick().await;
                let ok = match store.ping().await {
                    Ok(()) => true,
                    Err(err) => {
                        if healthy {
                            tracing::warn!(error = %err, "database check failed");
                        }
                        false
                    }
                };
                metrics.set_database_up(ok);
                if ok != healthy {
                    healthy = ok;
                    let status = if ok {
                        tracing::info!("database reachable again");
                        ServingStatus::Serving
                    } else {
                        ServingStatus::NotServing
                    };
                    set_health(&health, status).await;
                }
            }
        })
    }
}

async fn set_health(health: &HealthReporter, status: ServingStatus) {
    for name in [ARTICLE_SERVICE, articles_proto::LEGACY_ARTICLE_SERVICE, ""] {
        health.set_service_status(name, status).await;
    }
}

/// The most concurrent streams a client may open on one connection (advertised in SETTINGS).
pub const MAX_CONCURRENT_STREAMS: u32 = 64;
/// HTTP/2 flow-control windows: how much a client may send ahead of what the server has read.
const STREAM_WINDOW: u32 = 256 * 1024;
const CONNECTION_WINDOW: u32 = 2 * 1024 * 1024;

/// Serves `app` on `listener` until `shutdown` completes, then drains in-flight requests and
/// closes the database pool. Runs the health monitor meanwhile, and wraps every call in the
/// [`ObserveLayer`] (request id, span, metrics).
///
/// # Errors
/// None today: a failed accept is retried after a pause, a failed connection only logged. The
/// `Result` leaves room for fatal ones.
pub async fn serve<F>(listener: TcpListener, app: App, shutdown: F) -> Result<(), StartError>
where
    F: Future<Output = ()> + Send,
{
    let monitor = app.spawn_health_monitor(app.health_interval);
    // Watches never end by themselves: ended at shutdown, they let the drain finish.
    let store = app.store.clone();
    let shutdown = async move {
        shutdown.await;
        store.stop_watchers();
    };
    // Memory a connection can make the server hold is bounded by streams x message size:
    // at most 64 streams of at most 4 MiB (tonic's decoding limit), about 256 MiB, and only
    // for reads: writes without a token are refused before their bodies ([`WriteGuard`]).
    //
    // gRPC-Web on the same port (HTTP/1.1 too), so a browser can call the service directly:
    // tonic-web translates it to gRPC in front of the services (gRPC passes through
    // untouched), behind the gateway's CORS layer for the `--cors-origin` origins.
    let router = Server::builder()
        .accept_http1(true)
        .max_concurrent_streams(Some(MAX_CONCURRENT_STREAMS))
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW))
        .layer(ObserveLayer::new(app.metrics.clone()))
        .layer(articles_gateway::app::cors_layer(&app.cors))
        .layer(tonic_web::GrpcWebLayer::new())
        .add_routes(app.routes());
    connections::serve(listener, app.connections, shutdown, move |io, closing| {
        // One connection, then none: a stream that ended would start the server's shutdown.
        let incoming = futures::stream::once(std::future::ready(Ok::<_, std::io::Error>(io)))
            .chain(futures::stream::pending());
        router
            .clone()
            .serve_with_incoming_shutdown(incoming, closing)
    })
    .await;
    monitor.abort();
    app.store.close().await;
    Ok(())
}

/// The `serve` command: opens the app, binds `--listen` (and `--rest`, `--metrics-listen`),
/// serves until SIGINT/SIGTERM, then drains every listener.
///
/// # Errors
/// Startup failures (database, tokens, bind) and server failures.
pub async fn run(args: &ServeArgs) -> Result<(), StartError> {
    let limit = connections::raise_open_files_limit();
    let mut limits = args.connections.limits();
    limits.max_connections =
        connections::connection_cap(limits.max_connections, limit, args.rest.is_some());
    let app = App::open(args).await?.with_connection_limits(limits);
    let (listener, addr) = bind(args.listen).await?;
    // One signal stops every listener: each waits on its own receiver of this channel.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            // An error means the sender is gone, which also means stop.
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    let rest_task = match args.rest {
        Some(rest_addr) => {
            let (rest_listener, rest_addr) = bind(rest_addr).await?;
            let router = rest_router(&app, &args.http)?;
            let options = args
                .http
                .serve_options()
                .map_err(|e| StartError::Rest(format!("{e:#}")))?;
            articles_gateway::server::raise_open_files_limit(args.http.max_client_connections);
            tracing::info!(addr = %rest_addr, "REST at http://{rest_addr}/articles, docs at http://{rest_addr}/docs");
            Some(tokio::spawn(articles_gateway::server::serve_with(
                rest_listener,
                router,
                stopped(),
                options,
            )))
        }
        None => None,
    };
    let metrics_task = match args.metrics_listen {
        Some(metrics_addr) => {
            let (metrics_listener, metrics_addr) = bind(metrics_addr).await?;
            tracing::info!(addr = %metrics_addr, "metrics at http://{metrics_addr}/metrics");
            Some(tokio::spawn(metrics::serve(
                metrics_listener,
                app.metrics().clone(),
                app.store().clone(),
                stopped(),
            )))
        }
        None => None,
    };
    tracing::info!(%addr, "gRPC server listening on {addr}");
    tokio::spawn(async move {
        // The gateway's: this crate depends on it already, so one copy serves both servers.
        articles_gateway::server::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let result = serve(listener, app, stopped()).await;
    if let Some(task) = rest_task {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(source)) => tracing::error!(error = %source, "REST server failed"),
            Err(join) => tracing::error!(error = %join, "REST server task failed"),
        }
    }
    if let Some(task) = metrics_task {
        task.abort();
    }
    result?;
    tracing::info!("server stopped");
    Ok(())
}

/// The in-process gateway: the generic transcoder over the embedded descriptors, calling this
/// app's gRPC routes in memory (wrapped in the same [`ObserveLayer`] as the gRPC listener, so
/// REST calls get request ids, spans and metrics too), handling requests as `http` says. Its
/// live page at `/` opens the article feed a few events back ([`crate::feed`]).
///
/// # Errors
/// [`StartError::Rest`] when the gateway cannot be built from the descriptors or the flags.
pub fn rest_router(
    app: &App,
    http: &articles_gateway::config::HttpArgs,
) -> Result<axum::Router, StartError> {
    let routes = tower::ServiceBuilder::new()
        .layer(ObserveLayer::new(app.metrics.clone()))
        .service(app.routes().prepare());
    let pool = prost_reflect::DescriptorPool::decode(articles_proto::FILE_DESCRIPTOR_SET)
        .map_err(|e| StartError::Rest(e.to_string()))?;
    let tokens = Arc::clone(&app.tokens);
    let builder = articles_gateway::GatewayBuilder::new()
        .descriptors(pool)
        .backend(articles_gateway::Backend::from_service(routes))
        .openapi_info(api_info())
        // The write guard's answer before the body is read, not after (see `guard::refusal`).
        .head_check(move |method, headers| {
            if method.parent_service().full_name() != articles_proto::ARTICLE_SERVICE {
                return Ok(());
            }
            crate::grpc::guard::refusal(&tokens, method.name(), headers).map_or(Ok(()), Err)
        });
    let router = http
        .configure(builder)
        .map_err(|e| StartError::Rest(format!("{e:#}")))?
        .build()
        .map_err(|e| StartError::Rest(e.to_string()))?;
    Ok(router.layer(axum::middleware::from_fn_with_state(
        app.store.clone(),
        crate::feed::backlog,
    )))
}

/// The `info` of the article API's OpenAPI document: title `articles`, this crate's version
/// (the proto's `openapiv2_swagger` option says the rest), as `articles-gateway` writes it.
pub fn api_info() -> articles_gateway::openapi::ApiInfo {
    articles_gateway::openapi::ApiInfo {
        title: "articles".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..articles_gateway::openapi::ApiInfo::default()
    }
}

async fn bind(
    addr: std::net::SocketAddr,
) -> Result<(TcpListener, std::net::SocketAddr), StartError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    Ok((listener, local))
}

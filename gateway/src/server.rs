//! Running the gateway: binding, serving with graceful shutdown, and the `run` entry point the
//! binary calls.

use std::{future::Future, net::SocketAddr, time::Duration};

use anyhow::Context as _;
use axum::Router;
use http::HeaderValue;
use prost_reflect::DescriptorPool;
use tokio::net::TcpListener;

use crate::{
    app::{CorsOrigins, Gateway, generic_info},
    backend::Backend,
    config::{ApiArgs, Cli, Command, ServeArgs},
    descriptors,
    openapi::{self, ApiInfo},
    rules::Bindings,
};

/// Serves `router` on `listener` until `shutdown` completes, then drains in-flight requests.
/// Each request carries the peer address (for `X-Forwarded-For`).
///
/// # Errors
/// An I/O error of the listener.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}

/// Installs the `tracing` subscriber: `RUST_LOG` filters (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second initialisation (tests, embedding) keeps the first subscriber.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}

/// Runs the command line: `serve` (the default) or `openapi`.
///
/// # Errors
/// Bad configuration, unloadable descriptors, or a failure to bind the listen address.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => run_serve(cli.serve).await,
        Some(Command::Serve(args)) => run_serve(args).await,
        Some(Command::Openapi(args)) => run_openapi(&args).await,
    }
}

async fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let backend = Backend::connect_lazy(&args.api.backend, args.connect_timeout)?;
    let pool = load_descriptors(&args.api, &backend).await?;
    let router = router(&args, pool, backend)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(listen = %listener.local_addr()?, backend = args.api.backend, "gateway listening");
    serve(listener, router, shutdown_signal()).await?;
    Ok(())
}

/// The router `serve` would serve for these arguments.
///
/// # Errors
/// An invalid CORS origin.
pub fn router(args: &ServeArgs, pool: DescriptorPool, backend: Backend) -> anyhow::Result<Router> {
    let cors = if args.cors_origins.is_empty() {
        CorsOrigins::Any
    } else {
        CorsOrigins::List(
            args.cors_origins
                .iter()
                .map(|o| {
                    HeaderValue::from_str(o).with_context(|| format!("invalid CORS origin {o:?}"))
                })
                .collect::<anyhow::Result<_>>()?,
        )
    };
    let info = api_info(&args.api, &Bindings::from_pool(&pool));
    let mut builder = Gateway::builder()
        .openapi_info(info)
        .descriptors(pool)
        .backend(backend)
        .json(args.api.json_options())
        .body_limit(args.body_limit)
        .concurrency_limit(args.concurrency_limit)
        .timeout(args.timeout)
        .cors(cors);
    for name in &args.ignore_query_params {
        builder = builder.ignore_query_param(name.clone());
    }
    Ok(builder.build()?)
}

/// Loads the descriptors the flags choose: a file, reflection, or the embedded contract.
///
/// # Errors
/// When they cannot be read.
pub async fn load_descriptors(api: &ApiArgs, backend: &Backend) -> anyhow::Result<DescriptorPool> {
    let pool = if let Some(path) = &api.descriptor_set {
        descriptors::from_file(path)?
    } else if api.reflect {
        descriptors::from_reflection(backend)
            .await
            .with_context(|| format!("reading descriptors from {} by reflection", api.backend))?
    } else {
        descriptors::embedded()?
    };
    Ok(pool)
}

/// Prints the OpenAPI document of the API the flags choose, exactly as `/openapi.json`
/// serves it.
async fn run_openapi(args: &ApiArgs) -> anyhow::Result<()> {
    let backend = Backend::connect_lazy(&args.backend, Duration::from_secs(1))?;
    let pool = load_descriptors(args, &backend).await?;
    let bindings = Bindings::from_pool(&pool);
    let doc = openapi::document(&bindings, &args.json_options(), api_info(args, &bindings));
    print!("{}", openapi::to_pretty_json(&doc));
    Ok(())
}

/// The article API's `info` for the embedded contract, a generic one for any other API.
fn api_info(args: &ApiArgs, bindings: &Bindings) -> ApiInfo {
    if args.descriptor_set.is_none() && !args.reflect {
        ApiInfo::articles()
    } else {
        generic_info(bindings)
    }
}

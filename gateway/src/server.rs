//! Running the gateway: binding, serving with graceful shutdown, and the `run` entry point the
//! binary calls. Connections themselves (hyper settings, limits, drain) are [`connections`];
//! reading the descriptors again while serving (interval, SIGHUP) is [`crate::reload`].

mod connections;
pub mod tls;

use std::{future::Future, time::Duration};

use axum::Router;
use http::HeaderValue;
use prost_reflect::DescriptorPool;
use tokio::net::TcpListener;

use crate::{
    app::{CorsOrigins, GatewayBuilder, Reloader, generic_info},
    backend::{Backend, BackendTls, BalanceOptions},
    config::{ApiArgs, Cli, Command, HttpArgs, ServeArgs},
    descriptors,
    openapi::{self, ApiInfo},
    reload::{self, Source},
    rules::Bindings,
    startup::StartError,
};

pub use connections::{Admitted, ConnectionGuard, ServeOptions, Tracked, serve_with};

/// Serves `router` on `listener` until `shutdown` completes, then drains in-flight requests,
/// with the default [`ServeOptions`]. Each request carries the peer address (for
/// `X-Forwarded-For`).
///
/// # Errors
/// An I/O error of the listener.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, shutdown, ServeOptions::default()).await
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

/// Installs the `tracing` subscriber: `RUST_LOG` filters (default `info`). Logs go to stderr, so
/// `openapi`'s stdout is the document alone.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second initialisation (tests, embedding) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: log files and collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// An API compiled into the binary: what the gateway serves when neither `--descriptor-set`
/// nor `--reflect` is given. The gateway library knows no API; a binary brings its own.
#[derive(Debug, Clone)]
pub struct EmbeddedApi {
    /// Its encoded `google.protobuf.FileDescriptorSet`, imports included.
    pub descriptor_set: &'static [u8],
    /// The `info` of its OpenAPI document (other APIs get [`generic_info`]).
    pub info: ApiInfo,
}

/// Runs the command line: `serve` (the default) or `openapi`, over `embedded` when the flags
/// name no other descriptors.
///
/// # Errors
/// Bad configuration, unloadable descriptors, or a failure to bind the listen address.
pub async fn run(cli: Cli, embedded: Option<&EmbeddedApi>) -> Result<(), StartError> {
    match cli.command {
        None => run_serve(cli.serve, embedded).await,
        Some(Command::Serve(args)) => run_serve(args, embedded).await,
        Some(Command::Openapi(args)) => run_openapi(&args, embedded).await,
    }
}

async fn run_serve(args: ServeArgs, embedded: Option<&EmbeddedApi>) -> Result<(), StartError> {
    raise_open_files_limit(args.http.max_client_connections);
    let backend = Backend::balanced(&args.api.backends, &balance_options(&args)?)?;
    // Each replica's first health check is bounded by its timeout; waiting for them means the
    // first requests are not refused for want of a check.
    backend.health_checked().await;
    let pool = load_descriptors(&args.api, embedded, &backend).await?;
    let (router, reloader) = gateway(&args, embedded, pool, backend.clone())?;
    let source = reload_source(&args.api, embedded, &backend);
    // Installed before serving, so a SIGHUP once the gateway answers reloads rather than
    // ending the process.
    let reloading = reload::Reload::new(source, reloader).spawn(args.api.reflect_interval);
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: args.listen,
            source,
        })?;
    let scheme = if args.http.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(listen = %listener.local_addr()?, %scheme, backends = ?args.api.backends, "gateway listening");
    let options = args.http.serve_options()?;
    let served = serve_with(listener, router, shutdown_signal(), options).await;
    reloading.abort();
    served?;
    Ok(())
}

/// Where a reload reads the descriptors again: where they were read at start.
fn reload_source(api: &ApiArgs, embedded: Option<&EmbeddedApi>, backend: &Backend) -> Source {
    match (&api.descriptor_set, embedded) {
        (Some(path), _) => Source::File(path.clone()),
        (None, Some(embedded)) if !api.reflect => Source::Embedded(embedded.descriptor_set),
        _ => Source::Reflection {
            backend: backend.clone(),
            names: api.backends.clone(),
        },
    }
}

/// Raises the soft limit on open files to the hard limit: the default soft limit (often 1024)
/// is below what `--max-client-connections` allows, and running out turns every accept into
/// an error.
pub fn raise_open_files_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            // Each connection holds one descriptor; backends, logs and listeners need some too.
            let wanted = u64::try_from(max_connections)
                .unwrap_or(u64::MAX)
                .saturating_add(64);
            if limit < wanted {
                tracing::warn!(
                    limit,
                    max_connections,
                    "the open files limit is below --max-client-connections; accepts fail first"
                );
            } else {
                tracing::debug!(limit, "open files limit");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
}

/// The router `serve` would serve for these arguments (`embedded` gives the document's `info`
/// when the descriptors are its).
///
/// # Errors
/// An invalid CORS origin.
pub fn router(
    args: &ServeArgs,
    embedded: Option<&EmbeddedApi>,
    pool: DescriptorPool,
    backend: Backend,
) -> Result<Router, StartError> {
    Ok(gateway(args, embedded, pool, backend)?.0)
}

/// [`router`], and the [`Reloader`] that serves other descriptors in its place.
///
/// # Errors
/// An invalid CORS origin.
pub fn gateway(
    args: &ServeArgs,
    embedded: Option<&EmbeddedApi>,
    pool: DescriptorPool,
    backend: Backend,
) -> Result<(Router, Reloader), StartError> {
    let api = args.api.clone();
    let embedded = embedded.cloned();
    // Made again for each version: a generic title follows the services served.
    let builder = GatewayBuilder::new()
        .openapi_info_from(move |bindings| api_info(&api, embedded.as_ref(), bindings))
        .descriptors(pool)
        .backend(backend)
        .mapping(args.api.mapping())
        .json(args.api.json_options());
    Ok(args.http.configure(builder)?.build_reloadable()?)
}

impl HttpArgs {
    /// The builder with these flags' request handling: limits, deadlines, CORS, switches.
    ///
    /// # Errors
    /// An invalid CORS origin.
    pub fn configure(&self, builder: GatewayBuilder) -> Result<GatewayBuilder, StartError> {
        let cors = self.cors()?;
        let mut builder = builder
            .body_limit(self.body_limit)
            .max_query_length(self.max_query_length)
            .max_metadata_bytes(self.max_metadata_bytes)
            .max_response_bytes(self.max_response_bytes)
            .response_buffer_limit(self.response_buffer_limit)
            .body_read_timeout(self.body_read_timeout)
            .min_body_rate(self.min_body_rate)
            .concurrency_limit(self.concurrency_limit)
            .stream_limit(self.stream_limit)
            .timeout(self.timeout)
            .stream_timeout(self.stream_timeout)
            .sse_keepalive(self.sse_keepalive)
            .unknown_fields(self.unknown_fields)
            .unknown_query_params(self.unknown_query_params)
            .error_format(self.error_format)
            .cache_control(
                crate::conditional::CacheControl::parse(&self.cache_control)
                    .map_err(StartError::CacheControl)?,
            )
            .cors(cors);
        for name in &self.ignore_query_params {
            builder = builder.ignore_query_param(name.clone());
        }
        if self.no_docs {
            builder = builder.without_docs();
        }
        if self.no_live_page {
            builder = builder.without_live_page();
        }
        Ok(builder)
    }

    /// The origins `--cors-origin` allows (any when none is given).
    ///
    /// # Errors
    /// An origin that is not a valid header value.
    pub fn cors(&self) -> Result<CorsOrigins, StartError> {
        Ok(if self.cors_origins.is_empty() {
            CorsOrigins::Any
        } else {
            CorsOrigins::List(
                self.cors_origins
                    .iter()
                    .map(|o| {
                        HeaderValue::from_str(o).map_err(|_| StartError::CorsOrigin(o.clone()))
                    })
                    .collect::<Result<_, _>>()?,
            )
        })
    }

    /// The connection settings of these flags, TLS included.
    ///
    /// # Errors
    /// When the TLS certificate or key cannot be loaded.
    pub fn serve_options(&self) -> Result<ServeOptions, StartError> {
        Ok(ServeOptions {
            max_header_bytes: self.max_header_bytes,
            // A call in flight at shutdown gets its whole deadline, and a moment to answer.
            drain_timeout: self.timeout.saturating_add(Duration::from_secs(1)),
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
                _ => None,
            },
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            send_timeout: self.send_timeout,
            max_connections: self.max_client_connections,
            max_query_length: self.max_query_length,
        })
    }
}

/// Loads the descriptors the flags choose: a file, reflection, or else `embedded`.
///
/// # Errors
/// When they cannot be read, or the flags name none and there is no `embedded`.
pub async fn load_descriptors(
    api: &ApiArgs,
    embedded: Option<&EmbeddedApi>,
    backend: &Backend,
) -> Result<DescriptorPool, StartError> {
    match local_descriptors(api, embedded)? {
        Some(pool) => Ok(pool),
        None => reflect_first(api, backend).await,
    }
}

/// The descriptors that need no backend (a file, or `embedded`); `None` when the flags ask
/// for reflection.
fn local_descriptors(
    api: &ApiArgs,
    embedded: Option<&EmbeddedApi>,
) -> Result<Option<DescriptorPool>, StartError> {
    Ok(if let Some(path) = &api.descriptor_set {
        Some(descriptors::from_file(path)?)
    } else if api.reflect {
        None
    } else {
        let embedded = embedded.ok_or(StartError::NoDescriptors)?;
        Some(descriptors::from_bytes(embedded.descriptor_set)?)
    })
}

/// The balancing and health options of `serve`.
///
/// # Errors
/// When the `--backend-ca` file cannot be read.
pub fn balance_options(args: &ServeArgs) -> Result<BalanceOptions, StartError> {
    Ok(BalanceOptions {
        connections: args.backend_connections,
        stream_connections: args.backend_stream_connections,
        failure_threshold: args.failure_threshold,
        max_ejection_percent: args.max_ejection_percent,
        connect_timeout: args.connect_timeout,
        health_interval: args.health_interval,
        health_service: args.health_service.clone(),
        tls: backend_tls(&args.api)?,
    })
}

fn backend_tls(api: &ApiArgs) -> Result<Option<BackendTls>, StartError> {
    Ok(match &api.backend_ca {
        Some(path) => Some(BackendTls::from_ca_file(path)?),
        None => None,
    })
}

/// Reads the descriptors by reflection from the first replica that answers, in order.
async fn reflect_first(api: &ApiArgs, backend: &Backend) -> Result<DescriptorPool, StartError> {
    let replicas = backend.replicas();
    let mut failures = Vec::with_capacity(replicas.len());
    for (index, replica) in replicas.iter().enumerate() {
        let name = reload::replica_name(&api.backends, index);
        match reload::reflect_replica(replica).await {
            Ok(pool) => {
                tracing::info!(backend = name, "descriptors read by reflection");
                return Ok(pool);
            }
            Err(error) => {
                tracing::warn!(
                    backend = name,
                    error,
                    "reflection failed; trying the next backend"
                );
                failures.push(format!("{name}: {error}"));
            }
        }
    }
    Err(StartError::Reflection(failures))
}

/// Prints the OpenAPI document of the API the flags choose, exactly as `/openapi.json`
/// serves it.
///
/// Only `--reflect` reaches a backend: otherwise none is made, so nothing is connected,
/// health-checked or logged.
async fn run_openapi(args: &ApiArgs, embedded: Option<&EmbeddedApi>) -> Result<(), StartError> {
    let pool = match local_descriptors(args, embedded)? {
        Some(pool) => pool,
        None => {
            let options = BalanceOptions {
                tls: backend_tls(args)?,
                ..BalanceOptions::default()
            };
            let backend = Backend::balanced(&args.backends, &options)?;
            reflect_first(args, &backend).await?
        }
    };
    let bindings = Bindings::build(&pool, &args.mapping().load()?)?;
    let doc = openapi::document(
        &bindings,
        &args.json_options(),
        api_info(args, embedded, &bindings),
    );
    print!("{}", openapi::to_pretty_json(&doc));
    Ok(())
}

/// The embedded API's `info` when its descriptors are served, a generic one for any other API.
fn api_info(args: &ApiArgs, embedded: Option<&EmbeddedApi>, bindings: &Bindings) -> ApiInfo {
    let mut info = match embedded {
        Some(embedded) if args.descriptor_set.is_none() && !args.reflect => embedded.info.clone(),
        _ => generic_info(bindings),
    };
    args.openapi.apply(&mut info);
    info
}

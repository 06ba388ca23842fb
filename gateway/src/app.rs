//! Assembling the gateway: descriptors + backend + options into an axum [`Router`].
//!
//! Building the router is apart from binding sockets, so the same router can be served on its
//! own listener ([`crate::server::serve`]) or mounted inside another process (the article
//! service serves it next to its gRPC server, with an in-memory [`Backend`]).
//!
//! Routing is one fallback handler ([`handler`]) that matches requests against the
//! [`RouteTable`]. The gateway's own paths (`/healthz`, `/readyz`, `/metrics`, the OpenAPI
//! routes) are ordinary axum routes, so they win over an annotated route with the same path;
//! such a collision is logged at start ([`collisions`]). The live page at `/` ([`crate::live`])
//! is the exception: it is served only when no annotated route matches `/`. CORS is [`cors`].
//! gRPC and gRPC-Web calls on the same port are told apart before the router and proxied
//! ([`crate::grpc_proxy`]), and Connect calls translated to gRPC ([`crate::connect`]), inside
//! the request id, metrics, trace and CORS layers.
//!
//! What the descriptors decide (routes, request mapping, validation, the OpenAPI document, the
//! live page) is one [`version`] of the API, served through [`crate::served`] so that a
//! [`Reloader`] can swap in another while the gateway serves; the gateway's own routes and
//! layers, the metrics, the backend and the call budgets ([`crate::admission`]) are built
//! once, around every version. The gRPC proxy asks the served version which methods exist.

mod collisions;
mod cors;
mod handler;
mod version;

pub use cors::CorsOrigins;
pub use version::{ReloadError, Reloaded, Reloader, generic_info};

use std::{collections::HashSet, sync::Arc, time::Duration};

use axum::{Router, body::Body};
use prost_reflect::DescriptorPool;
use tower_http::{
    compression::{CompressionLayer, DefaultPredicate, Predicate},
    request_id::PropagateRequestIdLayer,
    trace::TraceLayer,
};

use self::version::{Docs, Recipe};
use crate::{
    admission::Admission,
    backend::{Backend, DEFAULT_MAX_RESPONSE_BYTES},
    buffers::ResponseBudget,
    calls::BodyRead,
    conditional::CacheControl,
    error::{self, ErrorFormat},
    grpc_proxy::{Dispatch, Proxy, ProxyOptions},
    json::JsonOptions,
    limits::{
        DEFAULT_BODY_LIMIT, DEFAULT_BODY_RATE_GRACE, DEFAULT_BODY_READ_TIMEOUT,
        DEFAULT_CONCURRENCY_LIMIT, DEFAULT_MAX_METADATA_BYTES, DEFAULT_MAX_QUERY_LENGTH,
        DEFAULT_MIN_BODY_RATE, DEFAULT_RESPONSE_BUFFER_LIMIT, DEFAULT_SSE_KEEPALIVE,
        DEFAULT_STREAM_LIMIT, DEFAULT_STREAM_TIMEOUT, DEFAULT_TIMEOUT,
    },
    metrics::Metrics,
    openapi::ApiInfo,
    probes, request_id,
    rules::{Bindings, ConfigError, MappingOptions},
    served::{DescriptorVersion, ServedApi},
    transcode::{HeadCheck, RequestOptions, Unknown},
};

/// The gateway's CORS layer for `origins` (preflights, gRPC-Web's headers allowed, every
/// response header exposed), for a server of another kind to answer browsers as the gateway
/// does: the article service's gRPC port, which takes gRPC-Web.
pub fn cors_layer(origins: &CorsOrigins) -> tower_http::cors::CorsLayer {
    cors::layer(origins)
}

/// Why a gateway could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A required part was not given.
    #[error("the gateway needs {0}")]
    Missing(&'static str),
    /// A gRPC API Configuration file cannot be read, or a rule of it does not fit the
    /// descriptors.
    #[error("{0}")]
    Configuration(#[from] ConfigError),
}

/// Builds the gateway's router.
#[derive(Debug)]
pub struct GatewayBuilder {
    pool: Option<DescriptorPool>,
    backend: Option<Backend>,
    json: JsonOptions,
    body_limit: usize,
    max_query_length: usize,
    max_metadata_bytes: usize,
    max_response_bytes: usize,
    response_buffer_limit: usize,
    body_read_timeout: Duration,
    min_body_rate: u64,
    body_rate_grace: Duration,
    concurrency_limit: usize,
    stream_limit: usize,
    timeout: Duration,
    stream_timeout: Duration,
    sse_keepalive: Duration,
    ignored_query_params: HashSet<String>,
    unknown_fields: Unknown,
    unknown_query_params: Unknown,
    error_format: ErrorFormat,
    cors: CorsOrigins,
    extra: Option<Router>,
    docs: Docs,
    live_page: bool,
    head_check: Option<HeadCheck>,
    mapping: MappingOptions,
    cache_control: CacheControl,
}

impl Default for GatewayBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl GatewayBuilder {
    /// Starts building a gateway router, with the default limits ([`crate::limits`]).
    pub fn new() -> Self {
        Self {
            pool: None,
            backend: None,
            json: JsonOptions::default(),
            body_limit: DEFAULT_BODY_LIMIT,
            max_query_length: DEFAULT_MAX_QUERY_LENGTH,
            max_metadata_bytes: DEFAULT_MAX_METADATA_BYTES,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            response_buffer_limit: DEFAULT_RESPONSE_BUFFER_LIMIT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            min_body_rate: DEFAULT_MIN_BODY_RATE,
            body_rate_grace: DEFAULT_BODY_RATE_GRACE,
            concurrency_limit: DEFAULT_CONCURRENCY_LIMIT,
            stream_limit: DEFAULT_STREAM_LIMIT,
            timeout: DEFAULT_TIMEOUT,
            stream_timeout: DEFAULT_STREAM_TIMEOUT,
            sse_keepalive: DEFAULT_SSE_KEEPALIVE,
            ignored_query_params: HashSet::new(),
            unknown_fields: Unknown::Reject,
            unknown_query_params: Unknown::Reject,
            error_format: ErrorFormat::Status,
            cors: CorsOrigins::default(),
            extra: None,
            docs: Docs::default(),
            live_page: true,
            head_check: None,
            mapping: MappingOptions::default(),
            cache_control: CacheControl::default(),
        }
    }

    /// The descriptors whose `google.api.http` rules become routes (required).
    #[must_use]
    pub fn descriptors(mut self, pool: DescriptorPool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Where routes come from besides the annotations: gRPC API Configuration files,
    /// auto-mapping, and which services get routes ([`crate::rules`]). The files are read when
    /// the router is built and again at each reload.
    #[must_use]
    pub fn mapping(mut self, mapping: MappingOptions) -> Self {
        self.mapping = mapping;
        self
    }

    /// `Cache-Control` of successful `GET`/`HEAD` answers, per gRPC method (default none).
    #[must_use]
    pub fn cache_control(mut self, cache_control: CacheControl) -> Self {
        self.cache_control = cache_control;
        self
    }

    /// Where calls go (required).
    #[must_use]
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// How responses are written.
    #[must_use]
    pub fn json(mut self, json: JsonOptions) -> Self {
        self.json = json;
        self
    }

    /// The largest request body accepted, in bytes.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The longest query string accepted, in bytes as sent; longer: 414.
    #[must_use]
    pub fn max_query_length(mut self, bytes: usize) -> Self {
        self.max_query_length = bytes;
        self
    }

    /// The largest metadata forwarded to the backend, in bytes as HTTP/2 counts a header list
    /// (each name and value plus 32); more is answered 431 by the gateway, instead of failing
    /// at the backend with an answer that is no gRPC status.
    #[must_use]
    pub fn max_metadata_bytes(mut self, bytes: usize) -> Self {
        self.max_metadata_bytes = bytes;
        self
    }

    /// The largest response message read from the backend, in bytes (default 4 MiB, what gRPC
    /// clients accept); a larger one is answered 502 with code 8 RESOURCE_EXHAUSTED.
    #[must_use]
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// The longest a request body may take to arrive (default 60 s); slower: 408.
    #[must_use]
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.body_read_timeout = timeout;
        self
    }

    /// The slowest average rate of a request body after its grace (5 s), in bytes per second
    /// (default 240; 0 turns the check off); slower: 408.
    #[must_use]
    pub fn min_body_rate(mut self, bytes_per_second: u64) -> Self {
        self.min_body_rate = bytes_per_second;
        self
    }

    /// How long a body may arrive slower than [`GatewayBuilder::min_body_rate`] (default 5 s).
    #[must_use]
    pub fn body_rate_grace(mut self, grace: Duration) -> Self {
        self.body_rate_grace = grace;
        self
    }

    /// How many unary calls (REST and proxied gRPC) run at once; more are answered 503 (or
    /// UNAVAILABLE) at once. Streams have a budget of their own ([`Self::stream_limit`]).
    #[must_use]
    pub fn concurrency_limit(mut self, requests: usize) -> Self {
        self.concurrency_limit = requests;
        self
    }

    /// How many bytes of whole answers may be held, in all, for clients that have not read
    /// them yet ([`crate::buffers`]); an answer that does not fit is 503.
    #[must_use]
    pub fn response_buffer_limit(mut self, bytes: usize) -> Self {
        self.response_buffer_limit = bytes;
        self
    }

    /// How many long-lived streams (transcoded streaming methods over HTTP, SSE or WebSocket,
    /// proxied gRPC streams) are open at once; more are answered 503 (or UNAVAILABLE) at once.
    /// A stream never holds a [`Self::concurrency_limit`] slot.
    #[must_use]
    pub fn stream_limit(mut self, streams: usize) -> Self {
        self.stream_limit = streams;
        self
    }

    /// The deadline of a call when the client sends no `Grpc-Timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The deadline of a streaming call when the client sends no `Grpc-Timeout`.
    #[must_use]
    pub fn stream_timeout(mut self, timeout: Duration) -> Self {
        self.stream_timeout = timeout;
        self
    }

    /// How long a Server-Sent Events stream may stay silent before a `: keep-alive` comment
    /// is written (default 15 s; zero: never), so that proxies do not cut idle watchers.
    #[must_use]
    pub fn sse_keepalive(mut self, interval: Duration) -> Self {
        self.sse_keepalive = interval;
        self
    }

    /// A query parameter to drop silently (a cache buster such as `_`). Repeatable.
    #[must_use]
    pub fn ignore_query_param(mut self, name: impl Into<String>) -> Self {
        self.ignored_query_params.insert(name.into());
        self
    }

    /// What a JSON body field that the request message does not have does (default: 400).
    #[must_use]
    pub fn unknown_fields(mut self, unknown: Unknown) -> Self {
        self.unknown_fields = unknown;
        self
    }

    /// What a query parameter that names no field does (default: 400).
    #[must_use]
    pub fn unknown_query_params(mut self, unknown: Unknown) -> Self {
        self.unknown_query_params = unknown;
        self
    }

    /// The shape of error bodies (default: google.rpc.Status JSON).
    #[must_use]
    pub fn error_format(mut self, format: ErrorFormat) -> Self {
        self.error_format = format;
        self
    }

    /// The origins allowed by CORS.
    #[must_use]
    pub fn cors(mut self, origins: CorsOrigins) -> Self {
        self.cors = origins;
        self
    }

    /// The `info` of the OpenAPI document served at `/openapi.json` (by default, a title
    /// naming the routed services).
    #[must_use]
    pub fn openapi_info(mut self, info: ApiInfo) -> Self {
        self.docs = Docs::Info(info);
        self
    }

    /// The `info` of the OpenAPI document, made from the bindings of the descriptors served
    /// (again at each reload, so a title naming the services follows them).
    #[must_use]
    pub fn openapi_info_from(
        mut self,
        info: impl Fn(&Bindings) -> ApiInfo + Send + Sync + 'static,
    ) -> Self {
        self.docs = Docs::From(Arc::new(info));
        self
    }

    /// Serves neither `/openapi.json` nor `/docs` (for example when the embedding process
    /// serves its own).
    #[must_use]
    pub fn without_docs(mut self) -> Self {
        self.docs = Docs::Off;
        self
    }

    /// Serves no live page at `/` and no live panel on `/docs` ([`crate::live`]; by default
    /// both are there when the API has a server-streaming route, the page only when no
    /// annotated route matches `/`).
    #[must_use]
    pub fn without_live_page(mut self) -> Self {
        self.live_page = false;
        self
    }

    /// Refuses a request from its head alone, once its route is known and before its body is
    /// read or decompressed ([`HeadCheck`]): for an embedder that knows what its backend
    /// refuses from headers (a write without a valid token). An `Err` is answered as the
    /// backend's status would be. Transcoded calls and streams only; proxied gRPC goes to the
    /// backend headers first anyway.
    #[must_use]
    pub fn head_check(
        mut self,
        check: impl Fn(&prost_reflect::MethodDescriptor, &http::HeaderMap) -> Result<(), tonic::Status>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.head_check = Some(HeadCheck::new(check));
        self
    }

    /// Extra gateway-owned routes (such as `/openapi.json` and `/docs`) merged in; like
    /// `/healthz`, they win over annotated routes and over the live page.
    #[must_use]
    pub fn merge(mut self, router: Router) -> Self {
        self.extra = Some(match self.extra.take() {
            Some(extra) => extra.merge(router),
            None => router,
        });
        self
    }

    /// Resolves every binding and builds the router.
    ///
    /// Methods whose rules are invalid are logged and left out; streaming methods are logged
    /// and their paths answer 501. The standard error and well-known types are added to the
    /// descriptors ([`crate::descriptors::with_standard_types`]).
    ///
    /// # Errors
    /// When the descriptors or the backend are missing, or a configuration file cannot be
    /// served.
    pub fn build(self) -> Result<Router, BuildError> {
        Ok(self.build_reloadable()?.0)
    }

    /// [`GatewayBuilder::build`], and the [`Reloader`] that swaps in the API of other
    /// descriptors while the router serves (see [`crate::served`]).
    ///
    /// # Errors
    /// When the descriptors or the backend are missing, or a configuration file cannot be
    /// served.
    pub fn build_reloadable(self) -> Result<(Router, Reloader), BuildError> {
        let pool = self.pool.ok_or(BuildError::Missing("descriptors"))?;
        let backend = self.backend.ok_or(BuildError::Missing("a backend"))?;
        // One owner of the budgets for every version and for the gRPC proxy.
        let admission = Admission::new(self.concurrency_limit, self.stream_limit);
        let recipe = Recipe {
            backend: backend.clone(),
            admission: admission.clone(),
            json: self.json,
            error_format: self.error_format,
            docs: self.docs,
            live_page: self.live_page,
            request: RequestOptions {
                ignored_query_params: self.ignored_query_params,
                unknown_query_params: self.unknown_query_params,
                names: self.json.names,
                head_check: self.head_check,
                ..RequestOptions::default()
            }
            .unknown_fields(self.unknown_fields),
            body_limit: self.body_limit,
            max_query_length: self.max_query_length,
            max_metadata_bytes: self.max_metadata_bytes,
            max_response_bytes: self.max_response_bytes,
            body_read: BodyRead {
                timeout: self.body_read_timeout,
                min_rate: self.min_body_rate,
                grace: self.body_rate_grace,
            },
            timeout: self.timeout,
            stream_timeout: self.stream_timeout,
            sse_keepalive: (!self.sse_keepalive.is_zero()).then_some(self.sse_keepalive),
            mapping: self.mapping,
            cache_control: self.cache_control,
        };
        let mapping = recipe.mapping.load()?;
        for pattern in mapping.services.unmatched(&pool) {
            tracing::warn!(pattern, "--services names no service of the descriptors");
        }
        let version = DescriptorVersion::of(&pool).with_config(&mapping.config);
        let served = ServedApi::new(recipe.api(pool, &mapping, version)?);
        let proxy = Proxy::new(
            &backend,
            ProxyOptions {
                served: served.clone(),
                timeout: self.timeout,
                stream_timeout: self.stream_timeout,
                admission: admission.clone(),
                max_metadata_bytes: self.max_metadata_bytes,
                body_limit: self.body_limit,
            },
        );
        let metrics = Metrics::new(&backend, &served, &admission);
        let probes = probes::router(backend, served.clone());

        // The gateway's own routes are outside the versions: probes and metrics report on
        // every version, and win over annotated routes as the docs do inside each version.
        let mut router = Router::new()
            .fallback_service(served.service())
            .merge(probes)
            .merge(crate::metrics::router(metrics.clone()));
        if let Some(extra) = self.extra {
            router = router.merge(extra);
        }
        // The gateway's own routes label their metrics by their matched path; the transcoded
        // routes record theirs in `transcode_call`.
        let budget = ResponseBudget::new(self.response_buffer_limit);
        let mut router = router
            .route_layer(axum::middleware::from_fn(crate::metrics::record_matched))
            // Inside the compression layer, which then reads the answer piece by piece, and
            // inside the error format, which then also writes its 503.
            .layer(axum::middleware::from_fn_with_state(
                budget.clone(),
                crate::buffers::account,
            ));
        if self.error_format != ErrorFormat::Status {
            router = router.layer(axum::middleware::from_fn(error::error_format_layer(
                self.error_format,
            )));
        }
        // The layers wrap the whole router once, instead of each route (`Router::layer`): axum
        // clones a route's boxed service for every request, and with the layers inside each
        // route that clone was the whole middleware stack, about 50 allocations per request
        // (callgrind).
        let stack = tower::ServiceBuilder::new()
            // Outermost, so the span, the metadata and the response all see the id.
            .layer(tower::util::MapRequestLayer::new(
                request_id::assign::<Body>,
            ))
            .layer(PropagateRequestIdLayer::new(request_id::X_REQUEST_ID))
            .layer(axum::middleware::from_fn_with_state(
                metrics,
                crate::metrics::track,
            ))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_id::span::<Body>)
                    // A 5xx here is the backend's answer (503 while it is down, 504 past a
                    // deadline), already logged where it arose: a warning, not an error.
                    .on_failure(
                        tower_http::trace::DefaultOnFailure::new().level(tracing::Level::WARN),
                    ),
            )
            .layer(cors::layer(&self.cors))
            // Outside the compression, so that a strong ETag names the coding sent and a
            // 304 compares the tag the client got.
            .layer(axum::middleware::from_fn(crate::conditional::evaluate))
            .layer(CompressionLayer::new().compress_when(DefaultPredicate::new().and(WholeBody)))
            .service(Dispatch::new(
                router,
                proxy,
                served.clone(),
                crate::connect::router(budget),
            ));
        let reloader = Reloader {
            recipe: Arc::new(recipe),
            served,
        };
        Ok((Router::new().fallback_service(stack), reloader))
    }
}

/// Compresses only bodies whose length is known: a stream (NDJSON, SSE, a JSON array, an
/// `HttpBody` download) must reach the client message by message, and a compressor holds
/// bytes back until it has enough of them.
#[derive(Debug, Clone, Copy)]
struct WholeBody;

impl Predicate for WholeBody {
    fn should_compress<B: http_body::Body>(&self, response: &http::Response<B>) -> bool {
        response.body().size_hint().exact().is_some()
    }
}

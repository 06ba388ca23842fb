//! Assembling the gateway: descriptors + backend + options into an axum [`Router`].
//!
//! Building the router is apart from binding sockets, so the same router can be served on its
//! own listener ([`crate::server::serve`]) or mounted inside another process (the article
//! service serves it next to its gRPC server, with an in-memory [`Backend`]).
//!
//! Routing is one fallback handler that matches requests against the [`RouteTable`]: axum's
//! path router cannot express `{name=shelves/*}`, `**` or `:verb`. The gateway's own paths
//! (`/healthz`, `/readyz`, `/metrics`, the OpenAPI routes) are ordinary axum routes, so they win over an
//! annotated route with the same path; such a collision is logged at start.

use std::{borrow::Cow, collections::HashSet, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, Request, State},
    response::{IntoResponse, Response},
    routing::get,
};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use prost_reflect::{DescriptorPool, ReflectMessage, SerializeOptions};
use tokio::sync::Semaphore;
use tower_http::{
    compression::CompressionLayer,
    cors::{AllowMethods, AllowOrigin, CorsLayer, ExposeHeaders},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::{
    backend::{Backend, CallError, CallOptions, UnaryResponse},
    constraints::Constraints,
    descriptors,
    error::{self, BackendError, Error, ErrorFormat},
    json::JsonOptions,
    metadata,
    metrics::{Metrics, RouteSlot},
    openapi::{self, ApiInfo},
    probes, request_id,
    routes::{Lookup, RouteTable},
    rules::{Bindings, BodyRule},
    template::split_request_path,
    transcode::{self, RequestOptions, Unknown},
};

/// The default request body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// The default limit on a query string's length, in bytes as sent: 8 KiB.
pub const DEFAULT_MAX_QUERY_LENGTH: usize = 8 * 1024;
/// The default number of requests transcoded at once before new ones are shed.
pub const DEFAULT_CONCURRENCY_LIMIT: usize = 1024;
/// The default deadline of a call when the client sends no `Grpc-Timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Which origins may call the API from a browser.
#[derive(Debug, Clone, Default)]
pub enum CorsOrigins {
    /// Any origin, without credentials (`Access-Control-Allow-Origin: *`): the API is
    /// authenticated with bearer tokens, not cookies, so a wildcard exposes nothing a script
    /// could not already do with its own token.
    #[default]
    Any,
    /// Only these origins.
    List(Vec<HeaderValue>),
}

/// The gateway.
#[derive(Debug, Clone, Copy)]
pub struct Gateway;

impl Gateway {
    /// Starts building a gateway router.
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder::default()
    }
}

/// Why a gateway could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A required part was not given.
    #[error("the gateway needs {0}")]
    Missing(&'static str),
}

/// Builds the gateway's router.
#[derive(Debug)]
pub struct GatewayBuilder {
    pool: Option<DescriptorPool>,
    backend: Option<Backend>,
    json: JsonOptions,
    body_limit: usize,
    max_query_length: usize,
    concurrency_limit: usize,
    timeout: Duration,
    ignored_query_params: HashSet<String>,
    unknown_fields: Unknown,
    unknown_query_params: Unknown,
    error_format: ErrorFormat,
    cors: CorsOrigins,
    extra: Option<Router>,
    docs: Docs,
}

/// Whether and how `/openapi.json` and `/docs` are served.
#[derive(Debug, Clone, Default)]
enum Docs {
    /// Served, with an `info` section named after the routed services.
    #[default]
    Generic,
    /// Served with this `info`.
    Info(ApiInfo),
    /// Not served.
    Off,
}

impl Default for GatewayBuilder {
    fn default() -> Self {
        Self {
            pool: None,
            backend: None,
            json: JsonOptions::default(),
            body_limit: DEFAULT_BODY_LIMIT,
            max_query_length: DEFAULT_MAX_QUERY_LENGTH,
            concurrency_limit: DEFAULT_CONCURRENCY_LIMIT,
            timeout: DEFAULT_TIMEOUT,
            ignored_query_params: HashSet::new(),
            unknown_fields: Unknown::Reject,
            unknown_query_params: Unknown::Reject,
            error_format: ErrorFormat::Status,
            cors: CorsOrigins::default(),
            extra: None,
            docs: Docs::default(),
        }
    }
}

impl GatewayBuilder {
    /// The descriptors whose `google.api.http` rules become routes (required).
    #[must_use]
    pub fn descriptors(mut self, pool: DescriptorPool) -> Self {
        self.pool = Some(pool);
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

    /// How many requests are transcoded at once; more are answered 503 at once.
    #[must_use]
    pub fn concurrency_limit(mut self, requests: usize) -> Self {
        self.concurrency_limit = requests;
        self
    }

    /// The deadline of a call when the client sends no `Grpc-Timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
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

    /// Serves neither `/openapi.json` nor `/docs` (for example when the embedding process
    /// serves its own).
    #[must_use]
    pub fn without_docs(mut self) -> Self {
        self.docs = Docs::Off;
        self
    }

    /// Extra gateway-owned routes (such as `/openapi.json` and `/docs`) merged in; like
    /// `/healthz`, they win over annotated routes.
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
    /// descriptors ([`descriptors::with_standard_types`]).
    ///
    /// # Errors
    /// When the descriptors or the backend are missing.
    pub fn build(self) -> Result<Router, BuildError> {
        let pool =
            descriptors::with_standard_types(self.pool.ok_or(BuildError::Missing("descriptors"))?);
        let backend = self.backend.ok_or(BuildError::Missing("a backend"))?;
        let metrics = Metrics::new(&backend);
        let bindings = Bindings::from_pool(&pool);
        for skipped in &bindings.skipped {
            tracing::warn!(
                method = skipped.method,
                reason = skipped.reason,
                "method not routed"
            );
        }
        for unserved in &bindings.unserved {
            tracing::warn!(
                method = unserved.method.full_name(),
                route = %format_args!("{} {}", unserved.http_method, unserved.template),
                "streaming method not served yet: its route answers 501"
            );
        }
        let table = RouteTable::new(&bindings);
        for route in table.routes() {
            tracing::debug!(
                http = %format_args!("{} {}", route.binding.http_method, route.binding.template),
                grpc = %route.grpc_path,
                "route"
            );
        }
        warn_collisions(&table);
        let docs = match self.docs {
            Docs::Off => None,
            Docs::Info(info) => Some(openapi::document(&bindings, &self.json, info)),
            Docs::Generic => Some(openapi::document(
                &bindings,
                &self.json,
                generic_info(&bindings),
            )),
        };
        tracing::info!(
            routes = table.routes().len(),
            skipped = bindings.skipped.len(),
            "routes built"
        );

        let constraints = Arc::new(Constraints::from_pool(&pool));
        let shared = Arc::new(Shared {
            table,
            backend,
            pool,
            serialize: self.json.serialize_options(),
            request: RequestOptions {
                ignored_query_params: self.ignored_query_params,
                unknown_query_params: self.unknown_query_params,
                constraints,
                ..RequestOptions::default()
            }
            .unknown_fields(self.unknown_fields),
            body_limit: self.body_limit,
            max_query_length: self.max_query_length,
            timeout: self.timeout,
            permits: Semaphore::new(self.concurrency_limit),
        });

        let mut router = Router::new()
            .route("/healthz", get(probes::healthz).fallback(probes::get_only))
            .route("/readyz", get(probes::readyz).fallback(probes::get_only))
            .fallback(transcode_request)
            .with_state(shared);
        router = router.merge(crate::metrics::router(metrics.clone()));
        if let Some(doc) = &docs {
            router = router.merge(openapi::docs_router(doc));
        }
        if let Some(extra) = self.extra {
            router = router.merge(extra);
        }
        // The gateway's own routes label their metrics by their matched path; the transcoded
        // routes record theirs in `transcode_call`.
        let mut router =
            router.route_layer(axum::middleware::from_fn(crate::metrics::record_matched));
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
            .layer(SetRequestIdLayer::new(
                request_id::X_REQUEST_ID,
                MakeRequestUuid,
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
            .layer(cors_layer(&self.cors))
            .layer(CompressionLayer::new())
            .service(router);
        Ok(Router::new().fallback_service(stack))
    }
}

/// What every request needs, resolved once at start.
#[derive(Debug)]
pub(crate) struct Shared {
    table: RouteTable,
    pub(crate) backend: Backend,
    pool: DescriptorPool,
    serialize: SerializeOptions,
    request: RequestOptions,
    body_limit: usize,
    max_query_length: usize,
    timeout: Duration,
    permits: Semaphore,
}

/// An `info` for an API known only by its descriptors: titled after its routed services.
pub fn generic_info(bindings: &Bindings) -> ApiInfo {
    let mut services: Vec<&str> = bindings
        .bindings
        .iter()
        .map(|b| b.method.parent_service().full_name())
        .collect();
    services.dedup();
    ApiInfo {
        title: if services.is_empty() {
            "API".to_owned()
        } else {
            services.join(", ")
        },
        version: "unversioned".to_owned(),
        description: None,
    }
}

fn warn_collisions(table: &RouteTable) {
    for path in probes::GATEWAY_PATHS {
        let (segments, _) = split_request_path(path, |_| false);
        for route in table.routes() {
            if route.binding.template.is_match(&segments, None) {
                tracing::warn!(
                    path,
                    route = %format_args!("{} {}", route.binding.http_method, route.binding.template),
                    method = route.binding.method.full_name(),
                    "annotated route collides with a gateway path; the gateway path wins"
                );
            }
        }
    }
}

fn cors_layer(origins: &CorsOrigins) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods(AllowMethods::mirror_request())
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static(metadata::GRPC_TIMEOUT),
            HeaderName::from_static("x-request-id"),
        ])
        // `Grpc-Metadata-*` cannot be listed by prefix; without credentials `*` exposes all.
        .expose_headers(ExposeHeaders::any())
        .max_age(Duration::from_secs(600));
    match origins {
        CorsOrigins::Any => layer.allow_origin(AllowOrigin::any()),
        CorsOrigins::List(list) => layer.allow_origin(AllowOrigin::list(list.iter().cloned())),
    }
}

/// The fallback handler: every request not for a gateway path.
async fn transcode_request(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let head = request.method() == Method::HEAD;
    let mut response = match transcode_call(&shared, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    if head {
        // HEAD answers GET's headers, including its length, without the body.
        let length = http_body::Body::size_hint(response.body()).exact();
        *response.body_mut() = Body::empty();
        if let Some(length) = length {
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
    }
    response
}

async fn transcode_call(shared: &Shared, request: Request) -> Result<Response, Error> {
    // Shed rather than queue: a queued request would only time out later.
    let _permit = shared
        .permits
        .try_acquire()
        .map_err(|_| Error::Overloaded)?;
    let (parts, body) = request.into_parts();
    // The call's deadline is fixed here, once, and owned by the call from now on.
    let timeout = metadata::grpc_timeout(&parts.headers)
        .map_err(|e| Error::InvalidArgument(e.to_string()))?
        .unwrap_or(shared.timeout);
    // A GET or HEAD has no effect to repeat: it may be sent again to another replica.
    let options =
        CallOptions::within(timeout).idempotent(matches!(parts.method, Method::GET | Method::HEAD));
    if let Some(query) = parts.uri.query()
        && query.len() > shared.max_query_length
    {
        return Err(Error::UriTooLong {
            limit: shared.max_query_length,
        });
    }
    let path = parts.uri.path();
    let (raw_segments, verb) = split_request_path(path, |v| shared.table.has_verb(v));
    let segments = raw_segments
        .iter()
        .map(|s| transcode::path_segment(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::InvalidArgument(format!("{e} in the request path {path:?}")))?;

    let (route, captures) = match shared.table.lookup(&parts.method, &segments, verb) {
        Lookup::Found { route, captures } => (route, captures),
        Lookup::MethodNotAllowed(allow) => {
            return Err(Error::MethodNotAllowed {
                method: parts.method,
                allow,
            });
        }
        Lookup::NotFound => return Err(Error::NotFound(path.to_owned())),
    };
    RouteSlot::record(&parts.extensions, route.binding.method.full_name());
    if !route.served {
        return Err(Error::Unimplemented(format!(
            "{} is a streaming method, which this gateway does not serve yet",
            route.binding.method.full_name()
        )));
    }

    let body = match route.binding.body {
        // A body on a route without one is ignored, as grpc-gateway does.
        BodyRule::None => Bytes::new(),
        _ => read_body(body, &parts.headers, shared.body_limit).await?,
    };
    if !body.is_empty() {
        transcode::check_content_type(parts.headers.get(header::CONTENT_TYPE))?;
    }
    let (message, system) = transcode::request_message(
        &route.binding,
        captures,
        parts.uri.query(),
        &body,
        &shared.request,
    )?;
    let serialize = if system.enum_numbers {
        Cow::Owned(shared.serialize.clone().use_enum_numbers(true))
    } else {
        Cow::Borrowed(&shared.serialize)
    };

    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let metadata = metadata::request_metadata(&parts.headers, client);
    let accept_trailers = metadata::accepts_trailers(&parts.headers);
    let grpc_request = tonic::Request::from_parts(metadata, tonic::Extensions::default(), message);
    let UnaryResponse { message, metadata } = shared
        .backend
        .unary(
            route.grpc_path.clone(),
            grpc_request,
            route.binding.method.output(),
            options,
        )
        .await
        .map_err(|e| backend_error(e, &shared.pool, &serialize, accept_trailers))?;

    let json = transcode::to_json(&message, route.binding.response_body.as_ref(), &serialize)
        .map_err(|e| {
            Error::Internal(format!(
                "serializing {} as JSON: {e}",
                message.descriptor().full_name()
            ))
        })?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    metadata::response_headers(&metadata.headers, &mut headers);
    let mut response = (StatusCode::OK, headers, json).into_response();
    metadata::attach_trailers(
        &mut response,
        metadata::response_trailers(&metadata.trailers, accept_trailers),
    );
    Ok(response)
}

/// A failed call as the gateway's error: its details as JSON, its metadata as headers and
/// (when the client reads them) trailers.
fn backend_error(
    error: CallError,
    pool: &DescriptorPool,
    serialize: &SerializeOptions,
    accept_trailers: bool,
) -> Error {
    let (status, metadata) = error.into_parts();
    let mut headers = HeaderMap::new();
    metadata::response_headers(&metadata.headers, &mut headers);
    BackendError {
        code: status.code(),
        message: status.message().to_owned(),
        details: error::details::render(status.details(), pool, serialize),
        headers,
        trailers: metadata::response_trailers(&metadata.trailers, accept_trailers),
    }
    .into()
}

/// Reads the body up to `limit` bytes: a declared or actual larger body is a 413.
async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, Error> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Error::PayloadTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(Error::PayloadTooLarge { limit })
        }
        Err(e) => Err(Error::InvalidArgument(format!(
            "reading the request body failed: {e}"
        ))),
    }
}

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

use std::{collections::HashSet, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    handler::Handler as _,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, header};
use prost_reflect::DescriptorPool;
use tokio::sync::Semaphore;
use tower_http::{
    compression::{CompressionLayer, DefaultPredicate, Predicate},
    cors::{AllowMethods, AllowOrigin, CorsLayer, ExposeHeaders},
    decompression::RequestDecompressionLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::{
    backend::{Backend, CallOptions, DEFAULT_MAX_RESPONSE_BYTES, UnaryResponse},
    calls::{BodyRead, Calls, message_response},
    constraints::Constraints,
    descriptors,
    detach::Detached,
    error::{self, Error, ErrorFormat},
    json::JsonOptions,
    limits::{
        DEFAULT_BODY_LIMIT, DEFAULT_BODY_RATE_GRACE, DEFAULT_BODY_READ_TIMEOUT,
        DEFAULT_CONCURRENCY_LIMIT, DEFAULT_MAX_METADATA_BYTES, DEFAULT_MAX_QUERY_LENGTH,
        DEFAULT_MIN_BODY_RATE, DEFAULT_STREAM_TIMEOUT, DEFAULT_TIMEOUT,
    },
    metadata,
    metrics::{Metrics, RouteSlot},
    openapi::{self, ApiInfo},
    probes, request_id,
    routes::{Lookup, RouteTable},
    rules::{Bindings, BodyRule},
    stream,
    template::split_request_path,
    transcode::{self, RequestOptions, Unknown},
};

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
    max_metadata_bytes: usize,
    max_response_bytes: usize,
    body_read_timeout: Duration,
    min_body_rate: u64,
    body_rate_grace: Duration,
    concurrency_limit: usize,
    timeout: Duration,
    stream_timeout: Duration,
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
            max_metadata_bytes: DEFAULT_MAX_METADATA_BYTES,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            min_body_rate: DEFAULT_MIN_BODY_RATE,
            body_rate_grace: DEFAULT_BODY_RATE_GRACE,
            concurrency_limit: DEFAULT_CONCURRENCY_LIMIT,
            timeout: DEFAULT_TIMEOUT,
            stream_timeout: DEFAULT_STREAM_TIMEOUT,
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

    /// The deadline of a streaming call when the client sends no `Grpc-Timeout`.
    #[must_use]
    pub fn stream_timeout(mut self, timeout: Duration) -> Self {
        self.stream_timeout = timeout;
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
        let probes = probes::router(backend.clone());
        let bindings = Bindings::from_pool(&pool);
        for skipped in &bindings.skipped {
            tracing::warn!(
                method = skipped.method,
                reason = skipped.reason,
                "method not routed"
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
            Docs::Info(info) => Some(openapi::document_with(
                &bindings,
                &self.json,
                info,
                self.error_format,
            )),
            Docs::Generic => Some(openapi::document_with(
                &bindings,
                &self.json,
                generic_info(&bindings),
                self.error_format,
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
            calls: Arc::new(Calls {
                backend,
                pool,
                serialize: self.json.serialize_options(),
                request: RequestOptions {
                    ignored_query_params: self.ignored_query_params,
                    unknown_query_params: self.unknown_query_params,
                    constraints,
                    names: self.json.names,
                    ..RequestOptions::default()
                }
                .unknown_fields(self.unknown_fields),
                body_limit: self.body_limit,
                max_metadata_bytes: self.max_metadata_bytes,
                max_response_bytes: self.max_response_bytes,
                body_read: BodyRead {
                    timeout: self.body_read_timeout,
                    min_rate: self.min_body_rate,
                    grace: self.body_rate_grace,
                },
            }),
            max_query_length: self.max_query_length,
            timeout: self.timeout,
            stream_timeout: self.stream_timeout,
            permits: Arc::new(Semaphore::new(self.concurrency_limit)),
        });

        // Request bodies are decompressed (gzip, br, deflate, zstd) before they are read, so the
        // body limit counts decompressed bytes: a compression bomb costs no more than the limit.
        // An encoding it does not know passes through, for the handler to answer 415.
        let transcode = tower::ServiceBuilder::new()
            .layer(RequestDecompressionLayer::new().pass_through_unaccepted(true))
            .service(transcode_request.with_state(Arc::clone(&shared)));
        let mut router = Router::new()
            .fallback_service(transcode)
            .with_state(shared)
            .merge(probes);
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
            .layer(CompressionLayer::new().compress_when(DefaultPredicate::new().and(WholeBody)))
            .service(router);
        Ok(Router::new().fallback_service(stack))
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

/// What every request needs, resolved once at start.
#[derive(Debug)]
pub(crate) struct Shared {
    table: RouteTable,
    /// What calls need; shared with streams, which outlive their handler.
    pub(crate) calls: Arc<Calls>,
    max_query_length: usize,
    timeout: Duration,
    stream_timeout: Duration,
    /// Requests in flight; a stream holds its permit until it ends.
    permits: Arc<Semaphore>,
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
        ..ApiInfo::default()
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
    let (mut parts, body) = request.into_parts();
    // Still there after the decompression layer: an encoding it does not decode.
    if let Some(encoding) = parts.headers.get(header::CONTENT_ENCODING)
        && !encoding.as_bytes().eq_ignore_ascii_case(b"identity")
    {
        return Err(Error::UnsupportedEncoding(
            String::from_utf8_lossy(encoding.as_bytes()).into_owned(),
        ));
    }
    let timeout = metadata::grpc_timeout(&parts.headers)
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    if let Some(query) = parts.uri.query()
        && query.len() > shared.max_query_length
    {
        return Err(Error::UriTooLong {
            limit: shared.max_query_length,
        });
    }
    let path = parts.uri.path().to_owned();
    let (raw_segments, verb) = split_request_path(&path, |v| shared.table.has_verb(v));
    let segments = raw_segments
        .iter()
        .map(|s| transcode::path_segment(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::InvalidArgument(format!("{e} in the request path {path:?}")))?;

    // A WebSocket upgrade goes to the streaming route of its path, whatever that route's
    // HTTP method; without one, the request is served as the plain GET it also is.
    let mut websocket = stream::is_websocket_upgrade(&parts);
    let mut lookup = Lookup::NotFound;
    if websocket {
        lookup = shared.table.lookup_stream(&segments, verb);
        websocket = matches!(lookup, Lookup::Found { .. });
    }
    if !websocket {
        lookup = shared.table.lookup(&parts.method, &segments, verb);
    }
    let (route, captures) = match lookup {
        Lookup::Found { route, captures } => (route, captures),
        Lookup::MethodNotAllowed(allow) => {
            return Err(Error::MethodNotAllowed {
                method: parts.method,
                allow,
            });
        }
        Lookup::NotFound => return Err(Error::NotFound(path)),
    };
    RouteSlot::record(&parts.extensions, route.binding.method.full_name());

    // Shed rather than queue: a queued request would only time out later.
    let acquire = || {
        Arc::clone(&shared.permits)
            .try_acquire_owned()
            .map_err(|_| Error::Overloaded)
    };
    if route.binding.is_streaming() {
        let permit = acquire()?;
        // The call's deadline is fixed here, once, and owned by the call from now on.
        let options = CallOptions::within(timeout.unwrap_or(shared.stream_timeout))
            .max_response_bytes(shared.calls.max_response_bytes);
        let call = stream::StreamCall {
            calls: Arc::clone(&shared.calls),
            route: route.clone(),
            captures,
            options,
            permit,
        };
        return if websocket {
            stream::websocket(call, &mut parts).await
        } else {
            stream::serve(call, parts, body).await
        };
    }
    // A GET or HEAD has no effect to repeat: it may be sent again to another replica.
    let options = CallOptions::within(timeout.unwrap_or(shared.timeout))
        .idempotent(matches!(parts.method, Method::GET | Method::HEAD))
        .max_response_bytes(shared.calls.max_response_bytes);
    let calls = &shared.calls;

    let raw = route.raw_request.as_ref();
    let body = match route.binding.body {
        // A body on a route without one is ignored, as grpc-gateway does.
        BodyRule::None => Bytes::new(),
        _ => calls.read_body(body, &parts.headers).await?,
    };
    // Taken once the body is in: a slow body holds its connection, never a slot (as nginx
    // reads the body before it passes the request on).
    let permit = acquire()?;
    let content_type = parts.headers.get(header::CONTENT_TYPE);
    if !body.is_empty() && raw.is_none() {
        transcode::check_content_type(content_type)?;
    }
    let json_body = if raw.is_some() { &[][..] } else { &body[..] };
    // A write without credentials: the backend authenticates it before any field rule is
    // told (the rules stay the backend's to check as well).
    let rules = if !matches!(parts.method, Method::GET | Method::HEAD)
        && !parts.headers.contains_key(header::AUTHORIZATION)
    {
        transcode::Rules::Defer
    } else {
        transcode::Rules::Check
    };
    let (mut message, system) = transcode::request_message_with(
        &route.binding,
        captures,
        parts.uri.query(),
        json_body,
        &calls.request,
        rules,
    )?;
    if let Some(target) = &raw {
        let content_type = content_type
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        transcode::http_body::fill(&mut message, target, content_type, body);
    }
    let serialize = calls.serialize_for(system);

    let metadata = calls.metadata(&parts)?;
    let accept_trailers = metadata::accepts_trailers(&parts.headers);
    let grpc_request = tonic::Request::from_parts(metadata, tonic::Extensions::default(), message);
    // The call holds the slot until it ends, and a client that hangs up does not cancel it
    // (see `detach`); the deadline still bounds it, the slot bounds how many run.
    let call = calls.backend.unary(
        route.grpc_path.clone(),
        grpc_request,
        route.binding.method.output(),
        options,
    );
    let answer = Detached::new(async move {
        let answer = call.await;
        drop(permit);
        answer
    })
    .await;
    let UnaryResponse { message, metadata } =
        answer.map_err(|e| calls.error(e, &serialize, accept_trailers))?;

    let mut response = message_response(&message, route, &serialize)?;
    metadata::response_headers(&metadata.headers, response.headers_mut());
    metadata::attach_trailers(
        &mut response,
        metadata::response_trailers(&metadata.trailers, accept_trailers),
    );
    Ok(response)
}

//! The gateway's Prometheus metrics, recorded by one middleware around every route and served
//! at `GET /metrics` in the Prometheus text format 0.0.4 (with `prometheus-client`, as the
//! article service does):
//!
//! - `articles_gateway_http_requests_total{route, status, protocol}`: finished HTTP requests
//!   (`protocol`: `rest`, `grpc`, `grpc-web` or `connect`);
//! - `articles_gateway_http_request_duration_seconds{route}`: their latency until the response
//!   head, a histogram;
//! - `articles_gateway_http_requests_in_flight`: requests being answered;
//! - `articles_gateway_backend_up{backend}`: 1 while a replica gets calls, else 0;
//! - `articles_gateway_backend_in_flight{backend}`, `articles_gateway_backend_calls_total{backend}`:
//!   calls in progress on, and sent to, each replica;
//! - `articles_gateway_backend_retries_total`: idempotent calls sent again to another replica;
//! - `articles_gateway_admission_slots_in_use{budget}`, `articles_gateway_admission_slots{budget}`:
//!   the unary and stream budgets' slots taken, and their sizes ([`crate::admission`]);
//! - `articles_gateway_descriptors_info{version}`: 1, labelled with the version of the served
//!   descriptors ([`crate::served::DescriptorVersion`]);
//! - `articles_gateway_descriptors_loaded_timestamp_seconds`: when they were loaded;
//! - `articles_gateway_descriptor_reloads_total{result}`: reloads by outcome (`changed`,
//!   `unchanged`, `disagreed`, `failed`).
//!
//! The `route` label is never the raw path, so its cardinality is bounded by the API: the gRPC
//! method of the matched binding (recorded by the transcoding handler through [`RouteSlot`]),
//! the matched path of the gateway's own routes (`/healthz`, `/metrics`, ...), the gRPC path of
//! a proxied gRPC or gRPC-Web call to a method the descriptors, health or reflection name
//! ([`crate::grpc_proxy`]), or `unmatched`. The backend metrics are read from the [`Backend`]
//! at scrape time, the descriptor metrics from the [`ServedApi`].
//!
//! The latency buckets ([`latency_histogram`]) and the text exposition ([`encode`],
//! [`exposition`]) are public so that the article service's metrics use the same ones.

use std::{
    sync::{Arc, OnceLock},
    time::Instant,
};

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http::{Extensions, header};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, prometheus_text},
    metrics::{
        MetricType,
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::{ConstGauge, Gauge},
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::{
    backend::Backend,
    served::{Outcome, ServedApi},
};

/// The `route` label of requests no route matched.
pub const UNMATCHED: &str = "unmatched";

/// The labels of a finished request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
    /// `rest`, `grpc`, `grpc-web` or `connect`: the same gRPC path is the route of a gRPC, a
    /// gRPC-Web and a Connect call.
    protocol: &'static str,
}

/// The `protocol` label of a request dispatch did not mark: REST (the gateway's own paths
/// included).
const REST: &str = "rest";

/// The labels of a route.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// A latency histogram in seconds, 0.5 ms .. about 16 s (doubling): the gateway's and the
/// service's, so their latencies compare bucket for bucket.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The values in `registry` in the Prometheus text format 0.0.4.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail; an error would be an encoder bug, and a partial
    // text is still the best answer to a scrape.
    if let Err(err) = prometheus_text::encode(&mut text, registry) {
        tracing::error!(error = %err, "cannot encode metrics");
    }
    text
}

/// The answer to a scrape of `registry`: [`encode`]'s text with its content type.
pub fn exposition(registry: &Registry) -> Response {
    (
        [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
        encode(registry),
    )
        .into_response()
}

/// The gateway's metrics (cheap to clone: clones share the values).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    in_flight: Gauge,
}

impl Metrics {
    /// A fresh registry, with the backend metrics read from `backend`, the descriptor metrics
    /// from `served` and the budgets' from `admission` at each scrape.
    pub(crate) fn new(
        backend: &Backend,
        served: &ServedApi,
        admission: &crate::admission::Admission,
    ) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let in_flight = Gauge::default();
        let mut registry = Registry::with_prefix("articles_gateway");
        registry.register(
            "http_requests",
            "Finished HTTP requests by route (gRPC method or gateway path), status and protocol",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency in seconds until the response head, by route",
            latency.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being answered",
            in_flight.clone(),
        );
        registry.register_collector(Box::new(BackendCollector(backend.clone())));
        registry.register_collector(Box::new(DescriptorCollector(served.clone())));
        registry.register_collector(Box::new(admission.clone()));
        Self {
            registry: Arc::new(registry),
            requests,
            latency,
            in_flight,
        }
    }

    /// The current values in the Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        encode(&self.registry)
    }

    fn record(&self, route: String, status: u16, protocol: &'static str, seconds: f64) {
        self.latency
            .get_or_create(&RouteLabels {
                route: route.clone(),
            })
            .observe(seconds);
        self.requests
            .get_or_create(&RequestLabels {
                route,
                status,
                protocol,
            })
            .inc();
    }
}

/// Where the transcoding handler writes the route of a request, for the middleware to label
/// it with (a request extension shared by both).
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteSlot {
    route: Arc<OnceLock<String>>,
    /// Written by dispatch, for what is not REST.
    protocol: Arc<OnceLock<&'static str>>,
}

impl RouteSlot {
    /// Labels the request that carries `extensions` with `route` (first call wins).
    pub(crate) fn record(extensions: &Extensions, route: &str) {
        if let Some(slot) = extensions.get::<Self>() {
            let _ = slot.route.set(route.to_owned());
        }
    }

    /// Labels the request that carries `extensions` with the protocol it speaks (`grpc`,
    /// `grpc-web`, `connect`; unmarked: `rest`).
    pub(crate) fn record_protocol(extensions: &Extensions, protocol: &'static str) {
        if let Some(slot) = extensions.get::<Self>() {
            let _ = slot.protocol.set(protocol);
        }
    }
}

/// Decrements the in-flight gauge when the request is done, even if its future is dropped.
struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The route layer of the gateway's own routes: labels the request with its matched path.
pub(crate) async fn record_matched(request: Request, next: Next) -> Response {
    if let Some(path) = request.extensions().get::<MatchedPath>() {
        RouteSlot::record(request.extensions(), path.as_str());
    }
    next.run(request).await
}

/// The middleware: counts and times every request.
pub(crate) async fn track(
    State(metrics): State<Metrics>,
    mut request: Request,
    next: Next,
) -> Response {
    metrics.in_flight.inc();
    let _in_flight = InFlight(metrics.in_flight.clone());
    let started = Instant::now();
    let slot = RouteSlot::default();
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    let route = slot
        .route
        .get()
        .cloned()
        .unwrap_or_else(|| UNMATCHED.to_owned());
    metrics.record(
        route,
        response.status().as_u16(),
        slot.protocol.get().copied().unwrap_or(REST),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics`.
pub(crate) async fn scrape(State(metrics): State<Metrics>) -> Response {
    exposition(&metrics.registry)
}

/// The backend metrics, read from the replicas' state at each scrape.
#[derive(Debug)]
struct BackendCollector(Backend);

impl Collector for BackendCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let retries = ConstCounter::new(self.0.retries());
        retries.encode(encoder.encode_descriptor(
            "backend_retries",
            "Idempotent calls sent again to another backend replica after UNAVAILABLE",
            None,
            retries.metric_type(),
        )?)?;
        let replicas = self.0.replica_statuses();
        if replicas.is_empty() {
            return Ok(());
        }
        let mut up = encoder.encode_descriptor(
            "backend_up",
            "1 while a backend replica gets calls (healthy), else 0",
            None,
            MetricType::Gauge,
        )?;
        for replica in &replicas {
            let labels = [("backend", replica.uri.as_str())];
            ConstGauge::new(i64::from(replica.up)).encode(up.encode_family(&labels)?)?;
        }
        let mut in_flight = encoder.encode_descriptor(
            "backend_in_flight",
            "Calls in progress on a backend replica",
            None,
            MetricType::Gauge,
        )?;
        for replica in &replicas {
            let labels = [("backend", replica.uri.as_str())];
            let value = i64::try_from(replica.in_flight).unwrap_or(i64::MAX);
            ConstGauge::new(value).encode(in_flight.encode_family(&labels)?)?;
        }
        let mut calls = encoder.encode_descriptor(
            "backend_calls",
            "Calls sent to a backend replica (retries included)",
            None,
            MetricType::Counter,
        )?;
        for replica in &replicas {
            let labels = [("backend", replica.uri.as_str())];
            ConstCounter::new(replica.calls).encode(calls.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The descriptor metrics, read from the served API at each scrape.
#[derive(Debug)]
struct DescriptorCollector(ServedApi);

impl Collector for DescriptorCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let loaded = self.0.loaded();
        let info = ConstGauge::new(1_i64);
        info.encode(
            encoder
                .encode_descriptor(
                    "descriptors_info",
                    "The version of the served descriptors (a hash of the descriptor set), as a label",
                    None,
                    info.metric_type(),
                )?
                .encode_family(&[("version", loaded.version.as_str())])?,
        )?;
        let at = ConstGauge::new(loaded.timestamp_seconds());
        at.encode(encoder.encode_descriptor(
            "descriptors_loaded_timestamp_seconds",
            "When the served descriptors were loaded, in seconds since the Unix epoch",
            None,
            at.metric_type(),
        )?)?;
        let mut reloads = encoder.encode_descriptor(
            "descriptor_reloads",
            "Descriptor reloads by result: changed, unchanged, disagreed (replicas answered \
             different descriptors), failed",
            None,
            MetricType::Counter,
        )?;
        for outcome in Outcome::ALL {
            let labels = [("result", outcome.label())];
            ConstCounter::new(self.0.reloads(outcome)).encode(reloads.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The `/metrics` route, for the gateway's router (any other method: 405).
pub(crate) fn router<S: Clone + Send + Sync + 'static>(metrics: Metrics) -> axum::Router<S> {
    axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(scrape).fallback(crate::probes::get_only),
        )
        .with_state(metrics)
}

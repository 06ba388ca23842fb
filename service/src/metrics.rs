//! Prometheus metrics of the service and their HTTP exposition at `/metrics`.
//!
//! [`Metrics`] owns a registry with:
//! - `articles_grpc_requests_total{service, method, code}`: finished gRPC calls by status code
//!   (canonical names such as `OK`, `NOT_FOUND`),
//! - `articles_grpc_request_duration_seconds{service, method}`: their latency histogram,
//! - `articles_database_up`: 1 while the database answers the health check, else 0,
//! - `articles_database_pool_connections{pool, state}`: open pooled connections (`idle` or
//!   `in_use`) of the `primary` and, if configured, the `read` pool, sampled at scrape time.
//!
//! The request metrics are recorded by the [`observe`](crate::observe) layer; [`serve`] answers
//! `GET /metrics` in the Prometheus text format 0.0.4 on a listener of its own.

use std::sync::Arc;

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use prometheus_client::{
    encoding::{EncodeLabelSet, prometheus_text},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use tokio::net::TcpListener;

use crate::{
    error::{Result, StartError},
    store::Store,
};

/// The labels of a finished call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CallLabels {
    service: String,
    method: String,
    code: &'static str,
}

/// The labels of a method.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MethodLabels {
    service: String,
    method: String,
}

/// The labels of a pool gauge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PoolLabels {
    pool: &'static str,
    state: &'static str,
}

type HistogramFamily = Family<MethodLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms .. about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The service's metrics (cheap to clone: all clones share the same values).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<CallLabels, Counter>,
    latency: HistogramFamily,
    database_up: Gauge,
    pool: Family<PoolLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with all metrics at zero (the database counts as up).
    pub fn new() -> Self {
        let requests = Family::<CallLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let database_up = Gauge::default();
        database_up.set(1);
        let pool = Family::<PoolLabels, Gauge>::default();
        let mut registry = Registry::with_prefix("articles");
        registry.register(
            "grpc_requests",
            "Finished gRPC calls by service, method and status code",
            requests.clone(),
        );
        registry.register(
            "grpc_request_duration_seconds",
            "gRPC call latency in seconds, until the last byte of the response",
            latency.clone(),
        );
        registry.register(
            "database_up",
            "1 while the database answers the health check, 0 while it does not",
            database_up.clone(),
        );
        registry.register(
            "database_pool_connections",
            "Open pooled database connections by pool and state",
            pool.clone(),
        );
        Self {
            registry: Arc::new(registry),
            requests,
            latency,
            database_up,
            pool,
        }
    }

    /// Records one finished call.
    pub fn record_call(&self, service: &str, method: &str, code: &'static str, seconds: f64) {
        self.requests
            .get_or_create(&CallLabels {
                service: service.to_owned(),
                method: method.to_owned(),
                code,
            })
            .inc();
        self.latency
            .get_or_create(&MethodLabels {
                service: service.to_owned(),
                method: method.to_owned(),
            })
            .observe(seconds);
    }

    /// Sets the database health gauge.
    pub fn set_database_up(&self, up: bool) {
        self.database_up.set(i64::from(up));
    }

    /// Samples the pool gauges from `store`.
    pub fn sample_pools(&self, store: &Store) {
        for stats in store.pool_stats() {
            let idle = i64::from(stats.idle);
            let in_use = i64::from(stats.size.saturating_sub(stats.idle));
            for (state, value) in [("idle", idle), ("in_use", in_use)] {
                self.pool
                    .get_or_create(&PoolLabels {
                        pool: stats.pool,
                        state,
                    })
                    .set(value);
            }
        }
    }

    /// The current values in the Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; an error here would be a bug of the encoder, and
        // a partial text is still the best answer to a scrape.
        if let Err(err) = prometheus_text::encode(&mut text, &self.registry) {
            tracing::error!(error = %err, "cannot encode metrics");
        }
        text
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes, sampling the pool gauges of
/// `store` at each scrape.
///
/// # Errors
/// [`StartError::Metrics`] when the HTTP server fails.
pub async fn serve<F>(
    listener: TcpListener,
    metrics: Metrics,
    store: Store,
    shutdown: F,
) -> Result<(), StartError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state((metrics, store));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(StartError::Metrics)
}

async fn scrape(State((metrics, store)): State<(Metrics, Store)>) -> impl IntoResponse {
    metrics.sample_pools(&store);
    (
        [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
        metrics.render(),
    )
}

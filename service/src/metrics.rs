//! Prometheus metrics of the service and their HTTP exposition at `/metrics`.
//!
//! [`Metrics`] owns a registry with:
//! - `articles_grpc_requests_total{service, method, code}`: finished gRPC calls by status code
//!   (canonical names such as `OK`, `NOT_FOUND`),
//! - `articles_grpc_request_duration_seconds{service, method}`: their latency histogram,
//! - `articles_database_up`: 1 while the database answers the health check, else 0,
//! - `articles_database_pool_connections{pool, state}`: open pooled connections (`idle` or
//!   `in_use`) of the `primary` and, if configured, the `read` pool, sampled at scrape time,
//! - `articles_event_table_reads_total`: reads of the event table (the one poller's, and each
//!   watcher's batches), sampled at scrape time: idle watchers add none.
//!
//! The request metrics are recorded by the [`observe`](crate::observe) layer; [`serve`] answers
//! `GET /metrics` in the Prometheus text format 0.0.4 on a listener of its own.
//!
//! The latency buckets and the text exposition are the gateway's
//! ([`articles_gateway::metrics`]), the same for both. The rest is not shared: the metrics
//! themselves differ (gRPC calls and database pools here, HTTP routes and replicas there), and
//! the gateway's `Metrics` registers its replica collector at construction.

use std::sync::Arc;

use articles_gateway::metrics::{encode, exposition, latency_histogram};
use axum::{Router, extract::State, response::Response, routing::get};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
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

/// The service's metrics (cheap to clone: all clones share the same values).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<CallLabels, Counter>,
    latency: HistogramFamily,
    database_up: Gauge,
    pool: Family<PoolLabels, Gauge>,
    event_reads: Counter,
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
        let event_reads = Counter::default();
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
        registry.register(
            "event_table_reads",
            "Reads of the event table: the watchers' poller and their batches",
            event_reads.clone(),
        );
        Self {
            registry: Arc::new(registry),
            requests,
            latency,
            database_up,
            pool,
            event_reads,
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

    /// Samples the pool gauges and the event table reads from `store`.
    pub fn sample_pools(&self, store: &Store) {
        // The store's count only grows: the counter follows it.
        let reads = store.event_table_reads();
        self.event_reads
            .inc_by(reads.saturating_sub(self.event_reads.get()));
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
        encode(&self.registry)
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

async fn scrape(State((metrics, store)): State<(Metrics, Store)>) -> Response {
    metrics.sample_pools(&store);
    exposition(&metrics.registry)
}

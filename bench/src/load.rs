//! The closed-loop load generator, the same for every target.
//!
//! [`run`] opens C connections (one per worker: a hyper HTTP/1.1 connection for REST, a tonic
//! channel for gRPC), then each worker sends a request, waits for the whole answer, records the
//! latency in its own histogram and sends the next, until the warm-up plus the measured time
//! is over or the shared request cap is reached. Requests that start during the warm-up are
//! not recorded. The worker histograms are merged at the end. A failed call (non-200, gRPC
//! status, transport error) counts as an error and is not recorded; a broken REST connection
//! is reopened.

mod call;
pub(crate) mod grpc;
pub(crate) mod rest;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use futures::future::try_join_all;
use tokio::{task::JoinSet, time::Instant};

use crate::stats::{self, Hist, Summary};

pub(crate) use self::call::{CallError, Op};
use self::{
    grpc::{GrpcConn, GrpcEndpoint},
    rest::{RestConn, RestEndpoint},
};

/// How long after the end of the measured time a worker may still wait for an answer.
const GRACE: Duration = Duration::from_secs(10);

/// A target's protocol and address.
#[derive(Debug, Clone)]
pub(crate) enum Endpoint {
    /// JSON over HTTP/1.1.
    Rest(RestEndpoint),
    /// gRPC over HTTP/2.
    Grpc(GrpcEndpoint),
}

/// What a row asks for, request after request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scenario {
    /// The same list page every time.
    List {
        page: i32,
        /// Articles per page.
        page_size: i32,
    },
    /// Article details, the id cycling over `1..=ids`.
    Detail {
        /// How many ids to cycle over.
        ids: u32,
    },
}

impl Scenario {
    /// The request number `seq` of this scenario.
    pub(crate) fn op(self, seq: u64) -> Op {
        match self {
            Self::List { page, page_size } => Op::List { page, page_size },
            Self::Detail { ids } => {
                let pk = seq % u64::from(ids.max(1)) + 1;
                Op::Detail {
                    pk: i32::try_from(pk).unwrap_or(i32::MAX),
                }
            }
        }
    }

    /// A short name for tables: `list`, `detail`, or `list p5000` for other pages.
    pub(crate) fn name(self) -> String {
        match self {
            Self::List { page: 1, .. } => "list".to_owned(),
            Self::List { page, .. } => format!("list p{page}"),
            Self::Detail { .. } => "detail".to_owned(),
        }
    }
}

/// One worker's connection.
#[derive(Debug)]
pub(crate) enum Conn {
    /// An HTTP/1.1 connection.
    Rest(RestConn),
    /// A gRPC channel.
    Grpc(GrpcConn),
}

impl Conn {
    /// Opens a connection to `endpoint`.
    ///
    /// # Errors
    /// Connection failures.
    pub(crate) async fn connect(endpoint: &Endpoint) -> Result<Self> {
        Ok(match endpoint {
            Endpoint::Rest(e) => Self::Rest(RestConn::connect(e).await?),
            Endpoint::Grpc(e) => Self::Grpc(GrpcConn::connect(e).await?),
        })
    }

    /// Performs `op` and reads the whole answer.
    ///
    /// # Errors
    /// See [`CallError`].
    pub(crate) async fn call(&mut self, op: &Op) -> Result<(), CallError> {
        match self {
            Self::Rest(c) => c.call(op).await,
            Self::Grpc(c) => c.call(op).await,
        }
    }
}

/// How hard and how long to drive a target.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadSpec {
    /// Workers, each with its own connection.
    pub(crate) connections: usize,
    /// Unrecorded time before measuring.
    pub(crate) warmup: Duration,
    /// Measured time.
    pub(crate) duration: Duration,
    /// The most requests to measure (over all workers).
    pub(crate) max_requests: u64,
}

/// The result of driving one target with one scenario.
#[derive(Debug)]
pub(crate) struct Measurement {
    /// Latencies of the successful measured requests.
    pub(crate) hist: Hist,
    /// Failed measured requests.
    pub(crate) errors: u64,
    /// From the end of the warm-up to the last measured answer.
    pub(crate) elapsed: Duration,
    /// The first error seen, for the report.
    pub(crate) first_error: Option<String>,
}

impl Measurement {
    /// Successful measured requests.
    pub(crate) fn ok(&self) -> u64 {
        self.hist.len()
    }

    /// Successful requests per second.
    pub(crate) fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok() as f64 / secs
        } else {
            0.0
        }
    }

    /// The latency percentiles.
    pub(crate) fn summary(&self) -> Summary {
        Summary::of(&self.hist)
    }
}

/// The phases of a run, shared by its workers.
#[derive(Debug, Clone, Copy)]
struct Clock {
    measure_start: Instant,
    deadline: Instant,
    hard_deadline: Instant,
}

/// What one worker brings back.
#[derive(Debug)]
struct WorkerResult {
    hist: Hist,
    errors: u64,
    last_end: Option<Instant>,
    first_error: Option<String>,
}

/// Drives `endpoint` with `scenario` as `spec` says.
///
/// # Errors
/// A connection could not be opened before the run, or a worker panicked.
pub(crate) async fn run(
    endpoint: &Endpoint,
    scenario: Scenario,
    spec: LoadSpec,
) -> Result<Measurement> {
    if spec.connections == 0 {
        bail!("no connections");
    }
    let conns = try_join_all((0..spec.connections).map(|_| Conn::connect(endpoint)))
        .await
        .with_context(|| format!("opening {} connections", spec.connections))?;
    let now = Instant::now();
    let measure_start = now + spec.warmup;
    let deadline = measure_start + spec.duration;
    let clock = Clock {
        measure_start,
        deadline,
        hard_deadline: deadline + GRACE,
    };
    let issued = Arc::new(AtomicU64::new(0));
    let stride = spec.connections as u64;
    let mut workers = JoinSet::new();
    for (index, conn) in conns.into_iter().enumerate() {
        workers.spawn(worker(
            conn,
            endpoint.clone(),
            scenario,
            (index as u64, stride),
            clock,
            (Arc::clone(&issued), spec.max_requests),
        ));
    }
    let mut hist = stats::new_hist();
    let mut errors = 0;
    let mut last_end = None::<Instant>;
    let mut first_error = None;
    while let Some(done) = workers.join_next().await {
        let result = done.context("load worker panicked")?;
        stats::merge(&mut hist, &result.hist)?;
        errors += result.errors;
        last_end = last_end.max(result.last_end);
        first_error = first_error.or(result.first_error);
    }
    let elapsed = last_end.map_or(Duration::ZERO, |end| end - measure_start);
    Ok(Measurement {
        hist,
        errors,
        elapsed,
        first_error,
    })
}

/// One closed-loop worker. `(index, stride)` spreads the request numbers over the workers;
/// `(issued, max)` is the shared measured-request cap.
async fn worker(
    mut conn: Conn,
    endpoint: Endpoint,
    scenario: Scenario,
    (index, stride): (u64, u64),
    clock: Clock,
    (issued, max): (Arc<AtomicU64>, u64),
) -> WorkerResult {
    let mut out = WorkerResult {
        hist: stats::new_hist(),
        errors: 0,
        last_end: None,
        first_error: None,
    };
    let hard = tokio::time::sleep_until(clock.hard_deadline);
    tokio::pin!(hard);
    let mut seq = index;
    loop {
        let start = Instant::now();
        if start >= clock.deadline {
            break;
        }
        let measuring = start >= clock.measure_start;
        if measuring && issued.fetch_add(1, Ordering::Relaxed) >= max {
            break;
        }
        let op = scenario.op(seq);
        seq += stride;
        let result = tokio::select! {
            biased;
            result = conn.call(&op) => result,
            () = &mut hard => Err(CallError::Broken("no answer by the end of the run".into())),
        };
        let end = Instant::now();
        if measuring {
            out.last_end = Some(end);
            match &result {
                Ok(()) => stats::record(&mut out.hist, end - start),
                Err(err) => {
                    out.errors += 1;
                    if out.first_error.is_none() {
                        out.first_error = Some(err.to_string());
                    }
                }
            }
        }
        if end >= clock.hard_deadline {
            break;
        }
        if let Err(CallError::Broken(_)) = result {
            match reconnect(&endpoint, clock.deadline).await {
                Some(fresh) => conn = fresh,
                None => break,
            }
        }
    }
    out
}

/// Reopens a connection, retrying every 20 ms until `deadline`.
async fn reconnect(endpoint: &Endpoint, deadline: Instant) -> Option<Conn> {
    while Instant::now() < deadline {
        if let Ok(conn) = Conn::connect(endpoint).await {
            return Some(conn);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{call::loopback_addr, *};

    #[test]
    fn detail_ids_cycle_from_one() {
        let s = Scenario::Detail { ids: 3 };
        let pks: Vec<Op> = (0..4).map(|i| s.op(i)).collect();
        assert_eq!(
            pks,
            [1, 2, 3, 1].map(|pk| Op::Detail { pk }).to_vec(),
            "ids 1..=3 in turn"
        );
        assert_eq!(
            Scenario::List {
                page: 5000,
                page_size: 10
            }
            .name(),
            "list p5000"
        );
    }

    #[tokio::test]
    async fn only_loopback_targets() {
        assert!(loopback_addr("127.0.0.1", 1).await.is_ok());
        assert!(loopback_addr("localhost", 1).await.is_ok());
        assert!(loopback_addr("10.0.0.1", 1).await.is_err());
    }
}

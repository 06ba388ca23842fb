//! What is known of each replica: how replicas are reached and watched
//! ([`BalanceOptions`]), the counters its transport, its health watcher and the balancer share
//! ([`ReplicaState`]), and the state reported for it ([`ReplicaStatus`]).

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use super::tls::BackendTls;
use crate::limits::DEFAULT_BACKEND_STREAM_CONNECTIONS;

/// How replicas are reached and watched.
#[derive(Debug, Clone)]
pub struct BalanceOptions {
    /// How many HTTP/2 connections each replica gets for unary calls (at least 1).
    pub connections: usize,
    /// The most HTTP/2 connections each replica gets for streams, opened as streams need them
    /// (at least 1). Each carries as many streams as the replica allows, 100 at most.
    pub stream_connections: usize,
    /// How many health checks without an answer, or calls failing at the transport, in a row
    /// take a replica out (at least 1).
    pub failure_threshold: u32,
    /// The largest share of the replicas that call failures may take out, in percent (one
    /// replica at least).
    pub max_ejection_percent: u8,
    /// How long a connection attempt to a replica may take.
    pub connect_timeout: Duration,
    /// How often each replica's health is checked.
    pub health_interval: Duration,
    /// The service name the health check asks about (`""`: the whole server).
    pub health_service: String,
    /// The trust for `https://` replicas (`None`: the webpki roots only).
    pub tls: Option<BackendTls>,
}

/// The default connections per replica: one per core, at least two.
pub fn default_connections() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
}

impl Default for BalanceOptions {
    fn default() -> Self {
        Self {
            connections: default_connections(),
            stream_connections: DEFAULT_BACKEND_STREAM_CONNECTIONS,
            failure_threshold: 3,
            max_ejection_percent: 50,
            connect_timeout: Duration::from_secs(1),
            health_interval: Duration::from_secs(1),
            health_service: String::new(),
            tls: None,
        }
    }
}

/// A replica's state, as the last health check and the calls in progress left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The replica's URI, as configured.
    pub uri: String,
    /// Whether it gets calls: its last health check answered SERVING (or UNIMPLEMENTED: no
    /// health service) and no call failed at the transport level since.
    pub up: bool,
    /// Why it is up or down, in words: `SERVING`, `no health service ...`, `NOT_SERVING`,
    /// a transport failure, `not checked yet`.
    pub health: String,
    /// Calls in progress on it.
    pub in_flight: usize,
    /// Calls sent to it so far (retries included).
    pub calls: u64,
}

/// The counters of one replica, shared by its transport, its watcher and the balancer.
#[derive(Debug)]
pub(super) struct ReplicaState {
    up: AtomicBool,
    in_flight: AtomicUsize,
    pub(super) calls: AtomicU64,
    /// Calls in a row that failed at the transport.
    pub(super) failures: AtomicU32,
    /// Why `up` has its value; written when it changes, read by `/readyz` and the watcher.
    why: Mutex<String>,
}

impl Default for ReplicaState {
    fn default() -> Self {
        Self {
            up: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            calls: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            why: Mutex::new("not checked yet".to_owned()),
        }
    }
}

impl ReplicaState {
    /// Records the health and why; returns the previous value of `up`.
    pub(super) fn set_up(&self, up: bool, why: &str) -> bool {
        let mut reason = self.why.lock().unwrap_or_else(PoisonError::into_inner);
        if *reason != why {
            why.clone_into(&mut reason);
        }
        self.up.swap(up, Ordering::AcqRel)
    }

    pub(super) fn why(&self) -> String {
        self.why
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub(super) fn load(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a call until the guard is dropped.
    pub(super) fn begin(self: &Arc<Self>) -> InFlight {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }
}

/// A call in progress on a replica.
pub(super) struct InFlight(pub(super) Arc<ReplicaState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

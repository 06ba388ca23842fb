//! What is known of each replica: how replicas are reached and watched
//! ([`BalanceOptions`]), the counters its transport, its health watcher and the balancer share
//! ([`ReplicaState`]), the one owner of every replica's up/down state ([`Fleet`]), and the state
//! reported for it ([`ReplicaStatus`]).

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
    failures: AtomicU32,
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
    /// Records the health and why; returns the previous value of `up`. Only [`Fleet`] calls
    /// it, under its lock.
    fn set_up(&self, up: bool, why: &str) -> bool {
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

    /// The call reached the replica and was answered: its run of transport failures ends.
    pub(super) fn answered(&self) {
        self.failures.store(0, Ordering::Relaxed);
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

/// The one owner of every replica's up/down state. Two things feed it, each replica's health
/// watcher and the outcomes of calls, and only it changes the state, one change at a time: two
/// replicas failing at once cannot both pass the `max_ejection_percent` check before either
/// is counted out.
#[derive(Debug)]
pub(super) struct Fleet {
    states: Vec<Arc<ReplicaState>>,
    /// Calls in a row failing at the transport that take a replica out.
    threshold: u32,
    /// The most replicas call failures may leave out (replicas down by health count too).
    max_ejected: usize,
    /// Held while a replica's state is changed.
    transitions: Mutex<()>,
}

impl Fleet {
    /// `count` replicas, none up until their first health check.
    pub(super) fn new(count: usize, options: &BalanceOptions) -> Self {
        Self {
            states: (0..count)
                .map(|_| Arc::new(ReplicaState::default()))
                .collect(),
            threshold: options.failure_threshold.max(1),
            max_ejected: (count * usize::from(options.max_ejection_percent.min(100)) / 100).max(1),
            transitions: Mutex::new(()),
        }
    }

    /// The state of the replica at `index`.
    pub(super) fn state(&self, index: usize) -> Option<&Arc<ReplicaState>> {
        self.states.get(index)
    }

    /// A health check's verdict on the replica at `index`: up or down, and why. Returns
    /// whether it was up before.
    pub(super) fn health(&self, index: usize, up: bool, why: &str) -> bool {
        let Some(state) = self.states.get(index) else {
            return false;
        };
        let _transition = self
            .transitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state.set_up(up, why)
    }

    /// A call on the replica at `index` failed at the transport: counted, and at the
    /// threshold the replica is taken out, unless as many are out already as may be.
    pub(super) fn call_failed(&self, index: usize, uri: &str, code: tonic::Code) {
        let Some(state) = self.states.get(index) else {
            return;
        };
        let failures = state.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < self.threshold {
            return;
        }
        let _transition = self
            .transitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !state.is_up() {
            return;
        }
        let out = self.states.iter().filter(|s| !s.is_up()).count();
        if out >= self.max_ejected {
            tracing::warn!(
                replica = uri,
                failures,
                "backend replica failing, left in: the most replicas that may be out are out"
            );
            return;
        }
        let why = format!("{failures} calls in a row failed at the transport ({code:?})");
        if state.set_up(false, &why) {
            tracing::warn!(replica = uri, health = why, "backend replica down");
        }
    }
}

/// A call in progress on a replica.
pub(super) struct InFlight(pub(super) Arc<ReplicaState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use super::*;

    fn fleet(count: usize, max_ejection_percent: u8) -> Arc<Fleet> {
        let options = BalanceOptions {
            failure_threshold: 2,
            max_ejection_percent,
            ..BalanceOptions::default()
        };
        let fleet = Arc::new(Fleet::new(count, &options));
        for index in 0..count {
            fleet.health(index, true, "SERVING");
        }
        fleet
    }

    fn out(fleet: &Fleet) -> usize {
        fleet.states.iter().filter(|s| !s.is_up()).count()
    }

    #[test]
    fn call_failures_take_a_replica_out_at_the_threshold_and_an_answer_resets_the_run() {
        let fleet = fleet(4, 50);
        fleet.call_failed(0, "a", tonic::Code::Unavailable);
        assert_eq!(out(&fleet), 0, "one failure is not a dead replica");
        if let Some(state) = fleet.state(0) {
            state.answered();
        }
        fleet.call_failed(0, "a", tonic::Code::Unavailable);
        assert_eq!(out(&fleet), 0, "the answer ended the run");
        fleet.call_failed(0, "a", tonic::Code::Unavailable);
        assert_eq!(out(&fleet), 1);
        assert!(
            fleet
                .state(0)
                .is_some_and(|s| s.why().contains("2 calls in a row"))
        );
        // The health watcher brings it back.
        assert!(!fleet.health(0, true, "SERVING"));
        assert_eq!(out(&fleet), 0);
    }

    #[test]
    fn call_failures_never_take_out_more_than_the_ejection_budget() {
        // 50% of 4: two replicas may be out; one already is by its health check.
        let fleet = fleet(4, 50);
        fleet.health(3, false, "NOT_SERVING");
        for index in 0..3 {
            for _ in 0..5 {
                fleet.call_failed(index, "r", tonic::Code::Unavailable);
            }
        }
        assert_eq!(out(&fleet), 2);
    }

    #[test]
    fn failures_arriving_at_once_on_every_replica_respect_the_ejection_budget() {
        // Bounded: 300 rounds of 8 threads, each failing its own replica past the threshold
        // at the same moment; without one owner of the transitions, several saw "none out
        // yet" and all went out.
        for _ in 0..300 {
            let fleet = fleet(8, 25);
            let start = Arc::new(Barrier::new(8));
            let threads: Vec<_> = (0..8)
                .map(|index| {
                    let fleet = Arc::clone(&fleet);
                    let start = Arc::clone(&start);
                    std::thread::spawn(move || {
                        fleet.call_failed(index, "r", tonic::Code::Unavailable);
                        start.wait();
                        fleet.call_failed(index, "r", tonic::Code::Unavailable);
                    })
                })
                .collect();
            for thread in threads {
                thread.join().expect("a failing thread");
            }
            assert_eq!(out(&fleet), 2, "25% of 8");
        }
    }
}

//! Call admission: the one owner of the budgets every call is admitted against, REST and
//! proxied gRPC alike.
//!
//! Why two budgets: a unary call holds its slot for milliseconds, a stream (an SSE watcher, a
//! WebSocket, a proxied gRPC watch) for minutes or hours, mostly idle. Counted against one
//! limit, a few thousand idle watchers would take every slot and shed every other call, writes
//! too. So:
//! - a unary call (a transcoded unary method; a proxied gRPC call the descriptors name as
//!   unary, or a health `Check`) takes a slot of [`Budget::Unary`] (`--concurrency-limit`);
//! - every long-lived stream (a transcoded server, client or bidirectional stream, over
//!   HTTP/1.1, HTTP/2, SSE or a WebSocket; a proxied gRPC streaming call, or one the
//!   descriptors do not name) takes a slot of [`Budget::Stream`] (`--stream-limit`), and never
//!   a unary one, so streams, however many and however idle, cannot take what unary calls need.
//!
//! REST and the gRPC proxy share both budgets: what starves calls is streams, not protocols,
//! and one budget per kind means no second pool sized by the same flag (which would make the
//! flag mean twice its value).
//!
//! Over either budget a call is shed at once (503, or UNAVAILABLE trailers-only for gRPC) with
//! a message naming the budget and its flag, never queued: a queued call would only time out
//! later. The budgets are built once for the gateway, around every API version, so a reload
//! neither resets nor doubles them and streams still open on an old version keep their slots.

use std::sync::Arc;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, gauge::ConstGauge},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Error;

/// Which budget a call is admitted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Unary calls: `--concurrency-limit`.
    Unary,
    /// Long-lived streams: `--stream-limit`.
    Stream,
}

impl Budget {
    /// The flag that sizes this budget.
    pub fn flag(self) -> &'static str {
        match self {
            Self::Unary => "--concurrency-limit",
            Self::Stream => "--stream-limit",
        }
    }

    /// What its slots hold, for messages and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unary => "unary",
            Self::Stream => "stream",
        }
    }
}

/// The gateway's budgets (cheap to clone: clones share them).
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    unary: Pool,
    stream: Pool,
}

#[derive(Debug, Clone)]
struct Pool {
    slots: Arc<Semaphore>,
    limit: usize,
}

impl Pool {
    fn new(limit: usize) -> Self {
        // `Semaphore::new` panics past its maximum; a limit that large means "no limit".
        let limit = limit.min(Semaphore::MAX_PERMITS);
        Self {
            slots: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }
}

/// An admitted call's slot, given back when dropped (when the call, or its stream, ends).
#[derive(Debug)]
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl Admission {
    /// Budgets of `unary` calls and `streams` at once.
    pub(crate) fn new(unary: usize, streams: usize) -> Self {
        Self {
            unary: Pool::new(unary),
            stream: Pool::new(streams),
        }
    }

    fn pool(&self, budget: Budget) -> &Pool {
        match budget {
            Budget::Unary => &self.unary,
            Budget::Stream => &self.stream,
        }
    }

    /// A slot of `budget`, or [`Error::Overloaded`] at once when every slot is taken.
    pub(crate) fn admit(&self, budget: Budget) -> Result<Slot, Error> {
        let pool = self.pool(budget);
        Arc::clone(&pool.slots)
            .try_acquire_owned()
            .map(|permit| Slot { _permit: permit })
            .map_err(|_| Error::Overloaded {
                budget,
                limit: pool.limit,
            })
    }

    /// How many slots of `budget` are taken, and its limit.
    pub(crate) fn in_use(&self, budget: Budget) -> (usize, usize) {
        let pool = self.pool(budget);
        (
            pool.limit.saturating_sub(pool.slots.available_permits()),
            pool.limit,
        )
    }
}

/// `articles_gateway_admission_slots_in_use{budget}` and `articles_gateway_admission_slots{budget}`,
/// read at each scrape: how close each budget is to shedding.
impl Collector for Admission {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let budgets = [Budget::Unary, Budget::Stream];
        let gauge = |n: usize| ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX));
        let mut in_use = encoder.encode_descriptor(
            "admission_slots_in_use",
            "Slots taken: unary calls (--concurrency-limit) or open streams (--stream-limit)",
            None,
            MetricType::Gauge,
        )?;
        for budget in budgets {
            let labels = [("budget", budget.name())];
            gauge(self.in_use(budget).0).encode(in_use.encode_family(&labels)?)?;
        }
        let mut limits = encoder.encode_descriptor(
            "admission_slots",
            "Slots of each budget; a call past them is shed with 503 / UNAVAILABLE",
            None,
            MetricType::Gauge,
        )?;
        for budget in budgets {
            let labels = [("budget", budget.name())];
            gauge(self.in_use(budget).1).encode(limits.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_and_unary_calls_count_against_their_own_budgets() {
        let admission = Admission::new(1, 2);
        let streams = [
            admission.admit(Budget::Stream),
            admission.admit(Budget::Stream),
        ];
        assert!(streams.iter().all(Result::is_ok));
        let Err(Error::Overloaded { budget, limit }) = admission.admit(Budget::Stream) else {
            panic!("a third stream was admitted");
        };
        assert_eq!((budget, limit), (Budget::Stream, 2));
        // Both streams held: the unary slot is still there.
        let unary = admission.admit(Budget::Unary);
        assert!(unary.is_ok());
        assert_eq!(admission.in_use(Budget::Unary), (1, 1));
        assert_eq!(admission.in_use(Budget::Stream), (2, 2));
        drop(streams);
        assert_eq!(admission.in_use(Budget::Stream), (0, 2));
    }

    #[test]
    fn a_limit_past_what_a_semaphore_holds_is_no_limit_rather_than_a_panic() {
        let admission = Admission::new(usize::MAX, usize::MAX);
        assert!(admission.admit(Budget::Unary).is_ok());
    }
}

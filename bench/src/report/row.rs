//! The measured rows: one target, scenario and concurrency each, with the CPU each process
//! spent per request. Both the report and [`super::peer`]'s comparisons read them.

use serde::Serialize;

use crate::{stack::Role, stats::Summary};

/// One target driven with one scenario at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    /// The target's label.
    pub(crate) target: String,
    /// The target's role.
    pub(crate) role: Role,
    /// `list` or `detail`.
    pub(crate) scenario: String,
    /// Workers (= connections).
    pub(crate) connections: usize,
    /// Successful measured requests.
    pub(crate) requests: u64,
    /// Failed measured requests.
    pub(crate) errors: u64,
    /// Measured seconds.
    pub(crate) seconds: f64,
    /// Successful requests per second.
    pub(crate) requests_per_second: f64,
    /// Latency of the successful requests.
    pub(crate) latency: Summary,
    /// The first error seen, or why the row could not run.
    pub(crate) error: Option<String>,
    /// CPU time each watched process spent per request during this row's run.
    pub(crate) cpu: Vec<CpuShare>,
}

/// The CPU time one process spent per request of a row: its CPU time over the row's whole
/// run (warm-up included) divided by the requests of that run (the measured rate times its
/// wall time). Processes the row does not involve show as (nearly) zero.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CpuShare {
    /// The process (`service`, `gateway`, ..., `load generator`).
    pub(crate) process: String,
    /// Microseconds of CPU per request.
    pub(crate) us_per_request: f64,
}

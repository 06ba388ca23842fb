//! The soak's result: counts per kind, errors, throughput, latency, RSS of both processes and
//! the pass/fail [`Check`]s; printed as text and written as JSON with `--json FILE`.

use std::{fmt::Write as _, path::Path};

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::{
    mix::Kind,
    rss::{RssSummary, Series},
    worker::Tally,
};
use crate::{
    config::soak::SoakSettings,
    stats::Summary,
    table::{fmt_kib, fmt_latency, fmt_rate, render_table},
};

/// The settings a soak ran with.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SoakRun {
    /// Load seconds asked for.
    pub(crate) seconds: f64,
    /// REST workers.
    pub(crate) connections: usize,
    /// gRPC workers.
    pub(crate) grpc_connections: usize,
    /// Demo articles.
    pub(crate) articles: u32,
    /// The request cap.
    pub(crate) max_requests: u64,
    /// The per-request timeout, seconds.
    pub(crate) request_timeout_seconds: f64,
    /// Cores of this machine (load generator and both processes share them).
    pub(crate) cpus: usize,
}

impl SoakRun {
    /// The run's settings.
    pub(crate) fn of(settings: &SoakSettings) -> Self {
        Self {
            seconds: settings.duration.as_secs_f64(),
            connections: settings.connections,
            grpc_connections: settings.grpc_connections,
            articles: settings.articles,
            max_requests: settings.max_requests,
            request_timeout_seconds: settings.request_timeout.as_secs_f64(),
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// The requests of one kind.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct KindCount {
    pub(crate) kind: Kind,
    /// What it is.
    pub(crate) label: &'static str,
    /// All requests of this kind.
    pub(crate) requests: u64,
    /// Errors among them.
    pub(crate) errors: u64,
}

/// An error message and how often it was seen.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ErrorMessage {
    /// `kind: message`.
    pub(crate) message: String,
    /// Times seen.
    pub(crate) count: u64,
}

/// One process's memory.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ProcessRss {
    /// `gateway` or `service`.
    pub(crate) name: String,
    pub(crate) pid: u32,
    /// The leak rule's numbers (`None` without samples).
    pub(crate) summary: Option<RssSummary>,
    /// Every sample.
    pub(crate) series: Series,
}

/// One pass/fail check.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    /// What was checked.
    pub(crate) name: String,
    /// Whether it passed.
    pub(crate) ok: bool,
    /// The evidence.
    pub(crate) detail: String,
}

impl Check {
    /// A check from a condition.
    pub(crate) fn new(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok,
            detail: detail.into(),
        }
    }
}

/// The whole result.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SoakSummary {
    /// Settings.
    pub(crate) run: SoakRun,
    /// From the start of the load to the last answer, seconds.
    pub(crate) elapsed_seconds: f64,
    /// All requests.
    pub(crate) total_requests: u64,
    /// All errors.
    pub(crate) errors: u64,
    /// Requests per second (all requests, over `elapsed_seconds`).
    pub(crate) requests_per_second: f64,
    /// Per kind.
    pub(crate) kinds: Vec<KindCount>,
    /// The first few distinct error messages.
    pub(crate) error_messages: Vec<ErrorMessage>,
    /// Latency of all requests.
    pub(crate) latency: Summary,
    /// Gateway and service memory.
    pub(crate) rss: Vec<ProcessRss>,
    /// The checks; the soak passes when all pass.
    pub(crate) checks: Vec<Check>,
    /// Whether every check passed.
    pub(crate) passed: bool,
}

impl SoakSummary {
    /// Builds the summary from the merged tally; `passed` follows `checks`.
    pub(crate) fn new(
        run: SoakRun,
        tally: &Tally,
        elapsed_seconds: f64,
        rss: Vec<ProcessRss>,
        checks: Vec<Check>,
    ) -> Self {
        let kinds = Kind::ALL
            .iter()
            .map(|&kind| KindCount {
                kind,
                label: kind.label(),
                requests: tally.ok[kind.index()] + tally.errors[kind.index()],
                errors: tally.errors[kind.index()],
            })
            .collect();
        let total_requests = tally.total();
        let requests_per_second = if elapsed_seconds > 0.0 {
            total_requests as f64 / elapsed_seconds
        } else {
            0.0
        };
        let passed = checks.iter().all(|c| c.ok);
        Self {
            run,
            elapsed_seconds,
            total_requests,
            errors: tally.error_count(),
            requests_per_second,
            kinds,
            error_messages: tally
                .messages
                .iter()
                .map(|(message, count)| ErrorMessage {
                    message: message.clone(),
                    count: *count,
                })
                .collect(),
            latency: Summary::of(&tally.hist),
            rss,
            checks,
            passed,
        }
    }

    /// The failed checks, one line each.
    pub(crate) fn problems(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect()
    }

    /// Writes the summary as pretty JSON.
    ///
    /// # Errors
    /// Serialization or file errors.
    pub(crate) fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).context("serializing the soak summary")?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }

    /// The summary as text.
    pub(crate) fn render(&self) -> String {
        // `writeln!` into a `String` cannot fail, hence the ignored results below.
        let r = &self.run;
        let mut out = format!(
            "Soak: {:.1} s (asked {:.0} s) through articles-gateway with {} REST connections, \
             plus {} direct gRPC connections to articles-service; {} demo articles; {} cores\n\n",
            self.elapsed_seconds, r.seconds, r.connections, r.grpc_connections, r.articles, r.cpus
        );
        let body: Vec<Vec<String>> = self
            .kinds
            .iter()
            .filter(|k| k.requests > 0 || !k.kind_is_grpc() || r.grpc_connections > 0)
            .map(|k| vec![k.label.to_owned(), count(k.requests), count(k.errors)])
            .chain(std::iter::once(vec![
                "total".to_owned(),
                count(self.total_requests),
                count(self.errors),
            ]))
            .collect();
        out.push_str(&render_table(&["request", "count", "errors"], 1, &body));
        let l = &self.latency;
        let _ = writeln!(
            out,
            "\nthroughput {} req/s; latency p50 {}  p99 {}  max {}",
            fmt_rate(self.requests_per_second),
            fmt_latency(l.p50_us),
            fmt_latency(l.p99_us),
            fmt_latency(l.max_us)
        );
        if !self.error_messages.is_empty() {
            out.push_str("first distinct errors:\n");
            for e in &self.error_messages {
                let _ = writeln!(out, "  {} x {}", e.count, e.message);
            }
        }
        out.push('\n');
        out.push_str(&self.rss_table());
        out.push_str("\nchecks:\n");
        for c in &self.checks {
            let _ = writeln!(
                out,
                "  {}  {}: {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        let _ = writeln!(
            out,
            "\nsoak {}",
            if self.passed { "PASSED" } else { "FAILED" }
        );
        out
    }

    fn rss_table(&self) -> String {
        let body: Vec<Vec<String>> = self
            .rss
            .iter()
            .map(|p| match &p.summary {
                Some(s) => vec![
                    p.name.clone(),
                    p.series.samples.len().to_string(),
                    fmt_kib(s.first_kib),
                    format!("{} @{:.0}s", fmt_kib(s.baseline_kib), s.baseline_at_seconds),
                    fmt_kib(s.max_kib),
                    fmt_kib(s.end_kib),
                    signed_kib(s.end_kib, s.baseline_kib),
                    format!("+{}", fmt_kib(s.allowed_growth_kib)),
                ],
                None => vec![p.name.clone(), "0".to_owned()],
            })
            .collect();
        format!(
            "RSS (VmRSS every 1 s; baseline = first sample after the 20% warm-up)\n{}",
            render_table(
                &[
                    "process",
                    "samples",
                    "at start",
                    "after warm-up",
                    "max",
                    "end",
                    "end - baseline",
                    "allowed",
                ],
                1,
                &body
            )
        )
    }
}

impl KindCount {
    fn kind_is_grpc(&self) -> bool {
        matches!(
            self.kind,
            Kind::GrpcList | Kind::GrpcDetail | Kind::GrpcDetailMissing
        )
    }
}

fn count(n: u64) -> String {
    fmt_rate(n as f64)
}

fn signed_kib(end: u64, base: u64) -> String {
    if end >= base {
        format!("+{}", fmt_kib(end - base))
    } else {
        format!("-{}", fmt_kib(base - end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn renders_counts_checks_and_verdict() {
        let run = SoakRun {
            seconds: 5.0,
            connections: 2,
            grpc_connections: 0,
            articles: 10,
            max_requests: 100,
            request_timeout_seconds: 10.0,
            cpus: 2,
        };
        let tally = Tally::default();
        let mut series = Series::default();
        series.push(0.0, 9_000);
        series.push(1.0, 10_000);
        series.push(5.0, 12_048);
        let rss = vec![ProcessRss {
            name: "gateway".to_owned(),
            pid: 1,
            summary: series.summary(5.0, 20 * 1024, 50.0),
            series,
        }];
        let checks = vec![
            Check::new("no errors", true, "0 errors"),
            Check::new("RSS flat", false, "grew"),
        ];
        let s = SoakSummary::new(
            run,
            &tally,
            Duration::from_secs(5).as_secs_f64(),
            rss,
            checks,
        );
        let text = s.render();
        assert!(!s.passed);
        assert!(text.contains("FAIL  RSS flat: grew"), "{text}");
        assert!(text.contains("soak FAILED"), "{text}");
        assert!(text.contains("+2.0 MiB"), "{text}");
        assert!(
            !text.contains("gRPC ArticleList"),
            "no gRPC rows without gRPC workers: {text}"
        );
        assert_eq!(s.problems(), ["RSS flat: grew"]);
    }
}

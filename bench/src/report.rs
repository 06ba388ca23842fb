//! The results: the [`Report`] data (also written as JSON with `--json FILE`), the ratios
//! derived from its rows, and the plain-text tables printed to stdout (drawn by
//! [`crate::table`]); [`peer`] puts our
//! gateway beside a peer's and checks the performance targets.

pub(crate) mod peer;
mod row;

pub(crate) use self::row::{CpuShare, Row};

use std::{fmt::Write as _, path::Path};

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::{
    config::Settings,
    deep::DeepReport,
    stack::{ProcessInfo, Role},
    table::{fmt_cpu, fmt_kib, fmt_latency, fmt_rate, fmt_signed_latency, render_table},
};

/// A throughput ratio between two roles for one scenario and concurrency.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Ratio {
    pub(crate) scenario: String,
    /// The concurrency.
    pub(crate) connections: usize,
    /// The numerator's role.
    pub(crate) of: Role,
    /// The denominator's role.
    pub(crate) to: Role,
    /// `of` requests/s divided by `to` requests/s.
    pub(crate) throughput: f64,
}

/// The latency a REST path adds over direct gRPC.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AddedLatency {
    /// The REST role (gateway or in-process).
    pub(crate) target: Role,
    pub(crate) scenario: String,
    /// The concurrency.
    pub(crate) connections: usize,
    /// p50(target) − p50(gRPC), µs.
    pub(crate) p50_us: f64,
    /// p99(target) − p99(gRPC), µs.
    pub(crate) p99_us: f64,
}

/// The settings a report was made with.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunInfo {
    /// Measured seconds per loaded row.
    pub(crate) seconds: f64,
    /// Warm-up seconds per loaded row.
    pub(crate) warmup_seconds: f64,
    /// Connections of the loaded rows.
    pub(crate) connections: usize,
    /// Measured seconds per one-connection row.
    pub(crate) low_load_seconds: f64,
    /// Cap on measured requests per row.
    pub(crate) max_requests: u64,
    /// Demo articles (detail ids cycle over them).
    pub(crate) articles: u32,
    /// Machine parallelism seen by the bench.
    pub(crate) cpus: usize,
}

impl RunInfo {
    /// The run information of `settings`.
    pub(crate) fn of(settings: &Settings) -> Self {
        Self {
            seconds: settings.seconds.as_secs_f64(),
            warmup_seconds: settings.warmup.as_secs_f64(),
            connections: settings.connections,
            low_load_seconds: settings.low_load_seconds().as_secs_f64(),
            max_requests: settings.max_requests,
            articles: settings.articles,
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
        }
    }
}

/// Everything a run found.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    /// How it ran.
    pub(crate) run: RunInfo,
    pub(crate) rows: Vec<Row>,
    /// Our child processes.
    pub(crate) processes: Vec<ProcessInfo>,
    /// Throughput ratios.
    pub(crate) ratios: Vec<Ratio>,
    /// Added latency over direct gRPC.
    pub(crate) added_latency: Vec<AddedLatency>,
    /// The deep-pages measurement, with `--deep`.
    pub(crate) deep: Option<DeepReport>,
    /// Our gateway beside the peer's, with `--peer`.
    pub(crate) side_by_side: Vec<peer::SideBySide>,
    /// The performance targets, as measured.
    pub(crate) targets: Vec<peer::TargetCheck>,
    /// Remarks (skipped rows...).
    pub(crate) notes: Vec<String>,
    /// Targets that could not be started.
    pub(crate) failures: Vec<String>,
}

/// The throughput ratios reported: (numerator, denominator).
const RATIOS: [(Role, Role); 7] = [
    (Role::Gateway, Role::Ceiling),
    (Role::Gateway, Role::Grpc),
    (Role::InProcess, Role::Ceiling),
    (Role::InProcess, Role::Grpc),
    (Role::OursOnPeer, Role::Peer),
    (Role::OursOnPeer, Role::PeerDirect),
    (Role::Peer, Role::PeerDirect),
];

impl Report {
    /// A report of `rows`, with the ratios computed.
    pub(crate) fn new(run: RunInfo, rows: Vec<Row>) -> Self {
        let (ratios, added_latency) = derive(&rows);
        let side_by_side = peer::side_by_side(&rows);
        let targets = peer::targets(&rows, &side_by_side, run.connections);
        Self {
            run,
            rows,
            processes: Vec::new(),
            ratios,
            added_latency,
            side_by_side,
            targets,
            deep: None,
            notes: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// Why the run should exit non-zero: targets that did not start, and rows in which no
    /// request succeeded.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = self.failures.clone();
        for row in self.rows.iter().filter(|r| r.requests == 0) {
            problems.push(format!(
                "{} {} c={}: no successful request ({})",
                row.target,
                row.scenario,
                row.connections,
                row.error.as_deref().unwrap_or("no request made")
            ));
        }
        problems
    }

    /// Writes the report as pretty JSON.
    ///
    /// # Errors
    /// The file cannot be written.
    pub(crate) fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).context("serializing the report")?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }

    /// The report as text tables.
    pub(crate) fn render(&self) -> String {
        // `writeln!` into a `String` cannot fail, hence the ignored results below.
        let mut out = String::new();
        let r = &self.run;
        let _ = writeln!(
            out,
            "\nThroughput and latency (closed loop, loopback, {} CPUs; {} s measured after {} s warm-up at {} connections, {} s at 1 connection)",
            r.cpus, r.seconds, r.warmup_seconds, r.connections, r.low_load_seconds
        );
        if !self.side_by_side.is_empty() {
            out.push_str(
                "\nSide by side: our gateway and grpc-gateway in front of the same Go backend (same load client, rows alternating)\n",
            );
            out.push_str(&peer::render_side_by_side(&self.side_by_side));
            out.push('\n');
        }
        out.push_str(&self.rows_table());
        if !self.processes.is_empty() {
            out.push_str(
                "\nProcesses (cold start = spawn to first ready answer; peak RSS = VmHWM)\n",
            );
            out.push_str(&self.process_table());
        }
        if self.rows.iter().any(|r| !r.cpu.is_empty()) {
            out.push_str(
                "\nCPU per request (µs of CPU time of each process during the row's run, over its requests; the budget behind the throughput)\n",
            );
            out.push_str(&self.cpu_table());
        }
        if !self.ratios.is_empty() {
            out.push_str("\nThroughput ratios (requests/s of the first target over the second)\n");
            out.push_str(&self.ratio_table());
        }
        if !self.added_latency.is_empty() {
            out.push_str("\nLatency added over direct gRPC (REST path minus gRPC to the same backend, same scenario and connections)\n");
            out.push_str(&self.added_table());
        }
        if let Some(deep) = &self.deep {
            out.push('\n');
            out.push_str(&deep.render());
        }
        if !self.targets.is_empty() {
            out.push_str("\nPerformance targets (this run)\n");
            out.push_str(&peer::render_targets(&self.targets));
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        for failure in &self.failures {
            let _ = writeln!(out, "FAILED: {failure}");
        }
        out
    }

    fn rows_table(&self) -> String {
        let body: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| {
                let l = &row.latency;
                vec![
                    row.target.clone(),
                    row.scenario.clone(),
                    row.connections.to_string(),
                    fmt_rate(row.requests_per_second),
                    fmt_latency(l.p50_us),
                    fmt_latency(l.p99_us),
                    fmt_latency(l.p999_us),
                    row.requests.to_string(),
                    row.errors.to_string(),
                ]
            })
            .collect();
        render_table(
            &[
                "target", "scenario", "conns", "req/s", "p50", "p99", "p99.9", "requests", "errors",
            ],
            2,
            &body,
        )
    }

    fn cpu_table(&self) -> String {
        let mut names: Vec<&str> = Vec::new();
        for share in self.rows.iter().flat_map(|r| &r.cpu) {
            if !names.contains(&share.process.as_str()) {
                names.push(&share.process);
            }
        }
        let body: Vec<Vec<String>> = self
            .rows
            .iter()
            .filter(|row| row.requests > 0)
            .map(|row| {
                let mut line = vec![
                    row.target.clone(),
                    row.scenario.clone(),
                    row.connections.to_string(),
                ];
                let mut total = 0.0;
                for name in &names {
                    let us = row
                        .cpu
                        .iter()
                        .find(|s| s.process == *name)
                        .map(|s| s.us_per_request);
                    total += us.unwrap_or(0.0);
                    line.push(us.map_or_else(|| "?".to_owned(), fmt_cpu));
                }
                line.push(fmt_cpu(total));
                line
            })
            .collect();
        let mut header = vec!["target", "scenario", "conns"];
        header.extend(names.iter().copied());
        header.push("total");
        render_table(&header, 2, &body)
    }

    fn process_table(&self) -> String {
        let body: Vec<Vec<String>> = self
            .processes
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.pid.to_string(),
                    fmt_latency(p.cold_start_ms * 1000.0),
                    p.peak_rss_kib.map_or_else(|| "?".to_owned(), fmt_kib),
                ]
            })
            .collect();
        render_table(&["process", "pid", "cold start", "peak RSS"], 1, &body)
    }

    /// One line per scenario and concurrency, one column per ratio that has values.
    fn ratio_table(&self) -> String {
        let columns: Vec<(Role, Role)> = RATIOS
            .into_iter()
            .filter(|&(of, to)| self.ratios.iter().any(|r| (r.of, r.to) == (of, to)))
            .collect();
        let mut groups: Vec<(&str, usize)> = Vec::new();
        for r in &self.ratios {
            if !groups.contains(&(r.scenario.as_str(), r.connections)) {
                groups.push((r.scenario.as_str(), r.connections));
            }
        }
        let body: Vec<Vec<String>> = groups
            .iter()
            .map(|&(scenario, connections)| {
                let mut line = vec![scenario.to_owned(), connections.to_string()];
                line.extend(columns.iter().map(|&(of, to)| {
                    self.ratios
                        .iter()
                        .find(|r| {
                            (r.of, r.to) == (of, to)
                                && r.scenario == scenario
                                && r.connections == connections
                        })
                        .map_or_else(|| "-".to_owned(), |r| format!("{:.2}×", r.throughput))
                }));
                line
            })
            .collect();
        let names: Vec<String> = columns
            .iter()
            .map(|(of, to)| format!("{}/{}", of.label(), to.label()))
            .collect();
        let mut header = vec!["scenario", "conns"];
        header.extend(names.iter().map(String::as_str));
        render_table(&header, 1, &body)
    }

    fn added_table(&self) -> String {
        let body: Vec<Vec<String>> = self
            .added_latency
            .iter()
            .map(|a| {
                vec![
                    a.target.label().to_owned(),
                    a.scenario.clone(),
                    a.connections.to_string(),
                    fmt_signed_latency(a.p50_us),
                    fmt_signed_latency(a.p99_us),
                ]
            })
            .collect();
        render_table(&["target", "scenario", "conns", "+p50", "+p99"], 2, &body)
    }
}

/// Ratios and added latencies between the rows of the same scenario and concurrency.
fn derive(rows: &[Row]) -> (Vec<Ratio>, Vec<AddedLatency>) {
    let find = |role: Role, scenario: &str, connections: usize| {
        rows.iter().find(|r| {
            r.role == role
                && r.scenario == scenario
                && r.connections == connections
                && r.requests > 0
        })
    };
    let mut groups: Vec<(&str, usize)> = Vec::new();
    for row in rows {
        if !groups.contains(&(row.scenario.as_str(), row.connections)) {
            groups.push((row.scenario.as_str(), row.connections));
        }
    }
    let mut ratios = Vec::new();
    let mut added = Vec::new();
    for &(scenario, connections) in &groups {
        for (of, to) in RATIOS {
            if let (Some(a), Some(b)) = (
                find(of, scenario, connections),
                find(to, scenario, connections),
            ) && b.requests_per_second > 0.0
            {
                ratios.push(Ratio {
                    scenario: scenario.to_owned(),
                    connections,
                    of,
                    to,
                    throughput: a.requests_per_second / b.requests_per_second,
                });
            }
        }
    }
    for (target, direct) in [
        (Role::Gateway, Role::Grpc),
        (Role::InProcess, Role::Grpc),
        (Role::OursOnPeer, Role::PeerDirect),
        (Role::Peer, Role::PeerDirect),
    ] {
        for &(scenario, connections) in &groups {
            if let (Some(a), Some(g)) = (
                find(target, scenario, connections),
                find(direct, scenario, connections),
            ) {
                added.push(AddedLatency {
                    target,
                    scenario: scenario.to_owned(),
                    connections,
                    p50_us: a.latency.p50_us - g.latency.p50_us,
                    p99_us: a.latency.p99_us - g.latency.p99_us,
                });
            }
        }
    }
    (ratios, added)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Summary;

    fn row(role: Role, scenario: &str, connections: usize, rps: f64, p50: f64, p99: f64) -> Row {
        Row {
            target: role.label().to_owned(),
            role,
            scenario: scenario.to_owned(),
            connections,
            requests: 100,
            errors: 0,
            seconds: 1.0,
            requests_per_second: rps,
            latency: Summary {
                count: 100,
                p50_us: p50,
                p99_us: p99,
                ..Summary::default()
            },
            error: None,
            cpu: Vec::new(),
        }
    }

    #[test]
    fn formats_numbers_readably() {
        assert_eq!(fmt_latency(45.34), "45.3 µs");
        assert_eq!(fmt_latency(812.4), "812 µs");
        assert_eq!(fmt_latency(1250.0), "1.25 ms");
        assert_eq!(fmt_latency(2_100_000.0), "2.10 s");
        assert_eq!(fmt_signed_latency(12.0), "+12.0 µs");
        assert_eq!(fmt_signed_latency(-3.5), "-3.5 µs");
        assert_eq!(fmt_rate(1_234_567.4), "1,234,567");
        assert_eq!(fmt_rate(999.0), "999");
        assert_eq!(fmt_kib(2048), "2.0 MiB");
    }

    #[test]
    fn tables_align_columns() {
        let body = vec![
            vec!["gateway".to_owned(), "12,000".to_owned()],
            vec!["ceiling".to_owned(), "9".to_owned()],
        ];
        let text = render_table(&["target", "req/s"], 1, &body);
        assert_eq!(text, "target    req/s\ngateway  12,000\nceiling       9\n");
    }

    fn run_info() -> RunInfo {
        RunInfo {
            seconds: 1.0,
            warmup_seconds: 0.0,
            connections: 64,
            low_load_seconds: 0.5,
            max_requests: 1,
            articles: 1,
            cpus: 2,
        }
    }

    #[test]
    fn cpu_table_has_a_column_per_process_and_a_total() {
        let share = |process: &str, us: f64| CpuShare {
            process: process.to_owned(),
            us_per_request: us,
        };
        let mut gateway = row(Role::Gateway, "list", 64, 5000.0, 300.0, 900.0);
        gateway.cpu = vec![
            share("service", 80.4),
            share("gateway", 120.0),
            share("load generator", 40.0),
        ];
        let mut grpc = row(Role::Grpc, "list", 64, 9000.0, 200.0, 700.0);
        grpc.cpu = vec![share("service", 90.0), share("gateway", 0.1)];
        let report = Report::new(run_info(), vec![gateway, grpc]);
        let text = report.cpu_table();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].ends_with("service  gateway  load generator  total"),
            "{text}"
        );
        assert!(
            lines[1].ends_with("80      120              40    240"),
            "{text}"
        );
        // An idle process shows a dash; one that was not watched, a question mark.
        assert!(
            lines[2].ends_with("90        -               ?     90"),
            "{text}"
        );
    }

    #[test]
    fn ratios_and_added_latency_pair_rows_of_the_same_group() {
        let rows = vec![
            row(Role::Gateway, "list", 64, 5000.0, 300.0, 900.0),
            row(Role::Grpc, "list", 64, 10_000.0, 200.0, 600.0),
            row(Role::Ceiling, "list", 64, 20_000.0, 100.0, 300.0),
            row(Role::Gateway, "list", 1, 2000.0, 90.0, 150.0),
            row(Role::Grpc, "list", 1, 3000.0, 60.0, 100.0),
        ];
        let report = Report::new(run_info(), rows);
        let gc = &report.ratios[0];
        assert_eq!(
            (gc.of, gc.to, gc.connections),
            (Role::Gateway, Role::Ceiling, 64)
        );
        assert!((gc.throughput - 0.25).abs() < 1e-9);
        assert_eq!(report.ratios.len(), 3, "{:?}", report.ratios);
        assert_eq!(report.added_latency.len(), 2);
        let low = &report.added_latency[1];
        assert_eq!(low.connections, 1);
        assert!((low.p50_us - 30.0).abs() < 1e-9 && (low.p99_us - 50.0).abs() < 1e-9);
        assert!(report.problems().is_empty());
        let text = report.render();
        assert!(text.contains("gateway/ceiling"), "{text}");
        assert!(text.contains("+100 µs"), "{text}");
    }
}

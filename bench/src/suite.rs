//! The benchmark run from start to end: start the [`Stack`], drive every target with every
//! scenario at `--connections` and then at 1 connection (charging each row the CPU time its
//! processes used), read the processes' cold start and peak RSS, optionally measure deep
//! pages, then print the report (and write it as JSON).
//!
//! Progress goes to stderr, the report to stdout. The exit status is non-zero when a target
//! could not be started or a row had no successful request; there are no performance
//! thresholds.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::Result;

use crate::{
    config::Settings,
    deep,
    load::{self, LoadSpec, Measurement, Scenario},
    procs,
    report::{CpuShare, Report, Row, RunInfo, peer},
    stack::{Stack, Target},
    table::{fmt_latency, fmt_rate},
};

/// One pass over all targets and scenarios.
#[derive(Debug, Clone, Copy)]
struct Pass {
    connections: usize,
    warmup: Duration,
    duration: Duration,
}

/// Runs the whole benchmark.
///
/// # Errors
/// Set-up failures that leave nothing to measure (no binaries, no temporary directory...).
pub(crate) async fn run(settings: Settings) -> Result<ExitCode> {
    let mut stack = Stack::start(&settings).await?;
    let scenarios = [
        Scenario::List {
            page: 1,
            page_size: 10,
        },
        Scenario::Detail {
            ids: settings.articles,
        },
    ];
    let mut passes = vec![Pass {
        connections: settings.connections,
        warmup: settings.warmup,
        duration: settings.seconds,
    }];
    if settings.connections > 1 {
        passes.push(Pass {
            connections: 1,
            warmup: settings.low_load_warmup(),
            duration: settings.low_load_seconds(),
        });
    }
    // Every process whose CPU time is charged to the rows: ours, and the load generator.
    let mut watched: Vec<(String, u32)> = stack
        .procs
        .iter()
        .map(|p| (p.name().to_owned(), p.pid()))
        .collect();
    watched.push(("load generator".to_owned(), std::process::id()));
    let mut rows = Vec::new();
    for pass in passes {
        for scenario in scenarios {
            for target in &stack.targets {
                rows.push(drive(target, scenario, pass, settings.max_requests, &watched).await);
            }
        }
    }
    let processes = stack.stop().await?;
    let mut report = Report::new(RunInfo::of(&settings), rows);
    report.processes = processes;
    report.notes = std::mem::take(&mut stack.notes);
    report.failures = std::mem::take(&mut stack.failures);
    if let Some(deep_settings) = settings.deep {
        match deep::run(&settings, deep_settings, stack.tmp()).await {
            Ok(deep) => {
                if let Some(error) = &deep.export_error {
                    report.failures.push(format!("export: {error}"));
                }
                report
                    .targets
                    .push(peer::export_target(deep.export.as_ref()));
                report.deep = Some(deep);
            }
            Err(err) => report.failures.push(format!("deep pages: {err:#}")),
        }
    }
    drop(stack);

    println!("{}", report.render());
    if let Some(path) = &settings.json {
        report.write_json(path)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &settings.svg {
        crate::svg::draw(&report, path)?;
        eprintln!("wrote {}", path.display());
    }
    let problems = report.problems();
    if problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for problem in &problems {
            eprintln!("bench: {problem}");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// Drives one target with one scenario; a run that cannot even connect becomes an empty row.
/// The CPU time of the `watched` processes (name, pid) is read before and after.
async fn drive(
    target: &Target,
    scenario: Scenario,
    pass: Pass,
    max_requests: u64,
    watched: &[(String, u32)],
) -> Row {
    eprint!(
        "{:<12} {:<8} c={:<4} ",
        target.label,
        scenario.name(),
        pass.connections
    );
    let spec = LoadSpec {
        connections: pass.connections,
        warmup: pass.warmup,
        duration: pass.duration,
        max_requests,
    };
    let cpu_before: Vec<Option<f64>> = watched
        .iter()
        .map(|(_, pid)| procs::cpu_seconds(*pid))
        .collect();
    let started = Instant::now();
    let row = match load::run(&target.endpoint, scenario, spec).await {
        Ok(m) => {
            let wall = started.elapsed().as_secs_f64();
            let mut row = row_of(target, scenario, pass.connections, &m);
            let requests = row.requests_per_second * wall;
            if requests > 0.0 {
                row.cpu = watched
                    .iter()
                    .zip(cpu_before)
                    .filter_map(|((name, pid), before)| {
                        let used = procs::cpu_seconds(*pid)? - before?;
                        Some(CpuShare {
                            process: name.clone(),
                            us_per_request: used.max(0.0) * 1e6 / requests,
                        })
                    })
                    .collect();
            }
            row
        }
        Err(err) => Row {
            target: target.label.clone(),
            role: target.role,
            scenario: scenario.name(),
            connections: pass.connections,
            requests: 0,
            errors: 0,
            seconds: 0.0,
            requests_per_second: 0.0,
            latency: crate::stats::Summary::default(),
            error: Some(format!("{err:#}")),
            cpu: Vec::new(),
        },
    };
    eprintln!(
        "{:>9} req/s  p50 {:>9}  p99 {:>9}  errors {}",
        fmt_rate(row.requests_per_second),
        fmt_latency(row.latency.p50_us),
        fmt_latency(row.latency.p99_us),
        row.errors
    );
    if let Some(err) = &row.error {
        eprintln!("  first error: {err}");
    }
    row
}

fn row_of(target: &Target, scenario: Scenario, connections: usize, m: &Measurement) -> Row {
    Row {
        target: target.label.clone(),
        role: target.role,
        scenario: scenario.name(),
        connections,
        requests: m.ok(),
        errors: m.errors,
        seconds: m.elapsed.as_secs_f64(),
        requests_per_second: m.throughput(),
        latency: m.summary(),
        error: m.first_error.clone(),
        cpu: Vec::new(),
    }
}

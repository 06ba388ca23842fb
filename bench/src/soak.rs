//! `bench soak`: a bounded soak test of the gateway and the service together, a behaviour
//! check against leaks, crashes and hangs (not a benchmark).
//!
//! 1. [`stack`] starts `articles-service` (fresh SQLite, `--articles` demo articles, a random
//!    `--api-token`) and `articles-gateway` in front of it on loopback; a pre-flight list call
//!    checks that the gateway serves the expected number of articles.
//! 2. [`worker`]s drive the [`mix`] for `--seconds` or `--max-requests`, whichever ends first:
//!    `--connections` REST workers through the gateway (lists, details, unknown ids answered
//!    404, and a few creates/patches/deletes of the soak's own articles with the bearer
//!    token), plus `--grpc-connections` workers calling the service directly.
//! 3. Meanwhile both processes' `VmRSS` is sampled every second ([`rss`]) and each is checked
//!    to be still running; a process that exits stops the load.
//! 4. Afterwards the gateway must answer `GET /readyz` with 200, and each process, sent
//!    SIGTERM (gateway first), must exit with status 0 within [`SHUTDOWN_TIMEOUT`].
//!
//! The soak fails (exit status 1) on any error (unexpected status, transport error, no answer
//! within `--request-timeout`), a process that died, RSS that is not flat, a failed
//! readiness or a shutdown that is not clean. RSS is "flat" when the last sample exceeds the
//! baseline (the first sample after 20% of the run, the warm-up) by at most
//! `max(--rss-slack-mib, --rss-slack-percent × baseline)`, by default max(20 MiB, 50%).
//! [`summary`] prints the counts, errors, throughput, latency, RSS and checks; `--json FILE`
//! writes the same.
//!
//! ```text
//! cargo build --release --workspace --bins && target/release/bench soak --seconds 60 --connections 128
//! target/debug/bench soak --seconds 5 --connections 32          # CI-sized
//! ```

mod hostile;
pub(crate) mod mix;
pub(crate) mod rss;
pub(crate) mod stack;
pub(crate) mod summary;
pub(crate) mod worker;

use std::{
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use http::{HeaderValue, StatusCode};
use serde::Deserialize;
use tokio::{task::JoinSet, time::Instant};

use self::{
    rss::Series,
    stack::SoakStack,
    summary::{Check, ProcessRss, SoakRun, SoakSummary},
    worker::{Control, Tally},
};
use crate::{
    config::soak::SoakSettings,
    load::rest::{RestEndpoint, get_once},
    procs::Proc,
    table::fmt_latency,
};

/// How long each process gets to exit after SIGTERM.
pub(crate) const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);
/// How often RSS is sampled and the processes are checked.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// How long after the deadline plus one request timeout the load may take to wind down.
const WIND_DOWN: Duration = Duration::from_secs(15);

/// Runs the soak and prints its summary; the exit status says whether every check passed.
///
/// # Errors
/// Set-up failures (no binaries, a process that does not start, a failed pre-flight) and
/// failures to write the JSON file.
pub(crate) async fn run(settings: SoakSettings) -> Result<ExitCode> {
    let stack = SoakStack::start(&settings).await?;
    preflight(stack.rest_addr, settings.articles).await?;
    eprintln!(
        "soaking for {:?}: {} REST connections via the gateway at {}, {} gRPC connections to {}...",
        settings.duration,
        settings.connections,
        stack.rest_addr,
        settings.grpc_connections,
        stack.grpc_addr
    );
    let outcome = drive(&settings, stack).await?;
    let summary = outcome.finish(&settings).await;

    println!("{}", summary.render());
    if let Some(path) = &settings.json {
        summary.write_json(path)?;
        eprintln!("wrote {}", path.display());
    }
    let problems = summary.problems();
    if problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for problem in &problems {
            eprintln!("bench soak: {problem}");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// The first list page's `total`.
#[derive(Debug, Deserialize)]
struct Total {
    total: i64,
}

/// Checks that the gateway serves the fresh database: `total` is the number of demo articles.
async fn preflight(addr: std::net::SocketAddr, articles: u32) -> Result<()> {
    let (status, body) = get_once(&RestEndpoint::local(addr), "/articles?page=1&page_size=1")
        .await
        .context("pre-flight list call through the gateway")?;
    if status != StatusCode::OK {
        bail!(
            "pre-flight: GET /articles answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let total: Total = serde_json::from_slice(&body).context("pre-flight: list body")?;
    if total.total != i64::from(articles) {
        bail!(
            "pre-flight: the database has {} articles, expected {articles} (the soak's unknown \
             and existing ids rely on a fresh database)",
            total.total
        );
    }
    Ok(())
}

/// What the load phase left: the processes, the merged tally and the samples.
#[derive(Debug)]
struct Outcome {
    stack: SoakStack,
    tally: Tally,
    elapsed: Duration,
    gateway_rss: Series,
    service_rss: Series,
    checks: Vec<Check>,
    /// Processes that exited during the run (not to be stopped again).
    dead: Vec<String>,
}

/// Runs the workers while sampling RSS and watching the processes.
async fn drive(settings: &SoakSettings, mut stack: SoakStack) -> Result<Outcome> {
    let token = HeaderValue::from_str(&format!("Bearer {}", stack.token))
        .context("the token is not a valid header value")?;
    let started = Instant::now();
    let control = Arc::new(Control {
        deadline: started + settings.duration,
        max_requests: settings.max_requests,
        issued: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        request_timeout: settings.request_timeout,
    });
    let mut workers = JoinSet::new();
    for id in 0..settings.connections {
        workers.spawn(worker::rest_worker(
            id,
            stack.rest_addr,
            token.clone(),
            settings.articles,
            Arc::clone(&control),
        ));
    }
    let grpc_url = format!("http://{}", stack.grpc_addr);
    for id in 0..settings.grpc_connections {
        workers.spawn(worker::grpc_worker(
            id,
            grpc_url.clone(),
            settings.articles,
            Arc::clone(&control),
        ));
    }

    let hostile = Arc::new(hostile::Hostile::default());
    let mut hostiles = if settings.hostile {
        hostile::spawn(stack.rest_addr, &control, &hostile)
    } else {
        JoinSet::new()
    };

    let mut tally = Tally::default();
    let mut gateway_rss = Series::default();
    let mut service_rss = Series::default();
    let mut checks = Vec::new();
    let mut dead = Vec::new();
    let mut panics = Vec::new();
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let wind_down =
        tokio::time::sleep_until(control.deadline + settings.request_timeout + WIND_DOWN);
    tokio::pin!(wind_down);
    let mut hung = false;
    loop {
        tokio::select! {
            joined = workers.join_next() => match joined {
                None => break,
                Some(Ok(done)) => tally.merge(done)?,
                Some(Err(err)) => panics.push(err.to_string()),
            },
            _ = ticks.tick() => {
                let at = started.elapsed().as_secs_f64();
                sample(&mut stack.gateway, &mut gateway_rss, at, &mut dead, &mut checks);
                sample(&mut stack.service, &mut service_rss, at, &mut dead, &mut checks);
                if !dead.is_empty() {
                    control.stop.store(true, Ordering::Relaxed);
                }
            },
            () = &mut wind_down => {
                workers.abort_all();
                hung = true;
                break;
            },
        }
    }
    // The hostile clients stop at the deadline too; whatever is left is cut off.
    let _ = tokio::time::timeout(settings.request_timeout, async {
        while hostiles.join_next().await.is_some() {}
    })
    .await;
    hostiles.abort_all();
    let elapsed = tally
        .last_end
        .map_or_else(|| started.elapsed(), |end| end - started);
    // The end sample: right after the load, before anything else touches the processes.
    let at = started.elapsed().as_secs_f64();
    sample(
        &mut stack.gateway,
        &mut gateway_rss,
        at,
        &mut dead,
        &mut checks,
    );
    sample(
        &mut stack.service,
        &mut service_rss,
        at,
        &mut dead,
        &mut checks,
    );

    checks.insert(
        0,
        Check::new(
            "no errors",
            tally.error_count() == 0 && panics.is_empty(),
            if panics.is_empty() {
                format!(
                    "{} errors in {} requests",
                    tally.error_count(),
                    tally.total()
                )
            } else {
                format!(
                    "{} errors; {} workers panicked: {}",
                    tally.error_count(),
                    panics.len(),
                    panics.join("; ")
                )
            },
        ),
    );
    if settings.hostile {
        checks.push(Check::new(
            "hostile clients ran alongside",
            hostile.connections.load(Ordering::Relaxed) > 0,
            hostile.render(),
        ));
    }
    checks.push(Check::new(
        "load stopped on time",
        !hung,
        if hung {
            "workers still busy long after the deadline; aborted".to_owned()
        } else {
            format!("last answer {:.1} s after the start", elapsed.as_secs_f64())
        },
    ));
    if dead.is_empty() {
        checks.push(Check::new(
            "processes alive",
            true,
            "gateway and service ran for the whole soak",
        ));
    }
    Ok(Outcome {
        stack,
        tally,
        elapsed,
        gateway_rss,
        service_rss,
        checks,
        dead,
    })
}

/// Samples one process's RSS, or notes (once) that it has exited.
fn sample(
    proc: &mut Proc,
    series: &mut Series,
    at: f64,
    dead: &mut Vec<String>,
    checks: &mut Vec<Check>,
) {
    let name = proc.name().to_owned();
    if dead.contains(&name) {
        return;
    }
    match proc.exited() {
        Ok(None) => {
            if let Some(kib) = proc.rss_kib() {
                series.push(at, kib);
            }
        }
        Ok(Some(status)) => {
            dead.push(name.clone());
            checks.push(Check::new(
                format!("{name} alive"),
                false,
                format!(
                    "exited during the soak at {at:.1} s ({status}); its log ends with:\n{}",
                    proc.log_tail()
                ),
            ));
        }
        Err(err) => {
            dead.push(name.clone());
            checks.push(Check::new(
                format!("{name} alive"),
                false,
                format!("{err:#}"),
            ));
        }
    }
}

impl Outcome {
    /// The after-load checks (RSS, readiness, SIGTERM) and the summary.
    async fn finish(self, settings: &SoakSettings) -> SoakSummary {
        let Self {
            stack,
            tally,
            elapsed,
            gateway_rss,
            service_rss,
            mut checks,
            dead,
        } = self;
        let run_seconds = elapsed.as_secs_f64();
        let mut rss = Vec::new();
        for (proc, series) in [(&stack.gateway, gateway_rss), (&stack.service, service_rss)] {
            let summary = series.summary(
                run_seconds,
                settings.rss_slack_kib,
                settings.rss_slack_percent,
            );
            checks.push(rss_check(proc.name(), summary.as_ref()));
            rss.push(ProcessRss {
                name: proc.name().to_owned(),
                pid: proc.pid(),
                summary,
                series,
            });
        }
        if !dead.iter().any(|d| d == "gateway") {
            checks.push(readiness_check(stack.rest_addr).await);
        }
        let (gateway, service, _tmp) = stack.into_parts();
        // Front first: the gateway drains, then the service it was calling.
        for proc in [gateway, service] {
            if dead.iter().any(|d| d == proc.name()) {
                continue;
            }
            checks.push(shutdown_check(proc).await);
        }
        SoakSummary::new(SoakRun::of(settings), &tally, run_seconds, rss, checks)
    }
}

fn rss_check(name: &str, summary: Option<&rss::RssSummary>) -> Check {
    let check = format!("{name} RSS flat");
    match summary {
        None => Check::new(check, false, "no RSS samples"),
        Some(s) => Check::new(
            check,
            s.flat,
            format!(
                "end {} vs baseline {} (+{} allowed)",
                crate::table::fmt_kib(s.end_kib),
                crate::table::fmt_kib(s.baseline_kib),
                crate::table::fmt_kib(s.allowed_growth_kib)
            ),
        ),
    }
}

async fn readiness_check(addr: std::net::SocketAddr) -> Check {
    let name = "gateway /readyz after the soak";
    let probe = tokio::time::timeout(
        Duration::from_secs(5),
        get_once(&RestEndpoint::local(addr), "/readyz"),
    )
    .await;
    match probe {
        Ok(Ok((StatusCode::OK, _))) => Check::new(name, true, "200"),
        Ok(Ok((status, body))) => Check::new(
            name,
            false,
            format!("{status}: {}", String::from_utf8_lossy(&body)),
        ),
        Ok(Err(err)) => Check::new(name, false, format!("{err:#}")),
        Err(_) => Check::new(name, false, "no answer within 5 s"),
    }
}

async fn shutdown_check(proc: Proc) -> Check {
    let name = format!("{} exits 0 on SIGTERM", proc.name());
    let sent = Instant::now();
    match proc.terminate(SHUTDOWN_TIMEOUT).await {
        Ok(status) => Check::new(
            name,
            status.success(),
            format!(
                "{status} after {}",
                fmt_latency(sent.elapsed().as_secs_f64() * 1e6)
            ),
        ),
        Err(err) => Check::new(name, false, format!("{err:#}")),
    }
}

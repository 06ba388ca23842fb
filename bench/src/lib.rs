//! `bench`: one command that measures the article stack end to end, on loopback only.
//!
//! It starts, as child processes on 127.0.0.1, the gRPC service (SQLite, demo articles), the
//! REST gateway in front of it, the service with the gateway mounted in-process (when the
//! service has `--rest`), and a bare axum server answering the gateway's own bytes (the
//! one-HTTP-hop ceiling). It drives each with the same closed-loop client (C workers, one
//! connection each) for `list` and `detail`, then again with one connection, and prints
//! requests/s, p50/p99/p99.9, errors, cold start, peak RSS, throughput ratios and the latency
//! the gateway adds over direct gRPC. `--json FILE` writes the same data; `--deep` also
//! compares page 1 with page 5000 of a million-article database, and exports all of it through
//! the gateway as NDJSON.
//!
//! `bench soak` is a different command: a bounded soak test (high concurrency of a realistic
//! read/write mix through the gateway, RSS sampling, clean-shutdown checks) that exits
//! non-zero on errors, crashes, memory growth or an unclean shutdown; see [`soak`].
//!
//! ```text
//! cargo build --release --workspace --bins
//! target/release/bench --seconds 10 --connections 64 [--json bench.json] [--deep]
//! target/release/bench --quick                      # CI smoke test, well under a minute
//! target/release/bench --rest-url http://127.0.0.1:8080 --grpc-url http://127.0.0.1:50051
//! target/release/bench soak --seconds 60 --connections 128   # soak test
//! ```
//!
//! Modules, one concept each: [`config`] (command line), [`procs`] (child processes),
//! [`stack`] (starting the targets), [`load`] (the load generator), [`stats`] (histograms),
//! [`suite`] (the run), [`report`] (ratios, JSON), [`table`] (plain-text tables), [`deep`]
//! (deep pages), [`bare`] (the ceiling server), [`soak`] (the soak test).

mod bare;
mod config;
mod deep;
mod export;
mod load;
mod procs;
mod report;
mod soak;
mod stack;
mod stats;
mod suite;
mod svg;
mod table;

use std::process::ExitCode;

use anyhow::{Result, bail};

pub use crate::config::Cli;
use crate::config::{Command, Settings, soak::SoakSettings};

/// Runs what the command line asks for: the benchmark, the soak test, or the hidden
/// `bare-server`.
///
/// Ctrl-C or SIGTERM abandons the benchmark or soak: its future is dropped, which kills every child
/// process (they are spawned with `kill_on_drop`).
///
/// # Errors
/// Invalid settings, set-up failures, an interruption.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Some(Command::BareServer(args)) => {
            bare::serve(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Soak(args)) => {
            let settings = SoakSettings::resolve(args)?;
            tokio::select! {
                result = soak::run(settings) => result,
                signal = interrupted() => bail!("interrupted by {signal}; child processes killed"),
            }
        }
        None => {
            let settings = Settings::resolve(cli.run)?;
            tokio::select! {
                result = suite::run(settings) => result,
                signal = interrupted() => bail!("interrupted by {signal}; child processes killed"),
            }
        }
    }
}

/// Completes with the signal's name on SIGINT or SIGTERM.
async fn interrupted() -> &'static str {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        () = term => "SIGTERM",
    }
}

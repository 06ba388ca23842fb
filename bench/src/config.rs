//! The command line of `bench` (clap derive) and the [`Settings`] a run resolves it into.
//!
//! `bench [OPTIONS]` runs the whole benchmark; `bench soak [OPTIONS]` runs the soak test
//! (its options are in [`soak`]); `bench bare-server ...` is a hidden subcommand that the
//! benchmark spawns as a child process to serve the one-HTTP-hop ceiling (see
//! [`crate::bare`]). `bench --help` and `bench soak --help` list every option.

mod seconds;
pub(crate) mod soak;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use self::{seconds::secs, soak::SoakArgs};

/// Benchmarks the article stack on loopback: the REST gateway (separate process), the gateway
/// mounted in the service (in-process), direct gRPC, and a bare axum server returning the same
/// bytes (the ceiling), with the same closed-loop client for all of them.
///
/// Build first: `cargo build --release --workspace --bins`, then run `target/release/bench`.
#[derive(Debug, Parser)]
#[command(name = "bench", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// `soak`, or an internal subcommand; without one the benchmark runs.
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    /// The benchmark's options.
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Soak test: hold high concurrency of a realistic read/write mix on the gateway (and some
    /// direct gRPC) for --seconds, then check for errors, crashes, memory growth and clean
    /// shutdown. Exits non-zero if any check fails.
    ///
    /// Starts `articles-service` (fresh SQLite in a temporary directory, --articles demo
    /// articles, a random --api-token) and `articles-gateway` in front of it, on loopback. REST
    /// workers (--connections, one HTTP/1.1 connection each) send about 55% list pages (varying
    /// page and page_size, some past the end), 30% details of existing articles, 8% details of
    /// unknown ids (404 is EXPECTED there, not an error) and 7% writes with `Authorization:
    /// Bearer`: create, patch and delete, only of articles the soak itself created. gRPC
    /// workers (--grpc-connections) call ArticleList/ArticleDetail on the service directly
    /// (NOT_FOUND expected for unknown ids). The run ends at --seconds or --max-requests,
    /// whichever comes first.
    ///
    /// Fails (exit 1) on: any unexpected status, transport error or request hang
    /// (--request-timeout); either process exiting during the run; RSS not flat; the gateway's
    /// /readyz not 200 after the run; either process not exiting with status 0 within 15 s of
    /// SIGTERM.
    ///
    /// RSS (VmRSS) of both processes is sampled every second. "Not flat" means: RSS at the end
    /// exceeds the baseline, the first sample taken after 20% of the run (the warm-up), by more
    /// than max(--rss-slack-mib, --rss-slack-percent of the baseline), i.e. max(20 MiB, 50%)
    /// by default. These bounds catch leaks and hangs; they are not performance targets.
    ///
    /// Full run: `cargo build --release --workspace --bins && target/release/bench soak
    /// --seconds 60 --connections 128`.
    Soak(SoakArgs),
    /// Serve fixed JSON bodies on `/articles` and `/articles/{pk}` (the ceiling; spawned by the
    /// benchmark itself).
    #[command(hide = true)]
    BareServer(BareArgs),
}

/// Options of the hidden `bare-server` subcommand.
#[derive(Debug, Clone, Args)]
pub(crate) struct BareArgs {
    /// The loopback address to listen on.
    #[arg(long)]
    pub(crate) listen: SocketAddr,
    /// The exact body to answer on `GET /articles`.
    #[arg(long)]
    pub(crate) list_body: PathBuf,
    /// The exact body to answer on `GET /articles/{pk}`, whatever the pk.
    #[arg(long)]
    pub(crate) detail_body: PathBuf,
}

/// Options of the benchmark run.
#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    /// Measured seconds per scenario and target (default 10; 1 with --quick).
    #[arg(long)]
    pub(crate) seconds: Option<f64>,
    /// Warm-up seconds before each measurement, not recorded (default 2; 0 with --quick).
    #[arg(long)]
    pub(crate) warmup: Option<f64>,
    /// Concurrent workers, each with its own connection (default 64; 4 with --quick).
    #[arg(long)]
    pub(crate) connections: Option<usize>,
    /// The most requests measured per scenario and target (a cap next to --seconds).
    #[arg(long, default_value_t = 10_000_000)]
    pub(crate) max_requests: u64,
    /// Demo articles the benchmark's services create; `detail` cycles over ids 1..=N
    /// (default 10000; 1000 with --quick).
    #[arg(long)]
    pub(crate) articles: Option<u32>,
    /// A smoke-test run: 1 s per scenario, no warm-up, 4 connections, 1000 articles, unless
    /// given explicitly.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Drive this REST base URL (loopback only) instead of starting our processes.
    #[arg(long)]
    pub(crate) rest_url: Option<String>,
    /// Drive this gRPC URL (loopback only) instead of starting our processes.
    #[arg(long)]
    pub(crate) grpc_url: Option<String>,
    /// Also measure deep pages: page 1 vs page 5000 on a large SQLite database.
    #[arg(long)]
    pub(crate) deep: bool,
    /// Articles in the deep-pages database.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) deep_articles: u32,
    /// Calls per page in the deep-pages measurement.
    #[arg(long, default_value_t = 200)]
    pub(crate) deep_calls: u64,
    /// Where `articles-service` and `articles-gateway` are (default: next to this binary).
    #[arg(long)]
    pub(crate) bin_dir: Option<PathBuf>,
    /// `RUST_LOG` for the child processes (their logs go to files, printed on failure).
    #[arg(long, default_value = "warn")]
    pub(crate) child_log: String,
    /// Also measure a peer gateway side by side with ours, both in front of the same Go gRPC
    /// backend (in memory, so the gateways' own cost is what is measured). `grpc-gateway`:
    /// grpc-gateway 1.6.4, built from Debian's packages by `bench/peer/build.sh` (it
    /// `apt-get install`s what is missing; nothing else is fetched).
    #[arg(long, value_enum)]
    pub(crate) peer: Option<Peer>,
    /// Where the peer's binaries are built (default: `peer/` beside the binaries' directory,
    /// i.e. `target/peer`).
    #[arg(long)]
    pub(crate) peer_dir: Option<PathBuf>,
    /// Also draw requests/s and CPU per request of every target as SVG bar charts to FILE.
    #[arg(long)]
    pub(crate) svg: Option<PathBuf>,
}

/// A gateway to compare ours with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Peer {
    /// grpc-gateway (Go), as Debian packages it.
    GrpcGateway,
}

/// A resolved, validated run configuration.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Measured time per row.
    pub(crate) seconds: Duration,
    /// Unrecorded warm-up per row.
    pub(crate) warmup: Duration,
    /// Workers (and connections) of the loaded rows.
    pub(crate) connections: usize,
    /// Cap on measured requests per row.
    pub(crate) max_requests: u64,
    /// Demo articles, and the id range of `detail`.
    pub(crate) articles: u32,
    /// Where to write JSON.
    pub(crate) json: Option<PathBuf>,
    /// External REST target.
    pub(crate) rest_url: Option<String>,
    /// External gRPC target.
    pub(crate) grpc_url: Option<String>,
    /// Deep-pages settings, when `--deep`.
    pub(crate) deep: Option<DeepSettings>,
    /// Override of the binaries' directory.
    pub(crate) bin_dir: Option<PathBuf>,
    /// `RUST_LOG` of the children.
    pub(crate) child_log: String,
    /// The peer measured side by side, with `--peer`.
    pub(crate) peer: Option<Peer>,
    /// Where the peer is built.
    pub(crate) peer_dir: Option<PathBuf>,
    /// Where to draw the charts.
    pub(crate) svg: Option<PathBuf>,
}

/// What `--deep` measures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeepSettings {
    /// Articles in the database.
    pub(crate) articles: u32,
    /// Calls per page.
    pub(crate) calls: u64,
}

impl Settings {
    /// Applies defaults (and `--quick`) and checks ranges.
    ///
    /// # Errors
    /// A negative or non-finite duration, zero connections, zero articles or zero requests.
    pub(crate) fn resolve(args: RunArgs) -> Result<Self> {
        let quick = args.quick;
        let pick = |given: Option<f64>, normal: f64, fast: f64| {
            given.unwrap_or(if quick { fast } else { normal })
        };
        let seconds = secs(pick(args.seconds, 10.0, 1.0), "--seconds")?;
        if seconds.is_zero() {
            bail!("--seconds must be positive");
        }
        let warmup = secs(pick(args.warmup, 2.0, 0.0), "--warmup")?;
        let connections = args.connections.unwrap_or(if quick { 4 } else { 64 });
        if connections == 0 {
            bail!("--connections must be at least 1");
        }
        let articles = args.articles.unwrap_or(if quick { 1000 } else { 10_000 });
        if articles == 0 {
            bail!("--articles must be at least 1");
        }
        if args.max_requests == 0 {
            bail!("--max-requests must be at least 1");
        }
        if args.peer.is_some() && (args.rest_url.is_some() || args.grpc_url.is_some()) {
            bail!(
                "--peer starts its own processes: it cannot be combined with --rest-url/--grpc-url"
            );
        }
        if args.deep && (args.deep_articles == 0 || args.deep_calls == 0) {
            bail!("--deep-articles and --deep-calls must be at least 1");
        }
        Ok(Self {
            seconds,
            warmup,
            connections,
            max_requests: args.max_requests,
            articles,
            json: args.json,
            rest_url: args.rest_url,
            grpc_url: args.grpc_url,
            deep: args.deep.then_some(DeepSettings {
                articles: args.deep_articles,
                calls: args.deep_calls,
            }),
            bin_dir: args.bin_dir,
            child_log: args.child_log,
            peer: args.peer,
            peer_dir: args.peer_dir,
            svg: args.svg,
        })
    }

    /// Whether the targets are external (`--rest-url` / `--grpc-url`).
    pub(crate) fn external(&self) -> bool {
        self.rest_url.is_some() || self.grpc_url.is_some()
    }

    /// Measured time of the one-connection pass: half of `seconds`.
    pub(crate) fn low_load_seconds(&self) -> Duration {
        self.seconds / 2
    }

    /// Warm-up of the one-connection pass: half of `warmup`.
    pub(crate) fn low_load_warmup(&self) -> Duration {
        self.warmup / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn quick_sets_small_defaults_but_explicit_flags_win() -> Result<()> {
        let cli = Cli::try_parse_from(["bench", "--quick", "--connections", "8"])?;
        let s = Settings::resolve(cli.run)?;
        assert_eq!(s.seconds, Duration::from_secs(1));
        assert_eq!(s.warmup, Duration::ZERO);
        assert_eq!(s.connections, 8);
        assert_eq!(s.articles, 1000);
        Ok(())
    }

    #[test]
    fn rejects_zero_connections_and_negative_seconds() -> Result<()> {
        let cli = Cli::try_parse_from(["bench", "--connections", "0"])?;
        assert!(Settings::resolve(cli.run).is_err());
        let cli = Cli::try_parse_from(["bench", "--seconds=-1"])?;
        assert!(Settings::resolve(cli.run).is_err());
        Ok(())
    }

    #[test]
    fn bare_server_is_a_subcommand() -> Result<()> {
        let cli = Cli::try_parse_from([
            "bench",
            "bare-server",
            "--listen",
            "127.0.0.1:1",
            "--list-body",
            "a",
            "--detail-body",
            "b",
        ])?;
        assert!(matches!(cli.command, Some(Command::BareServer(_))));
        Ok(())
    }
}

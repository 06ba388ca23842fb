//! The command line of `bench soak` and the [`SoakSettings`] it resolves into.
//!
//! The leak rule and the other pass/fail checks are described in the subcommand's help (the
//! doc comment of [`crate::config::Command::Soak`]) and in [`crate::soak`].

use std::{path::PathBuf, time::Duration};

use anyhow::{Result, bail};
use clap::Args;

use super::seconds::secs;

/// Options of `bench soak`.
#[derive(Debug, Clone, Args)]
pub(crate) struct SoakArgs {
    /// How long to drive load, in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub(crate) seconds: f64,
    /// The most requests to send in all (a cap next to --seconds; generous by default).
    #[arg(long, default_value_t = 50_000_000)]
    pub(crate) max_requests: u64,
    /// Concurrent REST workers through the gateway, each with its own HTTP/1.1 connection.
    #[arg(long, default_value_t = 128)]
    pub(crate) connections: usize,
    /// Concurrent workers calling the service directly over gRPC (0: none).
    #[arg(long, default_value_t = 4)]
    pub(crate) grpc_connections: usize,
    /// Demo articles in the service's fresh SQLite database.
    #[arg(long, default_value_t = 1000)]
    pub(crate) articles: u32,
    /// A request with no answer after this many seconds counts as an error (a hang).
    #[arg(long, default_value_t = 10.0)]
    pub(crate) request_timeout: f64,
    /// Leak check: RSS may grow by at least this many MiB after the warm-up.
    #[arg(long, default_value_t = 20)]
    pub(crate) rss_slack_mib: u64,
    /// Leak check: RSS may grow by at least this share (in percent) of its post-warm-up value.
    #[arg(long, default_value_t = 50.0)]
    pub(crate) rss_slack_percent: f64,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Where `articles-service` and `articles-gateway` are (default: next to this binary).
    #[arg(long)]
    pub(crate) bin_dir: Option<PathBuf>,
    /// `RUST_LOG` for the child processes (their logs go to files, printed on failure).
    #[arg(long, default_value = "warn")]
    pub(crate) child_log: String,
    /// Mix hostile clients into the load: bodies trickled a byte at a time, sockets that never
    /// speak, clients hanging up mid-call, expired deadlines. The well-behaved clients must
    /// still see no failure.
    #[arg(long)]
    pub(crate) hostile: bool,
}

/// A resolved, validated soak configuration.
#[derive(Debug, Clone)]
pub(crate) struct SoakSettings {
    /// How long to drive load.
    pub(crate) duration: Duration,
    /// Cap on requests (REST and gRPC together).
    pub(crate) max_requests: u64,
    /// REST workers through the gateway.
    pub(crate) connections: usize,
    /// Direct gRPC workers.
    pub(crate) grpc_connections: usize,
    /// Demo articles (ids `1..=articles`).
    pub(crate) articles: u32,
    /// Longest wait for one answer.
    pub(crate) request_timeout: Duration,
    /// The leak check's absolute allowance, in KiB.
    pub(crate) rss_slack_kib: u64,
    /// The leak check's relative allowance, in percent.
    pub(crate) rss_slack_percent: f64,
    /// Where to write JSON.
    pub(crate) json: Option<PathBuf>,
    /// Override of the binaries' directory.
    pub(crate) bin_dir: Option<PathBuf>,
    /// `RUST_LOG` of the children.
    pub(crate) child_log: String,
    /// Whether hostile clients run alongside.
    pub(crate) hostile: bool,
}

impl SoakSettings {
    /// Checks ranges.
    ///
    /// # Errors
    /// A non-positive or non-finite duration, zero connections, articles or requests, or a
    /// negative allowance.
    pub(crate) fn resolve(args: SoakArgs) -> Result<Self> {
        let duration = secs(args.seconds, "--seconds")?;
        if duration.is_zero() {
            bail!("--seconds must be positive");
        }
        let request_timeout = secs(args.request_timeout, "--request-timeout")?;
        if request_timeout.is_zero() {
            bail!("--request-timeout must be positive");
        }
        if args.connections == 0 {
            bail!("--connections must be at least 1");
        }
        if args.articles == 0 {
            bail!("--articles must be at least 1");
        }
        if args.max_requests == 0 {
            bail!("--max-requests must be at least 1");
        }
        if !(args.rss_slack_percent.is_finite() && args.rss_slack_percent >= 0.0) {
            bail!("--rss-slack-percent must be a non-negative number");
        }
        Ok(Self {
            duration,
            max_requests: args.max_requests,
            connections: args.connections,
            grpc_connections: args.grpc_connections,
            articles: args.articles,
            request_timeout,
            rss_slack_kib: args.rss_slack_mib.saturating_mul(1024),
            rss_slack_percent: args.rss_slack_percent,
            json: args.json,
            bin_dir: args.bin_dir,
            child_log: args.child_log,
            hostile: args.hostile,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cli, Command};
    use clap::Parser as _;

    fn soak(args: &[&str]) -> Result<SoakSettings> {
        let cli = Cli::try_parse_from(args)?;
        match cli.command {
            Some(Command::Soak(args)) => SoakSettings::resolve(args),
            other => bail!("not the soak subcommand: {other:?}"),
        }
    }

    #[test]
    fn defaults() -> Result<()> {
        let s = soak(&["bench", "soak"])?;
        assert_eq!(s.duration, Duration::from_secs(60));
        assert_eq!(s.connections, 128);
        assert_eq!(s.articles, 1000);
        assert_eq!(s.rss_slack_kib, 20 * 1024);
        assert!(s.max_requests >= 1_000_000);
        Ok(())
    }

    #[test]
    fn flags_and_ranges() -> Result<()> {
        let s = soak(&["bench", "soak", "--seconds", "5", "--connections", "32"])?;
        assert_eq!(s.duration, Duration::from_secs(5));
        assert_eq!(s.connections, 32);
        assert!(soak(&["bench", "soak", "--seconds", "0"]).is_err());
        assert!(soak(&["bench", "soak", "--connections", "0"]).is_err());
        assert!(soak(&["bench", "soak", "--rss-slack-percent=-1"]).is_err());
        Ok(())
    }

    #[test]
    fn benchmark_flags_still_work_without_a_subcommand() -> Result<()> {
        let cli = Cli::try_parse_from(["bench", "--seconds", "3"])?;
        assert!(cli.command.is_none());
        assert_eq!(cli.run.seconds, Some(3.0));
        Ok(())
    }
}

//! The command line of `articles-service` (clap derive). Every flag can also be set through an
//! `ARTICLES_*` environment variable.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use articles_gateway::config::parse_duration;
use clap::{Args, Parser, Subcommand};

use crate::{
    server::{ConnectionLimits, DEFAULT_MAX_CONNECTIONS},
    store::StoreOptions,
};

/// Serves the article contract over gRPC (tonic), backed by SQLite or PostgreSQL.
///
/// Without a subcommand, `serve` runs.
#[derive(Debug, Parser)]
#[command(
    name = "articles-service",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do; `serve` when left out.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The options of `serve`, used when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once at start: boxing the flags would buy nothing"
)]
pub enum Command {
    /// Serve gRPC (the default).
    Serve(ServeArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate(DatabaseArgs),
    /// Import articles from a JSON Lines file in one transaction.
    Import(ImportArgs),
}

/// Options of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The address to listen on for gRPC.
    #[arg(long, env = "ARTICLES_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// The database.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// How many demo articles to create when this start creates the table (0 for none).
    #[arg(long, env = "ARTICLES_DEMO_ARTICLES", default_value_t = 50)]
    pub demo_articles: u32,
    /// Who may write.
    #[command(flatten)]
    pub tokens: TokenArgs,
    /// A read-only copy of the database (e.g. a PostgreSQL replica) for ArticleList and
    /// ArticleDetail; writes and migrations use `--database-url`.
    #[arg(long, env = "ARTICLES_READ_DATABASE_URL", hide_env_values = true)]
    pub read_database_url: Option<String>,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (off when not given).
    #[arg(long, env = "ARTICLES_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Also serve REST (and the OpenAPI docs at `/docs`) at this address, through the gateway
    /// mounted in this process: calls go to the gRPC service in memory, with no socket and no
    /// second hop. Off when not given; use `articles-gateway` to front other backends.
    #[arg(long, env = "ARTICLES_REST")]
    pub rest: Option<SocketAddr>,
    /// How `--rest` serves: the same flags as `articles-gateway`'s.
    #[command(
        flatten,
        next_help_heading = "REST (with --rest; the flags of articles-gateway)"
    )]
    pub http: articles_gateway::config::HttpArgs,
    /// How often the database is checked for the health service (e.g. `3s`, `500ms`).
    #[arg(long, env = "ARTICLES_HEALTH_INTERVAL", default_value = "3s", value_parser = parse_duration)]
    pub health_interval: Duration,
    /// How the gRPC port guards its connections.
    #[command(flatten, next_help_heading = "gRPC port connections")]
    pub connections: ConnectionArgs,
}

/// The connection guards of the gRPC port (`--listen`), named as the gateway's, with `grpc-`.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// How long a client may take to send its first byte on the gRPC port (default 10s);
    /// silent connections are closed.
    #[arg(long, env = "ARTICLES_GRPC_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub grpc_header_read_timeout: Duration,
    /// How long a gRPC connection may go without a byte either way before it is closed
    /// (default 5m). A call in progress still gets its answer; the client connects again.
    #[arg(long, env = "ARTICLES_GRPC_IDLE_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    pub grpc_idle_timeout: Duration,
    /// How many connections the gRPC port keeps open at once (default 10000); past it, the one
    /// idle the longest is closed for each new one. The open files limit is raised to its hard
    /// limit at start, and the cap lowered to fit within it.
    #[arg(long, env = "ARTICLES_GRPC_MAX_CLIENT_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub grpc_max_client_connections: usize,
}

impl ConnectionArgs {
    /// The limits these flags set.
    pub fn limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: self.grpc_header_read_timeout,
            idle_timeout: self.grpc_idle_timeout,
            max_connections: self.grpc_max_client_connections,
        }
    }
}

impl ServeArgs {
    /// The store options: the database flags plus the read URL.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            read_url: self.read_database_url.clone(),
            ..self.database.store_options()
        }
    }
}

/// Which database to use and how.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// The database: `sqlite://FILE` (created if missing) or `postgres://USER@HOST/DB`.
    #[arg(
        long,
        env = "ARTICLES_DATABASE_URL",
        default_value = "sqlite://articles.db",
        hide_env_values = true
    )]
    pub database_url: String,
    /// The largest number of pooled database connections (default: 5 for SQLite, 10 for
    /// PostgreSQL). On SQLite it also caps the read-only connections kept for short reads.
    #[arg(long, env = "ARTICLES_MAX_CONNECTIONS")]
    pub max_connections: Option<u32>,
    /// How many pooled connections to keep open even when idle.
    #[arg(long, env = "ARTICLES_MIN_CONNECTIONS", default_value_t = 0)]
    pub min_connections: u32,
    /// How long a request waits for a free pooled connection before failing with UNAVAILABLE
    /// (e.g. `5s`, `500ms`, `1m`; a bare number is seconds).
    #[arg(long, env = "ARTICLES_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub acquire_timeout: Duration,
    /// SQLite: how long a statement waits for another connection's lock before failing with
    /// UNAVAILABLE (same format as `--acquire-timeout`).
    #[arg(long, env = "ARTICLES_BUSY_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub busy_timeout: Duration,
}

impl DatabaseArgs {
    /// The store options these flags describe.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            url: self.database_url.clone(),
            read_url: None,
            min_connections: self.min_connections,
            max_connections: self.max_connections,
            acquire_timeout: self.acquire_timeout,
            busy_timeout: self.busy_timeout,
        }
    }
}

/// The bearer tokens that allow writes. With none, writes are refused.
#[derive(Debug, Clone, Default, Args)]
pub struct TokenArgs {
    /// A token that allows writes (repeatable; the variable takes a comma-separated list).
    #[arg(
        long = "api-token",
        env = "ARTICLES_API_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_tokens: Vec<String>,
    /// A file with one token per line (blank lines and `#` comments ignored).
    #[arg(long, env = "ARTICLES_API_TOKENS_FILE")]
    pub api_tokens_file: Option<PathBuf>,
}

/// Options of `import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The JSON Lines file: one `{"title", "content", "create_time"?}` object per line.
    pub file: PathBuf,
    /// The database.
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_BUSY_TIMEOUT};
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_serve_with_defaults() -> Result<(), clap::Error> {
        let cli = Cli::try_parse_from(["articles-service", "--listen", "127.0.0.1:1"])?;
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.listen.port(), 1);
        assert_eq!(cli.serve.database.acquire_timeout, DEFAULT_ACQUIRE_TIMEOUT);
        assert_eq!(cli.serve.database.busy_timeout, DEFAULT_BUSY_TIMEOUT);
        assert!(cli.serve.metrics_listen.is_none());
        assert_eq!(
            cli.serve.connections.limits(),
            crate::server::ConnectionLimits::default()
        );
        Ok(())
    }

    #[test]
    fn durations_take_units_and_default_to_seconds() {
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        // The gateway's grammar (humantime's) also reads compound durations.
        assert_eq!(parse_duration("1s 500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}

//! The command line of `articles-service` (clap derive). Every flag can also be set through an
//! `ARTICLES_*` environment variable.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::store::StoreOptions;

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
    /// The largest number of pooled database connections (default: 5 for SQLite, 10 for PostgreSQL).
    #[arg(long, env = "ARTICLES_MAX_CONNECTIONS")]
    pub max_connections: Option<u32>,
}

impl DatabaseArgs {
    /// The store options these flags describe.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            url: self.database_url.clone(),
            max_connections: self.max_connections,
            acquire_timeout: Duration::from_secs(5),
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
        Ok(())
    }
}

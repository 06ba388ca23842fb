//! The article service: a gRPC server for the `article.v1.ArticleService` contract, backed by
//! SQLite or PostgreSQL through sqlx, plus the library side of the `articles` command-line client.
//!
//! The binaries are thin: `articles-service` parses [`config::Cli`] and calls [`run`];
//! `articles` parses [`client::ClientCli`] and calls [`client::run`].
//!
//! To embed the server elsewhere (for example next to an HTTP gateway), open an [`server::App`]
//! with [`server::App::open`] and either take its tonic [`tonic::service::Routes`] with
//! [`server::App::routes`] or serve it on a listener of your own with [`server::serve`].
//! [`server::serve`] wraps every call in the [`observe::ObserveLayer`] (request id, span,
//! metrics); routes mounted elsewhere can be wrapped in it too.

pub mod auth;
pub mod client;
pub mod clock;
pub mod config;
pub mod error;
pub mod feed;
pub mod grpc;
pub mod import;
pub mod metrics;
pub mod model;
pub mod observe;
pub mod reflection;
pub mod rules;
pub mod seed;
pub mod server;
pub mod store;

pub use error::{Error, Result};

/// Why `articles-service` stopped with an error: start-up or serving ([`error::StartError`]),
/// the database of `migrate` ([`Error`]), or an import ([`import::ImportError`]).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Starting or serving failed.
    #[error(transparent)]
    Start(#[from] error::StartError),
    /// Migrating failed.
    #[error(transparent)]
    Server(#[from] Error),
    /// The import failed (nothing was imported).
    #[error(transparent)]
    Import(#[from] import::ImportError),
}

use config::{Cli, Command};

/// Runs the `articles-service` command line: `serve` (the default), `migrate` or `import`.
///
/// # Errors
/// Any error of the chosen command: bad configuration, database failures, an unreadable or
/// malformed import file, or a failure to bind the listen address.
pub async fn run(cli: Cli) -> Result<(), RunError> {
    match cli.command {
        None => Ok(server::run(&cli.serve).await?),
        Some(Command::Serve(args)) => Ok(server::run(&args).await?),
        Some(Command::Migrate(args)) => {
            let store = store::Store::connect(&args.store_options()).await?;
            let state = store.prepare(0).await?;
            tracing::info!(?state, "schema ready");
            store.close().await;
            Ok(())
        }
        Some(Command::Import(args)) => {
            let imported = import::run(&args).await?;
            println!("imported {imported} articles");
            Ok(())
        }
    }
}

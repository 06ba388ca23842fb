//! `articles`: a command-line client for the article service.
//!
//! Exit status: 0 on success, 1 when the call fails (gRPC error or no connection; one
//! `error: ...` line on stderr), 2 on a usage error.

use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = articles_service::client::ClientCli::parse();
    match articles_service::client::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

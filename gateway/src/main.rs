//! `articles-gateway`: parses the command line and hands over to [`articles_gateway::run`].

use std::process::ExitCode;

use clap::Parser;

/// glibc's malloc cost about 35,000 instructions per request here (callgrind: ~140 frees a
/// request, many freed on another thread than the one that allocated), mimalloc a fraction.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = articles_gateway::config::Cli::parse();
    articles_gateway::server::init_tracing();
    match articles_gateway::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "articles-gateway failed");
            ExitCode::FAILURE
        }
    }
}

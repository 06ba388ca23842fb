//! `articles-service`: the gRPC server and its maintenance commands (`migrate`, `import`).
//!
//! Exit status: 0 on success, 1 on any error (printed as one `error: ...` line), 2 on a usage
//! error. Logs go to stderr (colored only on a terminal); `RUST_LOG` filters them (default
//! `info`). Each gRPC call's lines carry its `request_id`.

use std::{io::IsTerminal as _, process::ExitCode};

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

/// As in the gateway: glibc's malloc is a measurable share of each call (callgrind), and
/// tonic frees on other threads than it allocates; mimalloc costs a fraction of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = articles_service::config::Cli::parse();
    match articles_service::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

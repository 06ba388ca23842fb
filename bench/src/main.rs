//! The `bench` binary: parses the command line and hands over to [`bench::run`] (see the
//! crate documentation for what it measures and how to run it).

use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = bench::Cli::parse();
    match bench::run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("bench: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

//! `articles-gateway`: parses the command line and hands over to [`articles_gateway::run`],
//! with the article API as the one it serves when no other descriptors are named. The article
//! defaults live here, not in the library: the library is a gateway for any API.

use std::process::ExitCode;

use articles_gateway::{openapi::ApiInfo, server::EmbeddedApi};
use clap::Parser;

/// glibc's malloc cost about 35,000 instructions per request here (callgrind: ~140 frees a
/// request, many freed on another thread than the one that allocated), mimalloc a fraction.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The article contract compiled in, and its document's `info`: title `articles`, this crate's
/// version (the proto's `openapiv2_swagger` option says the rest).
fn article_api() -> EmbeddedApi {
    EmbeddedApi {
        descriptor_set: articles_proto::FILE_DESCRIPTOR_SET,
        info: ApiInfo {
            title: "articles".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            ..ApiInfo::default()
        },
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = articles_gateway::config::Cli::parse();
    articles_gateway::server::init_tracing();
    match articles_gateway::run(cli, Some(&article_api())).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "articles-gateway failed");
            ExitCode::FAILURE
        }
    }
}

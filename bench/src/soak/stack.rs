//! The soak's system under test: `articles-service` (fresh SQLite in a temporary directory,
//! demo articles, a bearer token for writes) and `articles-gateway` in front of it, started
//! as the benchmark starts them ([`crate::stack::start_service`], [`crate::stack::start_gateway`]).

use std::net::SocketAddr;

use anyhow::{Context as _, Result};
use tempfile::TempDir;

use crate::{
    config::soak::SoakSettings,
    procs::{self, Proc},
    stack::{sqlite_url, start_gateway, start_service},
};

/// The two running processes and where they listen.
#[derive(Debug)]
pub(crate) struct SoakStack {
    pub(crate) service: Proc,
    pub(crate) gateway: Proc,
    /// The service's gRPC address.
    pub(crate) grpc_addr: SocketAddr,
    /// The gateway's HTTP address.
    pub(crate) rest_addr: SocketAddr,
    /// The bearer token the service accepts for writes.
    pub(crate) token: String,
    tmp: TempDir,
}

impl SoakStack {
    /// Starts the service, then the gateway.
    ///
    /// # Errors
    /// A missing binary, no temporary directory, or a process that does not start.
    pub(crate) async fn start(settings: &SoakSettings) -> Result<Self> {
        let dir = procs::bin_dir(settings.bin_dir.as_deref())?;
        let service_bin = procs::binary(&dir, "articles-service")?;
        let gateway_bin = procs::binary(&dir, "articles-gateway")?;
        let tmp = tempfile::Builder::new()
            .prefix("articles-soak-")
            .tempdir()
            .context("creating a temporary directory")?;
        let token = token();
        let db = sqlite_url(&tmp.path().join("soak.db"));

        eprintln!(
            "starting articles-service ({} demo articles, SQLite in {})...",
            settings.articles,
            tmp.path().display()
        );
        let (service, grpc_addr) = start_service(
            &service_bin,
            &db,
            settings.articles,
            &["--api-token", &token],
            &settings.child_log,
            tmp.path(),
        )
        .await
        .context("starting articles-service")?;

        eprintln!("starting articles-gateway...");
        let (gateway, rest_addr) = start_gateway(
            "gateway",
            &gateway_bin,
            grpc_addr,
            &settings.child_log,
            tmp.path(),
        )
        .await
        .context("starting articles-gateway")?;

        Ok(Self {
            service,
            gateway,
            grpc_addr,
            rest_addr,
            token,
            tmp,
        })
    }

    /// The gateway, the service and the temporary directory (removed when dropped).
    pub(crate) fn into_parts(self) -> (Proc, Proc, TempDir) {
        (self.gateway, self.service, self.tmp)
    }
}

/// A token for this run only (not a secret: loopback, temporary processes).
fn token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("soak-{}-{nanos:x}", std::process::id())
}

//! What both connection kinds share: the request to make ([`Op`]), why a call failed
//! ([`CallError`]), and the loopback-only address resolution.

use std::net::SocketAddr;

use anyhow::{Context as _, Result, bail};

/// One request to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `GET /articles?page=&page_size=` / `ArticleList`.
    List {
        page: i32,
        /// Articles per page.
        page_size: i32,
    },
    /// `GET /articles/{pk}` / `ArticleDetail`.
    Detail { pk: i32 },
}

/// Why a call failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The server answered with an error status; the connection is still usable.
    Status(String),
    /// The connection failed and must be reopened.
    Broken(String),
    /// The request could not even be built (a bench bug).
    Failed(String),
}

impl CallError {
    pub(super) fn broken(err: impl std::fmt::Display) -> Self {
        Self::Broken(err.to_string())
    }

    pub(super) fn failed(err: impl std::fmt::Display) -> Self {
        Self::Failed(err.to_string())
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(s) => write!(f, "{s}"),
            Self::Broken(s) => write!(f, "transport: {s}"),
            Self::Failed(s) => write!(f, "request: {s}"),
        }
    }
}

impl std::error::Error for CallError {}

/// Resolves `host:port` and insists that every address is on loopback: this harness sends
/// load to this machine only.
///
/// # Errors
/// Resolution failures, or a non-loopback address.
pub(crate) async fn loopback_addr(host: &str, port: u16) -> Result<SocketAddr> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("resolving {host}"))?
        .collect();
    match addrs.first() {
        Some(first) if addrs.iter().all(|a| a.ip().is_loopback()) => Ok(*first),
        Some(_) => bail!("{host} is not a loopback address: this benchmark only targets loopback"),
        None => bail!("{host} did not resolve"),
    }
}

//! The gRPC side of the load generator: one tonic `Channel` (one HTTP/2 connection) per
//! worker, driven through the generated `ArticleServiceClient`.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use articles_proto::article::v1::{
    ArticleDetailRequest, ArticleListRequest, article_service_client::ArticleServiceClient,
};
use http::Uri;
use tonic::transport::{Channel, Endpoint};

use super::call::{CallError, Op, loopback_addr};

/// Where a gRPC target listens (`http://HOST:PORT`, loopback only).
#[derive(Debug, Clone)]
pub(crate) struct GrpcEndpoint {
    url: String,
}

impl GrpcEndpoint {
    /// The endpoint of a server we started on `addr`.
    pub(crate) fn local(addr: std::net::SocketAddr) -> Self {
        Self {
            url: format!("http://{addr}"),
        }
    }

    /// Parses `http://HOST:PORT`; the host must resolve to a loopback address.
    ///
    /// # Errors
    /// Not an `http://` URL, or not on loopback.
    pub(crate) async fn parse(url: &str) -> Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("gRPC URL {url:?}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("gRPC URL {url:?}: only plaintext http:// is supported");
        }
        let authority = uri
            .authority()
            .with_context(|| format!("gRPC URL {url:?} has no host"))?;
        let addr = loopback_addr(authority.host(), authority.port_u16().unwrap_or(80)).await?;
        Ok(Self {
            url: format!("http://{addr}"),
        })
    }
}

/// One channel with the generated client on it.
#[derive(Debug)]
pub(crate) struct GrpcConn {
    client: ArticleServiceClient<Channel>,
}

impl GrpcConn {
    /// Connects one channel (TCP_NODELAY, 5 s connect timeout).
    ///
    /// # Errors
    /// An invalid URL or a failed connection.
    pub(crate) async fn connect(endpoint: &GrpcEndpoint) -> Result<Self> {
        let channel = Endpoint::from_shared(endpoint.url.clone())
            .context("gRPC endpoint")?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("connecting to {}", endpoint.url))?;
        Ok(Self {
            client: ArticleServiceClient::new(channel),
        })
    }

    /// Performs `op`; any non-OK status is an error. The response is decoded by tonic (that is
    /// part of a gRPC call) and dropped.
    ///
    /// # Errors
    /// [`CallError::Status`]; the channel reconnects by itself, so never `Broken`.
    pub(crate) async fn call(&mut self, op: &Op) -> Result<(), CallError> {
        let result = match *op {
            Op::List { page, page_size } => self
                .client
                .article_list(ArticleListRequest {
                    page,
                    page_size,
                    ..Default::default()
                })
                .await
                .map(drop),
            Op::Detail { pk } => self
                .client
                .article_detail(ArticleDetailRequest { pk })
                .await
                .map(drop),
        };
        result.map_err(|status| {
            CallError::Status(format!("gRPC {:?}: {}", status.code(), status.message()))
        })
    }
}

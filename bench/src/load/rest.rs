//! The REST side of the load generator and of the soak: one hyper 1.x HTTP/1.1 keep-alive
//! connection (`hyper::client::conn::http1`) over a `TcpStream` per worker, plus a one-shot GET
//! used for readiness probes and for fetching the bodies the ceiling server answers.
//!
//! The benchmark only sends bodiless GETs; the soak also writes (any method, a JSON body, a
//! bearer token). A GET goes with an empty [`Full`] body, which hyper writes exactly as it did
//! an `Empty` one (no `content-length`, no body), so the benchmark's bytes did not change.

use std::net::SocketAddr;

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::call::{CallError, Op, loopback_addr};

/// Where a REST target listens: a loopback address, its `Host` and a base path.
#[derive(Debug, Clone)]
pub(crate) struct RestEndpoint {
    addr: SocketAddr,
    authority: String,
    base_path: String,
}

impl RestEndpoint {
    /// The endpoint of a server we started on `addr`.
    pub(crate) fn local(addr: SocketAddr) -> Self {
        Self {
            addr,
            authority: addr.to_string(),
            base_path: String::new(),
        }
    }

    /// Parses `http://HOST:PORT[/base]`; the host must resolve to a loopback address.
    ///
    /// # Errors
    /// Not an `http://` URL, or not on loopback.
    pub(crate) async fn parse(url: &str) -> Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("REST URL {url:?}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("REST URL {url:?}: only http:// is supported");
        }
        let authority = uri
            .authority()
            .with_context(|| format!("REST URL {url:?} has no host"))?;
        let addr = loopback_addr(authority.host(), authority.port_u16().unwrap_or(80)).await?;
        Ok(Self {
            addr,
            authority: authority.to_string(),
            base_path: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// The request path (and query) of `op` under this endpoint's base path.
    pub(crate) fn path(&self, op: &Op) -> String {
        match *op {
            Op::List { page, page_size } => {
                format!(
                    "{}/articles?page={page}&page_size={page_size}",
                    self.base_path
                )
            }
            Op::Detail { pk } => format!("{}/articles/{pk}", self.base_path),
        }
    }
}

/// One keep-alive HTTP/1.1 connection.
#[derive(Debug)]
pub(crate) struct RestConn {
    endpoint: RestEndpoint,
    sender: SendRequest<Full<Bytes>>,
}

impl RestConn {
    /// Opens a connection (TCP_NODELAY) and spawns its hyper connection task.
    ///
    /// # Errors
    /// TCP connect or HTTP handshake failures.
    pub(crate) async fn connect(endpoint: &RestEndpoint) -> Result<Self> {
        let stream = TcpStream::connect(endpoint.addr)
            .await
            .with_context(|| format!("connecting to {}", endpoint.addr))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake")?;
        tokio::spawn(async move {
            // The connection ends when the server closes it or the sender is dropped; either
            // way the worker notices through `ready()`/`send_request`, so the result is unused.
            let _closed = conn.await;
        });
        Ok(Self {
            endpoint: endpoint.clone(),
            sender,
        })
    }

    /// Sends `GET path`, reads the whole body and returns status and body.
    ///
    /// # Errors
    /// [`CallError::Broken`] when the connection failed (reconnect), never for a status.
    pub(crate) async fn get(&mut self, path: &str) -> Result<(StatusCode, Bytes), CallError> {
        self.send(Method::GET, path, None, None).await
    }

    /// Sends `method path` with `body` as JSON (if any) and `Authorization` set to `token` (if
    /// any); returns the status and the whole body.
    ///
    /// # Errors
    /// [`CallError::Broken`] when the connection failed (reconnect), [`CallError::Failed`] if
    /// the request cannot be built; never for a status.
    pub(crate) async fn send(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&HeaderValue>,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), CallError> {
        self.sender.ready().await.map_err(CallError::broken)?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.endpoint.authority.as_str());
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, token.clone());
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(CallError::failed)?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(CallError::broken)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(CallError::broken)?
            .to_bytes();
        Ok((status, body))
    }

    /// Performs `op`; anything but 200 is an error.
    ///
    /// # Errors
    /// [`CallError::Status`] for a non-200 answer, [`CallError::Broken`] for transport errors.
    pub(crate) async fn call(&mut self, op: &Op) -> Result<(), CallError> {
        let path = self.endpoint.path(op);
        let (status, _body) = self.get(&path).await?;
        if status == StatusCode::OK {
            Ok(())
        } else {
            Err(CallError::Status(format!("HTTP {status}")))
        }
    }
}

/// One GET on a fresh connection: readiness probes and fetching reference bodies.
///
/// # Errors
/// Connection or transport failures (a non-200 status is returned, not an error).
pub(crate) async fn get_once(endpoint: &RestEndpoint, path: &str) -> Result<(StatusCode, Bytes)> {
    let mut conn = RestConn::connect(endpoint).await?;
    let got = conn.get(path).await?;
    Ok(got)
}

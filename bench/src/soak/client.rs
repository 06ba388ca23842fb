//! The soak's REST client: one hyper HTTP/1.1 keep-alive connection per worker that sends any
//! method with an optional JSON body and bearer token, and reads the whole answer.
//!
//! (The benchmark's [`crate::load::rest::RestConn`] only sends bodiless GETs; this one is kept
//! separate so the benchmark's requests stay byte-for-byte what they were.)

use std::net::SocketAddr;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::load::CallError;

/// One keep-alive connection to the gateway.
#[derive(Debug)]
pub(crate) struct Client {
    authority: HeaderValue,
    sender: SendRequest<Full<Bytes>>,
}

impl Client {
    /// Opens a connection (TCP_NODELAY) and spawns its hyper connection task.
    ///
    /// # Errors
    /// TCP connect or HTTP handshake failures.
    pub(crate) async fn connect(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake")?;
        tokio::spawn(async move {
            // Ends when the server closes the connection or the sender is dropped; the worker
            // sees either through `ready()`/`send_request`.
            let _closed = conn.await;
        });
        Ok(Self {
            authority: HeaderValue::from_str(&addr.to_string()).context("Host header")?,
            sender,
        })
    }

    /// Sends `method path` with `body` as JSON (if any) and `Authorization: Bearer token` (if
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
        self.sender
            .ready()
            .await
            .map_err(|e| CallError::Broken(e.to_string()))?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.authority.clone());
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, token.clone());
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Full::new(json)
            }
            None => Full::new(Bytes::new()),
        };
        let request = request
            .body(body)
            .map_err(|e| CallError::Failed(e.to_string()))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| CallError::Broken(e.to_string()))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| CallError::Broken(e.to_string()))?
            .to_bytes();
        Ok((status, body))
    }
}

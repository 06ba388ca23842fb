//! Write authorization before the request body: [`WriteGuard`] answers a write call
//! (CreateArticle, UpdateArticle, DeleteArticle) without a valid bearer token from its headers
//! alone, before a byte of its message is read or buffered, so a stranger cannot make the
//! server hold megabytes of request bodies (250 streams of 4 MiB on one connection was a
//! gigabyte) just to be refused. It is the one place writes are authorized.
//!
//! A tower layer rather than a tonic interceptor: an interceptor does not know which method
//! is called, and reads are public.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use articles_proto::ARTICLE_SERVICE;
use futures::future::{BoxFuture, FutureExt as _};
use http::{Request, Response};
use tonic::{Status, metadata::MetadataMap, server::NamedService};
use tower::Service;

use crate::auth::WriteTokens;

/// The methods that need a token.
const WRITE_METHODS: [&str; 3] = ["CreateArticle", "UpdateArticle", "DeleteArticle"];

/// Authorizes write calls to the wrapped `article.v1.ArticleService` server.
#[derive(Debug, Clone)]
pub struct WriteGuard<S> {
    inner: S,
    tokens: Arc<WriteTokens>,
}

impl<S> WriteGuard<S> {
    /// Guards `inner` with `tokens`.
    pub fn new(inner: S, tokens: Arc<WriteTokens>) -> Self {
        Self { inner, tokens }
    }
}

impl<S> NamedService for WriteGuard<S> {
    const NAME: &'static str = ARTICLE_SERVICE;
}

impl<S, B> Service<Request<B>> for WriteGuard<S>
where
    S: Service<Request<B>, Response = Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = request.uri().path().rsplit('/').next().unwrap_or_default();
        if let Some(status) = refusal(&self.tokens, method, request.headers()) {
            // Dropping the request drops its body unread.
            return std::future::ready(Ok(status.into_http())).boxed();
        }
        self.inner.call(request).boxed()
    }
}

/// The guard's answer to a call of the article service's `method` (its name, such as
/// `CreateArticle`) with these headers: `None` when it may go on. The in-process REST gateway
/// asks it too, before it reads a request body (`articles_gateway::GatewayBuilder::head_check`),
/// so that a write without a valid token is not read, decompressed and transcoded only to be
/// refused here from the same headers.
pub fn refusal(tokens: &WriteTokens, method: &str, headers: &http::HeaderMap) -> Option<Status> {
    if !WRITE_METHODS.contains(&method) {
        return None;
    }
    let metadata = MetadataMap::from_headers(headers.clone());
    tokens.authorize(&metadata).err().map(Status::from)
}

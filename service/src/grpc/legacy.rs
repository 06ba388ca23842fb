//! The tutorial's unpackaged service name.
//!
//! The tutorial's `article.proto` has no `package`, so its generated clients call
//! `/ArticleService/ArticleList`. [`LegacyAlias`] is registered under the name `ArticleService`
//! and rewrites such paths to `/article.v1.ArticleService/...` before handing the request to
//! the real service. The messages are wire-compatible, so nothing else changes.

use std::task::{Context, Poll};

use articles_proto::{ARTICLE_SERVICE, LEGACY_ARTICLE_SERVICE};
use http::{Request, uri::PathAndQuery};
use tonic::server::NamedService;
use tower::Service;

/// Serves a gRPC service under the legacy name `ArticleService` by rewriting request paths.
#[derive(Debug, Clone)]
pub struct LegacyAlias<S> {
    inner: S,
}

impl<S> LegacyAlias<S> {
    /// Wraps the `article.v1.ArticleService` server.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S> NamedService for LegacyAlias<S> {
    const NAME: &'static str = LEGACY_ARTICLE_SERVICE;
}

/// `/ArticleService/Method` -> `/article.v1.ArticleService/Method`; other paths unchanged.
fn rewrite(path_and_query: &PathAndQuery) -> Option<PathAndQuery> {
    let legacy_prefix = format!("/{LEGACY_ARTICLE_SERVICE}/");
    let rest = path_and_query.as_str().strip_prefix(&legacy_prefix)?;
    PathAndQuery::try_from(format!("/{ARTICLE_SERVICE}/{rest}")).ok()
}

impl<S, B> Service<Request<B>> for LegacyAlias<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        if let Some(new) = parts.uri.path_and_query().and_then(rewrite) {
            let mut uri = parts.uri.clone().into_parts();
            uri.path_and_query = Some(new);
            if let Ok(rewritten) = http::Uri::from_parts(uri) {
                parts.uri = rewritten;
            }
        }
        self.inner.call(Request::from_parts(parts, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_the_legacy_prefix() {
        let p = PathAndQuery::from_static("/ArticleService/ArticleList");
        assert_eq!(
            rewrite(&p).map(|p| p.to_string()).as_deref(),
            Some("/article.v1.ArticleService/ArticleList")
        );
        assert!(
            rewrite(&PathAndQuery::from_static(
                "/article.v1.ArticleService/ArticleList"
            ))
            .is_none()
        );
    }
}

//! The `article.v1.ArticleService` implementation: request validation, paging, write
//! authorization, and conversion between the store's rows and the contract's messages.
//!
//! [`legacy`] serves the same implementation under the tutorial's unpackaged
//! `/ArticleService/...` paths; [`guard`] authorizes the writes, before their bodies are read.

pub mod guard;
pub mod legacy;

use articles_proto::article::v1::{
    self as pb,
    article_service_server::{ArticleService, ArticleServiceServer},
};
use tonic::{Request, Response, Status};

use crate::{
    error::{Error, Result},
    model::{self, Article},
    store::Store,
};

/// The page size used when a request asks for 0.
pub const DEFAULT_PAGE_SIZE: i64 = 10;
/// The largest page size; larger requests are clamped to it.
pub const MAX_PAGE_SIZE: i64 = 100;
/// How many rows an export reads at a time: what it holds in memory, however large the table.
pub const EXPORT_BATCH: i64 = 500;

/// The stream of an export.
pub type ArticleStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::Article, Status>> + Send>>;

/// The service implementation.
#[derive(Debug, Clone)]
pub struct Articles {
    store: Store,
}

impl Articles {
    /// A service reading and writing `store` (writes are authorized in front of it, by
    /// [`guard::WriteGuard`]).
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Wrapped in the generated tonic server.
    pub fn into_server(self) -> ArticleServiceServer<Self> {
        ArticleServiceServer::new(self)
    }

    async fn list(&self, req: pb::ArticleListRequest) -> Result<pb::ArticleListResponse> {
        let (page, page_size) = page_params(req.page, req.page_size)?;
        let (rows, total) = self.store.list(page, page_size).await?;
        let offset = (page - 1).saturating_mul(page_size);
        let seen = offset.saturating_add(i64::try_from(rows.len()).unwrap_or(i64::MAX));
        let next_page = if seen < total {
            // page + 1 fits i32 unless page is i32::MAX, where no rows can follow anyway.
            i32::try_from(page + 1).unwrap_or(0)
        } else {
            0
        };
        Ok(pb::ArticleListResponse {
            articles: rows
                .into_iter()
                .map(Article::into_proto)
                .collect::<Result<_>>()?,
            // More than i32::MAX rows cannot be counted by the contract; saturate.
            total: i32::try_from(total).unwrap_or(i32::MAX),
            next_page,
        })
    }

    async fn detail(&self, req: pb::ArticleDetailRequest) -> Result<pb::ArticleDetailResponse> {
        let pk = model::validate_pk(req.pk)?;
        let article = self.store.get(pk).await?.into_proto()?;
        Ok(pb::ArticleDetailResponse {
            article: Some(article),
        })
    }

    async fn create(&self, req: pb::CreateArticleRequest) -> Result<pb::CreateArticleResponse> {
        model::validate_title(&req.title)?;
        model::validate_content(&req.content)?;
        let article = self.store.create(&req.title, &req.content).await?;
        tracing::info!(id = article.id, "article created");
        Ok(pb::CreateArticleResponse {
            article: Some(article.into_proto()?),
        })
    }

    async fn update(&self, req: pb::UpdateArticleRequest) -> Result<pb::UpdateArticleResponse> {
        let pk = model::validate_pk(req.pk)?;
        if let Some(title) = &req.title {
            model::validate_title(title)?;
        }
        if let Some(content) = &req.content {
            model::validate_content(content)?;
        }
        let article = self
            .store
            .update(pk, req.title.as_deref(), req.content.as_deref())
            .await?;
        tracing::info!(id = article.id, "article updated");
        Ok(pb::UpdateArticleResponse {
            article: Some(article.into_proto()?),
        })
    }

    async fn delete(&self, req: pb::DeleteArticleRequest) -> Result<pb::DeleteArticleResponse> {
        let pk = model::validate_pk(req.pk)?;
        let article = self.store.delete(pk).await?;
        tracing::info!(id = article.id, "article deleted");
        Ok(pb::DeleteArticleResponse {
            article: Some(article.into_proto()?),
        })
    }
}

/// Validates and normalizes paging: 1-based page (0 means 1), page size 0 means
/// [`DEFAULT_PAGE_SIZE`], above [`MAX_PAGE_SIZE`] is clamped; negatives are rejected.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `page` or `page_size`.
pub fn page_params(page: i32, page_size: i32) -> Result<(i64, i64)> {
    if page < 0 {
        return Err(Error::invalid(
            "page",
            format!("must not be negative (got {page})"),
        ));
    }
    if page_size < 0 {
        return Err(Error::invalid(
            "page_size",
            format!("must not be negative (got {page_size})"),
        ));
    }
    let page = if page == 0 { 1 } else { i64::from(page) };
    let page_size = match i64::from(page_size) {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    };
    Ok((page, page_size))
}

/// Runs a handler and turns its error into a status (the one mapping lives in `error.rs`).
fn respond<T>(result: Result<T>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}

/// Every article after `after_id`, batch by batch: the next batch is read only once the
/// previous one has been taken by the transport, which sends as the client reads.
fn export(store: Store, after_id: i64) -> ArticleStream {
    Box::pin(async_stream::try_stream! {
        let mut last = after_id;
        // Bounded by the table: each batch starts after the last id of the one before.
        loop {
            let batch = store.after(last, EXPORT_BATCH).await.map_err(Status::from)?;
            let Some(end) = batch.last().map(|a| a.id) else {
                break;
            };
            for article in batch {
                yield article.into_proto().map_err(Status::from)?;
            }
            last = end;
        }
    })
}

#[tonic::async_trait]
impl ArticleService for Articles {
    type ExportArticlesStream = ArticleStream;

    async fn export_articles(
        &self,
        request: Request<pb::ExportArticlesRequest>,
    ) -> Result<Response<ArticleStream>, Status> {
        let after_id = request.into_inner().after_id;
        if after_id < 0 {
            return Err(Status::from(Error::invalid(
                "after_id",
                format!("must not be negative (got {after_id})"),
            )));
        }
        Ok(Response::new(export(
            self.store.clone(),
            i64::from(after_id),
        )))
    }

    async fn article_list(
        &self,
        request: Request<pb::ArticleListRequest>,
    ) -> Result<Response<pb::ArticleListResponse>, Status> {
        respond(self.list(request.into_inner()).await)
    }

    async fn article_detail(
        &self,
        request: Request<pb::ArticleDetailRequest>,
    ) -> Result<Response<pb::ArticleDetailResponse>, Status> {
        respond(self.detail(request.into_inner()).await)
    }

    async fn create_article(
        &self,
        request: Request<pb::CreateArticleRequest>,
    ) -> Result<Response<pb::CreateArticleResponse>, Status> {
        respond(self.create(request.into_inner()).await)
    }

    async fn update_article(
        &self,
        request: Request<pb::UpdateArticleRequest>,
    ) -> Result<Response<pb::UpdateArticleResponse>, Status> {
        respond(self.update(request.into_inner()).await)
    }

    async fn delete_article(
        &self,
        request: Request<pb::DeleteArticleRequest>,
    ) -> Result<Response<pb::DeleteArticleResponse>, Status> {
        respond(self.delete(request.into_inner()).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_defaults_and_clamps() {
        assert_eq!(page_params(0, 0).ok(), Some((1, 10)));
        assert_eq!(page_params(3, 1000).ok(), Some((3, 100)));
        assert_eq!(
            page_params(i32::MAX, 100).ok(),
            Some((i64::from(i32::MAX), 100))
        );
    }

    #[test]
    fn negative_paging_names_the_field() {
        let err = page_params(0, -1).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("page_size must not be negative (got -1)")
        );
        let err = page_params(-2, 5).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("page must not be negative (got -2)"));
    }
}

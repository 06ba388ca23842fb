//! The `article.v1.ArticleService` implementation: request validation (the contract's own
//! rules, [`rules`]), paging, write
//! authorization, and conversion between the store's rows and the contract's messages.
//!
//! [`legacy`] serves the same implementation under the tutorial's unpackaged
//! `/ArticleService/...` paths; [`guard`] authorizes the writes, before their bodies are read;
//! [`paging`] says where a page starts and where it is cut. WatchArticles follows the store's
//! events ([`Store::watch`]) until the call's deadline, the client leaving or the server
//! stopping.

pub mod guard;
pub mod legacy;
pub mod paging;

use articles_proto::article::v1::{
    self as pb,
    article_service_server::{ArticleService, ArticleServiceServer},
};
use tonic::{Request, Response, Status};

use crate::{error::Result, model::Article, rules, store::Store};

pub use paging::{DEFAULT_PAGE_SIZE, MAX_MESSAGE_BYTES, MAX_PAGE_SIZE};
/// How many rows an export reads at a time: what it holds in memory, however large the table.
pub const EXPORT_BATCH: i64 = 500;

/// The stream of an export.
pub type ArticleStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::Article, Status>> + Send>>;

/// The stream of a watch.
pub type EventStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::ArticleEvent, Status>> + Send>>;

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
        rules::check("article.v1.ArticleListRequest", &req)?;
        let request = paging::PageRequest::new(req.page, req.page_size, &req.page_token)?;
        let (rows, total) = self.store.list(request.offset, request.limit).await?;
        let rows = rows
            .into_iter()
            .map(Article::into_proto)
            .collect::<Result<_>>()?;
        Ok(request.answer(rows, total))
    }

    async fn detail(&self, req: pb::ArticleDetailRequest) -> Result<pb::ArticleDetailResponse> {
        rules::check("article.v1.ArticleDetailRequest", &req)?;
        let article = self.store.get(i64::from(req.pk)).await?.into_proto()?;
        Ok(pb::ArticleDetailResponse {
            article: Some(article),
        })
    }

    async fn create(&self, req: pb::CreateArticleRequest) -> Result<pb::CreateArticleResponse> {
        rules::check("article.v1.CreateArticleRequest", &req)?;
        let article = self.store.create(&req.title, &req.content).await?;
        tracing::info!(id = article.id, "article created");
        Ok(pb::CreateArticleResponse {
            article: Some(article.into_proto()?),
        })
    }

    async fn update(&self, req: pb::UpdateArticleRequest) -> Result<pb::UpdateArticleResponse> {
        rules::check("article.v1.UpdateArticleRequest", &req)?;
        let article = self
            .store
            .update(
                i64::from(req.pk),
                req.title.as_deref(),
                req.content.as_deref(),
            )
            .await?;
        tracing::info!(id = article.id, "article updated");
        Ok(pb::UpdateArticleResponse {
            article: Some(article.into_proto()?),
        })
    }

    async fn delete(&self, req: pb::DeleteArticleRequest) -> Result<pb::DeleteArticleResponse> {
        rules::check("article.v1.DeleteArticleRequest", &req)?;
        let article = self.store.delete(i64::from(req.pk)).await?;
        tracing::info!(id = article.id, "article deleted");
        Ok(pb::DeleteArticleResponse {
            article: Some(article.into_proto()?),
        })
    }
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

/// The deadline a call's `grpc-timeout` header sets, if any, read by the gateway's parser (the
/// one rule for both binaries: `<1 to 8 digits><H|M|S|m|u|n>`, as the gRPC HTTP/2 protocol
/// spells it). tonic bounds only the wait for a response's headers by
/// it, not a stream that then runs forever: a watch ends itself at the deadline.
fn grpc_deadline(metadata: &tonic::metadata::MetadataMap) -> Option<tokio::time::Instant> {
    let value = metadata.get(articles_gateway::metadata::GRPC_TIMEOUT)?;
    let timeout = articles_gateway::metadata::parse_grpc_timeout(value.as_bytes())?;
    tokio::time::Instant::now().checked_add(timeout)
}

/// The events of a watch as messages, ended with DEADLINE_EXCEEDED at `deadline`. A client that
/// goes away drops the stream, and with it the watch's read or wait in progress.
fn watch(
    events: impl futures::Stream<Item = Result<crate::model::Event>> + Send + 'static,
    deadline: Option<tokio::time::Instant>,
) -> EventStream {
    Box::pin(async_stream::try_stream! {
        let events = events;
        futures::pin_mut!(events);
        let expired = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        futures::pin_mut!(expired);
        // Bounded by the deadline, or by the client, which drops the stream when it leaves.
        loop {
            let next = tokio::select! {
                next = futures::StreamExt::next(&mut events) => Ok(next),
                () = &mut expired => Err(Status::deadline_exceeded("the watch reached its deadline")),
            };
            let Some(event) = next? else { break };
            yield event.and_then(crate::model::Event::into_proto).map_err(Status::from)?;
        }
    })
}

#[tonic::async_trait]
impl ArticleService for Articles {
    type ExportArticlesStream = ArticleStream;
    type WatchArticlesStream = EventStream;

    async fn watch_articles(
        &self,
        request: Request<pb::WatchArticlesRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let deadline = grpc_deadline(request.metadata());
        let request = request.into_inner();
        rules::check("article.v1.WatchArticlesRequest", &request)?;
        let events = self
            .store
            .watch(request.last_event_id)
            .map_err(Status::from)?;
        Ok(Response::new(watch(events, deadline)))
    }

    async fn export_articles(
        &self,
        request: Request<pb::ExportArticlesRequest>,
    ) -> Result<Response<ArticleStream>, Status> {
        let request = request.into_inner();
        rules::check("article.v1.ExportArticlesRequest", &request)?;
        Ok(Response::new(export(
            self.store.clone(),
            i64::from(request.after_id),
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
        let mut response = respond(self.create(request.into_inner()).await)?;
        // A REST client finds the new article at its URL: the gateway answers this as the
        // `Location` of its 201.
        if let Some(article) = &response.get_ref().article
            && let Ok(location) = format!("/articles/{}", article.id).parse()
        {
            response.metadata_mut().insert("location", location);
        }
        Ok(response)
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

//! The article as the service sees it: stored rows and new articles. Their rules are the
//! contract's ([`crate::rules`]).

use articles_proto::article::v1 as pb;

use crate::error::{Error, Result};

/// One row of `article_article`, with `create_time` already formatted as `YYYY-MM-DD HH:MM:SS`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Article {
    /// The primary key (a 64-bit integer in the database).
    pub id: i64,
    pub title: String,
    /// The body text.
    pub content: String,
    /// The creation time, UTC, `YYYY-MM-DD HH:MM:SS`.
    pub create_time: String,
}

impl Article {
    /// Converts to the contract's message.
    ///
    /// # Errors
    /// [`Error::IdOutOfRange`] when the id does not fit the contract's `int32`.
    pub fn into_proto(self) -> Result<pb::Article> {
        Ok(pb::Article {
            id: contract_id(self.id)?,
            title: self.title,
            content: self.content,
            create_time: self.create_time,
        })
    }
}

/// One row of `article_event`: a change to an article (see migration 0003).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Event {
    /// The event's id, increasing in commit order.
    pub event_id: i64,
    /// `article.v1.ArticleEvent.Kind`: 1 created, 2 updated, 3 deleted.
    pub kind: i64,
    /// The article after the change; for a deletion, the deleted article.
    #[sqlx(flatten)]
    pub article: Article,
}

impl Event {
    /// Converts to the contract's message.
    ///
    /// # Errors
    /// [`Error::IdOutOfRange`] when the article's id does not fit the contract's `int32`.
    pub fn into_proto(self) -> Result<pb::ArticleEvent> {
        // The table's CHECK allows 1, 2 and 3 only, which are the enum's numbers; any other
        // number would still be sent as it is (proto3 enums are open).
        let kind = i32::try_from(self.kind).unwrap_or_default();
        Ok(pb::ArticleEvent {
            event_id: self.event_id,
            kind,
            article: Some(self.article.into_proto()?),
        })
    }
}

/// Checks that a database id fits the contract's `int32`.
///
/// # Errors
/// [`Error::IdOutOfRange`] when it does not.
pub fn contract_id(id: i64) -> Result<i32> {
    i32::try_from(id).map_err(|_| Error::IdOutOfRange(id))
}

/// An article to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewArticle {
    /// The title, held to the contract's rules ([`crate::rules`]).
    pub title: String,
    /// The body, held to the contract's rules.
    pub content: String,
    /// The creation time as `YYYY-MM-DD HH:MM:SS` (UTC), or `None` for now.
    pub create_time: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_beyond_int32_are_rejected() {
        assert_eq!(contract_id(7).ok(), Some(7));
        assert!(matches!(
            contract_id(3_000_000_000),
            Err(Error::IdOutOfRange(3_000_000_000))
        ));
    }
}

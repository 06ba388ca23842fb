//! The article as the service sees it: stored rows, new articles, and the validation rules
//! shared by the gRPC writes and the JSONL import.

use articles_proto::article::v1 as pb;

use crate::error::{Error, Result};

/// The longest title, in characters (Django's `CharField(max_length=200)`).
pub const TITLE_MAX_CHARS: usize = 200;

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
    /// The title, validated by [`validate_title`].
    pub title: String,
    /// The body, validated by [`validate_content`].
    pub content: String,
    /// The creation time as `YYYY-MM-DD HH:MM:SS` (UTC), or `None` for now.
    pub create_time: Option<String>,
}

/// Checks a title: not blank, at most [`TITLE_MAX_CHARS`] characters.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `title`.
pub fn validate_title(title: &str) -> Result<()> {
    if title.trim().is_empty() {
        return Err(Error::invalid("title", "must not be empty"));
    }
    let chars = title.chars().count();
    if chars > TITLE_MAX_CHARS {
        return Err(Error::invalid(
            "title",
            format!("must be at most {TITLE_MAX_CHARS} characters (got {chars})"),
        ));
    }
    Ok(())
}

/// The longest body text, in bytes of UTF-8: 4 MiB less 8 KiB, so that an article with the
/// longest title still fits one gRPC message of the default 4 MiB limit when it is answered
/// (a detail, or a page of one).
pub const CONTENT_MAX_BYTES: usize = 4 * 1024 * 1024 - 8 * 1024;

/// Checks a body text: not blank, at most [`CONTENT_MAX_BYTES`].
///
/// # Errors
/// [`Error::InvalidArgument`] naming `content`.
pub fn validate_content(content: &str) -> Result<()> {
    if content.trim().is_empty() {
        return Err(Error::invalid("content", "must not be empty"));
    }
    if content.len() > CONTENT_MAX_BYTES {
        return Err(Error::invalid(
            "content",
            format!(
                "must be at most {CONTENT_MAX_BYTES} bytes of UTF-8 (got {})",
                content.len()
            ),
        ));
    }
    Ok(())
}

/// Checks an article id sent by a client: it must be positive.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `pk`.
pub fn validate_pk(pk: i32) -> Result<i64> {
    if pk <= 0 {
        return Err(Error::invalid("pk", format!("must be positive (got {pk})")));
    }
    Ok(i64::from(pk))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_length_counts_characters_not_bytes() {
        assert!(validate_title(&"é".repeat(200)).is_ok());
        assert!(validate_title(&"é".repeat(201)).is_err());
        assert!(validate_title("   ").is_err());
    }

    #[test]
    fn ids_beyond_int32_are_rejected() {
        assert_eq!(contract_id(7).ok(), Some(7));
        assert!(matches!(
            contract_id(3_000_000_000),
            Err(Error::IdOutOfRange(3_000_000_000))
        ));
    }
}

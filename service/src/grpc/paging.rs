//! Paging `ArticleList`: by page number (the tutorial's contract) or by an opaque page token
//! (AIP-158), and pages cut by encoded size so that every answer fits the message limit of the
//! gRPC clients reading it.
//!
//! A page is `page_size` rows at most, and [`MAX_PAGE_BYTES`] at most: a page whose rows are
//! larger is cut short, and its `next_page_token` resumes right after its last row. Every
//! answer with rows after it carries a `next_page_token`, so a client following tokens sees
//! every row once (while rows before it are not deleted, as with page numbers: both are
//! offsets into the id order). A client following page numbers does not see the rows a cut
//! left out; the contract's `next_page` cannot point at half a page.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use prost::Message;

use articles_proto::article::v1 as pb;

use crate::error::{Error, Result};

/// The page size used when a request asks for 0.
pub const DEFAULT_PAGE_SIZE: i64 = 10;
/// The largest page size; larger requests are clamped to it.
pub const MAX_PAGE_SIZE: i64 = 100;
/// The largest message a gRPC client reads by default (grpc-go, grpcio, tonic, and the
/// gateway's `--max-response-bytes`): no answer of the service is larger.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// The rows of a page, encoded, at most: the message limit less room for `total`,
/// `next_page` and `next_page_token`.
pub const MAX_PAGE_BYTES: usize = MAX_MESSAGE_BYTES - 1024;

/// Where a page starts, and how long it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows to skip, in id order.
    pub offset: i64,
    /// Rows at most.
    pub limit: i64,
    /// The 1-based page number, when the request named one (not a token).
    pub page: Option<i64>,
}

impl PageRequest {
    /// Validates and normalizes a request: page 0 means 1, page size 0 means
    /// [`DEFAULT_PAGE_SIZE`], above [`MAX_PAGE_SIZE`] is clamped; negatives are rejected; a
    /// token, when set, wins and the page number is ignored (as the proto documents it): a
    /// client following `next_page_token` links may well still carry the `page` it started
    /// with, and the token alone says where the next page starts.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `page`, `page_size` or `page_token`.
    pub fn new(page: i32, page_size: i32, page_token: &str) -> Result<Self> {
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
        let limit = match i64::from(page_size) {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        if !page_token.is_empty() {
            return Ok(Self {
                offset: decode_token(page_token)?,
                limit,
                page: None,
            });
        }
        let page = if page == 0 { 1 } else { i64::from(page) };
        Ok(Self {
            // Far past the end is an empty page, never an overflow.
            offset: (page - 1).saturating_mul(limit),
            limit,
            page: Some(page),
        })
    }

    /// The answer for `rows` read at this request's offset (at most `limit` of them), out of
    /// `total`: cut to [`MAX_PAGE_BYTES`] (never below one row, so a page always moves on),
    /// with the pointers to what follows.
    pub fn answer(&self, mut rows: Vec<pb::Article>, total: i64) -> pb::ArticleListResponse {
        let kept = fitting(&rows, MAX_PAGE_BYTES);
        rows.truncate(kept);
        let end = self
            .offset
            .saturating_add(i64::try_from(kept).unwrap_or(i64::MAX));
        let next_page_token = if end < total {
            encode_token(end)
        } else {
            String::new()
        };
        let next_page = match self.page {
            // The next page by number starts where this page would have ended uncut.
            Some(page) if page.saturating_mul(self.limit) < total => {
                // page + 1 fits i32 unless page is i32::MAX, where no rows can follow anyway.
                i32::try_from(page + 1).unwrap_or(0)
            }
            _ => 0,
        };
        pb::ArticleListResponse {
            articles: rows,
            // More than i32::MAX rows cannot be counted by the contract; saturate.
            total: i32::try_from(total).unwrap_or(i32::MAX),
            next_page,
            next_page_token,
        }
    }
}

/// How many of `rows`, from the first, fit `budget` bytes as the repeated field encodes them
/// (at least one, when there is one: a row alone over the budget is still answered).
fn fitting(rows: &[pb::Article], budget: usize) -> usize {
    let mut used = 0usize;
    for (i, row) in rows.iter().enumerate() {
        let len = row.encoded_len();
        // One byte of tag, the length prefix, the message.
        used = used.saturating_add(1 + prost::length_delimiter_len(len) + len);
        if used > budget {
            return i.max(1);
        }
    }
    rows.len()
}

/// Tokens are versioned so their meaning can change without old ones being misread.
const TOKEN_PREFIX: &str = "o1:";

fn encode_token(offset: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{offset}"))
}

fn decode_token(token: &str) -> Result<i64> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(TOKEN_PREFIX)?.parse::<i64>().ok())
        .filter(|offset| *offset >= 0)
        .ok_or_else(|| {
            Error::invalid(
                "page_token",
                "is not a token this service issued (pass a response's next_page_token)",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn article(id: i32, content_len: usize) -> pb::Article {
        pb::Article {
            id,
            title: format!("t{id}"),
            content: "x".repeat(content_len),
            create_time: "2026-12-01 00:00:00".into(),
        }
    }

    #[test]
    fn paging_defaults_and_clamps() {
        let p = PageRequest::new(0, 0, "").ok();
        assert_eq!(
            p.map(|p| (p.offset, p.limit, p.page)),
            Some((0, 10, Some(1)))
        );
        let p = PageRequest::new(3, 1000, "").ok();
        assert_eq!(p.map(|p| (p.offset, p.limit)), Some((200, 100)));
        let p = PageRequest::new(i32::MAX, 100, "").ok();
        assert_eq!(p.map(|p| p.offset), Some((i64::from(i32::MAX) - 1) * 100));
    }

    #[test]
    fn negative_paging_names_the_field() {
        let err = PageRequest::new(0, -1, "").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("page_size must not be negative (got -1)")
        );
        let err = PageRequest::new(-2, 5, "").err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("page must not be negative (got -2)"));
    }

    #[test]
    fn a_token_resumes_where_it_was_issued_and_foreign_tokens_are_refused() {
        let token = encode_token(37);
        let p = PageRequest::new(0, 5, &token).ok();
        assert_eq!(p.map(|p| (p.offset, p.limit, p.page)), Some((37, 5, None)));
        for bad in ["x", "b2ZmOi0x", &URL_SAFE_NO_PAD.encode("o1:-3"), "%%%"] {
            let err = PageRequest::new(0, 5, bad).err().map(|e| e.to_string());
            assert!(
                err.as_deref().is_some_and(|e| e.starts_with("page_token ")),
                "{bad}: {err:?}"
            );
        }
        // With a page number too, the token wins: the page is ignored.
        let p = PageRequest::new(2, 5, &token).ok();
        assert_eq!(p.map(|p| (p.offset, p.limit, p.page)), Some((37, 5, None)));
    }

    #[test]
    fn a_page_over_the_size_budget_is_cut_and_its_token_resumes_after_the_cut() {
        let rows: Vec<_> = (1..=5).map(|id| article(id, 1_040_000)).collect();
        let Ok(request) = PageRequest::new(1, 10, "") else {
            panic!("valid request");
        };
        let page = request.answer(rows, 5);
        assert_eq!(page.articles.len(), 4, "four of 1,040,000 bytes fit 4 MiB");
        assert!(page.encoded_len() <= MAX_MESSAGE_BYTES);
        assert_eq!(decode_token(&page.next_page_token).ok(), Some(4));
        assert_eq!(page.next_page, 0, "no page 2 of size 10 in 5 rows");
    }

    #[test]
    fn one_row_over_the_budget_is_still_answered_alone() {
        assert_eq!(fitting(&[article(1, 10), article(2, 10)], 5), 1);
        assert_eq!(fitting(&[], 5), 0);
    }

    #[test]
    fn the_last_page_has_no_token_and_no_next_page() {
        let Ok(request) = PageRequest::new(2, 2, "") else {
            panic!("valid request");
        };
        let page = request.answer(vec![article(3, 1), article(4, 1)], 4);
        assert_eq!((page.next_page, page.next_page_token.as_str()), (0, ""));
        let Ok(request) = PageRequest::new(1, 2, "") else {
            panic!("valid request");
        };
        let page = request.answer(vec![article(1, 1), article(2, 1)], 4);
        assert_eq!(page.next_page, 2);
        assert_eq!(decode_token(&page.next_page_token).ok(), Some(2));
    }
}

//! Write authorization: the bearer tokens that allow CreateArticle, UpdateArticle and
//! DeleteArticle. Reads are public.
//!
//! Tokens are compared in constant time and never logged (their `Debug` is redacted).

use std::{fmt, path::Path};

use subtle::ConstantTimeEq;
use tonic::metadata::MetadataMap;

use crate::{
    config::TokenArgs,
    error::{Error, Result},
};

/// A secret bearer token.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The set of tokens that allow writes. Empty means writes are disabled.
#[derive(Clone, Debug, Default)]
pub struct WriteTokens {
    tokens: Vec<Token>,
}

impl WriteTokens {
    /// From a list of tokens; blank ones are ignored.
    pub fn new(tokens: impl IntoIterator<Item = Token>) -> Self {
        Self {
            tokens: tokens
                .into_iter()
                .filter(|t| !t.0.trim().is_empty())
                .collect(),
        }
    }

    /// From the command line: `--api-token` values and the lines of `--api-tokens-file`.
    ///
    /// # Errors
    /// [`Error::Io`] when the tokens file cannot be read.
    pub fn from_args(args: &TokenArgs) -> Result<Self> {
        let mut tokens: Vec<Token> = args
            .api_tokens
            .iter()
            .map(|t| Token::new(t.trim()))
            .collect();
        if let Some(path) = &args.api_tokens_file {
            tokens.extend(read_tokens_file(path)?);
        }
        Ok(Self::new(tokens))
    }

    /// How many tokens are configured.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether no token is configured (writes disabled).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Checks the `authorization: Bearer <token>` metadata of a write request.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] when writes are disabled or the token is wrong;
    /// [`Error::Unauthenticated`] when no bearer token was sent.
    pub fn authorize(&self, metadata: &MetadataMap) -> Result<()> {
        if self.tokens.is_empty() {
            return Err(Error::PermissionDenied(
                "writes are disabled: no API token is configured on the server",
            ));
        }
        let header = metadata.get("authorization").ok_or(Error::Unauthenticated(
            "missing authorization metadata (Bearer token)",
        ))?;
        let value = header
            .to_str()
            .map_err(|_| Error::Unauthenticated("authorization metadata is not valid text"))?;
        // The scheme is case-insensitive (RFC 9110 section 11.1), and one or more spaces
        // separate it from the token.
        let presented = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(Error::Unauthenticated(
                "authorization must be `Bearer <token>`",
            ))?;
        // Compare against every token without stopping early.
        let matched = self.tokens.iter().fold(subtle::Choice::from(0), |acc, t| {
            acc | t.0.as_bytes().ct_eq(presented.as_bytes())
        });
        if bool::from(matched) {
            Ok(())
        } else {
            Err(Error::PermissionDenied("invalid API token"))
        }
    }
}

fn read_tokens_file(path: &Path) -> Result<Vec<Token>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(Token::new)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(value: Option<&str>) -> MetadataMap {
        let mut m = MetadataMap::new();
        if let Some(v) = value.and_then(|v| v.parse().ok()) {
            m.insert("authorization", v);
        }
        m
    }

    #[test]
    fn debug_redacts_tokens() {
        let tokens = WriteTokens::new([Token::new("s3cret")]);
        assert!(!format!("{tokens:?}").contains("s3cret"));
    }

    #[test]
    fn checks_bearer_tokens() {
        let tokens = WriteTokens::new([Token::new("a"), Token::new("s3cret")]);
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let value = format!("{scheme} s3cret");
            assert!(tokens.authorize(&md(Some(&value))).is_ok(), "{scheme}");
        }
        assert!(tokens.authorize(&md(Some("Bearer   s3cret"))).is_ok());
        assert!(matches!(
            tokens.authorize(&md(Some("Basic s3cret"))),
            Err(Error::Unauthenticated(_))
        ));
        assert!(matches!(
            tokens.authorize(&md(Some("Bearers3cret"))),
            Err(Error::Unauthenticated(_))
        ));
        assert!(matches!(
            tokens.authorize(&md(None)),
            Err(Error::Unauthenticated(_))
        ));
        assert!(matches!(
            tokens.authorize(&md(Some("Bearer nope"))),
            Err(Error::PermissionDenied(_))
        ));
        assert!(matches!(
            WriteTokens::default().authorize(&md(Some("Bearer s3cret"))),
            Err(Error::PermissionDenied(_))
        ));
    }
}

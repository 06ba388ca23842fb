//! The `import` command: articles from a JSON Lines file, all in one transaction.
//!
//! Each non-blank line is `{"title": "...", "content": "...", "create_time": "YYYY-MM-DD HH:MM:SS"}`
//! (`create_time` optional, UTC; unknown fields rejected). The whole file is checked before
//! anything is written; a bad line is reported by its number and nothing is imported.

use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

use crate::{clock, config::ImportArgs, error::Error, model::NewArticle, rules, store::Store};
use articles_proto::article::v1 as pb;

/// Why an import failed: the file, one of its lines, or the database it goes to.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line of the file is malformed (nothing was imported).
    #[error("line {line}: {message}")]
    Line {
        /// 1-based.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// Connecting, preparing or writing failed.
    #[error(transparent)]
    Store(#[from] Error),
}

type Result<T, E = ImportError> = std::result::Result<T, E>;

/// One line of the import file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    title: String,
    content: String,
    #[serde(default)]
    create_time: Option<String>,
}

/// Parses and validates a whole JSONL text.
///
/// # Errors
/// [`ImportError::Line`] for the first bad line (1-based).
pub fn parse(text: &str) -> Result<Vec<NewArticle>> {
    let mut articles = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let bad = |message: String| ImportError::Line { line, message };
        let parsed: Line = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
        // The rules a CreateArticle call meets, from the contract.
        let request = pb::CreateArticleRequest {
            title: parsed.title,
            content: parsed.content,
        };
        rules::check("article.v1.CreateArticleRequest", &request)
            .map_err(|e| bad(e.to_string()))?;
        if let Some(t) = &parsed.create_time
            && !clock::is_valid_timestamp(t)
        {
            return Err(bad(format!(
                "create_time must be YYYY-MM-DD HH:MM:SS (got {t:?})"
            )));
        }
        articles.push(NewArticle {
            title: request.title,
            content: request.content,
            create_time: parsed.create_time,
        });
    }
    Ok(articles)
}

/// Runs the import: reads and checks the file, prepares the schema (no demo data), inserts
/// everything in one transaction. Returns how many articles were imported.
///
/// # Errors
/// An unreadable file, a bad line, or a database failure (then nothing is imported).
pub async fn run(args: &ImportArgs) -> Result<u64> {
    let text = tokio::fs::read_to_string(&args.file)
        .await
        .map_err(|source| ImportError::Io {
            path: args.file.clone(),
            source,
        })?;
    let articles = parse(&text)?;
    let store = Store::connect(&args.database.store_options()).await?;
    store.prepare(0).await?;
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(u64::try_from(articles.len()).unwrap_or(u64::MAX));
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} articles {eta}") {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let result = store.import(&articles, &|| bar.inc(1)).await;
    bar.finish_and_clear();
    store.close().await;
    let imported = result?;
    tracing::info!(imported, file = %args.file.display(), "import committed");
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_good_lines_and_skips_blank_ones() -> Result<()> {
        let text = "{\"title\":\"a\",\"content\":\"b\"}\n\n{\"title\":\"c\",\"content\":\"d\",\"create_time\":\"2024-05-06 07:08:09\"}\n";
        let articles = parse(text)?;
        assert_eq!(articles.len(), 2);
        assert_eq!(
            articles[1].create_time.as_deref(),
            Some("2024-05-06 07:08:09")
        );
        Ok(())
    }

    #[test]
    fn reports_the_bad_line_number() {
        let text =
            "{\"title\":\"a\",\"content\":\"b\"}\n{\"title\":\"a\",\"content\":\"b\",\"x\":1}\n";
        let err = parse(text).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.starts_with("line 2:"), "{err}");
        let text = "{\"title\":\"\",\"content\":\"b\"}\n";
        let err = parse(text).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("line 1: title is required"), "{err}");
    }
}

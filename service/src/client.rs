//! The `articles` command-line client: list, show, create, update and delete articles.
//!
//! Output is an aligned table (or the full article for `get`) by default, JSON with `--json`.
//! Failures are one line: `error: NOT_FOUND: article 999 not found`.

use std::fmt::Write as _;

use articles_proto::article::v1::{self as pb, article_service_client::ArticleServiceClient};
use clap::{Parser, Subcommand};
use serde::Serialize;
use tonic::{Request, Status};

use crate::error::code_name;

/// Why an `articles` command failed: its own concern, apart from the server's [`crate::Error`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A call made by the `articles` client failed with a gRPC status.
    #[error("{code}: {message}")]
    Rpc {
        /// The status code's canonical name, e.g. `NOT_FOUND`.
        code: &'static str,
        message: String,
    },
    /// The `articles` client could not reach the server.
    #[error("cannot connect to {server}: {reason}")]
    Connect {
        /// The server address.
        server: String,
        /// Why, with the chain of causes.
        reason: String,
    },
    /// A flag value the client cannot use (a token that is not valid metadata).
    #[error("invalid configuration: {0}")]
    Config(String),
}

type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A client for the article gRPC service.
#[derive(Debug, Parser)]
#[command(name = "articles", version)]
pub struct ClientCli {
    /// The server's address.
    #[arg(
        long,
        env = "ARTICLES_SERVER",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub server: String,
    /// Print JSON instead of a table.
    #[arg(long, env = "ARTICLES_JSON", global = true)]
    pub json: bool,
    /// The bearer token for writes.
    #[arg(long, env = "ARTICLES_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: ClientCommand,
}

/// The client's commands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// List one page of articles (ascending id).
    List {
        /// The 1-based page.
        #[arg(long, default_value_t = 1)]
        page: i32,
        /// Articles per page (at most 100).
        #[arg(long, default_value_t = 10)]
        page_size: i32,
    },
    /// Show one article with its content.
    Get {
        /// The article id.
        pk: i32,
    },
    /// Create an article (needs --token).
    Create {
        /// The title.
        #[arg(long)]
        title: String,
        /// The body text.
        #[arg(long)]
        content: String,
    },
    /// Change an article's title and/or content (needs --token).
    Update {
        /// The article id.
        pk: i32,
        /// The new title.
        #[arg(long)]
        title: Option<String>,
        /// The new body text.
        #[arg(long)]
        content: Option<String>,
    },
    /// Delete an article (needs --token).
    Delete {
        /// The article id.
        pk: i32,
    },
}

/// An article as printed with `--json`.
#[derive(Debug, Serialize)]
struct ArticleJson {
    id: i32,
    title: String,
    content: String,
    create_time: String,
}

impl From<pb::Article> for ArticleJson {
    fn from(a: pb::Article) -> Self {
        Self {
            id: a.id,
            title: a.title,
            content: a.content,
            create_time: a.create_time,
        }
    }
}

/// A page as printed with `--json`.
#[derive(Debug, Serialize)]
struct PageJson {
    articles: Vec<ArticleJson>,
    total: i32,
    next_page: i32,
}

fn rpc_error(status: &Status) -> ClientError {
    ClientError::Rpc {
        code: code_name(status.code()),
        message: status.message().replace('\n', " "),
    }
}

/// The error and its causes on one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

/// Runs one client command, printing its result to stdout.
///
/// # Errors
/// [`ClientError::Connect`] when the server cannot be reached, [`ClientError::Rpc`] for a gRPC error,
/// [`ClientError::Config`] for a token that cannot be sent as metadata.
pub async fn run(cli: ClientCli) -> Result<()> {
    let mut client = ArticleServiceClient::connect(cli.server.clone())
        .await
        .map_err(|e| ClientError::Connect {
            server: cli.server.clone(),
            reason: chain(&e),
        })?;
    let token = cli.token.as_deref();
    match cli.command {
        ClientCommand::List { page, page_size } => {
            let resp = client
                .article_list(pb::ArticleListRequest {
                    page,
                    page_size,
                    ..Default::default()
                })
                .await
                .map_err(|s| rpc_error(&s))?
                .into_inner();
            if cli.json {
                print_json(&PageJson {
                    total: resp.total,
                    next_page: resp.next_page,
                    articles: resp.articles.into_iter().map(ArticleJson::from).collect(),
                })?;
            } else {
                print!("{}", render_table(&resp.articles));
                let next = if resp.next_page == 0 {
                    "last page".to_owned()
                } else {
                    format!("next page {}", resp.next_page)
                };
                println!("{} of {} articles, {next}", resp.articles.len(), resp.total);
            }
        }
        ClientCommand::Get { pk } => {
            let resp = client
                .article_detail(pb::ArticleDetailRequest { pk })
                .await
                .map_err(|s| rpc_error(&s))?
                .into_inner();
            print_article(resp.article, cli.json)?;
        }
        ClientCommand::Create { title, content } => {
            let req = authorized(pb::CreateArticleRequest { title, content }, token)?;
            let resp = call(client.create_article(req).await)?;
            print_article(resp.article, cli.json)?;
        }
        ClientCommand::Update { pk, title, content } => {
            let req = authorized(pb::UpdateArticleRequest { pk, title, content }, token)?;
            let resp = call(client.update_article(req).await)?;
            print_article(resp.article, cli.json)?;
        }
        ClientCommand::Delete { pk } => {
            let req = authorized(pb::DeleteArticleRequest { pk }, token)?;
            let resp = call(client.delete_article(req).await)?;
            print_article(resp.article, cli.json)?;
        }
    }
    Ok(())
}

fn call<T>(result: Result<tonic::Response<T>, Status>) -> Result<T> {
    result
        .map(tonic::Response::into_inner)
        .map_err(|s| rpc_error(&s))
}

fn authorized<T>(message: T, token: Option<&str>) -> Result<Request<T>> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().map_err(|_| {
            ClientError::Config("the token contains characters not allowed in metadata".into())
        })?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| ClientError::Config(format!("cannot encode JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

fn print_article(article: Option<pb::Article>, json: bool) -> Result<()> {
    let article = article.unwrap_or_default();
    if json {
        print_json(&ArticleJson::from(article))
    } else {
        println!("id:          {}", article.id);
        println!("create_time: {}", article.create_time);
        println!("title:       {}", article.title);
        println!();
        println!("{}", article.content);
        Ok(())
    }
}

/// The longest title shown in a table, in characters.
const TITLE_WIDTH: usize = 60;

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// An aligned table of id, creation time and (truncated) title.
fn render_table(articles: &[pb::Article]) -> String {
    let id_width = articles
        .iter()
        .map(|a| a.id.to_string().len())
        .max()
        .unwrap_or(0)
        .max(2);
    let mut out = format!("{:>id_width$}  {:<19}  TITLE\n", "ID", "CREATED");
    for a in articles {
        let title = truncate(&a.title.replace(['\n', '\r'], " "), TITLE_WIDTH);
        let _ = writeln!(out, "{:>id_width$}  {:<19}  {title}", a.id, a.create_time);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_and_truncates() {
        let articles = vec![
            pb::Article {
                id: 7,
                title: "x".repeat(100),
                content: String::new(),
                create_time: "2026-01-02 03:04:05".into(),
            },
            pb::Article {
                id: 123,
                title: "short".into(),
                content: String::new(),
                create_time: "2026-01-02 03:04:05".into(),
            },
        ];
        let table = render_table(&articles);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[1].find("2026"), lines[2].find("2026"));
        assert!(lines[1].ends_with('…'));
        assert_eq!(lines[1].chars().count(), 3 + 2 + 19 + 2 + TITLE_WIDTH);
    }
}

//! Deep pages (`--deep`): does a page far into the list cost more than the first one?
//!
//! Creates a separate SQLite database (`articles-service migrate`, then one recursive-CTE
//! insert of N articles through sqlx), starts a service on it with `--demo-articles 0`, and
//! calls `ArticleList` over gRPC with one connection, `--deep-calls` times for page 1 and as
//! many for page 5000 (or the last page, for smaller databases), page size 10. Then exports
//! the whole database through a gateway ([`crate::export`]).

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::Serialize;
use sqlx::{Connection as _, sqlite::SqliteConnection};

use crate::{
    config::{DeepSettings, Settings},
    export::{self, ExportReport},
    load::{self, Endpoint, LoadSpec, Scenario, grpc::GrpcEndpoint},
    procs::{self, ProcSpec, Readiness},
    stack::sqlite_url,
    stats::Summary,
    table::{fmt_latency, render_table},
};

/// Page size of the deep-pages calls.
const PAGE_SIZE: i32 = 10;
/// The deep page asked for when the database is large enough.
const DEEP_PAGE: u32 = 5000;

/// The insert: N rows with a few hundred bytes of content each.
const INSERT: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?1) \
     INSERT INTO article_article (title, content, create_time) \
     SELECT 'Article ' || x, \
     'Article ' || x || ' of the deep-pages benchmark. ' || \
     'This body stands in for a real article: a few hundred bytes of text, so that rows have a \
     realistic size and the database a realistic number of pages. It talks about gRPC, REST \
     gateways, SQLite and PostgreSQL, and how a list endpoint that pages with OFFSET behaves \
     when the page number grows.', \
     '2026-01-01 00:00:00' FROM c";

/// One page's latency.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DeepRow {
    /// The page number.
    pub(crate) page: u32,
    /// Successful calls.
    pub(crate) calls: u64,
    /// Failed calls.
    pub(crate) errors: u64,
    /// Their latency.
    pub(crate) latency: Summary,
}

/// The deep-pages result.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DeepReport {
    /// Articles in the database.
    pub(crate) articles: u32,
    /// Seconds the bulk insert took.
    pub(crate) insert_seconds: f64,
    /// Page 1 and the deep page.
    pub(crate) rows: Vec<DeepRow>,
    /// The whole database exported through the gateway.
    pub(crate) export: Option<ExportReport>,
    /// Why the export failed, if it did.
    pub(crate) export_error: Option<String>,
}

impl DeepReport {
    /// The result as text.
    pub(crate) fn render(&self) -> String {
        let body: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.page.to_string(),
                    r.calls.to_string(),
                    fmt_latency(r.latency.p50_us),
                    fmt_latency(r.latency.p99_us),
                    r.errors.to_string(),
                ]
            })
            .collect();
        let mut out = format!(
            "Deep pages (ArticleList over gRPC, 1 connection, page size {PAGE_SIZE}, {} articles inserted in {:.1} s)\n{}",
            self.articles,
            self.insert_seconds,
            render_table(&["page", "calls", "p50", "p99", "errors"], 0, &body)
        );
        if let Some(export) = &self.export {
            out.push('\n');
            out.push_str(&export.render());
        }
        out
    }
}

/// The deep page for a database of `articles` articles: 5000, or the last page if smaller.
pub(crate) fn deep_page(articles: u32) -> u32 {
    let pages = articles.div_ceil(PAGE_SIZE.unsigned_abs()).max(1);
    pages.min(DEEP_PAGE)
}

/// Runs the deep-pages measurement in `tmp`.
///
/// # Errors
/// The database cannot be created or filled, the service does not start, or a run fails.
pub(crate) async fn run(
    settings: &Settings,
    deep: DeepSettings,
    tmp: &std::path::Path,
) -> Result<DeepReport> {
    let dir = procs::bin_dir(settings.bin_dir.as_deref())?;
    let service = procs::binary(&dir, "articles-service")?;
    let db_path = tmp.join("deep.db");
    let url = sqlite_url(&db_path);
    eprintln!(
        "deep pages: creating {} articles in {}...",
        deep.articles,
        db_path.display()
    );
    procs::run_to_end(
        &service,
        &["migrate", "--database-url", &url],
        &settings.child_log,
    )
    .await?;
    let insert_seconds = fill(&url, deep.articles).await?;
    let (proc, addr) = procs::start_with_retry(|| {
        let addr = procs::free_addr()?;
        let args = [
            "serve",
            "--listen",
            &addr.to_string(),
            "--database-url",
            &url,
            "--demo-articles",
            "0",
        ]
        .map(std::ffi::OsString::from)
        .to_vec();
        let spec = ProcSpec {
            name: "deep-service".to_owned(),
            program: service.clone(),
            args,
            rust_log: settings.child_log.clone(),
            ready: Readiness::Grpc(GrpcEndpoint::local(addr)),
            timeout: Duration::from_secs(120),
            log: tmp.join("deep-service.log"),
        };
        Ok((spec, addr))
    })
    .await?;
    let endpoint = Endpoint::Grpc(GrpcEndpoint::local(addr));
    let spec = LoadSpec {
        connections: 1,
        warmup: Duration::from_millis(200),
        duration: Duration::from_secs(120),
        max_requests: deep.calls,
    };
    let mut rows = Vec::new();
    for page in [1, deep_page(deep.articles)] {
        eprintln!("deep pages: page {page}, {} calls...", deep.calls);
        let scenario = Scenario::List {
            page: i32::try_from(page).context("page number")?,
            page_size: PAGE_SIZE,
        };
        let m = load::run(&endpoint, scenario, spec).await?;
        rows.push(DeepRow {
            page,
            calls: m.ok(),
            errors: m.errors,
            latency: m.summary(),
        });
    }
    eprintln!("export: {} articles through the gateway...", deep.articles);
    let gateway = procs::binary(&dir, "articles-gateway")?;
    let exported = export::run(&gateway, addr, &settings.child_log, tmp).await;
    proc.stop().await?;
    let (export, export_error) = match exported {
        Ok(report) => (Some(report), None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    Ok(DeepReport {
        articles: deep.articles,
        insert_seconds,
        rows,
        export,
        export_error,
    })
}

/// Inserts `articles` rows with one statement; returns the seconds it took.
async fn fill(url: &str, articles: u32) -> Result<f64> {
    let started = Instant::now();
    let mut conn = SqliteConnection::connect(url)
        .await
        .with_context(|| format!("opening {url}"))?;
    sqlx::raw_sql("PRAGMA synchronous = OFF")
        .execute(&mut conn)
        .await
        .context("setting up the bulk insert")?;
    sqlx::query(INSERT)
        .bind(i64::from(articles))
        .execute(&mut conn)
        .await
        .context("bulk-inserting the deep-pages articles")?;
    conn.close().await.context("closing the database")?;
    Ok(started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_page_is_5000_or_the_last_page() {
        assert_eq!(deep_page(1_000_000), 5000);
        assert_eq!(deep_page(50_000), 5000);
        assert_eq!(deep_page(1001), 101);
        assert_eq!(deep_page(1), 1);
    }
}

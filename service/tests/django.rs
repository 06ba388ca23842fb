//! A database created and filled by Django itself (the fixture project in
//! `tests/fixtures/django`) is served by the real `articles-service` binary with its default
//! flags, left unchanged (no sqlx bookkeeping, no demo rows, same schema and settings), and
//! what we write through gRPC reads back through Django's ORM.
//!
//! Runs on SQLite and PostgreSQL, with `USE_TZ = True` (and a non-UTC `TIME_ZONE`) and with
//! `USE_TZ = False`. Needs `ARTICLES_TEST_PYTHON`, a Python with the packages of
//! `scripts/requirements-test.txt` (skipped without it, failing in CI), and `TEST_POSTGRES_URL`
//! for PostgreSQL.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use crate::support::{Stack, TOKEN, in_ci, postgres_url_or_skip};
use articles_proto::article::v1::{
    ArticleDetailRequest, ArticleListRequest, CreateArticleRequest, WatchArticlesRequest,
};
use serde::Deserialize;
use sqlx::{Connection as _, Row as _};
use tonic::Request;

/// An article as Django's ORM sees it (printed by `read.py`).
#[derive(Debug, Clone, Deserialize)]
struct DjangoArticle {
    id: i64,
    title: String,
    content: String,
    /// As the ORM returns it, in ISO format.
    create_time: String,
    /// The same instant in UTC as `YYYY-MM-DD HH:MM:SS`.
    create_time_utc: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Sqlite,
    Postgres,
}

fn python_or_skip(test: &str) -> Option<PathBuf> {
    match std::env::var_os("ARTICLES_TEST_PYTHON") {
        Some(python) => Some(PathBuf::from(python)),
        None if in_ci() => panic!("{test}: ARTICLES_TEST_PYTHON must be set in CI"),
        None => {
            eprintln!(
                "skipped {test}: set ARTICLES_TEST_PYTHON to a Python with Django \
                 (pip install -r scripts/requirements-test.txt)"
            );
            None
        }
    }
}

/// A copy of the fixture project (makemigrations writes into it).
fn project_copy() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read fixture dir") {
            let entry = entry.expect("entry");
            let name = entry.file_name();
            if name == "__pycache__" || name == "migrations" {
                continue;
            }
            let target = to.join(&name);
            if entry.file_type().expect("file type").is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).expect("copy");
            }
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    copy(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/django"),
        dir.path(),
    );
    dir
}

/// Runs a script of the fixture project and returns its stdout.
async fn django(python: &Path, project: &Path, script: &str, url: &str, use_tz: bool) -> String {
    let out = tokio::process::Command::new(python)
        .arg(script)
        .current_dir(project)
        .env("DJANGO_DATABASE_URL", url)
        .env("DJANGO_USE_TZ", if use_tz { "1" } else { "0" })
        // With USE_TZ a non-UTC zone shows that stored times are UTC. Without it Django stores
        // naive TIME_ZONE times, which the service reads as UTC: keep the default UTC there.
        .env(
            "DJANGO_TIME_ZONE",
            if use_tz { "Asia/Shanghai" } else { "UTC" },
        )
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .await
        .expect("run python");
    assert!(
        out.status.success(),
        "{script} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

async fn django_articles(
    python: &Path,
    project: &Path,
    url: &str,
    use_tz: bool,
) -> Vec<DjangoArticle> {
    let json = django(python, project, "read.py", url, use_tz).await;
    serde_json::from_str(&json).expect("read.py prints JSON")
}

/// A fresh PostgreSQL database `django_<unique>` on the server of `TEST_POSTGRES_URL`, dropped
/// (with its connections) on drop.
struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl PgDatabase {
    async fn create(admin_url: &str) -> Self {
        let name = format!(
            "django_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("connect to TEST_POSTGRES_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create database");
        // Same server and user, another database (drop any query string: Django gets none).
        let base = admin_url.split('?').next().unwrap_or(admin_url);
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        let url = format!("{server}/{name}");
        Self {
            admin_url: admin_url.to_owned(),
            name,
            url,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        crate::support::exec_detached(
            self.admin_url.clone(),
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Everything about the database that serving it must not change, plus the row count.
async fn snapshot(engine: Engine, url: &str) -> (Vec<String>, i64) {
    let mut lines = Vec::new();
    let count: i64;
    match engine {
        Engine::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&format!("{url}?mode=ro"))
                .await
                .expect("open sqlite");
            for row in sqlx::query(
                "SELECT type, name, tbl_name, COALESCE(sql, '') FROM sqlite_master ORDER BY name",
            )
            .fetch_all(&mut conn)
            .await
            .expect("sqlite_master")
            {
                lines.push(format!(
                    "{} {} {} {}",
                    row.get::<String, _>(0),
                    row.get::<String, _>(1),
                    row.get::<String, _>(2),
                    row.get::<String, _>(3)
                ));
            }
            for pragma in ["journal_mode", "user_version", "application_id"] {
                let value: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT CAST({pragma} AS TEXT) FROM pragma_{pragma}"
                )))
                .fetch_one(&mut conn)
                .await
                .expect("pragma");
                lines.push(format!("pragma {pragma} = {value}"));
            }
            count = sqlx::query_scalar("SELECT count(*) FROM article_article")
                .fetch_one(&mut conn)
                .await
                .expect("count");
        }
        Engine::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            for row in sqlx::query(
                "SELECT table_schema || '.' || table_name || ' ' || table_type \
                 FROM information_schema.tables \
                 WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
            )
            .fetch_all(&mut conn)
            .await
            .expect("tables")
            {
                lines.push(row.get(0));
            }
            for row in sqlx::query(
                "SELECT table_schema || '.' || table_name || '.' || column_name || ' ' || \
                 data_type || ' ' || is_nullable || ' ' || COALESCE(column_default, '') || ' ' || \
                 is_identity FROM information_schema.columns \
                 WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
            )
            .fetch_all(&mut conn)
            .await
            .expect("columns")
            {
                lines.push(row.get(0));
            }
            count = sqlx::query_scalar("SELECT count(*) FROM article_article")
                .fetch_one(&mut conn)
                .await
                .expect("count");
        }
    }
    (lines, count)
}

async fn django_database_is_served_unchanged(engine: Engine, use_tz: bool, test: &str) {
    let Some(python) = python_or_skip(test) else {
        return;
    };
    let project = project_copy();
    let pg = match engine {
        Engine::Sqlite => None,
        Engine::Postgres => {
            let Some(admin) = postgres_url_or_skip(test) else {
                return;
            };
            Some(PgDatabase::create(&admin).await)
        }
    };
    let url = match &pg {
        Some(db) => db.url.clone(),
        None => format!("sqlite://{}", project.path().join("db.sqlite3").display()),
    };

    // Django creates and fills its database.
    let seeded = django(&python, project.path(), "seed.py", &url, use_tz).await;
    assert_eq!(seeded.trim(), "3");
    let before = django_articles(&python, project.path(), &url, use_tz).await;
    assert_eq!(before.len(), 3);
    let (schema_before, rows_before) = snapshot(engine, &url).await;
    assert_eq!(rows_before, 3);
    assert!(
        schema_before
            .iter()
            .any(|l| l.contains("django_migrations")),
        "{schema_before:#?}"
    );

    // The real binary, default flags: no --demo-articles, nothing Django-specific.
    let service = Stack::on_url(&url).process(&[]).start().await;
    let mut client = service.client().await;
    let list = client
        .article_list(ArticleListRequest {
            page: 1,
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("ArticleList")
        .into_inner();
    assert_eq!(list.total, 3, "no demo rows");
    let ours: Vec<(i64, &str, &str, &str)> = list
        .articles
        .iter()
        .map(|a| {
            (
                i64::from(a.id),
                a.title.as_str(),
                a.content.as_str(),
                a.create_time.as_str(),
            )
        })
        .collect();
    let theirs: Vec<(i64, &str, &str, &str)> = before
        .iter()
        .map(|a| {
            (
                a.id,
                a.title.as_str(),
                a.content.as_str(),
                a.create_time_utc.as_str(),
            )
        })
        .collect();
    assert_eq!(ours, theirs, "our view equals Django's, times in UTC");
    // seed.py's 09:30:15.123456 in TIME_ZONE: Asia/Shanghai (UTC+8) with USE_TZ, else UTC.
    let expected_first = if use_tz {
        "2024-03-10 01:30:15"
    } else {
        "2024-03-10 09:30:15"
    };
    assert_eq!(before[0].create_time_utc, expected_first);
    for article in &before {
        let detail = client
            .article_detail(ArticleDetailRequest {
                pk: i32::try_from(article.id).expect("small id"),
            })
            .await
            .expect("ArticleDetail")
            .into_inner()
            .article
            .expect("article");
        assert_eq!(detail.title, article.title);
        assert_eq!(detail.create_time, article.create_time_utc);
    }

    let mut create = Request::new(CreateArticleRequest {
        title: "Written over gRPC".to_owned(),
        content: "Read back through the Django ORM.".to_owned(),
    });
    create.metadata_mut().insert(
        "authorization",
        format!("Bearer {TOKEN}").parse().expect("metadata"),
    );
    let created = client
        .create_article(create)
        .await
        .expect("CreateArticle")
        .into_inner()
        .article
        .expect("article");
    assert_eq!(created.id, 4);
    // No event table in a database Django made: watching is refused, saying why.
    let watch = client
        .watch_articles(WatchArticlesRequest { last_event_id: 0 })
        .await
        .expect_err("no event table");
    assert_eq!(watch.code(), tonic::Code::FailedPrecondition, "{watch:?}");
    assert!(watch.message().contains("Django"), "{watch:?}");
    let log = service.stop().await;
    assert!(log.contains("without _sqlx_migrations"), "{log}");

    // Nothing about the database changed but the one row.
    let (schema_after, rows_after) = snapshot(engine, &url).await;
    assert_eq!(schema_after, schema_before, "schema and settings unchanged");
    assert_eq!(rows_after, 4);

    // Django reads our row, with the time we reported.
    let after = django_articles(&python, project.path(), &url, use_tz).await;
    assert_eq!(after.len(), 4);
    let mine = &after[3];
    assert_eq!(mine.id, 4);
    assert_eq!(mine.title, created.title);
    assert_eq!(mine.content, created.content);
    assert_eq!(mine.create_time_utc, created.create_time);
    assert!(
        mine.create_time.starts_with("20") && mine.create_time.contains('T'),
        "{mine:?}"
    );
    assert_eq!(
        mine.create_time.ends_with("+00:00"),
        use_tz,
        "aware exactly with USE_TZ: {mine:?}"
    );
    drop(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_django_database_with_use_tz_is_served_unchanged_and_reads_our_writes() {
    django_database_is_served_unchanged(Engine::Sqlite, true, "sqlite use_tz").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_django_database_without_use_tz_is_served_unchanged_and_reads_our_writes() {
    django_database_is_served_unchanged(Engine::Sqlite, false, "sqlite no use_tz").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_django_database_with_use_tz_is_served_unchanged_and_reads_our_writes() {
    django_database_is_served_unchanged(Engine::Postgres, true, "postgres use_tz").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_django_database_without_use_tz_is_served_unchanged_and_reads_our_writes() {
    django_database_is_served_unchanged(Engine::Postgres, false, "postgres no use_tz").await;
}

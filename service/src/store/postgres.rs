//! The PostgreSQL queries of the store.
//!
//! `create_time` is formatted with `to_char(create_time, ...)` in a session whose `TimeZone` is
//! set to UTC at connection start (a startup option, no extra round trip). Django creates a
//! `timestamp with time zone` column whatever `USE_TZ` says, which is then rendered in UTC; a
//! `timestamp without time zone` column (made by hand) would be rendered as stored.
//! `create_time AT TIME ZONE 'UTC'` would instead shift the latter by the session zone.

use std::str::FromStr;

use sqlx::{
    PgConnection, PgPool, Postgres,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use super::{
    options::{SchemaState, StoreOptions},
    page::{PageRow, page_from_rows},
};
use crate::{
    error::{Error, Result},
    model::{Article, Event, NewArticle, contract_id},
    seed,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The key of the advisory lock held while checking, migrating and seeding, so replicas
/// starting together neither race the migration nor seed twice.
const PREPARE_LOCK_KEY: i64 = 0x6172_7469_636c_6573; // "articles"

/// The selected columns, `create_time` formatted (a macro so queries stay `&'static str`).
macro_rules! columns {
    () => {
        "id, title, content, to_char(create_time, 'YYYY-MM-DD HH24:MI:SS') AS create_time"
    };
}

fn pool_options(options: &StoreOptions) -> Result<(PgPoolOptions, PgConnectOptions)> {
    let connect = PgConnectOptions::from_str(&options.url)
        .map_err(|e| Error::Config(format!("bad PostgreSQL URL: {e}")))?
        .options([("TimeZone", "UTC")]);
    let pool = PgPoolOptions::new()
        .min_connections(options.min_connections)
        .max_connections(options.max_connections.unwrap_or(10))
        .acquire_timeout(options.acquire_timeout);
    Ok((pool, connect))
}

pub(super) async fn connect(options: &StoreOptions) -> Result<PgPool> {
    let (pool, connect) = pool_options(options)?;
    Ok(pool.connect_with(connect).await?)
}

pub(super) fn connect_lazy(options: &StoreOptions) -> Result<PgPool> {
    let (pool, connect) = pool_options(options)?;
    Ok(pool.connect_lazy_with(connect))
}

async fn table_exists(conn: &mut PgConnection, name: &str) -> Result<bool> {
    // to_regclass resolves through search_path, like the unqualified names in our queries.
    Ok(sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(name)
        .fetch_one(conn)
        .await?)
}

pub(super) async fn prepare(pool: &PgPool, demo_articles: u32) -> Result<SchemaState> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(PREPARE_LOCK_KEY)
        .execute(&mut *conn)
        .await?;
    let result = prepare_locked(&mut conn, demo_articles).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(PREPARE_LOCK_KEY)
        .execute(&mut *conn)
        .await;
    let state = result?;
    unlocked?;
    Ok(state)
}

async fn prepare_locked(conn: &mut PgConnection, demo_articles: u32) -> Result<SchemaState> {
    let had_table = table_exists(conn, "article_article").await?;
    let had_migrations = table_exists(conn, "_sqlx_migrations").await?;
    if had_table && !had_migrations {
        return Ok(SchemaState::Foreign);
    }
    MIGRATOR.run(&mut *conn).await?;
    if had_table {
        return Ok(SchemaState::Migrated);
    }
    let demo = seed::demo_articles(demo_articles);
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let seeded = insert_all(&mut tx, &demo, &|| {}).await?;
    tx.commit().await?;
    Ok(SchemaState::Created { seeded })
}

pub(super) async fn ping(pool: &PgPool) -> Result<()> {
    sqlx::query("SELECT 1 FROM article_article LIMIT 1")
        .execute(pool)
        .await?;
    Ok(())
}

/// The page and the total in one statement (one snapshot, one round trip); a single row of
/// NULLs with the total when the page is empty.
macro_rules! page_query {
    ($total:literal) => {
        concat!(
            "SELECT s.total, a.id, a.title, a.content, a.create_time FROM (",
            $total,
            ") AS s LEFT JOIN (SELECT ",
            columns!(),
            " FROM article_article ORDER BY id LIMIT $1 OFFSET $2) AS a ON true ORDER BY a.id"
        )
    };
}

const PAGE_WITH_STATS: &str = page_query!("SELECT total FROM article_stats WHERE id = 1");
const PAGE_WITH_COUNT: &str = page_query!("SELECT count(*) AS total FROM article_article");

pub(super) async fn list(
    pool: &PgPool,
    limit: i64,
    offset: i64,
    has_stats: bool,
) -> Result<(Vec<Article>, i64)> {
    let sql = if has_stats {
        PAGE_WITH_STATS
    } else {
        PAGE_WITH_COUNT
    };
    let rows: Vec<PageRow> = sqlx::query_as(sql)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await?;
    Ok(page_from_rows(rows))
}

pub(super) async fn after(pool: &PgPool, after_id: i64, limit: i64) -> Result<Vec<Article>> {
    Ok(sqlx::query_as::<_, Article>(concat!(
        "SELECT ",
        columns!(),
        " FROM article_article WHERE id > $1 ORDER BY id LIMIT $2"
    ))
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Whether the counter table of migration 0002 exists (it does not in a foreign database).
pub(super) async fn has_stats(pool: &PgPool) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT to_regclass('article_stats') IS NOT NULL")
            .fetch_one(pool)
            .await?,
    )
}

/// Whether the event table of migration 0003 exists (it does not in a foreign database).
pub(super) async fn has_events(pool: &PgPool) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT to_regclass('article_event') IS NOT NULL")
            .fetch_one(pool)
            .await?,
    )
}

/// See [`super::Store::latest_event_id`].
pub(super) async fn latest_event_id(pool: &PgPool) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM article_event")
            .fetch_one(pool)
            .await?,
    )
}

/// See [`super::Store::events_after`].
pub(super) async fn events_after(pool: &PgPool, after: i64, limit: i64) -> Result<Vec<Event>> {
    Ok(sqlx::query_as::<_, Event>(
        "SELECT id AS event_id, kind::bigint AS kind, article_id AS id, title, content, \
         to_char(create_time, 'YYYY-MM-DD HH24:MI:SS') AS create_time FROM article_event \
         WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn get(pool: &PgPool, id: i64) -> Result<Option<Article>> {
    Ok(sqlx::query_as::<_, Article>(concat!(
        "SELECT ",
        columns!(),
        " FROM article_article WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

pub(super) async fn create(pool: &PgPool, title: &str, content: &str) -> Result<Article> {
    let mut tx = pool.begin().await?;
    let article = sqlx::query_as::<_, Article>(concat!(
        "INSERT INTO article_article (title, content, create_time) VALUES ($1, $2, now()) \
         RETURNING ",
        columns!()
    ))
    .bind(title)
    .bind(content)
    .fetch_one(&mut *tx)
    .await?;
    if let Err(err) = contract_id(article.id) {
        tx.rollback().await?;
        return Err(err);
    }
    tx.commit().await?;
    Ok(article)
}

pub(super) async fn update(
    pool: &PgPool,
    id: i64,
    title: Option<&str>,
    content: Option<&str>,
) -> Result<Option<Article>> {
    Ok(sqlx::query_as::<_, Article>(concat!(
        "UPDATE article_article SET title = COALESCE($1, title), \
         content = COALESCE($2, content) WHERE id = $3 RETURNING ",
        columns!()
    ))
    .bind(title)
    .bind(content)
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

pub(super) async fn delete(pool: &PgPool, id: i64) -> Result<Option<Article>> {
    Ok(sqlx::query_as::<_, Article>(concat!(
        "DELETE FROM article_article WHERE id = $1 RETURNING ",
        columns!()
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

pub(super) async fn insert_all(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    articles: &[NewArticle],
    progress: &(dyn Fn() + Sync),
) -> Result<u64> {
    let mut n = 0;
    for article in articles {
        // A given create_time is UTC: the session TimeZone is UTC.
        sqlx::query(
            "INSERT INTO article_article (title, content, create_time) \
             VALUES ($1, $2, COALESCE($3::timestamptz, now()))",
        )
        .bind(&article.title)
        .bind(&article.content)
        .bind(article.create_time.as_deref())
        .execute(&mut **tx)
        .await?;
        n += 1;
        progress();
    }
    Ok(n)
}

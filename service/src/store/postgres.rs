//! The PostgreSQL queries of the store.
//!
//! `create_time` is formatted with `to_char(create_time, ...)` in a session whose `TimeZone` is
//! set to UTC at connection start (a startup option, no extra round trip). Django creates a
//! `timestamp with time zone` column whatever `USE_TZ` says, which is then rendered in UTC; a
//! `timestamp without time zone` column (made by hand) would be rendered as stored.
//! `create_time AT TIME ZONE 'UTC'` would instead shift the latter by the session zone.

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    PgConnection, PgPool, Postgres,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use super::{
    backend::{self, Backend, Setup},
    options::{SchemaState, StoreOptions},
    page::{PageRow, page_from_rows},
    watch::{POSTGRES_POLL, Wake},
};
use crate::{
    error::{Error, Result},
    model::{Article, Event, NewArticle, contract_id},
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

impl Setup for PgConnection {
    async fn table_exists(&mut self, name: &str) -> Result<bool> {
        // to_regclass resolves through search_path, like the unqualified names in our queries.
        Ok(sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(name)
            .fetch_one(self)
            .await?)
    }

    async fn migrate(&mut self) -> Result<()> {
        Ok(MIGRATOR.run(self).await?)
    }

    async fn seed(&mut self, articles: &[NewArticle]) -> Result<u64> {
        let mut tx = sqlx::Connection::begin(self).await?;
        let seeded = insert_all(&mut tx, articles, &|| {}).await?;
        tx.commit().await?;
        Ok(seeded)
    }
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

impl Backend for PgPool {
    async fn prepare(&self, demo_articles: u32) -> Result<SchemaState> {
        let mut conn = self.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(PREPARE_LOCK_KEY)
            .execute(&mut *conn)
            .await?;
        let result = backend::prepare(&mut *conn, demo_articles).await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(PREPARE_LOCK_KEY)
            .execute(&mut *conn)
            .await;
        let state = result?;
        unlocked?;
        Ok(state)
    }

    async fn has_table(&self, name: &str) -> Result<bool> {
        self.acquire().await?.table_exists(name).await
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1 FROM article_article LIMIT 1")
            .execute(self)
            .await?;
        Ok(())
    }

    fn occupancy(&self) -> (u32, usize) {
        (self.size(), self.num_idle())
    }

    async fn close(&self) {
        PgPool::close(self).await;
    }

    async fn list(&self, limit: i64, offset: i64, has_stats: bool) -> Result<(Vec<Article>, i64)> {
        let sql = if has_stats {
            PAGE_WITH_STATS
        } else {
            PAGE_WITH_COUNT
        };
        let rows: Vec<PageRow> = sqlx::query_as(sql)
            .bind(limit)
            .bind(offset)
            .fetch_all(self)
            .await?;
        Ok(page_from_rows(rows))
    }

    async fn after(&self, after_id: i64, limit: i64) -> Result<Vec<Article>> {
        Ok(sqlx::query_as::<_, Article>(concat!(
            "SELECT ",
            columns!(),
            " FROM article_article WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after_id)
        .bind(limit)
        .fetch_all(self)
        .await?)
    }

    async fn latest_event_id(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM article_event")
                .fetch_one(self)
                .await?,
        )
    }

    async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<Event>> {
        Ok(sqlx::query_as::<_, Event>(
            "SELECT id AS event_id, kind::bigint AS kind, article_id AS id, title, content, \
             to_char(create_time, 'YYYY-MM-DD HH24:MI:SS') AS create_time FROM article_event \
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(self)
        .await?)
    }

    async fn get(&self, id: i64) -> Result<Option<Article>> {
        Ok(sqlx::query_as::<_, Article>(concat!(
            "SELECT ",
            columns!(),
            " FROM article_article WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self)
        .await?)
    }

    async fn create(&self, title: &str, content: &str) -> Result<Article> {
        let mut tx = self.begin().await?;
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

    async fn update(
        &self,
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
        .fetch_optional(self)
        .await?)
    }

    async fn delete(&self, id: i64) -> Result<Option<Article>> {
        Ok(sqlx::query_as::<_, Article>(concat!(
            "DELETE FROM article_article WHERE id = $1 RETURNING ",
            columns!()
        ))
        .bind(id)
        .fetch_optional(self)
        .await?)
    }

    async fn import(&self, articles: &[NewArticle], progress: &(dyn Fn() + Sync)) -> Result<u64> {
        let mut tx = self.begin().await?;
        let n = insert_all(&mut tx, articles, progress).await?;
        tx.commit().await?;
        Ok(n)
    }

    fn watch_poll(&self, wake: &Arc<Wake>) -> Duration {
        wake.listen(self);
        POSTGRES_POLL
    }
}

async fn insert_all(
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

//! Article persistence in the `article_article` table, on SQLite (default) or PostgreSQL.
//!
//! The backend is chosen by the URL scheme. Queries are written per backend in
//! [`sqlite`](self::sqlite) and [`postgres`](self::postgres) and always bind their parameters.
//! Lists are ordered by ascending id, i.e. creation order.
//!
//! Startup ([`Store::prepare`]): a table `article_article` that exists without sqlx's
//! `_sqlx_migrations` bookkeeping was created by someone else (e.g. Django) and is served as is:
//! no migration, no demo data. Otherwise the embedded migrations run, and demo articles are
//! seeded only when this very start created the table.

mod postgres;
mod sqlite;

use std::{fmt, time::Duration};

use sqlx::{PgPool, SqlitePool};

use crate::{
    error::{Error, Result},
    model::{Article, NewArticle},
};

/// How to connect.
#[derive(Clone)]
pub struct StoreOptions {
    /// `sqlite://FILE` / `sqlite::memory:` or `postgres://...`.
    pub url: String,
    /// Pool size; a backend-specific default when `None`.
    pub max_connections: Option<u32>,
    /// How long a request waits for a pooled connection before the database counts as unavailable.
    pub acquire_timeout: Duration,
}

impl fmt::Debug for StoreOptions {
    /// Shows only the URL scheme: the rest may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreOptions")
            .field("scheme", &scheme(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

fn scheme(url: &str) -> &str {
    url.split_once(':').map_or(url, |(s, _)| s)
}

/// What [`Store::prepare`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaState {
    /// This start created the table and seeded this many demo articles.
    Created {
        /// How many demo articles were inserted.
        seeded: u64,
    },
    /// The table existed and is ours; pending migrations (if any) were applied.
    Migrated,
    /// The table existed without sqlx's bookkeeping: served as is, untouched.
    Foreign,
}

/// A pool of connections to the article database.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Store {
    /// Connects (eagerly: the database must be reachable now).
    ///
    /// # Errors
    /// An unsupported URL, or the database being unreachable.
    pub async fn connect(options: &StoreOptions) -> Result<Self> {
        let backend = match scheme(&options.url) {
            "sqlite" => Backend::Sqlite(sqlite::connect(options).await?),
            "postgres" | "postgresql" => Backend::Postgres(postgres::connect(options).await?),
            other => return Err(Error::UnsupportedDatabaseUrl(other.to_owned())),
        };
        Ok(Self { backend })
    }

    /// Creates the pool without connecting: connections are opened on first use.
    ///
    /// # Errors
    /// An unsupported or malformed URL.
    pub fn connect_lazy(options: &StoreOptions) -> Result<Self> {
        let backend = match scheme(&options.url) {
            "sqlite" => Backend::Sqlite(sqlite::connect_lazy(options)?),
            "postgres" | "postgresql" => Backend::Postgres(postgres::connect_lazy(options)?),
            other => return Err(Error::UnsupportedDatabaseUrl(other.to_owned())),
        };
        Ok(Self { backend })
    }

    /// Makes the schema ready (see the module docs) and seeds `demo_articles` demo articles
    /// when this call created the table.
    ///
    /// # Errors
    /// Database or migration failures.
    pub async fn prepare(&self, demo_articles: u32) -> Result<SchemaState> {
        let state = match &self.backend {
            Backend::Sqlite(pool) => sqlite::prepare(pool, demo_articles).await?,
            Backend::Postgres(pool) => postgres::prepare(pool, demo_articles).await?,
        };
        match state {
            SchemaState::Foreign => tracing::info!(
                "table article_article exists without _sqlx_migrations (created by another \
                 tool such as Django): serving it as is, no migration, no demo data"
            ),
            SchemaState::Created { seeded } => {
                tracing::info!(seeded, "created table article_article");
            }
            SchemaState::Migrated => tracing::info!("table article_article is up to date"),
        }
        Ok(state)
    }

    /// Checks that the database answers.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when it does not.
    pub async fn ping(&self) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(pool) => sqlite::ping(pool).await,
            Backend::Postgres(pool) => postgres::ping(pool).await,
        }
    }

    /// One page of articles by ascending id, and the total count.
    ///
    /// `page` is 1-based (values below 1 count as 1), `page_size` is the page length (at
    /// least 1). The offset is computed without overflow: a page far past the end is empty.
    ///
    /// # Errors
    /// Database failures.
    pub async fn list(&self, page: i64, page_size: i64) -> Result<(Vec<Article>, i64)> {
        let limit = page_size.max(1);
        let offset = (page.max(1) - 1).saturating_mul(limit);
        match &self.backend {
            Backend::Sqlite(pool) => sqlite::list(pool, limit, offset).await,
            Backend::Postgres(pool) => postgres::list(pool, limit, offset).await,
        }
    }

    /// One article.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is none with this id; database failures.
    pub async fn get(&self, id: i64) -> Result<Article> {
        let found = match &self.backend {
            Backend::Sqlite(pool) => sqlite::get(pool, id).await?,
            Backend::Postgres(pool) => postgres::get(pool, id).await?,
        };
        found.ok_or(Error::NotFound(id))
    }

    /// Inserts an article and returns it.
    ///
    /// # Errors
    /// [`Error::IdOutOfRange`] (nothing is written) when the new id does not fit the
    /// contract's `int32`; database failures.
    pub async fn create(&self, title: &str, content: &str) -> Result<Article> {
        match &self.backend {
            Backend::Sqlite(pool) => sqlite::create(pool, title, content).await,
            Backend::Postgres(pool) => postgres::create(pool, title, content).await,
        }
    }

    /// Changes the given fields of an article and returns it; with no field given, returns it
    /// unchanged.
    ///
    /// # Errors
    /// [`Error::NotFound`]; database failures.
    pub async fn update(
        &self,
        id: i64,
        title: Option<&str>,
        content: Option<&str>,
    ) -> Result<Article> {
        if title.is_none() && content.is_none() {
            return self.get(id).await;
        }
        let found = match &self.backend {
            Backend::Sqlite(pool) => sqlite::update(pool, id, title, content).await?,
            Backend::Postgres(pool) => postgres::update(pool, id, title, content).await?,
        };
        found.ok_or(Error::NotFound(id))
    }

    /// Deletes an article and returns what it was.
    ///
    /// # Errors
    /// [`Error::NotFound`]; database failures.
    pub async fn delete(&self, id: i64) -> Result<Article> {
        let found = match &self.backend {
            Backend::Sqlite(pool) => sqlite::delete(pool, id).await?,
            Backend::Postgres(pool) => postgres::delete(pool, id).await?,
        };
        found.ok_or(Error::NotFound(id))
    }

    /// Inserts all `articles` in one transaction (all or nothing), calling `progress` after
    /// each row. Returns how many were inserted.
    ///
    /// # Errors
    /// Database failures; then nothing is inserted.
    pub async fn import(
        &self,
        articles: &[NewArticle],
        progress: &(dyn Fn() + Sync),
    ) -> Result<u64> {
        match &self.backend {
            Backend::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let n = sqlite::insert_all(&mut tx, articles, progress).await?;
                tx.commit().await?;
                Ok(n)
            }
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let n = postgres::insert_all(&mut tx, articles, progress).await?;
                tx.commit().await?;
                Ok(n)
            }
        }
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(pool) => pool.close().await,
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

//! Article persistence in the `article_article` table, on SQLite (default) or PostgreSQL.
//!
//! The backend is chosen by the URL scheme (read in one place, [`options`]). Queries are
//! written per backend in [`sqlite`](self::sqlite) and [`postgres`](self::postgres), each an
//! implementation of [`backend::Backend`], and always bind their parameters; the store says
//! each operation once, and `with_backend!` is the one place that picks the backend.
//! Lists are ordered by ascending id, i.e. creation order.
//!
//! Startup ([`Store::prepare`]): a table `article_article` that exists without sqlx's
//! `_sqlx_migrations` bookkeeping was created by someone else (e.g. Django) and is served as is:
//! no migration, no demo data, no database setting changed (a SQLite file keeps its journal
//! mode). Otherwise the embedded migrations run, and demo articles are seeded only when this
//! very start created the table.
//!
//! With a read URL ([`StoreOptions::read_url`], e.g. a PostgreSQL streaming replica), ArticleList
//! and ArticleDetail read from that pool; writes, migrations and seeding always go to the primary.
//! Reads from a replica may lag behind the primary's latest writes.
//!
//! A write is answered OK only once it committed; a full disk is [`Error::DiskFull`], and the
//! health check fails until there is space again (see [`sqlite`](self::sqlite)).
//!
//! Every write of ours also records an event (migration 0003's triggers, in the write's own
//! transaction); [`Store::watch`] follows them ([`watch`]). A foreign schema has no event
//! table and is not given one: watching it is [`Error::WatchUnavailable`].

mod backend;
mod options;
mod page;
mod postgres;
mod sqlite;
mod watch;

use backend::Backend as _;
pub use options::{DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_BUSY_TIMEOUT, SchemaState, StoreOptions};
use options::{Kind, backend_kind};
pub use watch::{BATCH as WATCH_BATCH, POSTGRES_POLL, SQLITE_POLL};

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use sqlx::PgPool;

use crate::{
    error::{Error, Result},
    model::{Article, Event, NewArticle},
};

/// Checks, before connecting anything, that a read URL names the primary's backend.
fn check_read_url(options: &StoreOptions) -> Result<()> {
    let primary = backend_kind(&options.url)?;
    if let Some(read) = &options.read_url
        && backend_kind(read)? != primary
    {
        return Err(Error::Config(
            "the read database URL must use the same backend as the database URL".to_owned(),
        ));
    }
    Ok(())
}

/// The occupancy of one connection pool, for monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// `primary` or `read`.
    pub pool: &'static str,
    /// Open connections, idle or in use.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
}

/// The pools of connections to the article database: the primary, and optionally a read pool.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Pool,
    read: Option<Pool>,
    /// Whether the schema has the article counter of migration 0002 (ours does, a foreign
    /// one does not); until [`Store::prepare`] says so, `total` is counted.
    has_stats: Arc<AtomicBool>,
    /// Whether the schema has the event table of migration 0003; until [`Store::prepare`] says
    /// so, watching is refused.
    has_events: Arc<AtomicBool>,
    /// Wakes this store's watchers.
    wake: Arc<watch::Wake>,
}

/// One pool, of either backend.
#[derive(Clone, Debug)]
enum Pool {
    Sqlite(sqlite::Db),
    Postgres(PgPool),
}

/// The one dispatch point: `$body` with `$b` bound to the [`backend::Backend`] that `$pool`
/// (a `&Pool`) holds. A macro and not `&dyn Backend`, whose futures would have to be boxed:
/// the body is compiled once per backend, on the concrete type.
macro_rules! with_backend {
    ($pool:expr, $b:ident => $body:expr) => {
        match $pool {
            Pool::Sqlite($b) => $body,
            Pool::Postgres($b) => $body,
        }
    };
}

impl Store {
    /// Connects (eagerly: the database must be reachable now).
    ///
    /// # Errors
    /// An unsupported URL, or the database being unreachable.
    pub async fn connect(options: &StoreOptions) -> Result<Self> {
        check_read_url(options)?;
        let backend = Pool::connect(options).await?;
        let read = match &options.read_url {
            Some(url) => Some(Pool::connect(&options.with_url(url)).await?),
            None => None,
        };
        Ok(Self::with_pools(backend, read))
    }

    /// Creates the pool without connecting: connections are opened on first use.
    ///
    /// # Errors
    /// An unsupported or malformed URL.
    pub fn connect_lazy(options: &StoreOptions) -> Result<Self> {
        check_read_url(options)?;
        let backend = Pool::connect_lazy(options)?;
        let read = match &options.read_url {
            Some(url) => Some(Pool::connect_lazy(&options.with_url(url))?),
            None => None,
        };
        Ok(Self::with_pools(backend, read))
    }

    fn with_pools(backend: Pool, read: Option<Pool>) -> Self {
        Self {
            backend,
            read,
            has_stats: Arc::default(),
            has_events: Arc::default(),
            wake: Arc::new(watch::Wake::new()),
        }
    }

    /// The pool serving reads: the read pool when configured, else the primary.
    fn reader(&self) -> &Pool {
        self.read.as_ref().unwrap_or(&self.backend)
    }

    /// Makes the schema ready (see the module docs) and seeds `demo_articles` demo articles
    /// when this call created the table.
    ///
    /// # Errors
    /// Database or migration failures.
    pub async fn prepare(&self, demo_articles: u32) -> Result<SchemaState> {
        let state = with_backend!(&self.backend, b => b.prepare(demo_articles).await)?;
        let (has_stats, has_events) = match state {
            SchemaState::Foreign => (false, false),
            _ => with_backend!(&self.backend, b => (
                b.has_table("article_stats").await?,
                b.has_table("article_event").await?,
            )),
        };
        self.has_stats.store(has_stats, Ordering::Relaxed);
        self.has_events.store(has_events, Ordering::Relaxed);
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

    /// Checks that the primary and the read pool (if any) answer a read of the table, i.e.
    /// that a request could be served now (a SQLite file locked by another writer does not),
    /// and, after a write found a SQLite disk full, that it has space again (a probe write).
    ///
    /// # Errors
    /// [`Error::Unavailable`] (or another database error) when one does not;
    /// [`Error::DiskFull`] while the disk is still full.
    pub async fn ping(&self) -> Result<()> {
        self.backend.ping().await?;
        if let Some(read) = &self.read {
            read.ping().await?;
        }
        Ok(())
    }

    /// The occupancy of the primary pool and of the read pool (if any).
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        let mut stats = vec![self.backend.stats("primary")];
        if let Some(read) = &self.read {
            stats.push(read.stats("read"));
        }
        stats
    }

    /// Up to `limit` (at least 1) articles by ascending id, after skipping `offset` (at least
    /// 0), and the total count: one page (a page far past the end is empty).
    ///
    /// # Errors
    /// Database failures.
    pub async fn list(&self, offset: i64, limit: i64) -> Result<(Vec<Article>, i64)> {
        let limit = limit.max(1);
        let offset = offset.max(0);
        let has_stats = self.has_stats.load(Ordering::Relaxed);
        with_backend!(self.reader(), b => b.list(limit, offset, has_stats).await)
    }

    /// Up to `limit` articles with ids above `after_id`, by ascending id: one batch of an
    /// export (keyset paging, so a batch deep in the table costs what the first does).
    ///
    /// # Errors
    /// Database failures.
    pub async fn after(&self, after_id: i64, limit: i64) -> Result<Vec<Article>> {
        with_backend!(self.reader(), b => b.after(after_id, limit.max(1)).await)
    }

    /// The events after `after_event` (oldest first), then each new one as it is committed,
    /// through any replica or process: see [`watch`].
    ///
    /// # Errors
    /// [`Error::WatchUnavailable`] at once on a foreign schema; database failures, as the
    /// stream's last item.
    pub fn watch(
        &self,
        after_event: i64,
    ) -> Result<impl futures::Stream<Item = Result<Event>> + Send + 'static> {
        if !self.has_events.load(Ordering::Relaxed) {
            return Err(Error::WatchUnavailable);
        }
        let signals = self.watch_signal();
        let store = self.clone();
        Ok(watch::events(after_event, signals, move |after| {
            let store = store.clone();
            async move { store.events_after(after, WATCH_BATCH).await }
        }))
    }

    /// Ends every watch of this store (and of its clones) with [`Error::ShuttingDown`], now and
    /// from now on: the server calls it when it stops, since a watch never ends by itself and
    /// a graceful shutdown waits for every call.
    pub fn stop_watchers(&self) {
        self.wake.stop();
    }

    /// What a new watcher waits on, once this store's poller runs ([`watch`]).
    fn watch_signal(&self) -> watch::Signals {
        let interval = with_backend!(&self.backend, b => b.watch_poll(&self.wake));
        // The pool, not the store: the poller must not keep the store (and itself) alive.
        let pool = self.backend.clone();
        self.wake.poll(interval, move || {
            let pool = pool.clone();
            async move { with_backend!(&pool, b => b.latest_event_id().await) }
        });
        self.wake.subscribe()
    }

    /// How many times the event table has been read: by the poller and by watchers' batches.
    pub fn event_table_reads(&self) -> u64 {
        self.wake.reads()
    }

    /// The id of the newest event (0 when there is none yet).
    ///
    /// # Errors
    /// [`Error::WatchUnavailable`] on a foreign schema; database failures.
    pub async fn latest_event_id(&self) -> Result<i64> {
        if !self.has_events.load(Ordering::Relaxed) {
            return Err(Error::WatchUnavailable);
        }
        with_backend!(&self.backend, b => b.latest_event_id().await)
    }

    /// Up to `limit` events with ids above `after`, by ascending id, from the primary (a
    /// replica may lag).
    ///
    /// # Errors
    /// [`Error::WatchUnavailable`] on a foreign schema; database failures.
    pub async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<Event>> {
        if !self.has_events.load(Ordering::Relaxed) {
            return Err(Error::WatchUnavailable);
        }
        self.wake.count_read();
        with_backend!(&self.backend, b => b.events_after(after, limit.max(1)).await)
    }

    /// One article.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is none with this id; database failures.
    pub async fn get(&self, id: i64) -> Result<Article> {
        Self::get_from(self.reader(), id).await
    }

    async fn get_from(pool: &Pool, id: i64) -> Result<Article> {
        with_backend!(pool, b => b.get(id).await)?.ok_or(Error::NotFound(id))
    }

    /// Inserts an article and returns it.
    ///
    /// # Errors
    /// [`Error::IdOutOfRange`] (nothing is written) when the new id does not fit the
    /// contract's `int32`; database failures.
    pub async fn create(&self, title: &str, content: &str) -> Result<Article> {
        with_backend!(&self.backend, b => b.create(title, content).await)
            .inspect(|_| self.wake.bump())
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
            // From the primary, like every write: a replica may not have the row yet.
            return Self::get_from(&self.backend, id).await;
        }
        let found = with_backend!(&self.backend, b => b.update(id, title, content).await)?;
        self.wake.bump();
        found.ok_or(Error::NotFound(id))
    }

    /// Deletes an article and returns what it was.
    ///
    /// # Errors
    /// [`Error::NotFound`]; database failures.
    pub async fn delete(&self, id: i64) -> Result<Article> {
        let found = with_backend!(&self.backend, b => b.delete(id).await)?;
        self.wake.bump();
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
        with_backend!(&self.backend, b => b.import(articles, progress).await)
    }

    /// Closes the pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.backend.close().await;
        if let Some(read) = &self.read {
            read.close().await;
        }
    }
}

impl Pool {
    async fn connect(options: &StoreOptions) -> Result<Self> {
        Ok(match backend_kind(&options.url)? {
            Kind::Sqlite => Self::Sqlite(sqlite::connect(options).await?),
            Kind::Postgres => Self::Postgres(postgres::connect(options).await?),
        })
    }

    fn connect_lazy(options: &StoreOptions) -> Result<Self> {
        Ok(match backend_kind(&options.url)? {
            Kind::Sqlite => Self::Sqlite(sqlite::connect_lazy(options)?),
            Kind::Postgres => Self::Postgres(postgres::connect_lazy(options)?),
        })
    }

    async fn ping(&self) -> Result<()> {
        with_backend!(self, b => b.ping().await)
    }

    fn stats(&self, pool: &'static str) -> PoolStats {
        let (size, idle) = with_backend!(self, b => b.occupancy());
        PoolStats {
            pool,
            size,
            idle: u32::try_from(idle).unwrap_or(u32::MAX),
        }
    }

    async fn close(&self) {
        with_backend!(self, b => b.close().await);
    }
}

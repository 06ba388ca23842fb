//! The SQLite queries of the store.
//!
//! `create_time` is a `datetime` column holding text; Django writes
//! `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC with `USE_TZ = True`, naive `TIME_ZONE` time without),
//! and so do we (UTC). It leaves as SQLite's `strftime('%Y-%m-%d %H:%M:%S', create_time)` would
//! format it, so any format SQLite understands comes out as `YYYY-MM-DD HH:MM:SS`; but the
//! usual formats are cut in Rust ([`clock::sqlite_canonical_len`]) and only the others are sent
//! to `strftime` ([`fast::FORMAT_TIME`]), one value at a time.
//!
//! The journal mode is switched to WAL (a setting stored in the file) only in databases whose
//! schema is ours; a foreign (Django) database keeps the mode it has.
//!
//! Everything goes through the sqlx pool except short page and detail reads of a database
//! file, which [`fast`] serves on the calling thread when it can.
//!
//! Writes ([`Db::begin_write`]): each runs in a `BEGIN IMMEDIATE` transaction of its own, and
//! is answered OK only once its `COMMIT` returned OK. The connection of a write that failed
//! (or was cancelled) is closed, never returned to the pool: SQLite may have rolled the
//! transaction back by itself (it does on `SQLITE_FULL`) or may have kept it open, and sqlx's
//! transaction bookkeeping does not follow it. Pooled again, such a connection once ran every
//! later write as a `SAVEPOINT` inside a transaction that never committed, holding the write
//! lock: writes answered OK and lost, all others "database is locked" until a restart.
//! Closing the connection ends whatever SQLite left open.
//!
//! A full disk (`SQLITE_FULL`) is [`Error::DiskFull`]; from then on the health check fails
//! (NOT_SERVING) until the database's filesystem has [`FULL_RECOVERY_SPACE`] free again and a
//! probe write commits ([`Db::probe_space`]). Writes are still tried meanwhile (a small one
//! may fit), but health does not return for them: a few pages free is not a disk with space.

mod fast;

use std::{
    path::PathBuf,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use sqlx::{
    Connection as _, Sqlite, SqliteConnection, SqlitePool,
    pool::PoolConnection,
    sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteSynchronous},
};

use self::fast::{FORMAT_TIME, FastReader};
use super::{
    backend::{self, Backend, Setup},
    options::{SchemaState, StoreOptions},
    page::{PageRow, page_from_rows},
    watch::{SQLITE_POLL, Wake},
};
use crate::{
    clock,
    error::{Error, Result},
    model::{Article, Event, NewArticle, contract_id},
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The selected columns (a macro so queries stay `&'static str`). `create_time` comes out as
/// stored, as text, and is formatted by [`format_time`] (or `fast::format_time`).
macro_rules! columns {
    () => {
        "id, title, content, CAST(create_time AS TEXT) AS create_time"
    };
}

/// Formats `article.create_time` as `YYYY-MM-DD HH:MM:SS` (see the module docs).
async fn format_time<'e, E>(exec: E, article: &mut Article) -> Result<()>
where
    E: sqlx::SqliteExecutor<'e>,
{
    if let Some(len) = clock::sqlite_canonical_len(&article.create_time) {
        article.create_time.truncate(len);
    } else {
        article.create_time = sqlx::query_scalar(FORMAT_TIME)
            .bind(&article.create_time)
            .fetch_one(exec)
            .await?;
    }
    Ok(())
}

/// A SQLite database: the sqlx pool, the fast reader when the database is a plain file, and
/// that file's identity.
#[derive(Clone, Debug)]
pub(super) struct Db {
    pub(super) pool: SqlitePool,
    fast: Option<Arc<FastReader>>,
    file: Option<Arc<FileIdentity>>,
    /// One write at a time takes a pooled connection; the others wait here.
    writer: Arc<tokio::sync::Semaphore>,
    /// How long a write waits for its turn.
    acquire_timeout: std::time::Duration,
    /// Set by a write that failed with `SQLITE_FULL`, cleared by the health check once there
    /// is space again (see the module docs).
    full: Arc<AtomicBool>,
}

/// How much free space the filesystem of a database that filled its disk needs before the
/// health check tries a write again: less would let writes of a few pages through while
/// articles of a few KiB still fail, and health would flap.
pub(super) const FULL_RECOVERY_SPACE: u64 = 512 * 1024;

/// The statement starting every write: takes the write lock at once (waiting up to the busy
/// timeout) rather than at the first write, where a concurrent writer of another process
/// would make it fail with `SQLITE_BUSY` without waiting. A custom `BEGIN` also makes sqlx
/// refuse to run it as a nested `SAVEPOINT`.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// One write in progress: its turn and its connection, which goes back to the pool only
/// through [`Db::end_write`] after a commit. Dropped otherwise (an error, or the request
/// cancelled), the connection is closed (see the module docs).
#[derive(Debug)]
struct Writing {
    /// Taken only by [`Db::end_write`].
    conn: Option<PoolConnection<Sqlite>>,
    _turn: tokio::sync::OwnedSemaphorePermit,
}

impl Writing {
    /// The write's connection.
    fn conn(&mut self) -> &mut SqliteConnection {
        // `conn` is `Some` from `begin_write` until `end_write` consumes the `Writing`.
        self.conn
            .as_deref_mut()
            .expect("a write's connection until it ends")
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        if let Some(conn) = &mut self.conn {
            conn.close_on_drop();
        }
    }
}

/// Which file the database is: its path, and the device and inode it had when opened (taken
/// at the first check, so a lazily created file is known once it exists).
///
/// Deleting (or replacing) the file under a running server does not fail SQLite: its open
/// descriptors keep writing into the unlinked inode, writes go on succeeding, and at the next
/// start a new empty database appears at the path: every write acknowledged since is lost.
/// So the file is checked on every health check and around every write.
#[derive(Debug)]
struct FileIdentity {
    path: PathBuf,
    opened: std::sync::OnceLock<(u64, u64)>,
    /// Whether the loss was logged (once is enough: the health check asks every interval).
    reported: std::sync::atomic::AtomicBool,
}

impl FileIdentity {
    /// `Ok` while the path still names the file the database opened.
    fn check(&self) -> Result<()> {
        use std::os::unix::fs::MetadataExt as _;
        let now = std::fs::metadata(&self.path).map(|m| (m.dev(), m.ino()));
        let opened = match (&now, self.opened.get()) {
            (Ok(now), None) => *self.opened.get_or_init(|| *now),
            (_, Some(opened)) => *opened,
            // Not created yet (a lazy pool that has not connected): nothing to compare.
            (Err(_), None) => return Ok(()),
        };
        match now {
            Ok(now) if now == opened => Ok(()),
            _ => {
                if !self
                    .reported
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::error!(
                    path = %self.path.display(),
                    "the SQLite database file was removed or replaced under the running server; \
                     refusing writes (they would be lost)"
                    );
                }
                Err(Error::DatabaseFileGone(self.path.display().to_string()))
            }
        }
    }
}

impl Db {
    fn new(
        pool: SqlitePool,
        fast: Option<Arc<FastReader>>,
        file: Option<Arc<FileIdentity>>,
        options: &StoreOptions,
    ) -> Self {
        Self {
            pool,
            fast,
            file,
            writer: Arc::new(tokio::sync::Semaphore::new(1)),
            acquire_timeout: options.acquire_timeout,
            full: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Takes the setup lock of the database file (an advisory lock on `<file>.setup-lock`),
    /// held while the returned guard lives: processes starting together on a file that does
    /// not exist yet would otherwise each see no table, and each migrate and seed it, as the
    /// advisory lock already prevents on PostgreSQL. `None` for in-memory databases.
    ///
    /// # Errors
    /// [`Error::Config`] when the lock file cannot be created or locked.
    async fn setup_lock(&self) -> Result<Option<std::fs::File>> {
        let Some(file) = &self.file else {
            return Ok(None);
        };
        let mut path = file.path.clone().into_os_string();
        path.push(".setup-lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::Config(format!("creating {}: {e}", path.display())))?;
        // Blocks until the process holding it has finished setting up: on a blocking thread.
        let locked = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
            .await
            .map_err(|e| Error::Config(format!("waiting for the setup lock: {e}")))?
            .map_err(|e| Error::Config(format!("locking the setup lock: {e}")))?;
        Ok(Some(locked))
    }

    /// Checks that the database file is still the one opened.
    ///
    /// # Errors
    /// [`Error::DatabaseFileGone`] when it is not.
    fn check_file(&self) -> Result<()> {
        self.file.as_ref().map_or(Ok(()), |f| f.check())
    }

    /// Waits for the one write turn, checks the file, and takes a connection for the write
    /// (in which the write then runs its [`BEGIN_WRITE`] transaction).
    ///
    /// SQLite serializes writers anyway; waiting for the turn here instead of in
    /// `busy_timeout` keeps the writers queued behind a lock (another process's
    /// `BEGIN EXCLUSIVE`) from holding every pooled connection, which reads and the health
    /// check, still served by SQLite under WAL, need.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the turn or a connection does not come within the acquire
    /// timeout, [`Error::DatabaseFileGone`].
    async fn begin_write(&self) -> Result<Writing> {
        let turn = Arc::clone(&self.writer).acquire_owned();
        let Ok(Ok(turn)) = tokio::time::timeout(self.acquire_timeout, turn).await else {
            return Err(Error::Unavailable(sqlx::Error::PoolTimedOut));
        };
        self.check_file()?;
        let mut conn = self.pool.acquire().await?;
        if conn.is_in_transaction() {
            // A transaction sqlx still counts (a commit cancelled as it failed): not to be
            // written in. Closed, and another connection taken.
            conn.close_on_drop();
            drop(conn);
            conn = self.pool.acquire().await?;
        }
        Ok(Writing {
            conn: Some(conn),
            _turn: turn,
        })
    }

    /// Ends a write begun by [`begin_write`](Self::begin_write), whose transaction `done`
    /// says committed (`Ok`) or not: the connection goes back to the pool only after a commit
    /// (see the module docs), and the disk counts as full after `SQLITE_FULL`.
    ///
    /// # Errors
    /// `done`'s error; [`Error::DatabaseFileGone`] when the file was replaced meanwhile.
    async fn end_write<T>(&self, mut writing: Writing, done: Result<T>) -> Result<T> {
        match done {
            Ok(value) => {
                // Back to the pool.
                drop(writing.conn.take());
                // Written into a file no longer at its path is lost: not acknowledged.
                self.check_file()?;
                Ok(value)
            }
            Err(err) => {
                // Closed before the turn passes on, so that no later write meets a lock
                // this connection still holds.
                if let Some(conn) = writing.conn.take() {
                    // Bounded: timed out, the connection is dropped, which closes it too.
                    let _ = tokio::time::timeout(self.acquire_timeout, conn.close()).await;
                }
                if matches!(err, Error::DiskFull(_)) && !self.full.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        error = %err,
                        "the database disk is full: writes fail and health is NOT_SERVING \
                         until it has space again"
                    );
                }
                Err(err)
            }
        }
    }

    /// After a write failed with `SQLITE_FULL`: whether there is space again, i.e. the
    /// filesystem has [`FULL_RECOVERY_SPACE`] free and a write of one page (the header's
    /// `user_version`, rewritten with its own value) commits.
    ///
    /// # Errors
    /// [`Error::DiskFull`] (or the probe's error) while there is not.
    async fn probe_space(&self) -> Result<()> {
        if let Some(file) = &self.file
            && let Ok(fs) = rustix::fs::statvfs(&file.path)
        {
            let free = fs.f_bavail.saturating_mul(fs.f_frsize);
            if free < FULL_RECOVERY_SPACE {
                return Err(Error::DiskFull(format!(
                    "{free} bytes free on its filesystem, {FULL_RECOVERY_SPACE} needed to \
                     count as writable again"
                )));
            }
        }
        let mut writing = self.begin_write().await?;
        let done = async {
            let mut tx = writing.conn().begin_with(BEGIN_WRITE).await?;
            let version: i64 = sqlx::query_scalar("PRAGMA user_version")
                .fetch_one(&mut *tx)
                .await?;
            // An integer read back from SQLite: nothing to inject.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "PRAGMA user_version = {version}"
            )))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        self.end_write(writing, done).await?;
        self.full.store(false, Ordering::Relaxed);
        tracing::info!("the database disk has space again: writes are accepted");
        Ok(())
    }
}

/// Pages that start further in than this are read through the pool: stepping over the `id`
/// index costs about 20 ns a row, so the fast path holds its thread for at most ~0.2 ms.
const FAST_MAX_OFFSET: i64 = 10_000;

/// The fast reader of the database `options` name, if it is a plain file.
fn fast_reader(options: &StoreOptions, connect: &SqliteConnectOptions) -> Option<Arc<FastReader>> {
    let path = fast_reader_path(&options.url, connect)?;
    let max_idle = options
        .max_connections
        .map_or(DEFAULT_MAX_CONNECTIONS, |n| n as usize);
    Some(Arc::new(FastReader::new(path, max_idle)))
}

const DEFAULT_MAX_CONNECTIONS: usize = 5;

/// The file the fast reader may open, if the URL names a plain file: in-memory databases live
/// in the pool's connections only, and a custom VFS or an immutable file is left to sqlx.
fn fast_reader_path(url: &str, connect: &SqliteConnectOptions) -> Option<PathBuf> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let special = ["mode=memory", "vfs=", "immutable="]
        .iter()
        .any(|p| query.contains(p));
    let path = connect.get_filename();
    let name = path.to_string_lossy();
    if special || name.is_empty() || name == ":memory:" || name.starts_with("file:") {
        return None;
    }
    Some(path.to_path_buf())
}

fn pool_options(options: &StoreOptions) -> Result<(SqlitePoolOptions, SqliteConnectOptions)> {
    let connect = SqliteConnectOptions::from_str(&options.url)
        .map_err(|e| Error::Config(format!("bad SQLite URL: {e}")))?
        .create_if_missing(true)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(options.busy_timeout)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .min_connections(options.min_connections)
        .max_connections(
            options
                .max_connections
                .unwrap_or(DEFAULT_MAX_CONNECTIONS as u32),
        )
        .acquire_timeout(options.acquire_timeout)
        // No ping before handing out a connection: a SQLite connection is a local file handle
        // that does not go stale like a network socket, and each ping is a round trip to the
        // connection's worker thread (thread wake-ups) on every query. A connection that does
        // fail still fails its query, and sqlx's on-release check drops it from the pool.
        .test_before_acquire(false);
    Ok((pool, connect))
}

pub(super) async fn connect(options: &StoreOptions) -> Result<Db> {
    let (pool, connect) = pool_options(options)?;
    let fast = fast_reader(options, &connect);
    let file = file_identity(options, &connect);
    let pool = pool.connect_with(connect).await?;
    let db = Db::new(pool, fast, file, options);
    // Taken now that the file exists.
    db.check_file()?;
    Ok(db)
}

pub(super) fn connect_lazy(options: &StoreOptions) -> Result<Db> {
    let (pool, connect) = pool_options(options)?;
    let fast = fast_reader(options, &connect);
    let file = file_identity(options, &connect);
    let pool = pool.connect_lazy_with(connect);
    Ok(Db::new(pool, fast, file, options))
}

fn file_identity(
    options: &StoreOptions,
    connect: &SqliteConnectOptions,
) -> Option<Arc<FileIdentity>> {
    fast_reader_path(&options.url, connect).map(|path| {
        Arc::new(FileIdentity {
            path,
            opened: std::sync::OnceLock::new(),
            reported: std::sync::atomic::AtomicBool::new(false),
        })
    })
}

impl Setup for SqliteConnection {
    async fn table_exists(&mut self, name: &str) -> Result<bool> {
        let found: i64 = sqlx::query_scalar(
            "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        )
        .bind(name)
        .fetch_one(self)
        .await?;
        Ok(found != 0)
    }

    async fn migrate(&mut self) -> Result<()> {
        // Persistent in the file: later connections of every pool use WAL too.
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&mut *self)
            .await?;
        Ok(MIGRATOR.run(self).await?)
    }

    async fn seed(&mut self, articles: &[NewArticle]) -> Result<u64> {
        let mut tx = sqlx::Connection::begin(self).await?;
        let seeded = insert_all(&mut tx, articles, &|| {}).await?;
        tx.commit().await?;
        Ok(seeded)
    }
}

/// The page: find the page's first id by stepping over the narrow `id` index (when the schema
/// is ours; see migration 0002), then read `limit` rows from there by primary key. Each row
/// carries the total, a scalar subquery SQLite evaluates once per statement; an empty page has
/// no row to carry it, so the total is then read on its own ([`TOTAL_WITH_STATS`]).
///
/// The shape is deliberate: a plain range scan in rowid order, with no join, no materialized
/// subquery and no sort (`EXPLAIN QUERY PLAN` shows one `SEARCH ... USING INTEGER PRIMARY KEY`),
/// where an earlier LEFT JOIN of the total and the page built and sorted a temporary b-tree on
/// every call.
///
/// `LIMIT CAST(?1 AS INTEGER)`, not `LIMIT ?1`: the bundled SQLite (3.51) plans a bare
/// `LIMIT ?N` with the bound value as a constant (`sqlite3ExprIsInteger` in
/// `computeLimitRegisters`) and so marks the statement expired whenever `?N` is bound again,
/// i.e. on every call: the cached statement was re-parsed and re-planned each time
/// (`sqlite3Reprepare`, 13% of the service's CPU samples under ArticleList load). The cast
/// keeps the limit a run-time value and the prepared statement reusable.
macro_rules! page_query {
    ($total:literal) => {
        concat!(
            "SELECT (",
            $total,
            ") AS total, ",
            columns!(),
            " FROM article_article WHERE id >= \
             (SELECT id FROM article_article ORDER BY id LIMIT 1 OFFSET ?2) \
             ORDER BY id LIMIT CAST(?1 AS INTEGER)"
        )
    };
}

/// The count kept by migration 0002's triggers.
const TOTAL_WITH_STATS: &str = "SELECT total FROM article_stats WHERE id = 1";
/// The count of a foreign table: a scan of the whole table.
const TOTAL_WITH_COUNT: &str = "SELECT count(*) FROM article_article";
const PAGE_WITH_STATS: &str = page_query!("SELECT total FROM article_stats WHERE id = 1");
const PAGE_WITH_COUNT: &str = page_query!("SELECT count(*) FROM article_article");

/// See [`super::Store::events_after`]. The limit is cast for the reason `page_query!` gives.
const EVENTS_AFTER: &str = "SELECT id AS event_id, kind, article_id AS id, title, content, \
     CAST(create_time AS TEXT) AS create_time FROM article_event WHERE id > ?1 ORDER BY id \
     LIMIT CAST(?2 AS INTEGER)";

/// See [`super::Store::after`]. The limit is cast for the reason `page_query!` gives.
const AFTER: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM article_article WHERE id > ?1 ORDER BY id LIMIT CAST(?2 AS INTEGER)"
);

const DETAIL: &str = concat!("SELECT ", columns!(), " FROM article_article WHERE id = ?1");

impl Backend for Db {
    async fn prepare(&self, demo_articles: u32) -> Result<SchemaState> {
        // Several processes starting on a new file: one creates and seeds it.
        let _setup = self.setup_lock().await?;
        let mut conn = self.pool.acquire().await?;
        backend::prepare(&mut *conn, demo_articles).await
    }

    async fn has_table(&self, name: &str) -> Result<bool> {
        self.pool.acquire().await?.table_exists(name).await
    }

    async fn ping(&self) -> Result<()> {
        self.check_file()?;
        if self.full.load(Ordering::Relaxed) {
            self.probe_space().await?;
        }
        // `SELECT 1` would not touch the file; reading the table needs its shared lock.
        sqlx::query("SELECT 1 FROM article_article LIMIT 1")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn occupancy(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn list(&self, limit: i64, offset: i64, has_stats: bool) -> Result<(Vec<Article>, i64)> {
        let (page_sql, total_sql) = if has_stats {
            (PAGE_WITH_STATS, TOTAL_WITH_STATS)
        } else {
            (PAGE_WITH_COUNT, TOTAL_WITH_COUNT)
        };
        // Without the counter, `count(*)` scans the whole table: a long read, for the pool.
        if has_stats
            && offset <= FAST_MAX_OFFSET
            && let Some(fast) = &self.fast
            && let Some(page) = fast.list(page_sql, total_sql, limit, offset)
        {
            return Ok(page);
        }
        let rows: Vec<PageRow> = sqlx::query_as(page_sql)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
        if rows.is_empty() {
            let total: i64 = sqlx::query_scalar(total_sql).fetch_one(&self.pool).await?;
            return Ok((Vec::new(), total));
        }
        let (mut page, total) = page_from_rows(rows);
        for article in &mut page {
            format_time(&self.pool, article).await?;
        }
        Ok((page, total))
    }

    async fn after(&self, after_id: i64, limit: i64) -> Result<Vec<Article>> {
        let mut batch: Vec<Article> = sqlx::query_as(AFTER)
            .bind(after_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        for article in &mut batch {
            format_time(&self.pool, article).await?;
        }
        Ok(batch)
    }

    async fn latest_event_id(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM article_event")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<Event>> {
        let mut batch: Vec<Event> = sqlx::query_as(EVENTS_AFTER)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        for event in &mut batch {
            format_time(&self.pool, &mut event.article).await?;
        }
        Ok(batch)
    }

    async fn get(&self, id: i64) -> Result<Option<Article>> {
        if let Some(fast) = &self.fast
            && let Some(found) = fast.get(DETAIL, id)
        {
            return Ok(found);
        }
        let found = sqlx::query_as::<_, Article>(DETAIL)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        formatted(&self.pool, found).await
    }

    async fn create(&self, title: &str, content: &str) -> Result<Article> {
        let mut writing = self.begin_write().await?;
        let done = insert(writing.conn(), title, content).await;
        self.end_write(writing, done).await
    }

    async fn update(
        &self,
        id: i64,
        title: Option<&str>,
        content: Option<&str>,
    ) -> Result<Option<Article>> {
        let mut writing = self.begin_write().await?;
        let done = change(writing.conn(), id, title, content).await;
        self.end_write(writing, done).await
    }

    async fn delete(&self, id: i64) -> Result<Option<Article>> {
        let mut writing = self.begin_write().await?;
        let done = remove(writing.conn(), id).await;
        self.end_write(writing, done).await
    }

    async fn import(&self, articles: &[NewArticle], progress: &(dyn Fn() + Sync)) -> Result<u64> {
        let mut writing = self.begin_write().await?;
        let done = async {
            let mut tx = writing.conn().begin_with(BEGIN_WRITE).await?;
            let n = insert_all(&mut tx, articles, progress).await?;
            tx.commit().await?;
            Ok(n)
        }
        .await;
        self.end_write(writing, done).await
    }

    fn watch_poll(&self, _wake: &Arc<Wake>) -> Duration {
        // Writes of other processes are only seen by looking: SQLite has no notifications.
        SQLITE_POLL
    }
}

/// `found`, its `create_time` formatted.
async fn formatted<'e>(
    exec: impl sqlx::SqliteExecutor<'e>,
    found: Option<Article>,
) -> Result<Option<Article>> {
    let Some(mut article) = found else {
        return Ok(None);
    };
    format_time(exec, &mut article).await?;
    Ok(Some(article))
}

/// CreateArticle's transaction: committed when this returns `Ok`.
async fn insert(conn: &mut SqliteConnection, title: &str, content: &str) -> Result<Article> {
    let mut tx = conn.begin_with(BEGIN_WRITE).await?;
    let mut article = sqlx::query_as::<_, Article>(concat!(
        "INSERT INTO article_article (title, content, create_time) \
         VALUES (?1, ?2, ?3) RETURNING ",
        columns!(),
        ""
    ))
    .bind(title)
    .bind(content)
    .bind(clock::now_django())
    .fetch_one(&mut *tx)
    .await?;
    // Rolled back as `tx` drops: nothing is written.
    contract_id(article.id)?;
    format_time(&mut *tx, &mut article).await?;
    tx.commit().await?;
    Ok(article)
}

/// UpdateArticle's transaction: committed when this returns `Ok`.
async fn change(
    conn: &mut SqliteConnection,
    id: i64,
    title: Option<&str>,
    content: Option<&str>,
) -> Result<Option<Article>> {
    let mut tx = conn.begin_with(BEGIN_WRITE).await?;
    let found = sqlx::query_as::<_, Article>(concat!(
        "UPDATE article_article SET title = COALESCE(?1, title), \
         content = COALESCE(?2, content) WHERE id = ?3 RETURNING ",
        columns!(),
        ""
    ))
    .bind(title)
    .bind(content)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let found = formatted(&mut *tx, found).await?;
    tx.commit().await?;
    Ok(found)
}

/// DeleteArticle's transaction: committed when this returns `Ok`.
async fn remove(conn: &mut SqliteConnection, id: i64) -> Result<Option<Article>> {
    let mut tx = conn.begin_with(BEGIN_WRITE).await?;
    let found = sqlx::query_as::<_, Article>(concat!(
        "DELETE FROM article_article WHERE id = ?1 RETURNING ",
        columns!(),
        ""
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let found = formatted(&mut *tx, found).await?;
    tx.commit().await?;
    Ok(found)
}

async fn insert_all(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    articles: &[NewArticle],
    progress: &(dyn Fn() + Sync),
) -> Result<u64> {
    let now = clock::now_django();
    let mut n = 0;
    for article in articles {
        sqlx::query(
            "INSERT INTO article_article (title, content, create_time) VALUES (?1, ?2, ?3)",
        )
        .bind(&article.title)
        .bind(&article.content)
        .bind(article.create_time.as_deref().unwrap_or(&now))
        .execute(&mut **tx)
        .await?;
        n += 1;
        progress();
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast_path_of(url: &str) -> Option<PathBuf> {
        let connect = SqliteConnectOptions::from_str(url).expect("url");
        fast_reader_path(url, &connect)
    }

    #[test]
    fn only_plain_files_get_a_fast_reader() {
        assert_eq!(
            fast_path_of("sqlite:///tmp/a.db"),
            Some(PathBuf::from("/tmp/a.db"))
        );
        assert_eq!(
            fast_path_of("sqlite://articles.db?mode=rwc"),
            Some(PathBuf::from("articles.db"))
        );
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://a.db?mode=memory",
            "sqlite://a.db?immutable=true",
        ] {
            assert_eq!(fast_path_of(url), None, "{url}");
        }
    }
}

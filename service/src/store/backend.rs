//! What a database backend does for the store: [`Backend`], implemented once by SQLite
//! ([`sqlite::Db`](super::sqlite)) and once by PostgreSQL (`PgPool`), so the store states each
//! operation once and picks the backend in one place (`with_backend!` in [`super`]).
//!
//! Startup is the same order on both ([`prepare`]): a table without sqlx's bookkeeping is
//! foreign and left alone; else migrate, and seed only a table this start created. Only the
//! steps ([`Setup`]) differ. It is not generic over `sqlx::Database`: the two differ in more
//! than types (SQLite switches to WAL first, PostgreSQL has no catalog query in common with it,
//! and the bounds `Migrator::run` and `Transaction` need would outgrow the ten lines they share).
//!
//! `async fn` in a private trait: the store calls it on the concrete backends only, so every
//! future's `Send` is known where it is awaited, with no boxing on the hot read paths.

use std::{sync::Arc, time::Duration};

use super::{options::SchemaState, watch::Wake};
use crate::{
    error::Result,
    model::{Article, Event, NewArticle},
    seed,
};

/// One backend's pool and its queries; see [`super::Store`] for what each one means. Limits
/// arrive already clamped to at least 1, offsets to at least 0.
pub(super) trait Backend {
    /// Makes the schema ready, holding the backend's setup lock: see [`prepare`].
    async fn prepare(&self, demo_articles: u32) -> Result<SchemaState>;
    /// Whether a table (e.g. migration 0002's counter, 0003's events) exists.
    async fn has_table(&self, name: &str) -> Result<bool>;
    /// Reads the table (a `SELECT 1` would not touch a SQLite file); on SQLite, after a write
    /// found the disk full, also checks that there is space again.
    async fn ping(&self) -> Result<()>;
    /// Open and idle connections.
    fn occupancy(&self) -> (u32, usize);
    async fn close(&self);
    async fn list(&self, limit: i64, offset: i64, has_stats: bool) -> Result<(Vec<Article>, i64)>;
    async fn after(&self, after_id: i64, limit: i64) -> Result<Vec<Article>>;
    async fn latest_event_id(&self) -> Result<i64>;
    async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<Event>>;
    async fn get(&self, id: i64) -> Result<Option<Article>>;
    async fn create(&self, title: &str, content: &str) -> Result<Article>;
    async fn update(
        &self,
        id: i64,
        title: Option<&str>,
        content: Option<&str>,
    ) -> Result<Option<Article>>;
    async fn delete(&self, id: i64) -> Result<Option<Article>>;
    /// Inserts all in one transaction, calling `progress` after each row.
    async fn import(&self, articles: &[NewArticle], progress: &(dyn Fn() + Sync)) -> Result<u64>;
    /// Arranges for `wake` to hear of other processes' writes where the backend can tell,
    /// and says how often its poller looks anyway.
    fn watch_poll(&self, wake: &Arc<Wake>) -> Duration;
}

/// The steps of [`prepare`] that differ per backend, on the one connection preparing runs on.
pub(super) trait Setup {
    async fn table_exists(&mut self, name: &str) -> Result<bool>;
    /// Runs the embedded migrations (and whatever database setting must come first).
    async fn migrate(&mut self) -> Result<()>;
    /// Inserts `articles` in one transaction; how many.
    async fn seed(&mut self, articles: &[NewArticle]) -> Result<u64>;
}

/// The startup order of both backends (see the module docs); the caller holds the setup lock.
pub(super) async fn prepare(conn: &mut impl Setup, demo_articles: u32) -> Result<SchemaState> {
    let had_table = conn.table_exists("article_article").await?;
    let had_migrations = conn.table_exists("_sqlx_migrations").await?;
    if had_table && !had_migrations {
        return Ok(SchemaState::Foreign);
    }
    conn.migrate().await?;
    if had_table {
        return Ok(SchemaState::Migrated);
    }
    let seeded = conn.seed(&seed::demo_articles(demo_articles)).await?;
    Ok(SchemaState::Created { seeded })
}

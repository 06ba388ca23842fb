//! How to connect a [`Store`](super::Store), and what preparing it found: shared by the store
//! and both backends, so neither backend reaches back into the store for them.

use std::{fmt, time::Duration};

use crate::error::{Error, Result};

/// The default of [`StoreOptions::acquire_timeout`].
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// The default of [`StoreOptions::busy_timeout`].
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How to connect.
#[derive(Clone)]
pub struct StoreOptions {
    /// The primary: `sqlite://FILE` / `sqlite::memory:` or `postgres://...`.
    pub url: String,
    /// An optional read-only copy of the primary (same backend) serving list and detail reads.
    pub read_url: Option<String>,
    /// Connections each pool keeps open even when idle.
    pub min_connections: u32,
    /// Pool size; a backend-specific default when `None`.
    pub max_connections: Option<u32>,
    /// How long a request waits for a pooled connection before the database counts as unavailable.
    pub acquire_timeout: Duration,
    /// SQLite only: how long a statement waits for another connection's lock before failing
    /// with `SQLITE_BUSY` (answered as UNAVAILABLE).
    pub busy_timeout: Duration,
}

impl StoreOptions {
    /// Options for `url` with the defaults: no read URL, no minimum, backend-specific pool
    /// size, [`DEFAULT_ACQUIRE_TIMEOUT`], [`DEFAULT_BUSY_TIMEOUT`].
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            read_url: None,
            min_connections: 0,
            max_connections: None,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
        }
    }

    /// The same options for another URL (used for the read pool).
    pub(super) fn with_url(&self, url: &str) -> Self {
        Self {
            url: url.to_owned(),
            read_url: None,
            ..self.clone()
        }
    }
}

impl fmt::Debug for StoreOptions {
    /// Shows only the URL schemes: the rest may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreOptions")
            .field("scheme", &scheme(&self.url))
            .field("read_scheme", &self.read_url.as_deref().map(scheme))
            .field("min_connections", &self.min_connections)
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("busy_timeout", &self.busy_timeout)
            .finish()
    }
}

fn scheme(url: &str) -> &str {
    url.split_once(':').map_or(url, |(s, _)| s)
}

/// A backend, as a URL names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Sqlite,
    Postgres,
}

/// The backend a URL names, by its scheme: the one place schemes are read.
pub(super) fn backend_kind(url: &str) -> Result<Kind> {
    match scheme(url) {
        "sqlite" => Ok(Kind::Sqlite),
        "postgres" | "postgresql" => Ok(Kind::Postgres),
        other => Err(Error::UnsupportedDatabaseUrl(other.to_owned())),
    }
}

/// What [`Store::prepare`](super::Store::prepare) found and did.
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

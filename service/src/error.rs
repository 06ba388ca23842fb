//! The server's error type and its single mapping to [`tonic::Status`].
//!
//! Every fallible function of the server side returns [`Error`]; the `articles` client has its
//! own ([`crate::client::ClientError`]), an import too ([`crate::import::ImportError`]), and
//! start-up failures are [`StartError`]. The gRPC layer turns it into a
//! status in exactly one place, `impl From<Error> for Status`, which also decides what a client
//! may see: internal failures are logged in full and answered with a generic message.

mod bad_request;

use std::{io, net::SocketAddr, path::PathBuf};

use articles_gateway::constraints::Violations;
use tonic::Status;

/// The result type of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the server could not start or stopped serving: never a request's answer, so it has no
/// [`Status`]. Opening the store and reading the tokens still fail with [`Error`].
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// The descriptors served over reflection could not be decoded.
    #[error("invalid descriptor set: {0}")]
    Descriptor(String),
    /// The metrics HTTP server failed.
    #[error("metrics server error: {0}")]
    Metrics(#[source] io::Error),
    /// The in-process REST gateway could not be built.
    #[error("REST gateway: {0}")]
    Rest(String),
    /// The gRPC server failed.
    #[error("gRPC server error: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Opening the store or the tokens failed.
    #[error(transparent)]
    Open(#[from] Error),
}

/// Everything that can go wrong in the service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field has a value the contract does not allow.
    #[error("{field} {reason}")]
    InvalidArgument {
        /// The name of the offending field, as in the proto.
        field: &'static str,
        /// What is wrong with it, e.g. `must not be negative (got -1)`.
        reason: String,
    },
    /// A request breaks the contract's field rules (`buf.validate`, `google.api.field_behavior`):
    /// every broken field, each as `<field> <reason>`, joined by `; `.
    #[error("{}", list(.0))]
    InvalidFields(Violations),
    /// No article has this id.
    #[error("article {0} not found")]
    NotFound(i64),
    /// A query that had to return a row returned none.
    #[error("record not found")]
    RowNotFound,
    /// An id in the database does not fit the contract's `int32`.
    #[error("article id {0} exceeds the int32 range of the ArticleService contract")]
    IdOutOfRange(i64),
    /// A write came without credentials.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A write came with credentials that do not allow it (or writes are disabled).
    #[error("{0}")]
    PermissionDenied(&'static str),
    /// The database cannot be reached right now (connection refused, pool exhausted, locked).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The database cannot store the write: its disk (or filesystem) is full (`SQLITE_FULL`,
    /// PostgreSQL's `53100 disk_full`); nothing of the write was stored. It carries what the
    /// database said, or how little space the filesystem has.
    #[error("database disk is full: {0}")]
    DiskFull(String),
    /// The database ran out of another resource (PostgreSQL's class 53, insufficient
    /// resources: memory, a configured limit), other than connections.
    #[error("database out of resources: {0}")]
    OutOfResources(#[source] sqlx::Error),
    /// The SQLite file is no longer at its path (deleted or replaced under the server).
    #[error("the database file {0} was removed or replaced under the running server")]
    DatabaseFileGone(String),
    /// The database has no event table to watch (a schema made by another tool, e.g. Django).
    #[error(
        "watching is not available on this database: its article_article table was made by \
         another tool (e.g. Django) and is served as is, without the article_event table that \
         WatchArticles reads"
    )]
    WatchUnavailable,
    /// The server is stopping: a watch ends (its client resumes elsewhere or later).
    #[error("the server is shutting down; resume the watch from the last event id received")]
    ShuttingDown,
    /// Any other database failure.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// Applying the embedded migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database URL names no backend we support.
    #[error("unsupported database URL scheme {0:?}: expected sqlite:... or postgres://...")]
    UnsupportedDatabaseUrl(String),
    /// A configuration value is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// An [`Error::InvalidArgument`] for `field`.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        if is_unavailable(&err) {
            Self::Unavailable(err)
        } else if let Some(exhausted) = exhausted(&err) {
            match exhausted {
                Exhausted::Disk => Self::DiskFull(err.to_string()),
                Exhausted::Other => Self::OutOfResources(err),
            }
        } else if matches!(err, sqlx::Error::RowNotFound) {
            Self::RowNotFound
        } else {
            Self::Database(err)
        }
    }
}

/// Whether a database error means "cannot reach the database right now" rather than a bug.
fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // Primary result code = low byte of the extended code.
                // 5 BUSY, 6 LOCKED, 14 CANTOPEN.
                let code = db
                    .code()
                    .and_then(|c| c.parse::<i64>().ok())
                    .map(|c| c & 0xff);
                matches!(code, Some(5 | 6 | 14))
            } else if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                // Class 08: connection exception; 57P01..57P03: shutdown / cannot connect now;
                // 53300: too many connections.
                let code = pg.code();
                code.starts_with("08") || code.starts_with("57P") || code == "53300"
            } else {
                false
            }
        }
        _ => false,
    }
}

/// What a database ran out of.
enum Exhausted {
    Disk,
    Other,
}

/// Whether a database error means the database is out of space or another resource: not a
/// bug, and not gone either, so it is neither INTERNAL nor UNAVAILABLE.
fn exhausted(err: &sqlx::Error) -> Option<Exhausted> {
    let sqlx::Error::Database(db) = err else {
        return None;
    };
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // 13 SQLITE_FULL: the filesystem (or `max_page_count`) is full.
        let code = db
            .code()
            .and_then(|c| c.parse::<i64>().ok())
            .map(|c| c & 0xff);
        (code == Some(13)).then_some(Exhausted::Disk)
    } else if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        // Class 53, insufficient resources: 53100 disk_full; 53200 out_of_memory, 53400
        // configuration_limit_exceeded. 53300 too_many_connections is UNAVAILABLE (a
        // connection may be free a moment later), see `is_unavailable`.
        match pg.code() {
            "53100" => Some(Exhausted::Disk),
            "53300" => None,
            code if code.starts_with("53") => Some(Exhausted::Other),
            _ => None,
        }
    } else {
        None
    }
}

/// `<field> <reason>` for each violation, as [`Error::InvalidArgument`] words one.
fn list(violations: &Violations) -> String {
    violations
        .0
        .iter()
        .map(|v| format!("{} {}", v.field, v.description).trim().to_owned())
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        match err {
            Error::InvalidFields(ref violations) => {
                let message = err.to_string();
                let details =
                    bad_request::status_details(tonic::Code::InvalidArgument, &message, violations);
                Status::with_details(
                    tonic::Code::InvalidArgument,
                    message,
                    bytes::Bytes::from(details),
                )
            }
            Error::InvalidArgument { .. } => Status::invalid_argument(err.to_string()),
            Error::NotFound(_) | Error::RowNotFound => Status::not_found(err.to_string()),
            Error::IdOutOfRange(_) => Status::out_of_range(err.to_string()),
            Error::WatchUnavailable => Status::failed_precondition(err.to_string()),
            Error::ShuttingDown => Status::unavailable(err.to_string()),
            Error::Unauthenticated(msg) => Status::unauthenticated(msg),
            Error::PermissionDenied(msg) => Status::permission_denied(msg),
            Error::Unavailable(_) => {
                tracing::warn!(error = %err, "database unavailable");
                Status::unavailable("database unavailable")
            }
            // Nothing was written; the store marks the database full (health NOT_SERVING)
            // until it has space again.
            Error::DiskFull(_) => {
                tracing::warn!(error = %err, "write refused: database disk is full");
                Status::resource_exhausted("database disk is full")
            }
            Error::OutOfResources(_) => {
                tracing::warn!(error = %err, "database out of resources");
                Status::resource_exhausted("database out of resources")
            }
            // Logged in full where it was found.
            Error::DatabaseFileGone(_) => Status::unavailable("database unavailable"),
            _ => {
                tracing::error!(error = ?err, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

/// The canonical name of a status code: the gateway's one table.
pub use articles_gateway::error::code_name;

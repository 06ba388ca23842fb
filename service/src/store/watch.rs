//! Following the event table: a stream of the events after an id, kept open for new ones.
//!
//! Events are rows of `article_event`, written by triggers in the transaction of each write
//! (migration 0003), so they appear whichever replica, process or tool wrote them. A watcher
//! reads them by id, a batch at a time ([`BATCH`]: what it holds in memory, however far behind
//! it is), and the next batch only once the previous one has been taken by the transport: a
//! slow watcher only reads more slowly, and writers never wait for it (a SQLite reader under WAL
//! and a PostgreSQL reader block no writer).
//!
//! One poller per store ([`Wake::poll`]) looks for new events for all its watchers: it reads
//! the newest event id (an indexed read of one row) when woken, or every poll interval, and
//! publishes it; a caught-up watcher sleeps until that id passes its own position, then reads
//! its own batch from there. An idle watcher reads nothing, so 2,000 idle watchers cost what
//! one does (the poller's reads); every watcher still reads every event from its own position,
//! so none is missed or repeated, whatever the id it resumed from. The poller is woken:
//! - by a write through this process, at once ([`Wake::bump`]);
//! - on PostgreSQL, by the trigger's `pg_notify('article_event')`, which reaches every replica,
//!   where one `LISTEN`ing connection per store ([`listen`]) wakes its poller; polling every
//!   [`POSTGRES_POLL`] stays as the fallback for a notification lost while that connection
//!   reconnects;
//! - on SQLite there is nothing to listen to across processes: it polls every [`SQLITE_POLL`].
//!
//! Ids follow commit order (migration 0003), so once the newest id is `n`, no event below `n`
//! can still appear: a watcher past its position has all it needs in the table.
//! [`Wake::reads`] counts the reads of the event table (`articles_event_table_reads_total`).

use std::{
    future::Future,
    sync::{Arc, OnceLock, Weak},
    time::Duration,
};

use prometheus_client::metrics::counter::Counter;
use sqlx::{PgPool, postgres::PgListener};
use tokio::sync::{Notify, watch};

use crate::{
    error::{Error, Result},
    model::Event,
};

/// How many events a watcher reads at a time: what it holds, at most 64 MiB even with articles
/// at the contract's 4 MiB limit (a batch of ordinary articles is a few KiB). Each read is a
/// range of the primary key, so catching up by small batches costs little.
pub const BATCH: i64 = 16;
/// How often the poller on SQLite looks for events written by other processes.
pub const SQLITE_POLL: Duration = Duration::from_millis(200);
// The live page promises a write on another replica within a second (scripts/browser-test
// prints the figure): a poll, the read and the page's own work must fit in it.
const _: () = assert!(SQLITE_POLL.as_millis() <= 200);
/// How often the poller on PostgreSQL looks without being notified.
pub const POSTGRES_POLL: Duration = Duration::from_millis(500);
/// The PostgreSQL channel the trigger notifies.
const CHANNEL: &str = "article_event";

/// The one poller of a store and the watchers it wakes.
#[derive(Debug)]
pub(super) struct Wake {
    /// Notified at every possible new event: the poller reads at once. A notification while it
    /// reads is kept, so it reads again.
    bumped: Notify,
    /// The newest event id the poller has read; watchers wait for it to pass their position.
    latest: watch::Sender<i64>,
    /// Set once the PostgreSQL listener has been started.
    listening: OnceLock<()>,
    /// Set once the poller has been started.
    polling: OnceLock<()>,
    /// Set when the server stops: every watch ends, and the poller.
    stopping: watch::Sender<bool>,
    /// Reads of the event table (the poller's and the watchers' batches).
    reads: Counter,
}

/// What a watcher waits on: the newest event id, or the server stopping.
pub(super) struct Signals {
    latest: watch::Receiver<i64>,
    stopping: watch::Receiver<bool>,
}

impl Signals {
    /// Whether the server is stopping.
    fn stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Waits until an event after `last` exists or the server stops.
    async fn wait_past(&mut self, last: i64) {
        tokio::select! {
            // An error means the store is gone: the next read tells.
            _ = self.latest.wait_for(|latest| *latest > last) => {}
            _ = self.stopping.wait_for(|stop| *stop) => {}
        }
    }
}

impl Wake {
    pub(super) fn new() -> Self {
        Self {
            bumped: Notify::new(),
            latest: watch::Sender::new(0),
            listening: OnceLock::new(),
            polling: OnceLock::new(),
            stopping: watch::Sender::new(false),
            reads: Counter::default(),
        }
    }

    /// Tells the poller that an event may have been written.
    pub(super) fn bump(&self) {
        self.bumped.notify_one();
    }

    /// What a new watcher waits on.
    pub(super) fn subscribe(&self) -> Signals {
        Signals {
            latest: self.latest.subscribe(),
            stopping: self.stopping.subscribe(),
        }
    }

    /// Ends every watch, now and from now on.
    pub(super) fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Counts one read of the event table.
    pub(super) fn count_read(&self) {
        self.reads.inc();
    }

    /// The reads of the event table so far.
    pub(super) fn reads(&self) -> u64 {
        self.reads.get()
    }

    /// Starts (once per store) the poller: `read` gives the newest event id, read when bumped
    /// or every `interval` while someone watches.
    pub(super) fn poll<F, Fut>(self: &Arc<Self>, interval: Duration, read: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<i64>> + Send + 'static,
    {
        self.polling.get_or_init(|| {
            tokio::spawn(poller(Arc::downgrade(self), interval, read));
        });
    }

    /// Starts (once per store) the task that turns PostgreSQL notifications into bumps.
    pub(super) fn listen(self: &Arc<Self>, pool: &PgPool) {
        self.listening.get_or_init(|| {
            tokio::spawn(listen(Arc::downgrade(self), pool.clone()));
        });
    }
}

/// The poller of [`Wake::poll`]: ends with the store (`wake` gone) or when the server stops.
async fn poller<F, Fut>(wake: Weak<Wake>, interval: Duration, read: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<i64>>,
{
    let mut failing = false;
    // Bounded by the store's life: each round ends within `interval`.
    loop {
        let Some(wake) = wake.upgrade() else {
            return;
        };
        if *wake.stopping.borrow() {
            return;
        }
        // Nobody watching: nothing to read (a watcher's first read is its own).
        if wake.latest.receiver_count() > 0 {
            wake.count_read();
            match read().await {
                Ok(id) => {
                    failing = false;
                    wake.latest.send_if_modified(|latest| {
                        let newer = id > *latest;
                        if newer {
                            *latest = id;
                        }
                        newer
                    });
                }
                Err(e) => {
                    // The watchers wait meanwhile, and read on once the database is back.
                    if !failing {
                        tracing::warn!(error = %e, "cannot read the newest event id; retrying");
                    }
                    failing = true;
                }
            }
        }
        let mut stopping = wake.stopping.subscribe();
        tokio::select! {
            () = wake.bumped.notified() => {}
            () = tokio::time::sleep(interval) => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
    }
}

/// `LISTEN`s on [`CHANNEL`] and bumps `wake` at each notification, reconnecting after a
/// failure, until the store is gone or its pool closed.
async fn listen(wake: Weak<Wake>, pool: PgPool) {
    // Bounded by the store's life: each round ends when the pool closes or the store is dropped.
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener.listen(CHANNEL).await {
                Ok(()) => loop {
                    // A timeout now and then, to notice a dropped store.
                    match tokio::time::timeout(Duration::from_secs(5), listener.recv()).await {
                        Ok(Ok(_)) => match wake.upgrade() {
                            Some(wake) => wake.bump(),
                            None => return,
                        },
                        Ok(Err(_)) if pool.is_closed() => return,
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "LISTEN article_event failed; watchers poll");
                            break;
                        }
                        Err(_) if wake.strong_count() == 0 => return,
                        Err(_) => {}
                    }
                },
                Err(e) => tracing::warn!(error = %e, "LISTEN article_event failed; watchers poll"),
            },
            Err(e) => tracing::warn!(error = %e, "no connection to LISTEN on; watchers poll"),
        }
        if pool.is_closed() || wake.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The events after `after`, oldest first, then each new one as it is committed, each batch
/// from `read` (the events after an id, at most [`BATCH`]); once caught up, the next read waits
/// for the poller to see a newer event. The stream ends only at a failure or when the server
/// stops ([`Error::ShuttingDown`]), or when dropped (a cancelled call, a deadline).
pub(super) fn events<F, Fut>(
    after: i64,
    mut signals: Signals,
    mut read: F,
) -> impl futures::Stream<Item = Result<Event>> + Send + 'static
where
    F: FnMut(i64) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Vec<Event>>> + Send,
{
    async_stream::try_stream! {
        let mut last = after;
        // Ends with the stream, i.e. with the call, or when the server stops.
        loop {
            if signals.stopping() {
                Err(Error::ShuttingDown)?;
            }
            let batch = read(last).await?;
            let full = i64::try_from(batch.len()).unwrap_or(i64::MAX) >= BATCH;
            for event in batch {
                last = event.event_id;
                yield event;
            }
            if !full {
                signals.wait_past(last).await;
            }
        }
    }
}

//! Following the event table: a stream of the events after an id, kept open for new ones.
//!
//! Events are rows of `article_event`, written by triggers in the transaction of each write
//! (migration 0003), so they appear whichever replica, process or tool wrote them. A watcher
//! reads them by id, a batch at a time ([`BATCH`]: what it holds in memory, however far behind
//! it is), and the next batch only once the previous one has been taken by the transport: a
//! slow watcher only reads more slowly, and writers never wait for it (a SQLite reader under WAL
//! and a PostgreSQL reader block no writer).
//!
//! When it has caught up, a watcher sleeps until woken or until the poll interval passes:
//! - a write through this process wakes it at once ([`Wake::bump`]);
//! - on PostgreSQL, the trigger's `pg_notify('article_event')` reaches every replica, where one
//!   `LISTEN`ing connection per store ([`listen`]) wakes all its watchers; polling every
//!   [`POSTGRES_POLL`] stays as the fallback for a notification lost while that connection
//!   reconnects;
//! - on SQLite there is nothing to listen to across processes: watchers poll the table by id
//!   every [`SQLITE_POLL`] (an indexed read of nothing, most of the time).

use std::{
    future::Future,
    sync::{Arc, OnceLock, Weak},
    time::Duration,
};

use sqlx::{PgPool, postgres::PgListener};
use tokio::sync::watch;

use crate::{
    error::{Error, Result},
    model::Event,
};

/// How many events a watcher reads at a time: what it holds, at most 64 MiB even with articles
/// at the contract's 4 MiB limit (a batch of ordinary articles is a few KiB). Each read is a
/// range of the primary key, so catching up by small batches costs little.
pub const BATCH: i64 = 16;
/// How often a caught-up watcher on SQLite looks for events written by other processes.
pub const SQLITE_POLL: Duration = Duration::from_millis(200);
// The live page promises a write on another replica within a second (scripts/browser-test
// prints the figure): a poll, the read and the page's own work must fit in it.
const _: () = assert!(SQLITE_POLL.as_millis() <= 200);
/// How often a caught-up watcher on PostgreSQL looks without being notified.
pub const POSTGRES_POLL: Duration = Duration::from_millis(500);
/// The PostgreSQL channel the trigger notifies.
const CHANNEL: &str = "article_event";

/// Wakes the watchers of one store.
#[derive(Debug)]
pub(super) struct Wake {
    /// A counter bumped at every possible new event; watchers wait for it to change.
    signal: watch::Sender<u64>,
    /// Set once the PostgreSQL listener has been started.
    listening: OnceLock<()>,
    /// Set when the server stops: every watch ends.
    stopping: watch::Sender<bool>,
}

/// What a watcher waits on: new events, or the server stopping.
pub(super) struct Signals {
    events: watch::Receiver<u64>,
    stopping: watch::Receiver<bool>,
}

impl Signals {
    /// Whether the server is stopping.
    fn stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Waits until an event may have been written, `poll` has passed or the server stops.
    async fn wait(&mut self, poll: Duration) {
        tokio::select! {
            // Woken or timed out alike, the next read tells.
            _ = tokio::time::timeout(poll, self.events.changed()) => {}
            _ = self.stopping.wait_for(|stop| *stop) => {}
        }
    }
}

impl Wake {
    pub(super) fn new() -> Self {
        Self {
            signal: watch::Sender::new(0),
            listening: OnceLock::new(),
            stopping: watch::Sender::new(false),
        }
    }

    /// Tells the watchers that an event may have been written.
    pub(super) fn bump(&self) {
        self.signal.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// What a new watcher waits on.
    pub(super) fn subscribe(&self) -> Signals {
        Signals {
            events: self.signal.subscribe(),
            stopping: self.stopping.subscribe(),
        }
    }

    /// Ends every watch, now and from now on.
    pub(super) fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Starts (once per store) the task that turns PostgreSQL notifications into bumps.
    pub(super) fn listen(self: &Arc<Self>, pool: &PgPool) {
        self.listening.get_or_init(|| {
            tokio::spawn(listen(Arc::downgrade(self), pool.clone()));
        });
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
/// from `read` (the events after an id, at most [`BATCH`]); the stream ends only at a failure
/// or when the server stops ([`Error::ShuttingDown`]), or when dropped (a cancelled call, a
/// deadline).
pub(super) fn events<F, Fut>(
    after: i64,
    mut signals: Signals,
    poll: Duration,
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
            // Before the read: a bump during it is then seen as a change below.
            signals.events.mark_unchanged();
            let batch = read(last).await?;
            let full = i64::try_from(batch.len()).unwrap_or(i64::MAX) >= BATCH;
            for event in batch {
                last = event.event_id;
                yield event;
            }
            if !full {
                signals.wait(poll).await;
            }
        }
    }
}

//! Reading the descriptors again while the gateway serves: every `--reflect-interval`, and at
//! each `SIGHUP`, from where they were read at start (a `--descriptor-set` file, or the
//! backend's reflection). New descriptors are built into a new version of the API and swapped
//! in whole by the [`Reloader`]; the same ones change nothing.
//!
//! A reload that fails (an unreadable file, invalid descriptors, reflection failing or
//! answering garbage, descriptors routing nothing) keeps the served API and logs why.
//!
//! By reflection, every replica is asked, at once. While they answer different descriptors (a
//! rolling deploy), the served API stays, and each replica's version is logged: a method is
//! routed once every replica answering reflection has it, so a method that only some
//! replicas have yet is not routed to replicas that would answer it UNIMPLEMENTED. Replicas
//! that do not answer are left out of the comparison (they get no calls while down either).

use std::{path::PathBuf, time::Duration};

use futures::future::join_all;
use prost_reflect::DescriptorPool;
use tokio::task::JoinHandle;

use crate::{
    app::{Reloaded, Reloader},
    backend::Backend,
    descriptors,
    served::{DescriptorVersion, Outcome},
};

/// How long reading descriptors by reflection from one replica may take.
pub const REFLECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the descriptors are read again from.
#[derive(Debug, Clone)]
pub enum Source {
    /// An encoded `FileDescriptorSet` file, read again whole.
    File(PathBuf),
    /// The backend's server reflection, asked of every replica.
    Reflection {
        /// The backend, whose replicas are asked in turn.
        backend: Backend,
        /// Each replica's name for the logs, in the backend's order.
        names: Vec<String>,
    },
    /// Descriptors compiled into the binary: they cannot change, a reload finds them unchanged.
    Embedded(&'static [u8]),
}

/// Reloads the descriptors of one gateway from one source.
#[derive(Debug, Clone)]
pub struct Reload {
    source: Source,
    reloader: Reloader,
}

impl Reload {
    /// Reloads from `source` into the API `reloader` serves.
    pub fn new(source: Source, reloader: Reloader) -> Self {
        Self { source, reloader }
    }

    /// Reads the descriptors once and swaps them in if they changed; logs and counts the
    /// outcome.
    pub async fn once(&self) -> Outcome {
        let outcome = match self.read().await {
            Read::Pool(pool) => match self.reloader.reload(pool) {
                Ok(Reloaded::Changed { .. }) => Outcome::Changed,
                Ok(Reloaded::Unchanged(version)) => {
                    tracing::debug!(%version, "descriptors unchanged");
                    Outcome::Unchanged
                }
                Err(e) => {
                    tracing::warn!(error = %e, "descriptor reload refused; the served API stays");
                    // Counted by the reloader.
                    return Outcome::Failed;
                }
            },
            Read::Failed(error) => {
                tracing::warn!(error, "descriptor reload failed; the served API stays");
                Outcome::Failed
            }
            Read::Disagreed(versions) => {
                tracing::warn!(
                    replicas = ?versions,
                    served = %self.reloader.served().loaded().version,
                    "backend replicas answer different descriptors; the served API stays until \
                     they agree"
                );
                Outcome::Disagreed
            }
        };
        if outcome != Outcome::Changed && outcome != Outcome::Unchanged {
            self.reloader.served().count(outcome);
        }
        outcome
    }

    /// Reloads every `interval` (when given) and at each `SIGHUP`, until the task is aborted.
    ///
    /// The `SIGHUP` handler is installed before this returns, so a signal sent once the
    /// gateway serves reloads instead of ending the process.
    pub fn spawn(self, interval: Option<Duration>) -> JoinHandle<()> {
        let mut hangup = Hangup::install();
        tokio::spawn(async move {
            let mut ticks = interval.map(|period| {
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                // A slow reload (a replica taking its whole timeout) does not make the next ones
                // rush to catch up.
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks
            });
            loop {
                let tick = async {
                    match &mut ticks {
                        Some(ticks) => {
                            ticks.tick().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = tick => {}
                    () = hangup.recv() => tracing::info!("SIGHUP: reading the descriptors again"),
                }
                self.once().await;
            }
        })
    }

    async fn read(&self) -> Read {
        match &self.source {
            Source::File(path) => match descriptors::from_file(path) {
                Ok(pool) => Read::Pool(pool),
                Err(e) => Read::Failed(e.to_string()),
            },
            Source::Embedded(bytes) => match descriptors::from_bytes(bytes) {
                Ok(pool) => Read::Pool(pool),
                Err(e) => Read::Failed(e.to_string()),
            },
            Source::Reflection { backend, names } => reflect_all(backend, names).await,
        }
    }
}

/// What reading the descriptors found.
enum Read {
    Pool(DescriptorPool),
    Failed(String),
    /// Each replica's name and version (or why it did not answer).
    Disagreed(Vec<String>),
}

/// Asks every replica at once; the descriptors when every replica that answers answers the
/// same ones.
async fn reflect_all(backend: &Backend, names: &[String]) -> Read {
    let replicas = backend.replicas();
    let answers = join_all(replicas.iter().map(reflect_replica)).await;
    let mut answered: Vec<(DescriptorVersion, DescriptorPool)> = Vec::new();
    let mut report = Vec::with_capacity(answers.len());
    for (index, answer) in answers.into_iter().enumerate() {
        let name = replica_name(names, index);
        match answer {
            Ok(pool) => {
                let version = DescriptorVersion::of(&pool);
                report.push(format!("{name}: {version}"));
                answered.push((version, pool));
            }
            Err(error) => {
                tracing::warn!(backend = name, error, "reflection failed on this replica");
                report.push(format!("{name}: {error}"));
            }
        }
    }
    let Some((first, _)) = answered.first() else {
        return Read::Failed(format!(
            "reflection failed on every backend: {}",
            report.join("; ")
        ));
    };
    if answered.iter().any(|(version, _)| version != first) {
        return Read::Disagreed(report);
    }
    match answered.into_iter().next() {
        Some((_, pool)) => Read::Pool(pool),
        None => Read::Failed("no backend answered reflection".to_owned()),
    }
}

/// Reads the descriptors by reflection from one replica, within [`REFLECTION_TIMEOUT`].
///
/// # Errors
/// Why the replica gave none, as text for the logs.
pub async fn reflect_replica(replica: &Backend) -> Result<DescriptorPool, String> {
    match tokio::time::timeout(REFLECTION_TIMEOUT, descriptors::from_reflection(replica)).await {
        Ok(Ok(pool)) => Ok(pool),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {REFLECTION_TIMEOUT:?}")),
    }
}

/// A replica's name in the logs: its flag, else its place.
pub fn replica_name(names: &[String], index: usize) -> String {
    names
        .get(index)
        .map_or_else(|| format!("backend #{index}"), Clone::clone)
}

/// `SIGHUP`, where there is one.
struct Hangup(#[cfg(unix)] Option<tokio::signal::unix::Signal>);

impl Hangup {
    fn install() -> Self {
        #[cfg(unix)]
        {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(signal) => Self(Some(signal)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGHUP; reload on it is off");
                    Self(None)
                }
            }
        }
        #[cfg(not(unix))]
        Self()
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.0
            && signal.recv().await.is_some()
        {
            return;
        }
        std::future::pending::<()>().await;
    }
}

impl std::fmt::Debug for Hangup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hangup")
    }
}

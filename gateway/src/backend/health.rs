//! The health watcher of a replica: a background task asking its `grpc.health.v1.Health/Check`
//! every interval, marking it up while the answer is SERVING and down otherwise (another
//! status, an error, no answer in time, or no connection).

use std::{sync::Arc, time::Duration};

use tokio::{runtime::Handle, sync::watch, task::AbortHandle, time::MissedTickBehavior};
use tonic_health::pb::health_check_response::ServingStatus;

use super::{BalanceOptions, GrpcService, balance::ReplicaState, check_health};

/// The shortest interval accepted, so a zero interval cannot spin.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// What a watcher watches and where it reports.
pub(super) struct Watched {
    pub(super) uri: String,
    pub(super) service: GrpcService,
    pub(super) state: Arc<ReplicaState>,
    /// Counts replicas whose first check is done.
    pub(super) checked: Arc<watch::Sender<usize>>,
}

/// Spawns the watcher on `runtime`. It runs until aborted through the returned handle (the
/// balancer does so when dropped); each check is bounded by the larger of the interval and
/// the connect timeout.
pub(super) fn spawn(runtime: &Handle, watched: Watched, options: &BalanceOptions) -> AbortHandle {
    let interval = options.health_interval.max(MIN_INTERVAL);
    let timeout = interval.max(options.connect_timeout);
    let name = options.health_service.clone();
    runtime
        .spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut first = true;
            loop {
                // The first tick completes at once.
                ticker.tick().await;
                let answer = tokio::time::timeout(
                    timeout,
                    check_health(watched.service.clone(), name.clone()),
                )
                .await;
                let (up, why) = match answer {
                    Ok(Ok(ServingStatus::Serving)) => (true, "SERVING".to_owned()),
                    Ok(Ok(other)) => (false, other.as_str_name().to_owned()),
                    Ok(Err(status)) => {
                        (false, format!("{:?}: {}", status.code(), status.message()))
                    }
                    Err(_) => (false, "no answer in time".to_owned()),
                };
                let was = watched.state.set_up(up);
                let changed = first || was != up;
                if first {
                    first = false;
                    watched.checked.send_modify(|n| *n += 1);
                }
                if changed && up {
                    tracing::info!(replica = watched.uri, "backend replica up");
                } else if changed {
                    tracing::warn!(replica = watched.uri, health = why, "backend replica down");
                }
            }
        })
        .abort_handle()
}

//! Backend health: the watcher of each replica (a background task asking its
//! `grpc.health.v1.Health/Check` every interval), and the readiness `/readyz` reports.
//!
//! A replica is up while the answer is SERVING, and also while it is UNIMPLEMENTED: most gRPC
//! servers have no health service, and that answer shows the server is reachable, so such a
//! replica is up while its connection is (as grpc-gateway and Envoy serve it). It is down at
//! once on any other answer (NOT_SERVING, an unknown service), and after `failure_threshold`
//! checks in a row with no answer (an error, no answer in time, no connection). The checks
//! have a connection of their own, so they do not queue behind the calls.

use std::{sync::Arc, time::Duration};

use serde::Serialize;
use tokio::{runtime::Handle, sync::watch, task::AbortHandle, time::MissedTickBehavior};
use tonic::{Code, Status};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use super::{
    replica::{BalanceOptions, Fleet, ReplicaStatus},
    transport::GrpcService,
};

/// The shortest interval accepted, so a zero interval cannot spin.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// How long a single transport's readiness check may take.
const SINGLE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What `/readyz` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// Whether calls can be served: some backend is up.
    pub ready: bool,
    /// Each backend's state.
    pub backends: Vec<BackendHealth>,
}

/// One backend's state, for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendHealth {
    /// The replica's URI (absent for a single transport, such as an in-memory service).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Whether it gets calls.
    pub up: bool,
    /// Why, in words.
    pub health: String,
}

impl Readiness {
    /// The readiness of balanced replicas: ready while any is up.
    pub(super) fn of(replicas: Vec<ReplicaStatus>) -> Self {
        let backends: Vec<BackendHealth> = replicas
            .into_iter()
            .map(|r| BackendHealth {
                uri: Some(r.uri),
                up: r.up,
                health: r.health,
            })
            .collect();
        Self {
            ready: backends.iter().any(|b| b.up),
            backends,
        }
    }
}

/// The words for a replica with no health service.
const NO_HEALTH_SERVICE: &str =
    "no health service (grpc.health.v1 answered UNIMPLEMENTED): up while its connection is";

/// What one health answer means.
enum Verdict {
    /// Up, and why.
    Up(String),
    /// Down at once: the replica said so (NOT_SERVING, an unknown service).
    Down(String),
    /// No answer (an error, a timeout): down only after enough in a row.
    Silent(String),
}

/// What one health answer means: up or not, and why.
fn judge(answer: Result<ServingStatus, Status>) -> Verdict {
    match answer {
        Ok(ServingStatus::Serving) => Verdict::Up("SERVING".to_owned()),
        Ok(other) => Verdict::Down(other.as_str_name().to_owned()),
        Err(status) if status.code() == Code::Unimplemented => {
            Verdict::Up(NO_HEALTH_SERVICE.to_owned())
        }
        Err(status) if status.code() == Code::NotFound => {
            Verdict::Down(format!("unknown service: {}", status.message()))
        }
        Err(status) => Verdict::Silent(format!("{:?}: {}", status.code(), status.message())),
    }
}

/// Asks a single transport now.
pub(super) async fn check_single(service: GrpcService) -> Readiness {
    let (up, health) = match tokio::time::timeout(
        SINGLE_CHECK_TIMEOUT,
        check_health(service, String::new()),
    )
    .await
    {
        Ok(answer) => match judge(answer) {
            Verdict::Up(why) => (true, why),
            Verdict::Down(why) | Verdict::Silent(why) => (false, why),
        },
        Err(_) => (false, "no answer in time".to_owned()),
    };
    Readiness {
        ready: up,
        backends: vec![BackendHealth {
            uri: None,
            up,
            health,
        }],
    }
}

/// What a watcher watches and where it reports.
pub(super) struct Watched {
    pub(super) uri: String,
    pub(super) service: GrpcService,
    /// Where its verdicts go: the one owner of the replicas' state.
    pub(super) fleet: Arc<Fleet>,
    /// The replica's place in the fleet.
    pub(super) index: usize,
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
    let threshold = options.failure_threshold.max(1);
    runtime
        .spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut first = true;
            let mut silent: u32 = 0;
            loop {
                // The first tick completes at once.
                ticker.tick().await;
                let answer = tokio::time::timeout(
                    timeout,
                    check_health(watched.service.clone(), name.clone()),
                )
                .await;
                let verdict = match answer {
                    Ok(answer) => judge(answer),
                    Err(_) => Verdict::Silent("no answer in time".to_owned()),
                };
                let (up, why) = match verdict {
                    Verdict::Up(why) => {
                        silent = 0;
                        (true, why)
                    }
                    Verdict::Down(why) => {
                        silent = 0;
                        (false, why)
                    }
                    // Until the first answer, or after enough in a row, silence is down;
                    // a check missing its deadline now and then is load, not death.
                    Verdict::Silent(why) => {
                        silent = silent.saturating_add(1);
                        if first || silent >= threshold {
                            (false, format!("{why} ({silent} checks in a row)"))
                        } else {
                            continue;
                        }
                    }
                };
                let was = watched.fleet.health(watched.index, up, &why);
                let changed = first || was != up;
                if first {
                    first = false;
                    watched.checked.send_modify(|n| *n += 1);
                }
                if changed && up {
                    tracing::info!(replica = watched.uri, health = why, "backend replica up");
                } else if changed {
                    tracing::warn!(replica = watched.uri, health = why, "backend replica down");
                }
            }
        })
        .abort_handle()
}

/// `grpc.health.v1.Health/Check` for `service` (`""`: the whole server).
async fn check_health(transport: GrpcService, service: String) -> Result<ServingStatus, Status> {
    let response = HealthClient::new(transport)
        .check(HealthCheckRequest { service })
        .await?;
    Ok(response.into_inner().status())
}

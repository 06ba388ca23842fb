//! The gateway's own endpoints: `/healthz` (the process is alive) and `/readyz` (the backend's
//! `grpc.health.v1` service says SERVING).

use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Response},
};
use http::{HeaderValue, Method};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::{app::Shared, error::Error};

/// How long `/readyz` waits for the backend's health answer: a probe must answer promptly.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Paths the gateway serves itself; they win over an annotated route with the same path.
pub(crate) const GATEWAY_PATHS: &[&str] =
    &["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"];

/// `GET /healthz`: 200 `{"status":"ok"}` while the process runs.
pub(crate) async fn healthz() -> Response {
    Json(serde_json::json!({"status": "ok"})).into_response()
}

/// `GET /readyz`: 200 `{"status":"ok"}` when the backend reports SERVING, else 503 in the
/// error shape.
pub(crate) async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    match tokio::time::timeout(READY_TIMEOUT, shared.backend.health()).await {
        Ok(Ok(ServingStatus::Serving)) => healthz().await,
        Ok(Ok(other)) => Error::Unavailable(format!("the backend reports {}", other.as_str_name()))
            .into_response(),
        Ok(Err(status)) => {
            tracing::warn!(code = ?status.code(), message = status.message(), "readiness check failed");
            Error::Unavailable("the backend is unavailable".to_owned()).into_response()
        }
        Err(_) => {
            Error::Unavailable("the backend did not answer its health check in time".to_owned())
                .into_response()
        }
    }
}

/// Any other method on a gateway path.
pub(crate) async fn get_only(method: Method) -> Response {
    Error::MethodNotAllowed {
        method,
        allow: HeaderValue::from_static("GET, HEAD"),
    }
    .into_response()
}

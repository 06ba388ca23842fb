//! The gateway's own endpoints: `/healthz` (the process is alive) and `/readyz` (some backend
//! can take calls: its `grpc.health.v1` says SERVING, or it has no health service and is
//! reachable), each backend listed with why, the version of the served descriptors with
//! when it was loaded, and where the routes came from (annotations, configuration files,
//! auto-mapping) with how many each gave.

use axum::{
    Json, Router,
    extract::State,
    response::{IntoResponse, Response},
    routing::get,
};
use http::{HeaderValue, Method};

use crate::{backend::Backend, error::Error, served::ServedApi};

/// Paths the gateway serves itself; they win over an annotated route with the same path.
pub(crate) const GATEWAY_PATHS: &[&str] =
    &["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"];

/// `/healthz` and `/readyz`, asking `backend` about readiness.
pub(crate) fn router(backend: Backend, served: ServedApi) -> Router {
    Router::new()
        .route("/healthz", get(healthz).fallback(get_only))
        .route("/readyz", get(readyz).fallback(get_only))
        .with_state((backend, served))
}

/// `GET /healthz`: 200 `{"status":"ok"}` while the process runs.
async fn healthz() -> Response {
    Json(serde_json::json!({"status": "ok"})).into_response()
}

/// `GET /readyz`: 200 `{"status": "ok", "backends": [...], "descriptors": {"version": ...,
/// "loaded_at": ...}, "routes": {"annotation": n, "configuration": n, "auto": n,
/// "configuration_files": [...], "auto_mapping": bool}}` when some backend can take calls,
/// else 503 in the error shape, naming each backend's state.
async fn readyz(State((backend, served)): State<(Backend, ServedApi)>) -> Response {
    // Bounded: a single transport's check has its own timeout, replicas answer from state.
    let readiness = backend.readiness().await;
    if readiness.ready {
        let loaded = served.loaded();
        let sources = served.sources();
        let mut routes: serde_json::Map<String, serde_json::Value> = sources
            .counts
            .iter()
            .map(|(kind, count)| ((*kind).to_owned(), (*count).into()))
            .collect();
        routes.insert("configuration_files".into(), sources.files.into());
        routes.insert("auto_mapping".into(), sources.auto_mapping.into());
        return Json(serde_json::json!({
            "status": "ok",
            "backends": readiness.backends,
            "descriptors": {"version": loaded.version.as_str(), "loaded_at": loaded.rfc3339()},
            "routes": routes,
        }))
        .into_response();
    }
    let states: Vec<String> = readiness
        .backends
        .iter()
        .map(|b| match &b.uri {
            Some(uri) => format!("{uri}: {}", b.health),
            None => b.health.clone(),
        })
        .collect();
    tracing::warn!(backends = ?states, "not ready");
    Error::Unavailable(format!("no backend is ready: {}", states.join("; "))).into_response()
}

/// Any other method on a gateway path.
pub(crate) async fn get_only(method: Method) -> Response {
    Error::MethodNotAllowed {
        method,
        allow: HeaderValue::from_static("GET, HEAD"),
    }
    .into_response()
}

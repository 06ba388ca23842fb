//! The ceiling: a bare axum server answering fixed bytes, the best any one-HTTP-hop REST
//! server can do on this machine.
//!
//! The benchmark fetches the gateway's real answers to `GET /articles?page=1&page_size=10` and
//! `GET /articles/1`, writes them to files and spawns itself as
//! `bench bare-server --listen 127.0.0.1:PORT --list-body FILE --detail-body FILE`, a separate
//! process so it shares neither the load generator's runtime nor its memory. It answers
//! `/articles` with the list bytes and `/articles/{pk}` with the detail bytes (any pk), as
//! `application/json`, and `/readyz` with 200.

use anyhow::{Context as _, Result};
use axum::{
    Router, extract::State, http::header, response::IntoResponse, routing::get,
    serve::ListenerExt as _,
};
use bytes::Bytes;
use tokio::net::TcpListener;

use crate::config::BareArgs;

/// The two bodies.
#[derive(Debug, Clone)]
struct Bodies {
    list: Bytes,
    detail: Bytes,
}

/// The router over `list` and `detail` bodies.
pub(crate) fn router(list: Bytes, detail: Bytes) -> Router {
    Router::new()
        .route("/articles", get(list_handler))
        .route("/articles/{pk}", get(detail_handler))
        .route("/readyz", get(|| async { "ok" }))
        .with_state(Bodies { list, detail })
}

async fn list_handler(State(bodies): State<Bodies>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], bodies.list)
}

async fn detail_handler(State(bodies): State<Bodies>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], bodies.detail)
}

/// The `bare-server` subcommand: serves until killed.
///
/// # Errors
/// The body files cannot be read or the address cannot be bound.
pub(crate) async fn serve(args: BareArgs) -> Result<()> {
    let list = tokio::fs::read(&args.list_body)
        .await
        .with_context(|| format!("reading {}", args.list_body.display()))?;
    let detail = tokio::fs::read(&args.detail_body)
        .await
        .with_context(|| format!("reading {}", args.detail_body.display()))?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?
        .tap_io(|tcp| {
            // Best effort, like any server: a socket without TCP_NODELAY still works.
            let _nodelay = tcp.set_nodelay(true);
        });
    axum::serve(listener, router(list.into(), detail.into()))
        .await
        .context("serving")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{
        Endpoint, LoadSpec, Scenario,
        rest::{RestEndpoint, get_once},
    };
    use std::time::Duration;

    #[tokio::test]
    async fn serves_the_bytes_and_survives_a_short_load() -> Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = router(
            Bytes::from_static(b"{\"l\":1}"),
            Bytes::from_static(b"{\"d\":2}"),
        );
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let endpoint = RestEndpoint::local(addr);
        let (status, body) = get_once(&endpoint, "/articles/42").await?;
        assert_eq!(status, 200);
        assert_eq!(body, "{\"d\":2}");
        let spec = LoadSpec {
            connections: 2,
            warmup: Duration::ZERO,
            duration: Duration::from_millis(200),
            max_requests: 50,
        };
        let m = crate::load::run(
            &Endpoint::Rest(endpoint),
            Scenario::Detail { ids: 10 },
            spec,
        )
        .await?;
        assert_eq!(m.ok(), 50, "capped by max_requests");
        assert_eq!(m.errors, 0);
        server.abort();
        Ok(())
    }
}
